// Package servertest serves models through the real icthp HTTP server
// (gin, middleware, error mapping) on a loopback httptest.Server, for the
// HTTP tests of the scorer packages and of server itself.
package servertest

import (
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
	srv, err := server.New(svc, server.Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}
