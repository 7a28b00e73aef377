package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// FuzzRequest sends arbitrary bodies and content types to every POST route:
// the server never panics, never answers 5xx for the caller's bytes, and
// every error answer is the SPEC §4 body.
func FuzzRequest(f *testing.F) {
	h := fuzzHandler(f, 1<<20, 8, 256*256)
	img := b64(pngBytes(f, 1, 16, 16))
	ct, mp := multipartBody(f, [][2]string{{"prompt", "a cat"}, {"models", "hp,ict"}}, [][]byte{pngBytes(f, 2, 8, 8)})
	for route := range 4 {
		f.Add(uint8(route), "application/json", []byte(`{"prompt": "a cat", "images": ["`+img+`"]}`))
		f.Add(uint8(route), ct, mp)
	}
	f.Add(uint8(2), "application/json", []byte(`{"items": [{"prompt": "x", "image": "`+img+`"}], "weights": {"ict": 1}}`))
	f.Add(uint8(3), "application/json", []byte(`{"texts": ["a", ""], "images": ["data:image/png;base64,`+img+`"]}`))
	f.Add(uint8(0), "multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"images\"\r\n\r\n\x89PNG\r\n--x--"))
	f.Add(uint8(1), "text/plain", []byte(`{"prompt": null, "images": [null, 1]}`))
	routes := []string{"/v1/score", "/v1/rank", "/v1/reward", "/v1/embed"}
	f.Fuzz(func(t *testing.T, route uint8, ctype string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, routes[int(route)%len(routes)], bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		checkNoCrash(t, h, req)
	})
}

// checkNoCrash serves req and fails the fuzz target when the caller's bytes
// get a 5xx, a body that is not JSON, or an error without a code.
func checkNoCrash(t *testing.T, h http.Handler, req *http.Request) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("status %d for the caller's bytes: %s", rec.Code, rec.Body.Bytes())
	}
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("status %d, body not JSON: %q", rec.Code, rec.Body.Bytes())
	}
	if rec.Code >= 400 {
		e, _ := out["error"].(map[string]any)
		if code, _ := e["code"].(string); code == "" {
			t.Fatalf("status %d without an error code: %s", rec.Code, rec.Body.Bytes())
		}
	}
}

// fuzzHandler is the handler of a server with small limits (body bytes,
// images per request, pixels per image), so that fuzzed inputs reach them.
func fuzzHandler(f *testing.F, maxBody int64, maxImages int, maxPixels int64) http.Handler {
	e := newEnv(f, envConfig{
		server:  server.Options{MaxBodyBytes: maxBody, MaxImages: maxImages, MaxPromptBytes: 256},
		scoring: scoring.Options{MaxImagePixels: maxPixels},
	}, false)
	return e.srv.Handler()
}
