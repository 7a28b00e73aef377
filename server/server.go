// Package server is the HTTP front door of icthp (SPEC §4): a Gin router
// that decodes JSON and multipart requests, applies limits, deadlines and
// bearer-token authentication, maps typed errors to status codes (in
// classify, once), records Prometheus metrics and JSON logs, and calls a
// scoring.Service. It drains gracefully: Run, when its context ends, turns
// /readyz false, answers new requests with 503, and lets the requests in
// flight finish within a grace period.
package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server/gallery"
)

// OpenAPI is the API's OpenAPI 3 document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Scorer is what the server needs of scoring.Service. A call must not keep
// a request's images (raw pixels especially: their buffers are pooled,
// rawbuf.go) after it returns.
type Scorer interface {
	Score(ctx context.Context, r scoring.ScoreRequest) (*scoring.ScoreResponse, error)
	Rank(ctx context.Context, prompt string, images []scoring.Image) (*scoring.RankResponse, error)
	Reward(ctx context.Context, items []scoring.RewardItem, comb *scoring.Combination) (*scoring.RewardResponse, error)
	EmbedTexts(ctx context.Context, texts []string) ([][]float32, error)
	EmbedImages(ctx context.Context, images []scoring.Image) ([][]float32, []error, error)
	Versions() map[string]string
	// Specs are the loaded models' registry specs, in registry order.
	Specs() []scorer.Spec
}

// Defaults of Options.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxBodyBytes   = 64 << 20
	DefaultMaxImages      = 64
	DefaultMaxPromptBytes = 8 << 10
	DefaultGrace          = 30 * time.Second
	DefaultReadTimeout    = time.Minute
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultHeaderTimeout  = 10 * time.Second
)

// TimeoutHeader shortens a request's deadline: a Go duration ("1.5s",
// "250ms") or a number of seconds. It cannot lengthen Options.Timeout.
const TimeoutHeader = api.TimeoutHeader

// RequestIDHeader carries the request id: taken from the request when it is
// a sane token, else made up; always returned.
const RequestIDHeader = api.RequestIDHeader

// ModelInfo describes one loaded model for /v1/models and icthp_model_info.
type ModelInfo = api.ModelInfo

// Options configure a Server. Zero fields take the defaults above.
type Options struct {
	// Registry receives the server's collectors and is what /metrics
	// serves; the caller registers the service's and the batchers' on it
	// too. Nil makes a new one.
	Registry *prometheus.Registry
	// Logger receives one JSON line per request; nil discards.
	Logger *slog.Logger
	// Tokens are the accepted bearer tokens; none turns authentication off.
	// With tokens, every /v1 route needs one (401 without, 403 with a wrong
	// one), and the health routes and /metrics too when AuthHealth and
	// AuthMetrics say so.
	Tokens      []string
	AuthHealth  bool
	AuthMetrics bool
	// Timeout is a request's deadline unless TimeoutHeader shortens it.
	Timeout time.Duration
	// Limits.
	MaxBodyBytes   int64
	MaxImages      int // images, reward items or texts per request
	MaxPromptBytes int
	// MaxRawBytesInFlight bounds the bytes of raw-tensor pixels held by all
	// requests together (DefaultMaxRawBytesInFlight); a tensor body that
	// would go over it gets 429. Pixels are counted as they arrive, never
	// as a header declares them.
	MaxRawBytesInFlight int64
	// DrainDelay is how long Run keeps the listener open after its context
	// ends, with /readyz false and new requests refused with 503, so that a
	// load balancer sees the change before connections are refused. Grace
	// bounds the wait for requests in flight after that.
	DrainDelay time.Duration
	Grace      time.Duration
	// Server timeouts (http.Server): reading the headers, the whole
	// request, and keeping an idle connection. The write timeout is
	// Timeout plus ten seconds.
	HeaderTimeout time.Duration
	ReadTimeout   time.Duration
	IdleTimeout   time.Duration
	// Models describe the loaded models; without them /v1/models lists
	// the service's versions only.
	Models []ModelInfo
	// Warmup, when set, runs once at the start of Run; /readyz is true
	// only after it succeeded.
	Warmup func(context.Context) error
	// Async jobs (jobs.go): where they are kept (nil: this process's
	// memory; NewRedisJobs to share them between replicas), for how long
	// after they finish (DefaultJobTTL), and how many may run at once
	// (DefaultMaxJobs; beyond it, 429).
	Jobs    JobStore
	JobTTL  time.Duration
	MaxJobs int
}

func (o *Options) defaults() {
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.Timeout, DefaultTimeout)
	def(&o.Grace, DefaultGrace)
	def(&o.HeaderTimeout, DefaultHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxImages <= 0 {
		o.MaxImages = DefaultMaxImages
	}
	if o.MaxRawBytesInFlight <= 0 {
		o.MaxRawBytesInFlight = DefaultMaxRawBytesInFlight
	}
	if o.MaxPromptBytes <= 0 {
		o.MaxPromptBytes = DefaultMaxPromptBytes
	}
}

// Server is the HTTP API over a Scorer.
type Server struct {
	svc      Scorer
	opts     Options
	log      *slog.Logger
	engine   *gin.Engine
	tokens   [][32]byte // SHA-256 of each token, compared in constant time
	ready    atomic.Bool
	draining atomic.Bool
	m        *serverMetrics
	jobs     *jobRunner
	raw      *rawBuffers  // rawbuf.go
	bodies   *bodyBuffers // JSON bodies being decoded (bodybuf.go)
	files    fileBuffers  // their images, decoded (filebuf.go)
	// *bufio.Reader of 64 KiB: multipart bodies being read (decodeMultipart),
	// refused bodies dropped (dropRefusedBody); a read takes what has arrived.
	bodyReaders sync.Pool
}

// New makes a Server; it registers its collectors on o.Registry.
func New(svc Scorer, o Options) (*Server, error) {
	if svc == nil {
		return nil, errors.New("server: no scoring service")
	}
	o.defaults()
	s := &Server{svc: svc, opts: o, log: o.Logger}
	s.bodies = newBodyBuffers(o.MaxBodyBytes)
	s.bodyReaders.New = func() any { return bufio.NewReaderSize(nil, 64<<10) }
	for _, t := range o.Tokens {
		if t == "" {
			return nil, errors.New("server: empty bearer token")
		}
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	m, err := newServerMetrics(o.Registry, s.modelInfo(), s.Ready)
	if err != nil {
		return nil, err
	}
	s.m = m
	if s.raw, err = newRawBuffers(o.MaxRawBytesInFlight, o.Registry); err != nil {
		return nil, err
	}
	s.engine = s.routes()
	if o.Warmup == nil {
		s.ready.Store(true)
	}
	return s, nil
}

// Handler is the router, for tests and for embedding in another server.
func (s *Server) Handler() http.Handler { return s.engine }

// Ready reports whether /readyz answers 200.
func (s *Server) Ready() bool { return s.ready.Load() && !s.draining.Load() }

// modelInfo is the models of Options, or the service's versions.
func (s *Server) modelInfo() []ModelInfo {
	if len(s.opts.Models) > 0 {
		return s.opts.Models
	}
	var out []ModelInfo
	versions := s.svc.Versions()
	for _, sp := range s.svc.Specs() {
		if v, ok := versions[sp.Name]; ok {
			info := ModelInfo{Name: sp.Name, Version: v, Kind: string(sp.Kind)}
			for _, o := range sp.Outputs {
				info.Scores = append(info.Scores, o.Name)
			}
			out = append(out, info)
		}
	}
	return out
}

func (s *Server) routes() *gin.Engine {
	// gin's mode is process-wide; the server never wants its debug output.
	if gin.Mode() != gin.ReleaseMode {
		gin.SetMode(gin.ReleaseMode)
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true // c.Done/c.Err follow the request's context
	e.Use(s.dropRefusedBody, s.observe, s.recover)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, newError(http.StatusNotFound, CodeNotFound, "no route "+c.Request.Method+" "+c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+c.Request.Method+" not allowed on "+c.Request.URL.Path))
	})

	health := e.Group("/")
	if s.opts.AuthHealth {
		health.Use(s.auth)
	}
	health.GET("/healthz", s.healthz)
	health.GET("/readyz", s.readyz)

	meta := e.Group("/")
	if s.opts.AuthMetrics {
		meta.Use(s.auth)
	}
	meta.GET("/metrics", gin.WrapH(s.metricsHandler()))
	e.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", OpenAPI) })
	// The gallery page is public, like /openapi.json; the API calls it
	// makes go through s.auth like any other client's.
	page := gin.WrapH(gallery.Handler(gallery.Options{MaxImages: s.opts.MaxImages, MaxBodyBytes: s.opts.MaxBodyBytes,
		MaxPromptBytes: s.opts.MaxPromptBytes, Auth: len(s.tokens) > 0}))
	e.GET("/", page)
	e.GET(gallery.AssetPrefix+":file", page)

	v1 := e.Group("/v1", s.auth, s.admit, s.deadline)
	v1.POST("/score", s.saturated, s.score)
	v1.POST("/rank", s.saturated, s.rank)
	v1.POST("/reward", s.saturated, s.reward)
	v1.POST("/embed", s.saturated, s.embed)
	v1.GET("/models", s.models)
	s.jobRoutes(v1) // POST /v1/jobs, GET /v1/jobs/:id (jobs.go)
	return e
}

// Run serves on ln until ctx ends, then drains: /readyz turns false and new
// requests get 503 for DrainDelay, the listener closes, and the requests in
// flight have Grace to finish. It returns nil after a clean drain, and an
// error when serving failed, the warm-up failed, or requests were still
// running when the grace period ended (their contexts are then cancelled).
// ln should come from Listen: on another kind of socket (Go's default
// Multipath TCP one) the drain cannot stop new connections before it
// closes the listener, and those still queued then are reset.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	hs := &http.Server{
		Handler:           closeWhileDraining(s.engine, &s.draining),
		ReadHeaderTimeout: s.opts.HeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.Timeout + 10*time.Second,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	dl := newDrainListener(ln) // drain.go: nothing accepted is reset at shutdown
	served := make(chan error, 1)
	go func() { served <- hs.Serve(dl) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "models", s.svc.Versions())

	warm := make(chan error, 1)
	if s.opts.Warmup != nil {
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			start := time.Now()
			err := s.opts.Warmup(wctx)
			if err == nil {
				s.ready.Store(true)
				s.log.Info("ready", "warmup_ms", time.Since(start).Milliseconds())
			}
			warm <- err
		}()
	}
	var runErr error
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case err := <-warm:
		if err != nil && ctx.Err() == nil {
			runErr = fmt.Errorf("warm-up: %w", err)
			break
		}
		<-ctx.Done()
	case <-ctx.Done():
	}

	return s.drain(hs, dl, served, cancelBase, runErr)
}

// drain stops the server: /readyz false and new requests 503 for
// DrainDelay; then new connections are stopped at the socket, the
// connections already queued are still answered and the listener closes
// (drain.go); then the requests in flight have Grace. The
// listener is closed before http.Server's Shutdown because, once that
// starts, net/http closes unanswered any request it reads.
func (s *Server) drain(hs *http.Server, dl *drainListener, served <-chan error, cancelBase func(), runErr error) error {
	s.draining.Store(true)
	s.log.Info("draining", "delay_ms", s.opts.DrainDelay.Milliseconds(), "grace_ms", s.opts.Grace.Milliseconds())
	if runErr == nil && s.opts.DrainDelay > 0 {
		t := time.NewTimer(s.opts.DrainDelay)
		select {
		case <-t.C:
		case err := <-served:
			t.Stop()
			return fmt.Errorf("serve: %w", err)
		}
	}
	if err := dl.beginDrain(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		s.log.Warn("new connections not stopped before the listener closes: any still queued then will be reset", "err", err.Error())
	}
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	case <-time.After(acceptDrainMax + time.Second): // Serve is stuck: Shutdown closes it
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.Grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// Connections first, then the requests' contexts: cancelled first, a
		// request could still answer on its open connection (the race
		// detector's slower runs of TestShutdownGraceExpires saw one).
		hs.Close()
		cancelBase()
		n := s.m.inflightNow.Load()
		s.log.Error("grace period over", "in_flight", n)
		return fmt.Errorf("grace period of %v ended with %d requests in flight: %w", s.opts.Grace, n, err)
	}
	if err := s.waitJobs(sctx); err != nil { // jobs.go
		s.log.Error("grace period over", "err", err.Error())
		return fmt.Errorf("grace period of %v: %w", s.opts.Grace, err)
	}
	s.log.Info("stopped")
	return runErr
}

// auth checks the bearer token when tokens are configured.
func (s *Server) auth(c *gin.Context) {
	if len(s.tokens) == 0 {
		return
	}
	h := c.GetHeader("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !equalFold(h[:len(prefix)], prefix) {
		c.Header("WWW-Authenticate", `Bearer realm="icthp"`)
		s.fail(c, newError(http.StatusUnauthorized, CodeUnauthorized, "this route needs an Authorization: Bearer token"))
		return
	}
	sum := sha256.Sum256([]byte(h[len(prefix):]))
	ok := 0
	for _, t := range s.tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	if ok != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="icthp", error="invalid_token"`)
		s.fail(c, newError(http.StatusForbidden, CodeForbidden, "the bearer token is not valid"))
	}
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// admit refuses new work while draining or warming up.
func (s *Server) admit(c *gin.Context) {
	if s.draining.Load() {
		c.Header("Connection", "close")
		e := newError(http.StatusServiceUnavailable, CodeDraining, "the server is shutting down")
		e.retryAfter = time.Second
		s.fail(c, e)
		return
	}
	if !s.ready.Load() {
		e := newError(http.StatusServiceUnavailable, CodeNotReady, "the models are still warming up")
		e.retryAfter = time.Second
		s.fail(c, e)
	}
}

// saturation is what a Scorer may also tell: that its admission bound is
// reached, so that any new request would be refused (scoring.Service).
type saturation interface{ Saturated() bool }

// saturated refuses a scoring request with 429 before its body is read when
// the service is already full: under overload a refusal then costs no body
// read, no base64 or JSON decoding, only this check. The service still
// decides exactly, by the request's image count, once the body is read.
//
// The body is still on the wire. One of up to lingerMaxBytes is read and
// dropped after the answer has gone out (dropRefusedBody), and the
// connection serves the client's next request; a larger one, or one of
// unknown length, closes the connection (whose linger then reads up to
// lingerMaxBytes anyway). A new TCP connection for every refusal cost the
// server more than the read: accept, four keep-alive socket options, a
// goroutine, the half-close and the linger (hostile overload probe, 200
// clients re-sending 31 kB bodies at once after each 429: RELIABILITY.md).
func (s *Server) saturated(c *gin.Context) {
	sat, ok := s.svc.(saturation)
	if !ok || !sat.Saturated() {
		return
	}
	n := c.Request.ContentLength
	switch {
	case n == 0:
	case n > 0 && n <= lingerMaxBytes && c.Request.ProtoAtLeast(1, 1) &&
		http.NewResponseController(c.Writer).EnableFullDuplex() == nil:
		// Full duplex: net/http would otherwise read the body before it
		// writes the answer, and the 429 would wait for the upload.
		c.Set(keyDropBody, true)
	default:
		c.Header("Connection", "close") // the body is not read
	}
	s.fail(c, &models.OverloadError{Reason: models.ReasonQueueFull, RetryAfter: time.Second})
}

// keyDropBody marks a request answered before its body was read whose body
// dropRefusedBody reads once the answer is sent.
const keyDropBody = "icthp.dropbody"

// dropRefusedBody runs the handlers, and then, for a request saturated
// answered without reading its body, sends the answer and reads the body
// to its end (within lingerTimeout), so that the connection can serve the
// next request. It comes before observe, so that the refusal's duration
// is the answer's alone. A body that ends early or comes too slowly
// aborts the connection (http.ErrAbortHandler: net/http closes it without
// logging), since what is left of it must not be read as a request.
func (s *Server) dropRefusedBody(c *gin.Context) {
	c.Next()
	if !c.GetBool(keyDropBody) {
		return
	}
	rc := http.NewResponseController(c.Writer)
	if rc.Flush() == nil && rc.SetReadDeadline(time.Now().Add(lingerTimeout)) == nil {
		// Discard reads into the reader's own 64 KiB (io.Copy and WriteTo
		// to io.Discard would read 8 KiB at a time: a read syscall each).
		br := s.bodyReaders.Get().(*bufio.Reader)
		br.Reset(c.Request.Body)
		_, err := br.Discard(int(c.Request.ContentLength))
		br.Reset(nil)
		s.bodyReaders.Put(br)
		if err == nil {
			return // net/http sets the next request's deadlines
		}
	}
	panic(http.ErrAbortHandler)
}

// deadline gives the request its deadline: Options.Timeout, or less when
// TimeoutHeader asks for less.
func (s *Server) deadline(c *gin.Context) {
	d := s.opts.Timeout
	if h := c.GetHeader(TimeoutHeader); h != "" {
		v, err := parseTimeout(h)
		if err != nil {
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, err.Error()))
			return
		}
		d = min(d, v)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), d)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	s.releaseRaw(c, ctx.Err() == nil)   // rawbuf.go
	s.releaseFiles(c, ctx.Err() == nil) // filebuf.go
}

func parseTimeout(h string) (time.Duration, error) {
	d, err := time.ParseDuration(h)
	if err != nil {
		secs, err2 := strconv.ParseFloat(h, 64)
		if err2 != nil || math.IsNaN(secs) || secs > 1e6 {
			return 0, fmt.Errorf("%s %q: want a duration such as 500ms or 2s, or a number of seconds", TimeoutHeader, h)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s %q: must be positive", TimeoutHeader, h)
	}
	return d, nil
}

func (s *Server) healthz(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, api.StatusResponse{Status: "ok"})
}

func (s *Server) readyz(c *gin.Context) {
	switch {
	case s.draining.Load():
		s.fail(c, newError(http.StatusServiceUnavailable, CodeDraining, "the server is shutting down"))
	case !s.ready.Load():
		s.fail(c, newError(http.StatusServiceUnavailable, CodeNotReady, "the models are still warming up"))
	default:
		s.writeJSON(c, http.StatusOK, api.StatusResponse{Status: "ready", Models: s.svc.Versions()})
	}
}

func (s *Server) models(c *gin.Context) {
	s.writeJSON(c, http.StatusOK, api.ModelsResponse{Models: s.modelInfo()})
}
