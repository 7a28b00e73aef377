package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/icthp/icthp/server"
)

// debugServer serves net/http/pprof on its own listener (--debug-addr),
// apart from the API: profiles are for operators on a private address, never
// behind the API's port, its auth or its limits. Off unless asked for.
type debugServer struct {
	srv *http.Server
	ln  net.Listener
}

// debugMux is pprof's handlers on a mux of their own (not
// http.DefaultServeMux, which any imported package may add routes to).
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// listenAndRun listens on addr, and on debugAddr for pprof when it is set,
// then runs srv until ctx ends.
func listenAndRun(ctx context.Context, srv *server.Server, addr, debugAddr string, log *slog.Logger) error {
	ln, err := server.Listen(ctx, "tcp", addr) // plain TCP: the drain can stop new connections
	if err != nil {
		return err
	}
	dbg, err := startDebug(debugAddr, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer dbg.stop()
	return srv.Run(ctx, ln)
}

// startDebug listens on addr ("" : nothing) and serves until stop.
func startDebug(addr string, log *slog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	// No write timeout: a CPU profile or trace streams for its ?seconds=.
	d := &debugServer{ln: ln, srv: &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener", "err", err)
		}
	}()
	log.Warn("pprof is served on the debug address: keep it private", "debug_addr", ln.Addr().String())
	return d, nil
}

// stop closes the debug listener and its connections (a profile being
// taken is cut: it is not a request the API owes an answer).
func (d *debugServer) stop() {
	if d != nil {
		_ = d.srv.Close()
	}
}
