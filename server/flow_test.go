package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// TestConcurrentRequestsAreBatched sends 64 single-image requests at once
// and reads /metrics: the HP model ran them in fewer than 64 runs, and every
// answer equals the unbatched reference.
func TestConcurrentRequestsAreBatched(t *testing.T) {
	// A generous wait lets the batch fill even on a busy machine; the
	// assertion is on counts, not time.
	e := newEnv(t, envConfig{batch: models.BatcherOptions{MaxBatch: 16, MaxWait: 200 * time.Millisecond}}, true)
	const n = 64
	imgs := make([][]byte, n)
	want := make([]scoring.Scores, n)
	prompt := "a futuristic city"
	for i := range imgs {
		imgs[i] = pngBytes(t, 100+i, 48, 40)
		ref, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Prompt: &prompt, Images: []scoring.Image{{Data: imgs[i]}}})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = ref.Scores[0]
	}
	var wg sync.WaitGroup
	res := make([]*response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = e.post(t, "/v1/score", map[string]any{"prompt": prompt, "images": []string{b64(imgs[i])}})
		}()
	}
	wg.Wait()
	for i, r := range res {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
		s := r.body["scores"].([]any)[0].(map[string]any)
		near(t, "ict", num(t, s["ict"], "ict"), want[i].Get("ict"))
		near(t, "hp", num(t, s["hp"], "hp"), want[i].Get("hp"))
	}
	for _, g := range []string{`graph="vision",model="hp"`, `graph="vision",model="ict"`, `graph="text",model="ict"`} {
		items := e.metric(t, "icthp_batcher_batch_size_sum{"+g+"}")
		runs := e.metric(t, "icthp_batcher_batch_size_count{"+g+"}")
		if items != n {
			t.Errorf("%s: %v items run, want %d", g, items, n)
		}
		if runs >= n || runs < n/16 {
			t.Errorf("%s: %v runs for %d single-item requests, want batches larger than one (at most 16)", g, runs, n)
		}
		t.Logf("%s: %v items in %v runs", g, items, runs)
	}
	// All 64 prompts are the same: each text batch ran one distinct row.
	if d := e.metric(t, `icthp_batcher_deduplicated_items_total{graph="text",model="ict"}`); d != n-e.metric(t, `icthp_batcher_batch_size_count{graph="text",model="ict"}`) {
		t.Errorf("deduplicated text rows %v, want 64 minus the number of text runs", d)
	}
	for _, step := range []string{"decode", "ict"} {
		if v := e.metric(t, `icthp_preprocess_seconds_count{step="`+step+`"}`); v != n {
			t.Errorf("preprocessing step %s timed %v times, want %d", step, v, n)
		}
	}
	if v := e.metric(t, `icthp_http_requests_total{method="POST",route="/v1/score",status="200"}`); v != n {
		t.Errorf("icthp_http_requests_total for 200s = %v, want %d", v, n)
	}
}

// TestOverload holds the HP model in a run, fills the queue, and checks that
// the requests beyond it are answered 429 at once with Retry-After, while
// every accepted request completes with the right scores.
func TestOverload(t *testing.T) {
	g := &gate{started: make(chan int, 64), release: make(chan struct{})}
	e := newEnv(t, envConfig{noICT: true, hpGate: g, batch: models.BatcherOptions{MaxBatch: 1, MaxWait: -1, QueueSize: 2}}, true)
	img := pngBytes(t, 7, 64, 64)
	ref, err := e.ref.Score(context.Background(), scoring.ScoreRequest{Images: []scoring.Image{{Data: img}}})
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"images": []string{b64(img)}}
	const extra = 10
	results := make(chan *response, extra+1)
	go func() { results <- e.post(t, "/v1/score", body) }()
	<-g.started // one request holds the model
	for range extra {
		go func() { results <- e.post(t, "/v1/score", body) }()
	}
	// The queue takes 2 items; the other 8 are refused without waiting for
	// the model, which is still held.
	for range extra - 2 {
		r := <-results
		if r.status != http.StatusTooManyRequests || r.errCode() != server.CodeOverloaded {
			t.Fatalf("while the queue is full: %d %s, want 429 overloaded", r.status, r.raw)
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("429 with Retry-After %q, want a whole number of seconds ≥ 1", r.header.Get("Retry-After"))
		}
	}
	close(g.release)
	for range 3 {
		r := <-results
		if r.status != http.StatusOK {
			t.Fatalf("an accepted request: %d %s", r.status, r.raw)
		}
		near(t, "hp", num(t, r.body["scores"].([]any)[0].(map[string]any)["hp"], "hp"), ref.Scores[0].Get("hp"))
	}
	if v := e.metric(t, `icthp_http_rejected_total{reason="queue_full"}`); v != extra-2 {
		t.Errorf("rejected for queue_full: %v, want %d", v, extra-2)
	}
	if v := e.metric(t, `icthp_http_refusal_duration_seconds_count`); v != extra-2 {
		t.Errorf("refusals timed: %v, want the %d 429s (and none of the 200s)", v, extra-2)
	}
	if v := e.metric(t, `icthp_batcher_rejected_total{graph="vision",model="hp",reason="queue_full"}`); v != extra-2 {
		t.Errorf("batcher rejected for queue_full: %v, want %d", v, extra-2)
	}
	if g.rows() != 3 {
		t.Errorf("the model ran %d rows, want the 3 accepted", g.rows())
	}
}

// slow makes each run of an encoder last at least d.
type slow struct {
	models.BatchEncoder
	d time.Duration
}

func (s slow) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	time.Sleep(s.d)
	return s.BatchEncoder.EncodeImages(ctx, px, n)
}

// TestDeadlines: a request whose deadline the queue cannot meet is refused
// with 429 before any work (the batcher knows a run costs at least 500 ms),
// and one whose deadline passes while it runs gets 504.
func TestDeadlines(t *testing.T) {
	g := &gate{}
	e := newEnv(t, envConfig{noICT: true, hpGate: g, batch: models.BatcherOptions{MaxBatch: 4, MaxWait: -1}}, true)
	// The gate's encoder is replaced by a slow one over the same model.
	g.BatchEncoder = slow{g.BatchEncoder, 500 * time.Millisecond}
	body := map[string]any{"images": []string{b64(pngBytes(t, 8, 32, 32))}}
	if r := e.post(t, "/v1/score", body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	r := e.post(t, "/v1/score", body, server.TimeoutHeader, "200ms")
	if r.status != http.StatusTooManyRequests || r.errCode() != server.CodeOverloaded {
		t.Fatalf("a 200 ms deadline with 500 ms runs: %d %s, want 429", r.status, r.raw)
	}
	if v := e.metric(t, `icthp_http_rejected_total{reason="deadline"}`); v != 1 {
		t.Errorf("rejected for the deadline: %v, want 1", v)
	}
	if g.rows() != 1 {
		t.Errorf("the refused request ran (%d rows run)", g.rows())
	}
	if r := e.post(t, "/v1/score", body, server.TimeoutHeader, "30"); r.status != 200 {
		t.Errorf("a 30 s deadline: %d %s", r.status, r.raw)
	}

	// A run that outlasts the request's deadline: 504.
	g2 := &gate{started: make(chan int, 4), release: make(chan struct{})}
	e2 := newEnv(t, envConfig{noICT: true, hpGate: g2, batch: models.BatcherOptions{MaxBatch: 4, MaxWait: -1}}, true)
	done := make(chan *response, 1)
	go func() { done <- e2.post(t, "/v1/score", body, server.TimeoutHeader, "300ms") }()
	<-g2.started
	r = <-done // the deadline passes while the model is held
	close(g2.release)
	if r.status != http.StatusGatewayTimeout || r.errCode() != server.CodeDeadline {
		t.Fatalf("deadline passed during the run: %d %s, want 504", r.status, r.raw)
	}
}

// TestClientGoneDropsQueuedWork: a client that disconnects while its
// request waits in the queue has that work dropped; the model never runs it.
func TestClientGoneDropsQueuedWork(t *testing.T) {
	g := &gate{started: make(chan int, 4), release: make(chan struct{})}
	e := newEnv(t, envConfig{noICT: true, hpGate: g, batch: models.BatcherOptions{MaxBatch: 4, MaxWait: -1}}, true)
	body, _ := json.Marshal(map[string]any{"images": []string{b64(pngBytes(t, 9, 32, 32))}})
	first := make(chan *response, 1)
	go func() { first <- e.post(t, "/v1/score", body) }()
	<-g.started

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.url+"/v1/score", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	gone := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		gone <- err
	}()
	waitFor(t, func() bool { return e.hpB.ImageStats().Queued == 1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled client got %v", err)
	}
	waitFor(t, func() bool {
		return e.metric(t, `icthp_batcher_dropped_items_total{graph="vision",model="hp"}`) == 1
	})
	close(g.release)
	if r := <-first; r.status != 200 {
		t.Fatalf("the first request: %d %s", r.status, r.raw)
	}
	if g.rows() != 1 {
		t.Errorf("the model ran %d rows; the cancelled request's row should have been dropped", g.rows())
	}
	waitFor(t, func() bool {
		return e.metric(t, `icthp_http_requests_total{method="POST",route="/v1/score",status="499"}`) == 1
	})
}

// waitFor polls cond: synchronisation with goroutines and the server, not
// a timing assertion (it fails only after a minute).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readyGauge reads icthp_ready from /metrics, failing when the series is
// absent (e.metric reads an absent series as 0, which would pass for "not ready").
func (e *env) readyGauge(t *testing.T) float64 {
	t.Helper()
	if r := e.get(t, "/metrics"); !bytes.Contains(r.raw, []byte("\nicthp_ready ")) {
		t.Fatalf("/metrics has no icthp_ready series: %d", r.status)
	}
	return e.metric(t, "icthp_ready")
}

// TestGracefulShutdown runs the server on a loopback listener, starts a
// request, ends Run's context (what SIGTERM does in icthp serve), and checks
// that /readyz turns 503 (and icthp_ready 0: it is 1 only between warm-up
// and drain), new requests get 503, the request in flight still gets its
// 200, and Run returns nil.
func TestGracefulShutdown(t *testing.T) {
	g := &gate{started: make(chan int, 4), release: make(chan struct{})}
	warmed := make(chan struct{})
	e := newEnv(t, envConfig{noICT: true, hpGate: g, batch: models.BatcherOptions{MaxBatch: 4, MaxWait: -1},
		server: server.Options{DrainDelay: 3 * time.Second, Grace: time.Minute,
			Warmup: func(context.Context) error { <-warmed; return nil }}}, false)
	stop, ran := e.run(t)

	body := map[string]any{"images": []string{b64(pngBytes(t, 9, 32, 32))}}
	if r := e.get(t, "/readyz"); r.status != 503 || r.errCode() != server.CodeNotReady {
		t.Errorf("/readyz before the warm-up finished: %d %s", r.status, r.raw)
	}
	if r := e.post(t, "/v1/score", body); r.status != 503 || r.errCode() != server.CodeNotReady {
		t.Errorf("a request before the warm-up finished: %d %s", r.status, r.raw)
	}
	if v := e.readyGauge(t); v != 0 {
		t.Errorf("icthp_ready before the warm-up finished: %v, want 0", v)
	}
	close(warmed)
	waitFor(t, e.srv.Ready)
	if v := e.readyGauge(t); v != 1 {
		t.Errorf("icthp_ready once warm: %v, want 1", v)
	}

	inflight := make(chan *response, 1)
	go func() { inflight <- e.post(t, "/v1/score", body) }()
	<-g.started
	stop() // SIGTERM
	waitFor(t, func() bool { return !e.srv.Ready() })
	if r := e.get(t, "/readyz"); r.status != 503 || r.errCode() != server.CodeDraining {
		t.Errorf("/readyz while draining: %d %s, want 503 draining", r.status, r.raw)
	}
	if v := e.readyGauge(t); v != 0 {
		t.Errorf("icthp_ready while draining: %v, want 0", v)
	}
	r := e.post(t, "/v1/score", body)
	if r.status != 503 || r.errCode() != server.CodeDraining || r.header.Get("Retry-After") == "" {
		t.Errorf("a new request while draining: %d %s, want 503 draining with Retry-After", r.status, r.raw)
	}
	if r := e.get(t, "/healthz"); r.status != 200 || !r.closes {
		t.Errorf("/healthz while draining: %d, Connection: close %v; want 200 (the process is alive), closing", r.status, r.closes)
	}
	close(g.release)
	// Answered after the drain began, it closes its connection: kept alive,
	// the shutdown would close it under the client's next request.
	if r := <-inflight; r.status != 200 || !r.closes {
		t.Errorf("the request in flight at SIGTERM: %d %s, Connection: close %v; want 200, closing", r.status, r.raw, r.closes)
	}
	if err := <-ran; err != nil {
		t.Errorf("Run after a clean drain: %v", err)
	}
	if _, err := http.Get(e.url + "/healthz"); err == nil {
		t.Errorf("the listener is still open after Run returned")
	}
}

// TestShutdownGraceExpires: a request still running when the grace period
// ends makes Run return an error, and its context is cancelled.
func TestShutdownGraceExpires(t *testing.T) {
	g := &gate{started: make(chan int, 4), release: make(chan struct{})}
	defer close(g.release)
	e := newEnv(t, envConfig{noICT: true, hpGate: g, batch: models.BatcherOptions{MaxBatch: 4, MaxWait: -1},
		server: server.Options{Grace: 200 * time.Millisecond}}, false)
	stop, ran := e.run(t)
	waitFor(t, e.srv.Ready)
	inflight := make(chan error, 1)
	go func() {
		res, err := http.Post(e.url+"/v1/score", "application/json",
			bytes.NewReader([]byte(`{"images": ["`+b64(pngBytes(t, 9, 32, 32))+`"]}`)))
		if err == nil {
			res.Body.Close()
		}
		inflight <- err
	}()
	<-g.started
	stop()
	if err := <-ran; err == nil {
		t.Fatal("Run returned nil with a request still running after the grace period")
	}
	if err := <-inflight; err == nil {
		t.Errorf("the cut-off request got an answer")
	}
}
