package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// probeRedis: serve with --redis under load (4 clients); Redis is paused
// (SIGSTOP) for 2 s, resumed, then killed (SIGKILL). Scoring goes on
// without it (every request 200); the jobs routes answer 503 with
// Retry-After and no address once it is gone.
func probeRedis(ctx context.Context, c *config) []result {
	const name = "redis"
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return []result{{probe: name, figure: "skipped: redis-server is not installed (apt-get install redis-server, or make setup)", skip: true}}
	}
	port, err := freePort()
	if err != nil {
		return failed(name, err)
	}
	dir := filepath.Join(c.work, "redis")
	os.MkdirAll(dir, 0o755)
	rc := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "no")
	if err := rc.Start(); err != nil {
		return failed(name, err)
	}
	defer func() { rc.Process.Signal(syscall.SIGCONT); rc.Process.Kill(); rc.Wait() }()
	time.Sleep(300 * time.Millisecond)
	s, err := startServe(ctx, c, name, "--redis", "redis://127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return failed(name, err)
	}
	defer s.stop()
	bs := bodies(8, 2)
	var st *loadStats
	done := make(chan struct{})
	go func() { st = closedLoop(ctx, s.url, bs, 2, 4, 8*time.Second); close(done) }()
	time.Sleep(time.Second)
	rc.Process.Signal(syscall.SIGSTOP)
	time.Sleep(2 * time.Second)
	rc.Process.Signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)
	rc.Process.Kill()
	rc.Wait()
	<-done
	other := len(st.lat429) + st.errs
	for _, v := range st.status {
		other += v
	}
	rows := []result{{probe: "redis: scoring through a 2 s stall and a kill", figure: fmt.Sprintf("%d ok, %d not ok (%v); p99 %s, max %s", st.ok, other, st.status,
		percentile(st.latOK, 99).Round(time.Millisecond), percentile(st.latOK, 100).Round(time.Millisecond)), target: "every request 200", ok: other == 0 && st.ok > 0}}
	return append(rows, jobsDown(ctx, s, port))
}

// jobsDown checks the jobs routes with Redis gone.
func jobsDown(ctx context.Context, s *server, port int) result {
	cl := &http.Client{Timeout: 30 * time.Second}
	code, _, body, err := post(ctx, cl, s.url+"/v1/jobs?route=score", "application/json", scoreBody(pngImage(32, 32, 1, true)))
	var retry string
	r, gerr := cl.Get(s.url + "/v1/jobs/0123456789abcdef")
	gcode := 0
	if gerr == nil {
		retry = r.Header.Get("Retry-After")
		gcode = r.StatusCode
		r.Body.Close()
	}
	leak := strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), strconv.Itoa(port))
	return result{probe: "jobs: Redis down", figure: fmt.Sprintf("POST %d %.70s; GET %d Retry-After %q; address in body: %v %s", code, body, gcode, retry, leak, errOrNil(err)),
		target: "503 + Retry-After, no address", ok: err == nil && code == 503 && gcode == 503 && retry != "" && !leak}
}
