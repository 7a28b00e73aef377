package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestDebugListener: with an address, pprof answers on its own listener (a
// real heap profile and goroutine dump over loopback) and stops with stop;
// without one, nothing listens.
func TestDebugListener(t *testing.T) {
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	if d, err := startDebug("", log); d != nil || err != nil {
		t.Fatalf("startDebug(\"\") = %v, %v; want nothing", d, err)
	}
	d, err := startDebug("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.ln.Addr().String()
	for _, c := range []struct{ path, want string }{
		{"/debug/pprof/goroutine?debug=1", "goroutine profile:"},
		{"/debug/pprof/heap?debug=1", "heap profile:"},
		{"/debug/pprof/", "Types of profiles available"},
	} {
		r, err := http.Get(base + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(b), c.want) {
			t.Errorf("GET %s: %d %.80q, want 200 with %q", c.path, r.StatusCode, b, c.want)
		}
	}
	if !strings.Contains(logBuf.String(), d.ln.Addr().String()) {
		t.Errorf("log %q does not name the debug address", logBuf.String())
	}
	d.stop()
	if _, err := http.Get(base + "/debug/pprof/"); err == nil {
		t.Error("the debug listener still answers after stop")
	}
	if _, err := startDebug("127.0.0.1:-1", log); err == nil || !strings.Contains(err.Error(), "--debug-addr") {
		t.Errorf("bad address: err %v, want one naming --debug-addr", err)
	}
}
