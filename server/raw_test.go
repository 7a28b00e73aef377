package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// rawPixels is testImage's pixels as packed HWC uint8 RGB, and the same
// pixels saved losslessly as PNG.
func rawPixels(t *testing.T, seed, w, h int) (pix, pngData []byte) {
	t.Helper()
	img := testImage(seed, w, h).(*image.NRGBA)
	pix = make([]byte, 0, w*h*3)
	for i := 0; i < len(img.Pix); i += 4 {
		pix = append(pix, img.Pix[i], img.Pix[i+1], img.Pix[i+2])
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return pix, b.Bytes()
}

func tensorJSON(pix []byte, shape ...int) map[string]any {
	return map[string]any{"data": base64.StdEncoding.EncodeToString(pix), "shape": shape, "dtype": "uint8"}
}

// tensorBody is a TensorContentType body: header line, then the bytes.
func tensorBody(t *testing.T, hdr map[string]any, pix []byte) []byte {
	t.Helper()
	j, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	return append(append(j, '\n'), pix...)
}

// TestRawPixelsEqualPNG: scores of raw pixels, in JSON or in the binary
// body, single or as a batch, are bit-identical to those of the same
// pixels sent as PNG files.
func TestRawPixelsEqualPNG(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	const w, h = 37, 29 // odd sizes: resize and crop are exercised
	var pixes, pngs [][]byte
	var batch []byte
	for seed := range 3 {
		p, q := rawPixels(t, seed+1, w, h)
		pixes, pngs, batch = append(pixes, p), append(pngs, q), append(batch, p...)
	}
	prompt := "a red apple on a table"
	ct := []string{"Content-Type", server.TensorContentType}

	want := e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []string{b64(pngs[0]), b64(pngs[1]), b64(pngs[2])}})
	if want.status != http.StatusOK {
		t.Fatalf("PNG reference: %d %s", want.status, want.raw)
	}
	scoreCases := map[string]*response{
		"json-each": e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []any{
			tensorJSON(pixes[0], h, w, 3), tensorJSON(pixes[1], h, w, 3), tensorJSON(pixes[2], h, w, 3)}}),
		"json-batch": e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []any{tensorJSON(batch, 3, h, w, 3)}}),
		"json-mixed": e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []any{
			b64(pngs[0]), tensorJSON(batch[len(pixes[0]):], 2, h, w, 3)}}),
		"binary": e.post(t, "/v1/score", tensorBody(t, map[string]any{"prompt": prompt, "shape": []int{3, h, w, 3}, "dtype": "uint8"}, batch), ct...),
	}
	for name, r := range scoreCases {
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
			continue
		}
		if !reflect.DeepEqual(r.body["scores"], want.body["scores"]) {
			t.Errorf("%s: scores %v, want the PNG's %v", name, r.body["scores"], want.body["scores"])
		}
	}

	checkRawRewards(t, e, prompt, pixes, pngs, batch, w, h)

	rank := e.post(t, "/v1/rank", tensorBody(t, map[string]any{"prompt": prompt, "shape": []int{3, h, w, 3}}, batch), ct...)
	rankWant := e.post(t, "/v1/rank", map[string]any{"prompt": prompt, "images": []string{b64(pngs[0]), b64(pngs[1]), b64(pngs[2])}})
	if rank.status != http.StatusOK || !reflect.DeepEqual(rank.body["ranking"], rankWant.body["ranking"]) {
		t.Errorf("rank: %d %s, want %s", rank.status, rank.raw, rankWant.raw)
	}
	emb := e.post(t, "/v1/embed", map[string]any{"images": []any{tensorJSON(batch, 3, h, w, 3)}})
	embWant := e.post(t, "/v1/embed", map[string]any{"images": []string{b64(pngs[0]), b64(pngs[1]), b64(pngs[2])}})
	if emb.status != http.StatusOK || !reflect.DeepEqual(emb.body["image_embeddings"], embWant.body["image_embeddings"]) {
		t.Errorf("embed: %d, want the PNG's embeddings (%d)", emb.status, embWant.status)
	}
}

// checkRawRewards: /v1/reward of raw pixels (JSON items, binary body with
// prompts, items or one prompt) equals /v1/reward of the same PNG files.
func checkRawRewards(t *testing.T, e *env, prompt string, pixes, pngs [][]byte, batch []byte, w, h int) {
	t.Helper()
	ct := []string{"Content-Type", server.TensorContentType}
	items := make([]map[string]any, 3)
	for i := range items {
		items[i] = map[string]any{"prompt": fmt.Sprint(prompt, i), "image": b64(pngs[i])}
	}
	wantR := e.post(t, "/v1/reward", map[string]any{"items": items})
	if wantR.status != http.StatusOK {
		t.Fatalf("PNG reward: %d %s", wantR.status, wantR.raw)
	}
	rawItems := make([]map[string]any, 3)
	for i := range rawItems {
		rawItems[i] = map[string]any{"prompt": fmt.Sprint(prompt, i), "image": tensorJSON(pixes[i], h, w, 3)}
	}
	rewardCases := map[string]*response{
		"json": e.post(t, "/v1/reward", map[string]any{"items": rawItems}),
		"binary-prompts": e.post(t, "/v1/reward", tensorBody(t, map[string]any{
			"prompts": []string{prompt + "0", prompt + "1", prompt + "2"}, "shape": []int{3, h, w, 3}}, batch), ct...),
		"binary-items": e.post(t, "/v1/reward", tensorBody(t, map[string]any{
			"items": []map[string]string{{"prompt": prompt + "0"}, {"prompt": prompt + "1"}, {"prompt": prompt + "2"}}, "shape": []int{3, h, w, 3}}, batch), ct...),
	}
	for name, r := range rewardCases {
		if r.status != http.StatusOK {
			t.Errorf("reward %s: %d %s", name, r.status, r.raw)
			continue
		}
		for _, k := range []string{"rewards", "ict", "hp", "models"} {
			if !reflect.DeepEqual(r.body[k], wantR.body[k]) {
				t.Errorf("reward %s: %s %v, want the PNG's %v", name, k, r.body[k], wantR.body[k])
			}
		}
	}
	// One prompt for the whole batch.
	same := e.post(t, "/v1/reward", tensorBody(t, map[string]any{"prompt": prompt, "shape": []int{3, h, w, 3}}, batch), ct...)
	sameWant := e.post(t, "/v1/reward", map[string]any{"items": []map[string]any{
		{"prompt": prompt, "image": b64(pngs[0])}, {"prompt": prompt, "image": b64(pngs[1])}, {"prompt": prompt, "image": b64(pngs[2])}}})
	if same.status != http.StatusOK || !reflect.DeepEqual(same.body["rewards"], sameWant.body["rewards"]) {
		t.Errorf("reward with one prompt: %d %s, want %s", same.status, same.raw, sameWant.raw)
	}
}

func TestRawPixelErrors(t *testing.T) {
	e := newEnv(t, envConfig{server: server.Options{MaxImages: 4, MaxBodyBytes: 1 << 20}}, true)
	pix, _ := rawPixels(t, 1, 8, 8)
	ct := []string{"Content-Type", server.TensorContentType}
	big := map[string]any{"prompt": "a", "shape": []int{1, 1000, 1000, 3}}
	cases := []struct {
		name   string
		path   string
		body   any
		binary bool
		status int
		code   string
		msg    string
	}{
		{"float dtype", "/v1/score", map[string]any{"images": []any{map[string]any{"data": b64(pix), "shape": []int{8, 8, 3}, "dtype": "float32"}}}, false, 400, "bad_request", "uint8"},
		{"chw shape", "/v1/score", map[string]any{"images": []any{tensorJSON(pix, 3, 8, 8)}}, false, 400, "bad_request", "last dimension"},
		{"short data", "/v1/score", map[string]any{"images": []any{tensorJSON(pix[:10], 8, 8, 3)}}, false, 400, "bad_request", "needs 192 bytes"},
		{"no data", "/v1/score", map[string]any{"images": []any{map[string]any{"shape": []int{8, 8, 3}, "dtype": "uint8"}}}, false, 400, "bad_request", `no "data"`},
		{"unknown field", "/v1/score", map[string]any{"images": []any{map[string]any{"data": "", "shape": []int{8, 8, 3}, "dtype": "uint8", "layout": "x"}}}, false, 400, "bad_request", "layout"},
		{"number", "/v1/score", map[string]any{"images": []any{1}}, false, 400, "bad_request", "base64 string or a raw tensor"},
		{"too many", "/v1/score", map[string]any{"images": []any{tensorJSON(bytes.Repeat(pix, 5), 5, 8, 8, 3)}}, false, 413, "too_many_items", "5 images"},
		{"reward batch item", "/v1/reward", map[string]any{"items": []any{map[string]any{"prompt": "a", "image": tensorJSON(bytes.Repeat(pix, 2), 2, 8, 8, 3)}}}, false, 400, "bad_request", "one image"},
		{"binary short", "/v1/score", tensorBody(t, map[string]any{"shape": []int{2, 8, 8, 3}}, pix), true, 400, "bad_request", "needs 384 bytes"},
		{"binary trailing", "/v1/score", tensorBody(t, map[string]any{"shape": []int{8, 8, 3}}, append(pix, 0)), true, 400, "bad_request", "data after"},
		{"binary no shape", "/v1/score", tensorBody(t, map[string]any{"prompt": "a"}, pix), true, 400, "bad_request", `"shape"`},
		{"binary no newline", "/v1/score", []byte(`{"shape": [8, 8, 3]}`), true, 400, "bad_request", `'\n'`},
		{"binary over body limit", "/v1/score", tensorBody(t, big, nil), true, 413, "too_large", "over the limit"},
		{"binary images field", "/v1/score", tensorBody(t, map[string]any{"shape": []int{8, 8, 3}, "images": []string{"x"}}, pix), true, 400, "bad_request", "not \"images\""},
		{"binary unknown field", "/v1/score", tensorBody(t, map[string]any{"shape": []int{8, 8, 3}, "colour": 1}, pix), true, 400, "bad_request", "colour"},
		{"binary reward count", "/v1/reward", tensorBody(t, map[string]any{"shape": []int{8, 8, 3}, "prompts": []string{"a", "b"}}, pix), true, 400, "bad_request", "2 prompts or items for 1 images"},
		{"binary too many", "/v1/score", tensorBody(t, map[string]any{"shape": []int{5, 8, 8, 3}}, bytes.Repeat(pix, 5)), true, 413, "too_many_items", "5 images"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *response
			if tc.binary {
				r = e.post(t, tc.path, tc.body, ct...)
			} else {
				r = e.post(t, tc.path, tc.body)
			}
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if r.status != tc.status || r.errCode() != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("got %d %s, want %d %s with %q", r.status, r.raw, tc.status, tc.code, tc.msg)
			}
		})
	}
	// A tensor over the service's pixel limit is that image's error only.
	e2 := newEnv(t, envConfig{scoring: scoring.Options{MaxImagePixels: 1000}}, true)
	ok, _ := rawPixels(t, 2, 8, 8)
	r := e2.post(t, "/v1/score", map[string]any{"images": []any{tensorJSON(ok, 8, 8, 3), tensorJSON(make([]byte, 3*40*40), 40, 40, 3)}})
	if r.status != http.StatusOK {
		t.Fatalf("pixel limit: %d %s", r.status, r.raw)
	}
	scores := r.body["scores"].([]any)
	if _, has := scores[0].(map[string]any)["hp"]; !has {
		t.Errorf("image 0 has no score: %v", scores[0])
	}
	if c, _ := scores[1].(map[string]any)["error"].(map[string]any)["code"].(string); c != "too_large" {
		t.Errorf("image 1: %v, want a too_large error", scores[1])
	}
}

// FuzzTensorBody sends arbitrary application/x-icthp-tensor bodies, and JSON
// bodies with raw tensors, to every POST route: no panic, no 5xx, and every
// error is a SPEC §4 body.
func FuzzTensorBody(f *testing.F) {
	h := fuzzHandler(f, 1<<16, 4, 64*64)
	pix := bytes.Repeat([]byte{1, 2, 3, 250}, 2*4*4*3/4)
	for route := range 4 {
		f.Add(uint8(route), []byte(`{"prompt": "a", "shape": [2, 4, 4, 3], "dtype": "uint8"}`+"\n"+string(pix)))
		f.Add(uint8(route), []byte(`{"prompts": ["a", "b"], "shape": [2, 4, 4, 3]}`+"\n"+string(pix)))
	}
	f.Add(uint8(2), []byte(`{"items": [{"prompt": "a"}], "shape": [4, 4, 3]}`+"\n"+string(pix[:48])))
	f.Add(uint8(0), []byte(`{"shape": [0, 4, 4, 3]}`+"\n"))
	f.Add(uint8(1), []byte(`{"shape": [1, 99999, 99999, 3]}`+"\n"))
	f.Add(uint8(3), []byte(`{"shape": null, "dtype": 5}`))
	// JSON bodies with raw tensors go through the same target (ctype bit).
	px := base64.StdEncoding.EncodeToString(pix)
	f.Add(uint8(0|8), []byte(`{"prompt": "a", "images": [{"data": "`+px+`", "shape": [2, 4, 4, 3], "dtype": "uint8"}, "`+px+`"]}`))
	f.Add(uint8(2|8), []byte(`{"items": [{"prompt": "a", "image": {"data": "`+px[:64]+`", "shape": [4, 4, 3], "dtype": "uint8"}}]}`))
	f.Add(uint8(3|8), []byte(`{"images": [{"data": "", "shape": [1, 1, 1, 3], "dtype": "uint8"}, {"shape": [-1, 2, 3]}, null]}`))
	routes := []string{"/v1/score", "/v1/rank", "/v1/reward", "/v1/embed"}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, routes[int(route)%len(routes)], bytes.NewReader(body))
		req.Header.Set("Content-Type", server.TensorContentType)
		if route&8 != 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		checkNoCrash(t, h, req)
	})
}
