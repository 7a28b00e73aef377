package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/logbuf"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// postCT posts body with the Content-Type given ("" sends none).
func (e *env) postCT(t *testing.T, path, ct string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return e.do(t, req)
}

func (r *response) errMsg() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestContentTypes: a POST route reads JSON, multipart and tensor bodies,
// and refuses every other Content-Type with 415 naming those three (curl -d
// sends form-urlencoded: the body is not read as JSON behind its back).
func TestContentTypes(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true}, true)
	img := b64(pngBytes(t, 1, 16, 16))
	bodies := map[string]string{
		"/v1/score":  `{"images": ["` + img + `"]}`,
		"/v1/rank":   `{"images": ["` + img + `"]}`,
		"/v1/reward": `{"items": [{"prompt": "a", "image": "` + img + `"}]}`,
		"/v1/embed":  `{"images": ["` + img + `"]}`,
	}
	cases := []struct {
		ct     string
		status int
	}{
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"", 200}, // no Content-Type: JSON
		{"text/plain", 415},
		{"text/plain; charset=utf-8", 415},
		{"application/x-www-form-urlencoded", 415},
		{"application/xml", 415},
		{"image/png", 415},
		{"application/json;;", 415}, // unparsable
	}
	for path, body := range bodies {
		for _, tc := range cases {
			t.Run(path+" "+tc.ct, func(t *testing.T) {
				r := e.postCT(t, path, tc.ct, []byte(body))
				if r.status != tc.status {
					t.Fatalf("%d %s, want %d", r.status, r.raw, tc.status)
				}
				if tc.status != 415 {
					return
				}
				msg := r.errMsg()
				if r.errCode() != server.CodeUnsupportedMedia {
					t.Errorf("code %q, want %q", r.errCode(), server.CodeUnsupportedMedia)
				}
				for _, want := range []string{"application/json", "multipart/form-data", server.TensorContentType} {
					if !strings.Contains(msg, want) || !strings.Contains(r.header.Get("Accept-Post"), want) {
						t.Errorf("message %q / Accept-Post %q do not name %s", msg, r.header.Get("Accept-Post"), want)
					}
				}
				// curl -d's type gets the header that fixes it, the others not.
				if hint := strings.Contains(msg, "-H 'Content-Type: application/json'"); hint != (tc.ct == "application/x-www-form-urlencoded") {
					t.Errorf("message %q: curl hint %v for %q", msg, hint, tc.ct)
				}
			})
		}
	}
}

// TestStrictJSON: keys are matched exactly (encoding/json alone would take
// "Prompt" for "prompt"), unknown keys are refused at every depth, and text
// that is not UTF-8 is refused instead of being read as U+FFFD.
func TestStrictJSON(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	img := b64(pngBytes(t, 2, 16, 16))
	pix, _ := rawPixels(t, 1, 4, 4)
	data := b64(pix)
	cases := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"control", "/v1/score", `{"prompt": "a cat", "images": ["` + img + `"]}`, 200, ""},
		{"escaped key", "/v1/score", `{"pro\u006dpt": "a cat", "images": ["` + img + `"]}`, 200, ""},
		{"paired surrogates", "/v1/score", `{"prompt": "a cat \ud83d\ude00", "images": ["` + img + `"]}`, 200, ""},
		{"Prompt", "/v1/score", `{"Prompt": "a cat", "images": ["` + img + `"]}`, 400, `unknown field "Prompt"`},
		{"IMAGES", "/v1/score", `{"prompt": "a cat", "IMAGES": ["` + img + `"]}`, 400, `unknown field "IMAGES"`},
		{"Models", "/v1/score", `{"images": ["` + img + `"], "Models": ["hp"]}`, 400, `unknown field "Models"`},
		{"Ranking prompt", "/v1/rank", `{"PROMPT": "a", "images": ["` + img + `"]}`, 400, `unknown field "PROMPT"`},
		{"Items", "/v1/reward", `{"Items": [{"prompt": "a", "image": "` + img + `"}]}`, 400, `unknown field "Items"`},
		{"nested Prompt", "/v1/reward", `{"items": [{"Prompt": "a", "image": "` + img + `"}]}`, 400, `unknown field "Prompt"`},
		{"Weights", "/v1/reward", `{"items": [{"prompt": "a", "image": "` + img + `"}], "Weights": {"hp": 1}}`, 400, `unknown field "Weights"`},
		{"Texts", "/v1/embed", `{"Texts": ["a"]}`, 400, `unknown field "Texts"`},
		{"tensor Data", "/v1/score", `{"images": [{"Data": "` + data + `", "shape": [4, 4, 3], "dtype": "uint8"}]}`, 400, `unknown field "Data"`},
		{"unknown key", "/v1/score", `{"images": ["` + img + `"], "colour": 1}`, 400, `unknown field "colour"`},
		{"invalid UTF-8 prompt", "/v1/score", "{\"prompt\": \"a \xff cat\", \"images\": [\"" + img + "\"]}", 400, "UTF-8"},
		{"overlong UTF-8", "/v1/score", "{\"prompt\": \"\xc0\xaf\", \"images\": [\"" + img + "\"]}", 400, "UTF-8"},
		{"lone high surrogate", "/v1/score", `{"prompt": "a \ud800 cat", "images": ["` + img + `"]}`, 400, "surrogate"},
		{"lone low surrogate", "/v1/reward", `{"items": [{"prompt": "\udc00", "image": "` + img + `"}]}`, 400, "surrogate"},
		{"reversed surrogates", "/v1/embed", `{"texts": ["\ude00\ud83d"]}`, 400, "surrogate"},
		{"trailing data", "/v1/score", `{"images": ["` + img + `"]} {}`, 400, "after its JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.postCT(t, tc.path, "application/json", []byte(tc.body))
			if r.status != tc.status || !strings.Contains(r.errMsg(), tc.msg) {
				t.Errorf("%d %s, want %d with %q", r.status, r.raw, tc.status, tc.msg)
			}
			if tc.status == 400 && r.errCode() != server.CodeBadRequest {
				t.Errorf("code %q, want bad_request", r.errCode())
			}
		})
	}
}

// TestMultipartFields: a multipart body's parts are images ("images" or
// "image") or the route's form fields; any other part is refused as an
// unknown JSON key is, and form fields must be UTF-8.
func TestMultipartFields(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	png := pngBytes(t, 3, 16, 16)
	type part struct{ name, file, value string }
	cases := []struct {
		name, path string
		parts      []part
		status     int
		msg        string
	}{
		{"control", "/v1/score", []part{{"prompt", "", "a cat"}, {"images", "a.png", string(png)}}, 200, ""},
		{"image part", "/v1/rank", []part{{"prompt", "", "a cat"}, {"image", "", string(png)}}, 200, ""},
		{"reward field", "/v1/reward", []part{{"prompt", "", "a"}, {"reward", "", "hp"}, {"images", "a.png", string(png)}}, 200, ""},
		{"typo", "/v1/score", []part{{"promt", "", "a cat"}, {"images", "a.png", string(png)}}, 400, `unknown field "promt"`},
		{"Prompt", "/v1/score", []part{{"Prompt", "", "a cat"}, {"images", "a.png", string(png)}}, 400, `unknown field "Prompt"`},
		{"file under another name", "/v1/score", []part{{"file", "a.png", string(png)}}, 400, `unknown field "file"`},
		{"reward on rank", "/v1/rank", []part{{"prompt", "", "a"}, {"reward", "", "hp"}, {"images", "a.png", string(png)}}, 400, `unknown field "reward"`},
		{"models on embed", "/v1/embed", []part{{"texts", "", "a"}, {"models", "", "hp"}}, 400, `unknown field "models"`},
		{"invalid UTF-8 prompt", "/v1/score", []part{{"prompt", "", "a \xff cat"}, {"images", "a.png", string(png)}}, 400, "UTF-8"},
		{"invalid UTF-8 text", "/v1/embed", []part{{"texts", "", "\xed\xa0\x80"}}, 400, "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w := multipart.NewWriter(&b)
			for _, p := range tc.parts {
				var fw interface{ Write([]byte) (int, error) }
				var err error
				if p.file != "" {
					fw, err = w.CreateFormFile(p.name, p.file)
				} else {
					fw, err = w.CreateFormField(p.name)
				}
				if err != nil {
					t.Fatal(err)
				}
				fw.Write([]byte(p.value))
			}
			w.Close()
			r := e.postCT(t, tc.path, w.FormDataContentType(), b.Bytes())
			if r.status != tc.status || !strings.Contains(r.errMsg(), tc.msg) {
				t.Errorf("%d %s, want %d with %q", r.status, r.raw, tc.status, tc.msg)
			}
		})
	}
}

// TestMultipartLargeParts: parts larger than the server's read buffer (64
// KiB), arriving in pieces of a size unrelated to it, with the prompt after
// the images, are read whole: the scores equal those of the same images sent
// as JSON (a PNG cut or shifted anywhere fails its CRC or scores otherwise).
func TestMultipartLargeParts(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	rng := rand.New(rand.NewPCG(7, 11))
	noisy := func(w, h int) []byte {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = uint8(rng.Uint32())
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	imgs := [][]byte{noisy(200, 190), noisy(64, 64), noisy(300, 170)} // ≈ 150, 16, 200 KB
	want := e.post(t, "/v1/score", map[string]any{"prompt": "a cat", "images": []string{b64(imgs[0]), b64(imgs[1]), b64(imgs[2])}})
	if want.status != http.StatusOK {
		t.Fatalf("JSON: %d %s", want.status, want.raw)
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i, img := range imgs {
		fw, err := w.CreateFormFile("images", fmt.Sprintf("%d.png", i))
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(img)
	}
	w.WriteField("prompt", "a cat")
	w.Close()
	// Chunked, in pieces of 7,919 bytes: no Content-Length, and reads that
	// end anywhere in a part or its boundary.
	req, err := http.NewRequest(http.MethodPost, e.url+"/v1/score", io.NopCloser(&pieces{r: bytes.NewReader(b.Bytes()), n: 7919}))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	got := e.do(t, req)
	if got.status != http.StatusOK || !bytes.Equal(got.raw, want.raw) {
		t.Errorf("multipart: %d %s\nwant the JSON route's %s", got.status, got.raw, want.raw)
	}
}

// pieces reads at most n bytes a call.
type pieces struct {
	r io.Reader
	n int
}

func (p *pieces) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

// TestTensorHeaderUTF8: the header line of a tensor body follows the JSON
// rules (exact keys, UTF-8).
func TestTensorHeaderUTF8(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	pix, _ := rawPixels(t, 1, 8, 8)
	cases := []struct {
		name, header string
		status       int
		msg          string
	}{
		{"control", `{"prompt": "a cat", "shape": [8, 8, 3]}`, 200, ""},
		{"invalid UTF-8", "{\"prompt\": \"a \xff\", \"shape\": [8, 8, 3]}", 400, "UTF-8"},
		{"lone surrogate", `{"prompt": "\ud800", "shape": [8, 8, 3]}`, 400, "surrogate"},
		{"Prompt", `{"Prompt": "a", "shape": [8, 8, 3]}`, 400, `unknown field "Prompt"`},
		{"Shape", `{"Shape": [8, 8, 3]}`, 400, `"shape"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := append([]byte(tc.header+"\n"), pix...)
			r := e.postCT(t, "/v1/score", server.TensorContentType, body)
			if r.status != tc.status || !strings.Contains(r.errMsg(), tc.msg) {
				t.Errorf("%d %s, want %d with %q", r.status, r.raw, tc.status, tc.msg)
			}
		})
	}
}

// failingScorer is the real service with Score failing as a store or
// network failure would: its error names an internal address.
type failingScorer struct{ server.Scorer }

func (f failingScorer) Score(context.Context, scoring.ScoreRequest) (*scoring.ScoreResponse, error) {
	return nil, fmt.Errorf("cache: %w", errors.New("dial tcp 10.11.12.13:6379: connect: connection refused"))
}

// TestInternalErrorHidesDetail: a 500's body names no internal place; the
// log line has it, under the request id the answer carries.
func TestInternalErrorHidesDetail(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true}, false)
	logs := &logbuf.Buffer{}
	srv, err := server.New(failingScorer{e.ref}, server.Options{Logger: slogTo(logs)})
	if err != nil {
		t.Fatal(err)
	}
	e.url = serveHTTP(t, srv)
	r := e.post(t, "/v1/score", map[string]any{"images": []string{b64(pngBytes(t, 1, 8, 8))}}, server.RequestIDHeader, "req-500")
	if r.status != 500 || r.errCode() != server.CodeInternal {
		t.Fatalf("%d %s, want 500 internal", r.status, r.raw)
	}
	for _, leak := range []string{"10.11.12.13", "6379", "dial tcp"} {
		if strings.Contains(string(r.raw), leak) {
			t.Errorf("the error body names %q: %s", leak, r.raw)
		}
	}
	if l := logs.String(); !strings.Contains(l, "10.11.12.13:6379") || !strings.Contains(l, "req-500") {
		t.Errorf("the log has no detail of the failure under its request id:\n%s", l)
	}
}

// serveHTTP serves srv's handler on loopback for the test.
func serveHTTP(t *testing.T, srv *server.Server) string {
	t.Helper()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}
