package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

// Job defaults (Options.JobTTL, Options.MaxJobs).
const (
	DefaultJobTTL  = 10 * time.Minute
	DefaultMaxJobs = 256
)

// IdempotencyKeyHeader makes POST /v1/jobs idempotent: the same key with
// the same request within JobTTL answers the first job's id; with another
// request, 409.
const IdempotencyKeyHeader = "Idempotency-Key"

// Job states.
const (
	JobPending = "pending"
	JobDone    = "done"
	JobFailed  = "failed"
)

// ErrJobNotFound is a job id that is unknown or whose result expired.
var ErrJobNotFound = errors.New("no such job (unknown, or its result expired)")

// Job is one asynchronous request and, once run, its answer: the body the
// route would have answered (Result) and its HTTP status.
type Job struct {
	ID       string          `json:"id"`
	Route    string          `json:"route"`
	Status   string          `json:"status"`
	HTTP     int             `json:"http_status,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	Created  time.Time       `json:"created"`
	Finished *time.Time      `json:"finished,omitempty"`
	digest   string          // of the request, for idempotency keys
}

// JobStore keeps jobs for a time: in memory (NewMemoryJobs) or in Redis
// (NewRedisJobs), so that any replica can answer GET /v1/jobs/{id}.
type JobStore interface {
	Put(ctx context.Context, j *Job, ttl time.Duration) error
	Get(ctx context.Context, id string) (*Job, error) // ErrJobNotFound
	// Claim binds an idempotency key (with the request's digest) to id
	// unless it is bound already; then it returns the existing binding.
	Claim(ctx context.Context, key, digest, id string, ttl time.Duration) (existingID, existingDigest string, err error)
}

// memoryJobs is a JobStore in this process.
type memoryJobs struct {
	mu   sync.Mutex
	jobs map[string]memJob
	keys map[string]memKey
	now  func() time.Time
}

type memJob struct {
	j       Job
	expires time.Time
}

type memKey struct {
	id, digest string
	expires    time.Time
}

// NewMemoryJobs is a JobStore in this process's memory.
func NewMemoryJobs() JobStore {
	return &memoryJobs{jobs: map[string]memJob{}, keys: map[string]memKey{}, now: time.Now}
}

func (m *memoryJobs) Put(_ context.Context, j *Job, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for id, e := range m.jobs { // amortised sweep: Put is once or twice per job
		if now.After(e.expires) {
			delete(m.jobs, id)
		}
	}
	for k, e := range m.keys {
		if now.After(e.expires) {
			delete(m.keys, k)
		}
	}
	m.jobs[j.ID] = memJob{j: *j, expires: now.Add(ttl)}
	return nil
}

func (m *memoryJobs) Get(_ context.Context, id string) (*Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.jobs[id]
	if !ok || m.now().After(e.expires) {
		return nil, ErrJobNotFound
	}
	j := e.j
	return &j, nil
}

func (m *memoryJobs) Claim(_ context.Context, key, digest, id string, ttl time.Duration) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.keys[key]; ok && !m.now().After(e.expires) {
		return e.id, e.digest, nil
	}
	m.keys[key] = memKey{id: id, digest: digest, expires: m.now().Add(ttl)}
	return id, digest, nil
}

// redisJobs is a JobStore in Redis: icthp:job:ID holds the job's JSON,
// icthp:jobkey:KEY "ID DIGEST"; both expire after the TTL.
type redisJobs struct{ rdb redis.UniversalClient }

// NewRedisJobs is a JobStore in Redis, shared by every replica that uses it.
func NewRedisJobs(rdb redis.UniversalClient) JobStore { return redisJobs{rdb} }

func (r redisJobs) Put(ctx context.Context, j *Job, ttl time.Duration) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return r.rdb.Set(ctx, "icthp:job:"+j.ID, b, ttl).Err()
}

func (r redisJobs) Get(ctx context.Context, id string) (*Job, error) {
	b, err := r.rdb.Get(ctx, "icthp:job:"+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrJobNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("job store: job %s: %w", id, err)
	}
	return &j, nil
}

func (r redisJobs) Claim(ctx context.Context, key, digest, id string, ttl time.Duration) (string, string, error) {
	k := "icthp:jobkey:" + key
	ok, err := r.rdb.SetNX(ctx, k, id+" "+digest, ttl).Result()
	if err != nil {
		return "", "", fmt.Errorf("job store: %w", err)
	}
	if ok {
		return id, digest, nil
	}
	v, err := r.rdb.Get(ctx, k).Result()
	if err != nil {
		return "", "", fmt.Errorf("job store: %w", err)
	}
	eid, edig, _ := strings.Cut(v, " ")
	return eid, edig, nil
}

// jobRunner runs jobs by replaying their request through the router.
type jobRunner struct {
	store   JobStore
	ttl     time.Duration
	max     int64
	running atomic.Int64
	wg      sync.WaitGroup // jobs in flight, for Run's drain
}

var jobRoutes = map[string]bool{"score": true, "rank": true, "reward": true, "embed": true}

// jobRoutes registers POST /v1/jobs and GET /v1/jobs/:id on v1.
func (s *Server) jobRoutes(v1 *gin.RouterGroup) {
	r := &jobRunner{store: s.opts.Jobs, ttl: s.opts.JobTTL, max: int64(s.opts.MaxJobs)}
	if r.store == nil {
		r.store = NewMemoryJobs()
	}
	if r.ttl <= 0 {
		r.ttl = DefaultJobTTL
	}
	if r.max <= 0 {
		r.max = DefaultMaxJobs
	}
	s.jobs = r
	v1.POST("/jobs", s.submitJob)
	v1.GET("/jobs/:id", s.getJob)
}

// submitJob takes the body of any score, rank, reward or embed request (the
// route in ?route=, reward by default; JSON, multipart or a tensor body)
// and answers 202 with the job's id at once.
func (s *Server) submitJob(c *gin.Context) {
	route := c.DefaultQuery("route", "reward")
	if !jobRoutes[route] {
		s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("route %q: a job runs score, rank, reward or embed", route)))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes))
	if err != nil {
		s.fail(c, err)
		return
	}
	ctx := c.Request.Context()
	r := s.jobs
	j := &Job{ID: newJobID(), Route: route, Status: JobPending, Created: time.Now().UTC()}
	if key := c.GetHeader(IdempotencyKeyHeader); key != "" {
		if len(key) > 256 {
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, IdempotencyKeyHeader+" is over 256 bytes"))
			return
		}
		sum := sha256.New()
		for _, part := range [][]byte{[]byte(route), []byte(c.GetHeader("Content-Type")), body} {
			fmt.Fprintf(sum, "%d:", len(part))
			sum.Write(part)
		}
		j.digest = hex.EncodeToString(sum.Sum(nil))
		id, digest, err := r.store.Claim(ctx, key, j.digest, j.ID, r.ttl)
		if err != nil {
			s.fail(c, err)
			return
		}
		if id != j.ID {
			if digest != j.digest {
				s.fail(c, newError(http.StatusConflict, "conflict", IdempotencyKeyHeader+" was used with another request"))
				return
			}
			prev, err := r.store.Get(ctx, id)
			if errors.Is(err, ErrJobNotFound) { // claimed, not yet stored: it is pending
				prev, err = &Job{ID: id, Route: route, Status: JobPending}, nil
			}
			if err != nil {
				s.fail(c, err)
				return
			}
			c.JSON(http.StatusOK, prev)
			return
		}
	}
	if r.running.Add(1) > r.max {
		r.running.Add(-1)
		e := newError(http.StatusTooManyRequests, CodeOverloaded, fmt.Sprintf("%d jobs are running, the limit", r.max))
		e.retryAfter = time.Second
		s.fail(c, e)
		return
	}
	if err := r.store.Put(ctx, j, r.ttl); err != nil {
		r.running.Add(-1)
		s.fail(c, err)
		return
	}
	hdr := http.Header{}
	for _, h := range []string{"Content-Type", "Authorization", TimeoutHeader} {
		if v := c.GetHeader(h); v != "" {
			hdr.Set(h, v)
		}
	}
	hdr.Set(RequestIDHeader, "job-"+j.ID)
	// The job outlives this request: its context keeps the values, not the
	// cancellation; the route's own deadline bounds it.
	r.wg.Add(1)
	go s.runJob(context.WithoutCancel(ctx), j, hdr, body)
	c.Header("Location", "/v1/jobs/"+j.ID)
	c.JSON(http.StatusAccepted, j)
}

func (s *Server) runJob(ctx context.Context, j *Job, hdr http.Header, body []byte) {
	r := s.jobs
	defer r.wg.Done()
	defer r.running.Add(-1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/"+j.Route, bytes.NewReader(body))
	rec := &recorder{header: http.Header{}}
	if err == nil {
		req.Header = hdr
		s.engine.ServeHTTP(rec, req)
	} else {
		rec.status = http.StatusInternalServerError
		json.NewEncoder(&rec.body).Encode(map[string]any{"error": errorJSON{Code: CodeInternal, Message: "job: " + err.Error()}})
	}
	now := time.Now().UTC()
	j.Finished, j.HTTP, j.Result, j.Status = &now, rec.code(), json.RawMessage(rec.body.Bytes()), JobDone
	if j.HTTP >= 400 {
		j.Status = JobFailed
	}
	if !json.Valid(j.Result) {
		j.Result, _ = json.Marshal(map[string]any{"error": errorJSON{Code: CodeInternal, Message: "the route's answer was not JSON"}})
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.store.Put(pctx, j, r.ttl); err != nil {
		s.log.Error("job result not stored", "job", j.ID, "err", err.Error())
	}
}

// waitJobs waits for the jobs in flight (their results stored) until ctx
// ends; Run calls it in its grace period, after the HTTP requests.
func (s *Server) waitJobs(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.jobs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d jobs still running: %w", s.jobs.running.Load(), ctx.Err())
	}
}

// getJob answers a job: pending, or done/failed with the route's answer in
// "result" and its status in "http_status".
func (s *Server) getJob(c *gin.Context) {
	j, err := s.jobs.store.Get(c.Request.Context(), c.Param("id"))
	if errors.Is(err, ErrJobNotFound) {
		s.fail(c, newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("job %q: %v", c.Param("id"), err)))
		return
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

func newJobID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// recorder is the http.ResponseWriter a job's replayed request writes to.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
