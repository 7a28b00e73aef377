package gallery

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The page carries the server's limits and whether auth is on, under a
// policy that allows only its own scripts and styles; every asset it
// names is served with its type.
func TestPage(t *testing.T) {
	for _, o := range []Options{
		{MaxImages: 7, MaxBodyBytes: 1 << 20, MaxPromptBytes: 300, Auth: true},
		{MaxImages: 64, MaxBodyBytes: 64 << 20, MaxPromptBytes: 8192},
	} {
		h := Handler(o)
		r := get(t, h, http.MethodGet, "/")
		page := body(t, r)
		if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET /: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
		}
		csp := r.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(page, "<script>") || strings.Contains(page, "<style") {
			t.Errorf("the page must have no inline script or style (CSP %q)", csp)
		}
		for attr, v := range map[string]any{"data-max-images": o.MaxImages, "data-max-body-bytes": o.MaxBodyBytes,
			"data-max-prompt-bytes": o.MaxPromptBytes, "data-auth": o.Auth} {
			want := attr + `="` + strings.TrimSpace(jsonString(t, v)) + `"`
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks %s", want)
			}
		}
		refs := regexp.MustCompile(`(?:src|href)="(/gallery/[^"]+)"`).FindAllStringSubmatch(page, -1)
		if len(refs) != 3 {
			t.Errorf("want the script, the style sheet and the icon, got %v", refs)
		}
		for _, ref := range refs {
			ar := get(t, h, http.MethodGet, ref[1])
			ct := ar.Header.Get("Content-Type")
			if ar.StatusCode != http.StatusOK || body(t, ar) == "" || ct == "application/octet-stream" || ar.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: %d %q", ref[1], ar.StatusCode, ct)
			}
		}
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Unknown paths and methods get the API's JSON error body.
func TestErrors(t *testing.T) {
	h := Handler(Options{MaxImages: 4})
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/gallery/nope.js", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/gallery/index.html", http.StatusNotFound, "not_found"}, // only through "/"
		{http.MethodGet, "/gallery/", http.StatusNotFound, "not_found"},
		{http.MethodGet, "/other", http.StatusNotFound, "not_found"},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "method_not_allowed"},
	} {
		r := get(t, h, c.method, c.path)
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body(t, r)), &e); err != nil || r.StatusCode != c.status || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s %s: %d %+v (%v); want %d %s", c.method, c.path, r.StatusCode, e, err, c.status, c.code)
		}
	}
}

// Every element the script looks up by id is in the page: a renamed id
// would otherwise only show as a console error in a browser.
func TestScriptIDsExist(t *testing.T) {
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	page, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	ids := regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllStringSubmatch(string(js), -1)
	if len(ids) < 20 {
		t.Fatalf("found only %d id look-ups in app.js", len(ids))
	}
	for _, m := range ids {
		if !strings.Contains(string(page), `id="`+m[1]+`"`) {
			t.Errorf("app.js looks up #%s, which index.html does not have", m[1])
		}
	}
}
