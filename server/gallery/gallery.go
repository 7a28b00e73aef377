// Package gallery is the page `icthp serve` shows at GET /: drop images and
// a prompt, see them ranked by the paper's ICT-HP with a bar per score. The
// page and its assets are embedded in the binary (nothing from a CDN, so it
// works offline). The page itself holds no data and is public; every API
// call it makes carries the bearer token the user gives it, so turning auth
// on for the API is never weakened by the page.
package gallery

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// AssetPrefix is where the page's scripts, styles and icon are served:
// AssetPrefix + NAME.
const AssetPrefix = "/gallery/"

// Options are the server's limits the page checks before it sends, and
// whether the API wants a token (so that the page asks for one before its
// first call instead of learning it from a 401).
type Options struct {
	MaxImages      int
	MaxBodyBytes   int64
	MaxPromptBytes int
	Auth           bool
}

// csp allows the page's own scripts, styles and icon, thumbnails from the
// files the user picked (blob:), calls to this server only, and nothing
// else: no inline script, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page at "/" and its assets under AssetPrefix; any
// other path is a 404. Like template.Must it panics when the embedded
// files are broken, a build mistake its tests rule out; nothing a caller
// passes can make it fail.
func Handler(o Options) http.Handler {
	h, err := newHandler(o)
	if err != nil {
		panic("gallery: embedded files: " + err.Error())
	}
	return h
}

func newHandler(o Options) (*handler, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	tmpl, err := template.ParseFS(sub, "index.html")
	if err != nil {
		return nil, err
	}
	var page bytes.Buffer
	if err := tmpl.Execute(&page, o); err != nil {
		return nil, err
	}
	h := &handler{page: page.Bytes(), assets: map[string][]byte{}}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "index.html" {
			continue
		}
		if h.assets[e.Name()], err = fs.ReadFile(sub, e.Name()); err != nil {
			return nil, err
		}
	}
	return h, nil
}

type handler struct {
	page   []byte            // index.html with the Options filled in
	assets map[string][]byte // by file name
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" not allowed on "+r.URL.Path)
		return
	}
	if r.URL.Path == "/" {
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("Cache-Control", "no-cache")
		w.Write(h.page)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, AssetPrefix)
	b, found := h.assets[name]
	if !ok || !found {
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
		return
	}
	hdr.Set("Content-Type", contentType(name))
	// The assets change only with the binary; no-cache makes the browser
	// revalidate, which is cheap on loopback and never shows a stale page.
	hdr.Set("Cache-Control", "no-cache")
	w.Write(b)
}

// contentType is fixed here rather than taken from the system's MIME
// table, which differs between machines.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

// writeError writes the API's error body, {"error": {"code", "message"}}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]map[string]string{"error": {"code": code, "message": msg}})
}
