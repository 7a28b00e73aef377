package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/cache/redistest"
	"github.com/icthp/icthp/server"
)

// waitJob polls GET /v1/jobs/{id} until the job is no longer pending.
func (e *env) waitJob(t *testing.T, id string) map[string]any {
	t.Helper()
	for range 3000 {
		r := e.get(t, "/v1/jobs/"+id)
		if r.status != http.StatusOK {
			t.Fatalf("GET job %s: %d %s", id, r.status, r.raw)
		}
		if r.body["status"] != server.JobPending {
			return r.body
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s still pending", id)
	return nil
}

func submit(t *testing.T, e *env, route string, body any, hdr ...string) *response {
	t.Helper()
	return e.post(t, "/v1/jobs?route="+route, body, hdr...)
}

func TestJobs(t *testing.T) {
	e := newEnv(t, envConfig{}, true)
	png := b64(pngBytes(t, 1, 40, 30))
	reward := map[string]any{"items": []map[string]any{{"prompt": "a cat", "image": png}, {"prompt": "a dog", "image": png}}, "weights": map[string]float64{"ict": 1, "hp": 2}}

	t.Run("reward equals the synchronous answer", func(t *testing.T) {
		r := submit(t, e, "reward", reward)
		if r.status != http.StatusAccepted || r.body["status"] != "pending" || r.header.Get("Location") != "/v1/jobs/"+r.body["id"].(string) {
			t.Fatalf("submit: %d %v %s", r.status, r.header, r.raw)
		}
		j := e.waitJob(t, r.body["id"].(string))
		want := e.post(t, "/v1/reward", reward)
		if j["status"] != "done" || num(t, j["http_status"], "http_status") != 200 || !reflect.DeepEqual(j["result"], want.body) {
			t.Errorf("job %v, want done with %v", j, want.body)
		}
	})
	t.Run("tensor body, score route", func(t *testing.T) {
		pix, _ := rawPixels(t, 3, 20, 10)
		body := tensorBody(t, map[string]any{"prompt": "x", "shape": []int{10, 20, 3}}, pix)
		r := submit(t, e, "score", body, "Content-Type", server.TensorContentType)
		if r.status != http.StatusAccepted {
			t.Fatalf("submit: %d %s", r.status, r.raw)
		}
		j := e.waitJob(t, r.body["id"].(string))
		want := e.post(t, "/v1/score", body, "Content-Type", server.TensorContentType)
		if j["status"] != "done" || !reflect.DeepEqual(j["result"], want.body) {
			t.Errorf("job %v, want done with %v", j, want.body)
		}
	})
	t.Run("failed job carries the route's error", func(t *testing.T) {
		r := submit(t, e, "score", map[string]any{"images": "not a list"})
		j := e.waitJob(t, r.body["id"].(string))
		res, _ := j["result"].(map[string]any)
		code, _ := res["error"].(map[string]any)["code"].(string)
		if j["status"] != "failed" || num(t, j["http_status"], "http_status") != 400 || code != "bad_request" {
			t.Errorf("job %v, want failed with 400 bad_request", j)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if r := submit(t, e, "models", reward); r.status != 400 || r.errCode() != "bad_request" {
			t.Errorf("bad route: %d %s", r.status, r.raw)
		}
		if r := e.get(t, "/v1/jobs/0123"); r.status != 404 || r.errCode() != "not_found" {
			t.Errorf("unknown job: %d %s", r.status, r.raw)
		}
	})
	t.Run("idempotency key", func(t *testing.T) {
		a := submit(t, e, "reward", reward, server.IdempotencyKeyHeader, "k1")
		b := submit(t, e, "reward", reward, server.IdempotencyKeyHeader, "k1")
		if a.status != 202 || b.status != 200 || a.body["id"] != b.body["id"] {
			t.Errorf("same key: %d %v then %d %v, want 202 then 200 with one id", a.status, a.body["id"], b.status, b.body["id"])
		}
		other := map[string]any{"items": []map[string]any{{"prompt": "other", "image": png}}}
		if c := submit(t, e, "reward", other, server.IdempotencyKeyHeader, "k1"); c.status != 409 || c.errCode() != "conflict" {
			t.Errorf("same key, other request: %d %s, want 409 conflict", c.status, c.raw)
		}
		d := submit(t, e, "reward", reward, server.IdempotencyKeyHeader, "k2")
		if d.status != 202 || d.body["id"] == a.body["id"] {
			t.Errorf("another key: %d %v", d.status, d.body)
		}
		e.waitJob(t, a.body["id"].(string))
		e.waitJob(t, d.body["id"].(string))
	})
}

func TestJobsLimit(t *testing.T) {
	g := &gate{started: make(chan int, 8), release: make(chan struct{})}
	e := newEnv(t, envConfig{hpGate: g, server: server.Options{MaxJobs: 1}}, true)
	body := map[string]any{"images": []string{b64(pngBytes(t, 1, 16, 16))}}
	first := submit(t, e, "score", body)
	<-g.started // the first job is in the model
	second := submit(t, e, "score", body)
	close(g.release)
	if first.status != 202 || second.status != 429 || second.errCode() != "overloaded" || second.header.Get("Retry-After") == "" {
		t.Errorf("first %d, second %d %s: want 202 then 429 overloaded with Retry-After", first.status, second.status, second.raw)
	}
	if j := e.waitJob(t, first.body["id"].(string)); j["status"] != "done" {
		t.Errorf("first job: %v", j)
	}
}

// TestJobsInRedis: a job submitted to one replica is answered by another
// that shares the Redis store; idempotency keys are shared too.
func TestJobsInRedis(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := cache.NewRedis(rs.URL(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	store := server.NewRedisJobs(rdb)
	a := newEnv(t, envConfig{server: server.Options{Jobs: store, JobTTL: time.Minute}}, true)
	b := newEnv(t, envConfig{server: server.Options{Jobs: store, JobTTL: time.Minute}}, true)
	body := map[string]any{"prompt": "a cat", "images": []string{b64(pngBytes(t, 2, 30, 30))}}
	r := submit(t, a, "score", body, server.IdempotencyKeyHeader, "shared")
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	j := b.waitJob(t, id)
	want := b.post(t, "/v1/score", body)
	if j["status"] != "done" || !reflect.DeepEqual(j["result"], want.body) {
		t.Errorf("job read on the other replica: %v, want %v", j, want.body)
	}
	if again := submit(t, b, "score", body, server.IdempotencyKeyHeader, "shared"); again.status != 200 || again.body["id"] != id {
		t.Errorf("the key on the other replica: %d %v, want the first job", again.status, again.body)
	}
	// The key expires with the TTL: Redis holds it with one.
	if ttl := rdb.TTL(t.Context(), "icthp:job:"+id).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("job key TTL %v, want within (0, 1m]", ttl)
	}
}

// TestJobJSON checks the Job JSON shape against the OpenAPI names.
func TestJobJSON(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := json.Marshal(server.Job{ID: "x", Route: "reward", Status: server.JobDone, HTTP: 200, Result: json.RawMessage(`{"rewards":[1]}`), Created: now, Finished: &now})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","route":"reward","status":"done","http_status":200,"result":{"rewards":[1]},"created":"2026-01-02T03:04:05Z","finished":"2026-01-02T03:04:05Z"}`
	if !bytes.Equal(b, []byte(want)) {
		t.Errorf("got %s\nwant %s", b, want)
	}
}

// TestJobsDrain: a job running when the server is told to stop finishes,
// and its result is stored, before Run returns.
func TestJobsDrain(t *testing.T) {
	g := &gate{started: make(chan int, 4), release: make(chan struct{})}
	store := server.NewMemoryJobs()
	e := newEnv(t, envConfig{noICT: true, hpGate: g, server: server.Options{Jobs: store, Grace: time.Minute}}, false)
	stop, ran := e.run(t)
	waitFor(t, e.srv.Ready)
	r := submit(t, e, "score", map[string]any{"images": []string{b64(pngBytes(t, 4, 16, 16))}})
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.raw)
	}
	<-g.started // the job is in the model
	stop()
	waitFor(t, func() bool { return !e.srv.Ready() })
	close(g.release)
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	j, err := store.Get(context.Background(), r.body["id"].(string))
	if err != nil || j.Status != server.JobDone || j.HTTP != 200 {
		t.Errorf("the job after Run returned: %+v %v, want done", j, err)
	}
}

// redisJob is a job submitted to a server whose jobs live in a real
// redis-server, with the HP model behind a gate; the job is in the model.
type redisJob struct {
	e    *env
	rs   *redistest.Server
	g    *gate
	body map[string]any // the job's request
	id   string
}

// startRedisJob submits a score job of one seeded image and waits until the
// model has it.
func startRedisJob(t *testing.T, seed int) redisJob {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := cache.NewRedis(rs.URL(), 100*time.Millisecond) // serve's --redis-timeout default
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	g := &gate{started: make(chan int, 8), release: make(chan struct{})}
	e := newEnv(t, envConfig{noICT: true, hpGate: g, server: server.Options{Jobs: server.NewRedisJobs(rdb), JobTTL: time.Minute}}, true)
	body := map[string]any{"images": []string{b64(pngBytes(t, seed, 16, 16))}}
	r := submit(t, e, "score", body)
	if r.status != 202 {
		t.Fatalf("submit: %d %s", r.status, r.raw)
	}
	<-g.started // the job is in the model
	return redisJob{e: e, rs: rs, g: g, body: body, id: r.body["id"].(string)}
}

// TestJobsRedisStall: Redis stops answering (SIGSTOP) exactly when a job's
// result is written and comes back 400 ms later; the retries store the
// result, and the job reads done, not pending forever.
func TestJobsRedisStall(t *testing.T) {
	job := startRedisJob(t, 5)
	job.rs.Pause()
	close(job.g.release) // the job finishes and writes its result into the stall
	time.Sleep(400 * time.Millisecond)
	job.rs.Resume()
	j := job.e.waitJob(t, job.id)
	if j["status"] != "done" || num(t, j["http_status"], "http_status") != 200 {
		t.Errorf("job after a 400 ms stall at its result write: %v, want done", j)
	}
}

// TestJobsRedisDown: with Redis killed, the jobs routes answer 503 with
// Retry-After and a body that names no address; the job that was running
// reads failed with the reason on this replica, also after Redis restarts
// empty.
func TestJobsRedisDown(t *testing.T) {
	job := startRedisJob(t, 6)
	e, rs, g, body, id := job.e, job.rs, job.g, job.body, job.id
	rs.Stop()
	noAddress := func(what string, got *response) {
		t.Helper()
		if got.status != http.StatusServiceUnavailable || got.errCode() != server.CodeStoreUnavailable || got.header.Get("Retry-After") == "" {
			t.Errorf("%s with Redis down: %d %v %s, want 503 %s with Retry-After", what, got.status, got.header, got.raw, server.CodeStoreUnavailable)
		}
		if s := string(got.raw); strings.Contains(s, "127.0.0.1") || strings.Contains(s, strconv.Itoa(rs.Port)) {
			t.Errorf("%s: the error body names the store's address: %s", what, s)
		}
	}
	noAddress("POST /v1/jobs", submit(t, e, "score", body))
	noAddress("POST /v1/jobs with a key", submit(t, e, "score", body, server.IdempotencyKeyHeader, "k"))
	noAddress("GET /v1/jobs/{id} while running", e.get(t, "/v1/jobs/"+id))
	close(g.release)
	var j *response
	for range 200 { // the result write gives up after its retries (about 4 s)
		if j = e.get(t, "/v1/jobs/"+id); j.status == http.StatusOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	check := func(when string) {
		t.Helper()
		if j.status != 200 || j.body["status"] != "failed" || num(t, j.body["http_status"], "http_status") != 503 {
			t.Fatalf("%s: %d %s, want 200 with the job failed (503)", when, j.status, j.raw)
		}
		res, _ := j.body["result"].(map[string]any)
		if code, _ := res["error"].(map[string]any)["code"].(string); code != server.CodeStoreUnavailable {
			t.Errorf("%s: result %v, want error code %s", when, res, server.CodeStoreUnavailable)
		}
	}
	check("Redis down")
	rs.Restart() // empty: the pending record is gone too
	j = e.get(t, "/v1/jobs/"+id)
	check("Redis back, empty")
	// The client redials in the background after failed dials (about a
	// second apart): the routes answer again once it has.
	var again *response
	for range 100 {
		if again = submit(t, e, "score", body); again.status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if again.status != 202 {
		t.Errorf("submit with Redis back: %d %s", again.status, again.raw)
	}
}
