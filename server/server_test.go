package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// TestRoutesMatchOpenAPI checks that every route the router has is in
// openapi.json, and that every operation there is routed.
func TestRoutesMatchOpenAPI(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(server.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			switch method {
			case "get", "post", "put", "delete", "patch", "head", "options":
				documented[strings.ToUpper(method)+" "+path] = true
				if _, ok := op["responses"]; !ok {
					t.Errorf("%s %s has no responses", method, path)
				}
			}
		}
	}
	routed := map[string]bool{}
	for _, r := range e.srv.Handler().(*gin.Engine).Routes() {
		routed[r.Method+" "+openAPIPath(r.Path)] = true
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("openapi.json documents %s, which the router does not have", d)
		}
	}
	for _, want := range []string{"POST /v1/score", "POST /v1/rank", "POST /v1/reward", "POST /v1/embed", "GET /v1/models",
		"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"} {
		if !routed[want] {
			t.Errorf("SPEC §4 route %s is missing", want)
		}
	}
	r := e.get(t, "/openapi.json")
	if r.status != http.StatusOK || string(r.raw) != string(server.OpenAPI) {
		t.Errorf("/openapi.json: status %d, %d bytes; want the embedded document", r.status, len(r.raw))
	}
}

// openAPIPath writes gin's /v1/jobs/:id as OpenAPI's /v1/jobs/{id}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

func TestScore(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	imgs := [][]byte{pngBytes(t, 1, 40, 30), jpegBytes(t, 2, 300, 200), pngBytes(t, 3, 224, 224)}
	prompt := "a red apple on a table"
	ref, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: []scoring.Image{{Data: imgs[0]}, {Data: imgs[1]}, {Data: imgs[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, r *response, fields ...string) {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		scores := r.body["scores"].([]any)
		if len(scores) != len(imgs) {
			t.Fatalf("%d scores for %d images", len(scores), len(imgs))
		}
		for i, s := range scores {
			m := s.(map[string]any)
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != strings.Join(fields, ",") {
				t.Errorf("image %d has fields %v, want %v", i, keys, fields)
			}
			for _, f := range fields {
				want := map[string]*float64{"ict": ref.Scores[i].Get("ict"), "hp": ref.Scores[i].Get("hp"), "hp_logit": ref.Scores[i].Get("hp_logit")}[f]
				near(t, f, num(t, m[f], f), want)
			}
		}
		models := r.body["models"].(map[string]any)
		for _, f := range fields {
			name := strings.TrimSuffix(f, "_logit")
			if models[name] != ref.Versions[name] {
				t.Errorf("models[%s] = %v, want %v", name, models[name], ref.Versions[name])
			}
		}
	}
	t.Run("json", func(t *testing.T) {
		check(t, e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []string{b64(imgs[0]), b64(imgs[1]), b64(imgs[2])}}),
			"hp", "hp_logit", "ict")
	})
	t.Run("data-url", func(t *testing.T) {
		check(t, e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []string{
			"data:image/png;base64," + b64(imgs[0]), b64(imgs[1]), b64(imgs[2])}}), "hp", "hp_logit", "ict")
	})
	t.Run("multipart", func(t *testing.T) {
		check(t, e.postMultipart(t, "/v1/score", [][2]string{{"prompt", prompt}}, imgs), "hp", "hp_logit", "ict")
	})
	t.Run("no-prompt-is-hp-only", func(t *testing.T) {
		check(t, e.post(t, "/v1/score", map[string]any{"images": []string{b64(imgs[0]), b64(imgs[1]), b64(imgs[2])}}), "hp", "hp_logit")
	})
	t.Run("models-narrow", func(t *testing.T) {
		check(t, e.post(t, "/v1/score", map[string]any{"prompt": prompt, "models": []string{"ict"},
			"images": []string{b64(imgs[0]), b64(imgs[1]), b64(imgs[2])}}), "ict")
		check(t, e.postMultipart(t, "/v1/score", [][2]string{{"prompt", prompt}, {"models", "hp"}}, imgs), "hp", "hp_logit")
	})
	t.Run("empty", func(t *testing.T) {
		r := e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []string{}})
		if r.status != http.StatusOK || len(r.body["scores"].([]any)) != 0 {
			t.Errorf("an empty list: %d %s, want 200 with no scores", r.status, r.raw)
		}
	})
}

func TestPerImageErrors(t *testing.T) {
	e := newEnv(t, envConfig{scoring: scoring.Options{MaxImagePixels: 100 * 100}}, true)
	good := pngBytes(t, 4, 50, 50)
	truncated := pngBytes(t, 5, 60, 60)
	truncated = truncated[:len(truncated)/2]
	// Strings of 16 KiB and more are decoded straight from the body
	// (api.UnmarshalRequest): a long good image, and long text that is not
	// base64, go that way.
	long := b64(noisyPNG(t, 100, 100))
	if len(long) < 16<<10 {
		t.Fatalf("the long image's base64 is %d bytes, under the 16 KiB from which it is decoded from the body", len(long))
	}
	body := map[string]any{"prompt": "a cat", "images": []string{
		b64(good), b64([]byte("not an image at all")), b64(truncated), "%%%", b64(pngBytes(t, 6, 200, 200)), b64(good),
		long, strings.Repeat("%", 20000)}}
	r := e.post(t, "/v1/score", body)
	if r.status != http.StatusOK {
		t.Fatalf("mixed good and bad images: status %d, want 200: %s", r.status, r.raw)
	}
	want := []string{"", server.CodeUnsupportedImage, server.CodeUndecodable, server.CodeBadBase64, server.CodeTooLarge, "", "", server.CodeBadBase64}
	scores := r.body["scores"].([]any)
	for i, s := range scores {
		m := s.(map[string]any)
		code := ""
		if e, ok := m["error"].(map[string]any); ok {
			code = e["code"].(string)
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("image %d: error without a message", i)
			}
			if len(m) != 1 {
				t.Errorf("image %d: a failed image carries scores too: %v", i, m)
			}
		} else if _, ok := m["ict"]; !ok {
			t.Errorf("image %d: neither scores nor an error: %v", i, m)
		}
		if code != want[i] {
			t.Errorf("image %d: error code %q, want %q", i, code, want[i])
		}
	}
	// The same image gets the same scores wherever it is in the request.
	if scores[0].(map[string]any)["ict"] != scores[5].(map[string]any)["ict"] {
		t.Errorf("image 0 and 5 are the same bytes but scored %v and %v", scores[0], scores[5])
	}
}

func TestErrorStatuses(t *testing.T) {
	e := newEnv(t, envConfig{
		server:  server.Options{MaxBodyBytes: 1 << 20, MaxImages: 4, MaxPromptBytes: 100},
		scoring: scoring.Options{MaxImagePixels: 100 * 100},
	}, true)
	good := b64(pngBytes(t, 1, 32, 32))
	big := strings.Repeat("A", 2<<20)
	truncated := pngBytes(t, 2, 64, 64)
	small := pngBytes(t, 4, 16, 16)
	mpMany, mpManyBody := multipartBody(t, [][2]string{{"prompt", "x"}}, [][]byte{small, small, small, small, small})
	mpBig, mpBigBody := multipartBody(t, nil, [][]byte{bytes.Repeat([]byte{1}, 2<<20)})
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             []string
		status                          int
		code                            string
	}{
		{"malformed json", "POST", "/v1/score", "application/json", `{"images": [`, nil, 400, server.CodeBadRequest},
		{"unknown field", "POST", "/v1/score", "application/json", `{"image": ["` + good + `"]}`, nil, 400, server.CodeBadRequest},
		{"wrong type", "POST", "/v1/score", "application/json", `{"images": "x"}`, nil, 400, server.CodeBadRequest},
		{"no images", "POST", "/v1/score", "application/json", `{"prompt": "x"}`, nil, 400, server.CodeBadRequest},
		{"trailing data", "POST", "/v1/score", "application/json", `{"images": []} {}`, nil, 400, server.CodeBadRequest},
		{"empty body", "POST", "/v1/score", "application/json", ``, nil, 400, server.CodeBadRequest},
		{"ict without prompt", "POST", "/v1/score", "application/json", `{"models": ["ict"], "images": ["` + good + `"]}`, nil, 400, server.CodeBadRequest},
		{"unknown model", "POST", "/v1/score", "application/json", `{"prompt": "x", "models": ["nope"], "images": ["` + good + `"]}`, nil, 400, server.CodeBadRequest},
		{"prompt too long", "POST", "/v1/score", "application/json", `{"prompt": "` + strings.Repeat("a", 101) + `", "images": ["` + good + `"]}`, nil, 400, server.CodePromptTooLong},
		{"only image is bad base64", "POST", "/v1/score", "application/json", `{"images": ["***"]}`, nil, 400, server.CodeBadBase64},
		{"bad timeout header", "POST", "/v1/score", "application/json", `{"images": ["` + good + `"]}`, []string{server.TimeoutHeader, "soon"}, 400, server.CodeBadRequest},
		{"rank without prompt", "POST", "/v1/rank", "application/json", `{"images": ["` + good + `"]}`, nil, 400, server.CodeBadRequest},
		{"reward item without prompt", "POST", "/v1/reward", "application/json", `{"items": [{"image": "` + good + `"}]}`, nil, 400, server.CodeBadRequest},
		{"bad reward combination", "POST", "/v1/reward", "application/json", `{"reward": "max", "items": [{"prompt": "x", "image": "` + good + `"}]}`, nil, 400, server.CodeBadRequest},
		{"reward needs a score not loaded", "POST", "/v1/reward", "application/json", `{"reward": "imagereward", "items": [{"prompt": "x", "image": "` + good + `"}]}`, nil, 400, server.CodeBadRequest},
		{"embed nothing", "POST", "/v1/embed", "application/json", `{}`, nil, 400, server.CodeBadRequest},
		{"body too large", "POST", "/v1/score", "application/json", `{"images": ["` + big + `"]}`, nil, 413, server.CodeTooLarge},
		{"too many images", "POST", "/v1/score", "application/json", `{"images": ["` + strings.Repeat(good+`","`, 4) + good + `"]}`, nil, 413, server.CodeTooManyItems},
		{"too many texts", "POST", "/v1/embed", "application/json", `{"texts": ["a","b","c","d","e"]}`, nil, 413, server.CodeTooManyItems},
		{"only image over the pixel limit", "POST", "/v1/score", "application/json", `{"images": ["` + b64(pngBytes(t, 3, 101, 100)) + `"]}`, nil, 413, server.CodeTooLarge},
		{"only image unsupported", "POST", "/v1/score", "application/json", `{"images": ["` + b64([]byte("plain text, no magic")) + `"]}`, nil, 415, server.CodeUnsupportedImage},
		{"not json or multipart", "POST", "/v1/score", "image/png", "x", nil, 415, server.CodeUnsupportedMedia},
		{"multipart too many images", "POST", "/v1/score", mpMany, string(mpManyBody), nil, 413, server.CodeTooManyItems},
		{"multipart body too large", "POST", "/v1/score", mpBig, string(mpBigBody), nil, 413, server.CodeTooLarge},
		{"multipart without boundary", "POST", "/v1/score", "multipart/form-data", "--x--", nil, 400, server.CodeBadRequest},
		{"only image truncated", "POST", "/v1/score", "application/json", `{"images": ["` + b64(truncated[:len(truncated)-40]) + `"]}`, nil, 422, server.CodeUndecodable},
		{"wrong method", "GET", "/v1/score", "", "", nil, 405, server.CodeMethodNotAllowed},
		{"no such route", "GET", "/v2/score", "", "", nil, 404, server.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, e.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			r := e.do(t, req)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, r.errCode(), tc.status, tc.code, r.raw)
			}
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Errorf("error without a message: %s", r.raw)
			}
		})
	}
	if n := e.metric(t, `icthp_http_rejected_total{reason="too_many_items"}`); n != 3 {
		t.Errorf("icthp_http_rejected_total{reason=too_many_items} = %v, want 3", n)
	}
}

// groupScores is the paper's group score in float64: ict × softmax(hp_logit)
// over the group.
func groupScores(ict, logit []float64) []float64 {
	maxL := math.Inf(-1)
	for _, l := range logit {
		maxL = math.Max(maxL, l)
	}
	sum := 0.0
	for _, l := range logit {
		sum += math.Exp(l - maxL)
	}
	group := make([]float64, len(ict))
	for i := range group {
		group[i] = ict[i] * math.Exp(logit[i]-maxL) / sum
	}
	return group
}

func TestRank(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	var imgs []scoring.Image
	var b64s []string
	for i := range 5 {
		b := pngBytes(t, 10+i, 64+8*i, 64)
		imgs = append(imgs, scoring.Image{Data: b})
		b64s = append(b64s, b64(b))
	}
	b64s = append(b64s[:2], append([]string{b64([]byte("junk"))}, b64s[2:]...)...) // index 2 fails
	prompt := "a lighthouse"
	ref, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	// The paper's group score, computed here: ict × softmax(hp_logit).
	var ictv, logit []float64
	for _, s := range ref.Scores {
		ictv, logit = append(ictv, *s.Get("ict")), append(logit, *s.Get("hp_logit"))
	}
	group := groupScores(ictv, logit)
	for _, r := range []*response{
		e.post(t, "/v1/rank", map[string]any{"prompt": prompt, "images": b64s}),
	} {
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		ranking := r.body["ranking"].([]any)
		if len(ranking) != 6 {
			t.Fatalf("%d entries for 6 images", len(ranking))
		}
		last := ranking[5].(map[string]any)
		if num(t, last["index"], "index") != 2 || last["error"] == nil {
			t.Errorf("the failed image should come last with its error: %v", last)
		}
		prev := math.Inf(1)
		seen := map[int]bool{}
		for _, x := range ranking[:5] {
			m := x.(map[string]any)
			idx := int(num(t, m["index"], "index"))
			seen[idx] = true
			k := idx // request index → reference index (skip the junk at 2)
			if idx > 2 {
				k--
			}
			g := num(t, m["ict_hp"], "ict_hp")
			near(t, "ict_hp", g, &group[k])
			near(t, "ict", num(t, m["ict"], "ict"), ref.Scores[k].Get("ict"))
			if g > prev {
				t.Errorf("ranking not best first: %v after %v", g, prev)
			}
			prev = g
		}
		if len(seen) != 5 || seen[2] {
			t.Errorf("ranked indices %v, want 0,1,3,4,5", seen)
		}
	}
	// Multipart, all good images.
	var files [][]byte
	for _, im := range imgs {
		files = append(files, im.Data)
	}
	r := e.postMultipart(t, "/v1/rank", [][2]string{{"prompt", prompt}}, files)
	if r.status != http.StatusOK || len(r.body["ranking"].([]any)) != 5 {
		t.Fatalf("multipart rank: %d %s", r.status, r.raw)
	}
	best := int(num(t, r.body["ranking"].([]any)[0].(map[string]any)["index"], "index"))
	for i := range group {
		if group[i] > group[best]+1e-12 {
			t.Errorf("best is %d (%v) but %d scores %v", best, group[best], i, group[i])
		}
	}
}

func TestReward(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	a, b := pngBytes(t, 20, 80, 60), pngBytes(t, 21, 60, 80)
	items := []map[string]any{{"prompt": "a cat", "image": b64(a)}, {"prompt": "a dog", "image": b64(b)}, {"prompt": "a cat", "image": b64(b)}}
	pa, pb := "a cat", "a dog"
	refA, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &pa, Images: []scoring.Image{{Data: a}, {Data: b}}})
	if err != nil {
		t.Fatal(err)
	}
	refB, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &pb, Images: []scoring.Image{{Data: b}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []scoring.Scores{refA.Scores[0], refB.Scores[0], refA.Scores[1]}
	t.Run("product", func(t *testing.T) {
		r := e.post(t, "/v1/reward", map[string]any{"items": items})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		for i := range items {
			p := *want[i].Get("ict") * *want[i].Get("hp")
			near(t, "reward", num(t, r.body["rewards"].([]any)[i], "reward"), &p)
			near(t, "ict", num(t, r.body["ict"].([]any)[i], "ict"), want[i].Get("ict"))
			near(t, "hp", num(t, r.body["hp"].([]any)[i], "hp"), want[i].Get("hp"))
		}
		if _, ok := r.body["errors"]; ok {
			t.Errorf("errors present with none failed: %s", r.raw)
		}
	})
	t.Run("weighted", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"items": items, "reward": "weighted:ict=2,hp_logit=0.5"},
			{"items": items, "weights": map[string]float64{"ict": 2, "hp_logit": 0.5}},
		} {
			r := e.post(t, "/v1/reward", body)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			for i := range items {
				w := 2**want[i].Get("ict") + 0.5**want[i].Get("hp_logit")
				near(t, "weighted reward", num(t, r.body["rewards"].([]any)[i], "reward"), &w)
			}
		}
	})
	t.Run("per-item error", func(t *testing.T) {
		bad := append(append([]map[string]any{}, items...), map[string]any{"prompt": "x", "image": b64([]byte("zzz"))})
		r := e.post(t, "/v1/reward", map[string]any{"items": bad, "reward": "hp"})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		if r.body["rewards"].([]any)[3] != nil {
			t.Errorf("the failed item has a reward: %s", r.raw)
		}
		errs := r.body["errors"].([]any)
		if len(errs) != 1 || num(t, errs[0].(map[string]any)["index"], "index") != 3 || errs[0].(map[string]any)["code"] != server.CodeUnsupportedImage {
			t.Errorf("errors %v, want one for item 3 (unsupported_image)", errs)
		}
		near(t, "hp reward", num(t, r.body["rewards"].([]any)[1], "reward"), want[1].Get("hp"))
	})
	t.Run("multipart", func(t *testing.T) {
		r := e.postMultipart(t, "/v1/reward", [][2]string{{"prompt", "a cat"}, {"prompt", "a dog"}, {"prompt", "a cat"}}, [][]byte{a, b, b})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		for i := range items {
			p := *want[i].Get("ict") * *want[i].Get("hp")
			near(t, "reward", num(t, r.body["rewards"].([]any)[i], "reward"), &p)
		}
		r = e.postMultipart(t, "/v1/reward", [][2]string{{"prompt", "a"}, {"prompt", "b"}}, [][]byte{a, b, b})
		if r.status != http.StatusBadRequest {
			t.Errorf("2 prompts for 3 images: %d, want 400", r.status)
		}
	})
}

func TestEmbed(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	img := pngBytes(t, 30, 90, 90)
	texts := []string{"a cat", "a dog", "a cat"}
	refT, err := e.ref.EmbedTexts(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	refI, _, err := e.ref.EmbedImages(context.Background(), []scoring.Image{{Data: img}})
	if err != nil {
		t.Fatal(err)
	}
	r := e.post(t, "/v1/embed", map[string]any{"texts": texts, "images": []string{b64(img), b64([]byte("no"))}})
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	vec := func(v any) []float64 {
		var out []float64
		for _, x := range v.([]any) {
			out = append(out, num(t, x, "embedding"))
		}
		return out
	}
	for i, v := range r.body["text_embeddings"].([]any) {
		got := vec(v)
		if len(got) != len(refT[i]) {
			t.Fatalf("text %d: width %d, want %d", i, len(got), len(refT[i]))
		}
		norm := 0.0
		for k := range got {
			norm += got[k] * got[k]
			w := float64(refT[i][k])
			near(t, "text embedding", got[k], &w)
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Errorf("text %d: |v|² = %v, want 1", i, norm)
		}
	}
	imgs := r.body["image_embeddings"].([]any)
	for k, x := range vec(imgs[0]) {
		w := float64(refI[0][k])
		near(t, "image embedding", x, &w)
	}
	if imgs[1] != nil {
		t.Errorf("the undecodable image has an embedding")
	}
	if errs := r.body["errors"].([]any); len(errs) != 1 || num(t, errs[0].(map[string]any)["index"], "index") != 1 {
		t.Errorf("errors %v, want one for image 1", errs)
	}
	mp := e.postMultipart(t, "/v1/embed", [][2]string{{"texts", "a cat"}, {"texts", "a dog"}}, [][]byte{img})
	if mp.status != http.StatusOK || len(mp.body["text_embeddings"].([]any)) != 2 || len(mp.body["image_embeddings"].([]any)) != 1 {
		t.Errorf("multipart embed: %d %s", mp.status, mp.raw)
	}
}

func TestModelsHealthAndRequestID(t *testing.T) {
	e := newEnv(t, envConfig{server: server.Options{Models: []server.ModelInfo{
		{Name: "ict", Version: "clip-x", Provider: "cpu", Device: "cpu"}, {Name: "hp", Version: "hp-y", Provider: "cpu", Device: "cpu"}}}}, true)
	r := e.get(t, "/v1/models")
	ms := r.body["models"].([]any)
	if r.status != 200 || len(ms) != 2 || ms[0].(map[string]any)["version"] != "clip-x" || ms[1].(map[string]any)["device"] != "cpu" {
		t.Errorf("/v1/models: %d %s", r.status, r.raw)
	}
	if v := e.metric(t, `icthp_model_info{device="cpu",kind="",model="hp",provider="cpu",version="hp-y"}`); v != 1 {
		t.Errorf("icthp_model_info for hp = %v, want 1", v)
	}
	if r := e.get(t, "/healthz"); r.status != 200 || r.body["status"] != "ok" {
		t.Errorf("/healthz: %d %s", r.status, r.raw)
	}
	if r := e.get(t, "/readyz"); r.status != 200 || r.body["status"] != "ready" {
		t.Errorf("/readyz: %d %s", r.status, r.raw)
	}
	r = e.get(t, "/v1/models", server.RequestIDHeader, "trace-42")
	if got := r.header.Get(server.RequestIDHeader); got != "trace-42" {
		t.Errorf("request id %q, want the client's trace-42", got)
	}
	r = e.get(t, "/v1/models", server.RequestIDHeader, "bad id with spaces")
	made := r.header.Get(server.RequestIDHeader)
	if made == "" || strings.Contains(made, " ") {
		t.Errorf("request id %q for an unsafe client id, want a new one", made)
	}
	// Every request has one JSON log line with its id and status.
	found := 0
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if l["msg"] == "request" && (l["request_id"] == "trace-42" || l["request_id"] == made) {
			found++
			if l["status"] != 200.0 || l["route"] != "/v1/models" {
				t.Errorf("log line %v", l)
			}
		}
	}
	if found != 2 {
		t.Errorf("%d log lines with the two request ids, want 2:\n%s", found, e.logs.String())
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envConfig{server: server.Options{Tokens: []string{"s3cret", "other"}, AuthMetrics: true}}, true)
	body := map[string]any{"images": []string{b64(pngBytes(t, 1, 32, 32))}}
	for _, tc := range []struct {
		name, auth string
		status     int
		code       string
	}{
		{"none", "", 401, server.CodeUnauthorized},
		{"not bearer", "Basic czNjcmV0", 401, server.CodeUnauthorized},
		{"wrong", "Bearer s3cre", 403, server.CodeForbidden},
		{"right", "Bearer s3cret", 200, ""},
		{"second token, lower-case scheme", "bearer other", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := e.post(t, "/v1/score", body, hdr...)
			if r.status != tc.status || r.errCode() != tc.code {
				t.Fatalf("got %d %q, want %d %q", r.status, r.errCode(), tc.status, tc.code)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if r := e.get(t, "/v1/models", hdr...); r.status != tc.status {
				t.Errorf("/v1/models: %d, want %d", r.status, tc.status)
			}
		})
	}
	if r := e.get(t, "/healthz"); r.status != 200 {
		t.Errorf("/healthz without a token: %d, want 200 (AuthHealth is off)", r.status)
	}
	if r := e.get(t, "/metrics"); r.status != 401 {
		t.Errorf("/metrics without a token: %d, want 401 (AuthMetrics is on)", r.status)
	}
	if r := e.get(t, "/metrics", "Authorization", "Bearer s3cret"); r.status != 200 {
		t.Errorf("/metrics with a token: %d", r.status)
	}
}

// noisyPNG is a PNG of random pixels: it does not compress, so its base64
// is about 4/3 of w·h·3 bytes.
func noisyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// JSON images and multipart image parts are decoded into pooled buffers
// that later requests reuse (filebuf.go): request after request, with
// images of other sizes in other orders, both routes answer what the
// reference service (no HTTP, no pools) gives for the same images.
func TestFileBuffersReused(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	imgs := [][]byte{noisyPNG(t, 130, 130), noisyPNG(t, 90, 90), noisyPNG(t, 110, 110)}
	prompt := "a cat"
	for _, order := range [][]int{{0, 1, 2}, {1, 2, 0}, {2, 0}, {1}, {0, 2, 1, 1}} {
		var files [][]byte
		var texts []string
		var data []scoring.Image
		for _, i := range order {
			files = append(files, imgs[i])
			texts = append(texts, b64(imgs[i]))
			data = append(data, scoring.Image{Data: imgs[i]})
		}
		ref, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: data})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*response{
			e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": texts}),
			e.postMultipart(t, "/v1/score", [][2]string{{"prompt", prompt}}, files),
		} {
			if r.status != http.StatusOK {
				t.Fatalf("order %v: %d %s", order, r.status, r.raw)
			}
			for i, sc := range r.body["scores"].([]any) {
				m := sc.(map[string]any)
				for _, f := range []string{"ict", "hp", "hp_logit"} {
					near(t, fmt.Sprintf("order %v image %d %s", order, i, f), num(t, m[f], f), ref.Scores[i].Get(f))
				}
			}
		}
	}
}
