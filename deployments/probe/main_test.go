package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			io.WriteString(w, "ok")
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	// A port nobody listens on: bind one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/healthz"
	l.Close()

	tests := []struct {
		name string
		args []string
		env  string
		want int
	}{
		{"2xx is healthy", []string{srv.URL + "/healthz"}, "", 0},
		{"503 is unhealthy", []string{srv.URL + "/readyz"}, "", 1},
		{"URL from the environment", nil, srv.URL + "/healthz", 0},
		{"argument wins over the environment", []string{srv.URL + "/readyz"}, srv.URL + "/healthz", 1},
		{"nobody listening", []string{closed}, "", 1},
		{"timeout", []string{"-timeout", "50ms", srv.URL + "/slow"}, "", 1},
		{"two URLs", []string{srv.URL, srv.URL}, "", 2},
		{"unknown flag", []string{"-x"}, "", 2},
		{"bad timeout", []string{"-timeout", "0s", srv.URL}, "", 2},
		{"bad URL", []string{"http://[::1"}, "", 2},
		{"help", []string{"-h"}, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			getenv := func(k string) string {
				if k == "ICTHP_PROBE_URL" {
					return tc.env
				}
				return ""
			}
			if got := run(context.Background(), tc.args, getenv, &stderr); got != tc.want {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tc.args, got, tc.want, stderr.String())
			}
			if tc.want == 1 && !strings.HasPrefix(stderr.String(), "icthp-probe: ") {
				t.Errorf("failure without a message: %q", stderr.String())
			}
		})
	}
}
