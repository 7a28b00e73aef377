package server

import (
	"bytes"
	"container/heap"
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

// ErrJobStoreUnavailable wraps every failure to reach the job store (Redis
// down, stalled, refusing writes). The routes answer it 503 with
// Retry-After and a message that names no address; the cause is logged.
var ErrJobStoreUnavailable = errors.New("the job store is unavailable")

// CodeStoreUnavailable is the error code of a 503 from the jobs routes when
// the job store cannot be reached, and of a job whose result could not be
// stored.
const CodeStoreUnavailable = "store_unavailable"

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

// memoryJobs is a JobStore in this process. Expiry pops a min-heap of
// deadlines, so a write costs O(log n) however many jobs are kept (a sweep
// of every job under the lock made each write O(n)).
type memoryJobs struct {
	mu     sync.Mutex
	jobs   map[string]memJob
	keys   map[string]memKey
	expiry expiryHeap
	now    func() time.Time
}

type memJob struct {
	j       Job
	expires time.Time
}

type memKey struct {
	id, digest string
	expires    time.Time
}

// expiryEntry says that a job (or an idempotency key, when key) may expire
// at expires; a later Put of the same job leaves a stale entry that the
// pop recognises by the map's later deadline.
type expiryEntry struct {
	expires time.Time
	name    string
	key     bool
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// NewMemoryJobs is a JobStore in this process's memory.
func NewMemoryJobs() JobStore {
	return &memoryJobs{jobs: map[string]memJob{}, keys: map[string]memKey{}, now: time.Now}
}

// expire drops what expired by now: only the heap's due entries are
// looked at. The caller holds mu.
func (m *memoryJobs) expire(now time.Time) {
	for len(m.expiry) > 0 && now.After(m.expiry[0].expires) {
		e := heap.Pop(&m.expiry).(expiryEntry)
		if e.key {
			if k, ok := m.keys[e.name]; ok && now.After(k.expires) {
				delete(m.keys, e.name)
			}
		} else if j, ok := m.jobs[e.name]; ok && now.After(j.expires) {
			delete(m.jobs, e.name)
		}
	}
}

func (m *memoryJobs) Put(_ context.Context, j *Job, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	exp := now.Add(ttl)
	m.jobs[j.ID] = memJob{j: *j, expires: exp}
	heap.Push(&m.expiry, expiryEntry{expires: exp, name: j.ID})
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
	now := m.now()
	m.expire(now)
	if e, ok := m.keys[key]; ok && !now.After(e.expires) {
		return e.id, e.digest, nil
	}
	exp := now.Add(ttl)
	m.keys[key] = memKey{id: id, digest: digest, expires: exp}
	heap.Push(&m.expiry, expiryEntry{expires: exp, name: key, key: true})
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
	if err := r.rdb.Set(ctx, "icthp:job:"+j.ID, b, ttl).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrJobStoreUnavailable, err)
	}
	return nil
}

func (r redisJobs) Get(ctx context.Context, id string) (*Job, error) {
	b, err := r.rdb.Get(ctx, "icthp:job:"+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrJobNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrJobStoreUnavailable, err)
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
		return "", "", fmt.Errorf("%w: %w", ErrJobStoreUnavailable, err)
	}
	if ok {
		return id, digest, nil
	}
	v, err := r.rdb.Get(ctx, k).Result()
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrJobStoreUnavailable, err)
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
	// unstored holds, in this process, the jobs whose result could not be
	// written to store even as "failed": this replica still answers them.
	unstored JobStore
	retry    retryPolicy
}

// retryPolicy bounds the writes of a job's result: each attempt has its own
// timeout (a stalled store costs at most that), and attempts are spaced by
// a doubling backoff.
type retryPolicy struct {
	attempts int
	timeout  time.Duration // per attempt
	backoff  time.Duration // before the second attempt; doubles
}

// defaultResultRetry rides out a store stall or failover of a few seconds
// (6 attempts over about 3 s of backoff) without holding a drain for long.
var defaultResultRetry = retryPolicy{attempts: 6, timeout: 2 * time.Second, backoff: 100 * time.Millisecond}

var jobRoutes = map[string]bool{"score": true, "rank": true, "reward": true, "embed": true}

// jobRoutes registers POST /v1/jobs and GET /v1/jobs/:id on v1.
func (s *Server) jobRoutes(v1 *gin.RouterGroup) {
	r := &jobRunner{store: s.opts.Jobs, ttl: s.opts.JobTTL, max: int64(s.opts.MaxJobs), unstored: NewMemoryJobs(), retry: defaultResultRetry}
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
			s.failStore(c, err)
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
				s.failStore(c, err)
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
		s.failStore(c, err)
		return
	}
	hdr := http.Header{}
	for _, h := range []string{"Content-Type", "Authorization", TimeoutHeader} {
		if v := c.GetHeader(h); v != "" {
			hdr.Set(h, v)
		}
	}
	hdr.Set(RequestIDHeader, "job-"+j.ID)
	// The answer is the job as submitted, copied before runJob may finish
	// and fill it in (the race detector caught the encoder reading fields
	// runJob was writing).
	accepted := *j
	// The job outlives this request: its context keeps the values, not the
	// cancellation; the route's own deadline bounds it.
	r.wg.Add(1)
	go s.runJob(context.WithoutCancel(ctx), j, hdr, body)
	c.Header("Location", "/v1/jobs/"+j.ID)
	c.JSON(http.StatusAccepted, &accepted)
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
	s.storeResult(context.WithoutCancel(ctx), j)
}

// storeResult writes a finished job with retries. When the result cannot
// be written, the job is written as failed with the reason (503,
// store_unavailable) — in the store if it takes that smaller write, and in
// this process in any case, so that no job reads pending until it expires
// on the replica that ran it.
func (s *Server) storeResult(ctx context.Context, j *Job) {
	r := s.jobs
	err := r.retry.do(ctx, func(ctx context.Context) error { return r.store.Put(ctx, j, r.ttl) })
	if err == nil {
		return
	}
	s.log.Error("job result not stored", "job", j.ID, "err", err.Error())
	j.Status, j.HTTP = JobFailed, http.StatusServiceUnavailable
	j.Result, _ = json.Marshal(map[string]any{"error": errorJSON{Code: CodeStoreUnavailable,
		Message: "the job ran but its result could not be stored (the job store was unavailable); submit it again"}})
	_ = r.unstored.Put(ctx, j, r.ttl)
	failed := retryPolicy{attempts: 2, timeout: r.retry.timeout, backoff: r.retry.backoff}
	if err := failed.do(ctx, func(ctx context.Context) error { return r.store.Put(ctx, j, r.ttl) }); err != nil {
		s.log.Error("job failure not stored; only this replica answers it", "job", j.ID, "err", err.Error())
	}
}

// do runs f until it succeeds or the attempts are spent; the last error.
func (p retryPolicy) do(ctx context.Context, f func(context.Context) error) error {
	var err error
	wait := p.backoff
	for i := 0; i < max(p.attempts, 1); i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(wait):
			}
			wait *= 2
		}
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		err = f(actx)
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
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
	id := c.Param("id")
	if j, err := s.jobs.unstored.Get(c.Request.Context(), id); err == nil {
		c.JSON(http.StatusOK, j)
		return
	}
	j, err := s.jobs.store.Get(c.Request.Context(), id)
	if errors.Is(err, ErrJobNotFound) {
		s.fail(c, newError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("job %q: %v", id, err)))
		return
	}
	if err != nil {
		s.failStore(c, err)
		return
	}
	c.JSON(http.StatusOK, j)
}

// failStore answers a job store failure: 503 with Retry-After when the
// store is unreachable, with a message that names no address (the cause,
// which may, goes to the log).
func (s *Server) failStore(c *gin.Context, err error) {
	if !errors.Is(err, ErrJobStoreUnavailable) {
		s.fail(c, err)
		return
	}
	s.log.Warn("job store unavailable", "path", c.Request.URL.Path, "err", err.Error())
	e := newError(http.StatusServiceUnavailable, CodeStoreUnavailable, "the job store is unavailable; retry later")
	e.retryAfter = time.Second
	s.fail(c, e)
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
