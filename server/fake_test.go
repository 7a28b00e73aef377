package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scorer/scorertest"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server/servertest"
)

// These tests drive the real gin server over loopback with fake models
// behind the scorer interfaces: they need no onnxruntime.

func fakeServer(t *testing.T, o scoring.Options, fakes ...*scorertest.Fake) string {
	t.Helper()
	var ms []scorer.Model
	for _, f := range fakes {
		ms = append(ms, f.Model())
	}
	return servertest.Start(t, ms, o).URL
}

func solid(t *testing.T, c color.RGBA) (string, [3]float32) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 6, 4))
	for y := range 4 {
		for x := range 6 {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes()),
		[3]float32{float32(float64(c.R) / 255), float32(float64(c.G) / 255), float32(float64(c.B) / 255)}
}

type fakeReply struct {
	status int
	body   string
	retry  string
}

func postJSON(t *testing.T, url string, body any) fakeReply {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	r := send(t, http.DefaultClient, req)
	return fakeReply{r.status, string(r.raw), r.header.Get("Retry-After")}
}

func TestFakeHTTPScoreAndModels(t *testing.T) {
	pick, aes := scorertest.New("pick", true), scorertest.New("aes", false)
	url := fakeServer(t, scoring.Options{}, pick, aes)
	img, rgb := solid(t, color.RGBA{250, 20, 90, 255})
	r := postJSON(t, url+"/v1/score", map[string]any{"prompt": "a cat", "images": []string{img}})
	if r.status != http.StatusOK {
		t.Fatalf("score: %d %s", r.status, r.body)
	}
	// Scores come in registry order, not sorted by name.
	scores := r.body[strings.Index(r.body, `"scores"`):]
	if i, j := strings.Index(scores, `"pick"`), strings.Index(scores, `"aes"`); i < 0 || j < i {
		t.Errorf("score body %s: want pick before aes", r.body)
	}
	var got struct {
		Scores []map[string]float64 `json:"scores"`
		Models map[string]string    `json:"models"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(got.Scores[0]["pick"] - pick.Want(rgb, "a cat")); d > 1e-12 {
		t.Errorf("pick %v, want %v", got.Scores[0]["pick"], pick.Want(rgb, "a cat"))
	}
	if d := math.Abs(got.Scores[0]["aes"] - aes.Want(rgb, "")); d > 1e-12 {
		t.Errorf("aes %v, want %v", got.Scores[0]["aes"], aes.Want(rgb, ""))
	}
	if got.Models["pick"] != "fake-pick-1" || got.Models["aes"] != "fake-aes-1" {
		t.Errorf("models %v", got.Models)
	}
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"name":"pick"`) || strings.Index(string(b), `"pick"`) > strings.Index(string(b), `"aes"`) {
		t.Errorf("/v1/models: %s", b)
	}
}

func TestFakeHTTPContractEdges(t *testing.T) {
	pickOnly := fakeServer(t, scoring.Options{}, scorertest.New("pick", true))
	aesOnly := fakeServer(t, scoring.Options{}, scorertest.New("aes", false))
	img, _ := solid(t, color.RGBA{1, 2, 3, 255})
	white, _ := solid(t, color.RGBA{255, 255, 255, 255}) // aes = 3
	for _, c := range []struct {
		name, url, path string
		body            any
		status          int
		code            string
	}{
		{"score without a prompt, only prompt models", pickOnly, "/v1/score", map[string]any{"images": []string{img}}, 400, "bad_request"},
		{"overflowing weights", aesOnly, "/v1/reward", map[string]any{"weights": map[string]float64{"aes": 1e308},
			"items": []map[string]string{{"prompt": "a", "image": white}}}, 422, "reward_overflow"},
		{"weight of a score no model gives", pickOnly, "/v1/reward", map[string]any{"weights": map[string]float64{"ict": 1},
			"items": []map[string]string{{"prompt": "a", "image": img}}}, 400, "bad_request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := postJSON(t, c.url+c.path, c.body)
			if r.status != c.status || !strings.Contains(r.body, `"code":"`+c.code+`"`) {
				t.Errorf("%d %s, want %d %s", r.status, r.body, c.status, c.code)
			}
		})
	}
}

// Past the admission bound the answer is 429 with Retry-After, while the
// first request is held inside the model.
func TestFakeHTTPAdmission(t *testing.T) {
	aes := scorertest.New("aes", false)
	aes.Gate, aes.Entered = make(chan struct{}), make(chan int, 1)
	url := fakeServer(t, scoring.Options{MaxQueue: 1}, aes)
	img, _ := solid(t, color.RGBA{9, 9, 9, 255})
	first := make(chan fakeReply)
	go func() { first <- postJSON(t, url+"/v1/score", map[string]any{"images": []string{img}}) }()
	select {
	case <-aes.Entered:
	case <-context.Background().Done():
	}
	r := postJSON(t, url+"/v1/score", map[string]any{"images": []string{img}})
	if r.status != http.StatusTooManyRequests || r.retry == "" || !strings.Contains(r.body, `"code":"overloaded"`) {
		t.Errorf("second request: %d %s (Retry-After %q), want 429 overloaded", r.status, r.body, r.retry)
	}
	close(aes.Gate)
	if r := <-first; r.status != http.StatusOK {
		t.Errorf("first request: %d %s", r.status, r.body)
	}
}

// A full service refuses a scoring request before reading its body (a
// malformed body gets 429, not 400); below the bound, the service decides
// by the request's image count (two images into the one place left: 429).
func TestFakeHTTPAdmissionBeforeBody(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxQueue int
		body     string
		want     int
	}{
		{"full: body never read", 1, `{"images": [not json`, http.StatusTooManyRequests},
		{"one place left, two images", 2, "", http.StatusTooManyRequests},
		{"one place left, malformed body", 2, `{"images": [not json`, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			aes := scorertest.New("aes", false)
			aes.Gate, aes.Entered = make(chan struct{}), make(chan int, 1)
			url := fakeServer(t, scoring.Options{MaxQueue: c.maxQueue}, aes)
			img, _ := solid(t, color.RGBA{9, 9, 9, 255})
			first := make(chan fakeReply)
			go func() { first <- postJSON(t, url+"/v1/score", map[string]any{"images": []string{img}}) }()
			<-aes.Entered
			body := c.body
			if body == "" {
				b, err := json.Marshal(map[string]any{"images": []string{img, img}})
				if err != nil {
					t.Fatal(err)
				}
				body = string(b)
			}
			resp, err := http.Post(url+"/v1/score", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want || (c.want == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "") {
				t.Errorf("%d %s (Retry-After %q), want %d", resp.StatusCode, out, resp.Header.Get("Retry-After"), c.want)
			}
			close(aes.Gate)
			if r := <-first; r.status != http.StatusOK {
				t.Errorf("first request: %d %s", r.status, r.body)
			}
		})
	}
}
