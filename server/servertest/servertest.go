// Package servertest serves models through the real icthp HTTP server
// (gin, middleware, error mapping) on a loopback httptest.Server, for the
// HTTP tests of the scorer packages, the CLI and server itself, and posts
// JSON to it.
package servertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// Start builds a scoring.Service over models with o, and a server with its
// own metrics registry (so that tests do not share one), and serves it
// until the test ends.
func Start(t testing.TB, models []scorer.Model, o scoring.Options) *httptest.Server {
	t.Helper()
	svc, err := scoring.New(models, o)
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, svc)
}

// Serve serves svc through a server with its own metrics registry until
// the test ends.
func Serve(t testing.TB, svc *scoring.Service) *httptest.Server {
	t.Helper()
	srv, err := server.New(svc, server.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

// PostOK posts body as JSON to url, fails the test unless the answer is
// 200, and decodes the answer into out.
func PostOK(t testing.TB, url string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", url, res.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %s: %v", url, raw, err)
	}
}
