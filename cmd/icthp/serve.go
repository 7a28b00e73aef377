package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

func init() {
	register(command{
		name: "serve",
		args: "[--ict DIR] [--hp DIR] [--imagereward DIR] [--pickscore|--clipscore|--clipscore100|--hpsv2|--aesthetic DIR] [--addr :8080] [flags]",
		summary: "serve the HTTP API (SPEC §4) with dynamic batching, limits, auth and metrics; " +
			"with no model given, tiny random demo models",
		run: runServe,
	})
}

// serveFlags are serve's own flags; every one has an environment variable.
type serveFlags struct {
	addr, debugAddr                         string
	batchWait                               time.Duration
	queueSize, batchWorkers, decoders       int
	admitImages                             int   // images admitted server-wide; 0: 2 × queueSize
	pixelBudget                             int64 // decoded pixels held at once; 0: 2 × --max-image-pixels
	timeout, drainDelay, grace              time.Duration
	readTimeout, headerTimeout, idleTimeout time.Duration
	maxBody, maxRawInFlight                 int64
	maxImages, maxPrompt                    int
	tokensFile                              string
	authHealth, authMetrics                 bool
	reward                                  string
	logLevel                                string
	jobTTL                                  time.Duration
	maxJobs                                 int
}

// envFlags registers flags whose defaults come from environment variables,
// and remembers a bad value to report as a usage error.
type envFlags struct {
	fs  *flag.FlagSet
	a   *app
	bad error
}

func (e *envFlags) env(name string) (string, bool) {
	v := e.a.getenv(name)
	return v, v != ""
}

func (e *envFlags) badEnv(name, v string, err error) {
	if e.bad == nil {
		e.bad = usagef("$%s=%q: %v", name, v, err)
	}
}

// envVar registers a flag of type T: define is the FlagSet's method for T,
// parse reads $env, which when set is the default instead of def.
func envVar[T any](e *envFlags, define func(*T, string, T, string), parse func(string) (T, error), p *T, flagName, env string, def T, usage string) {
	if v, ok := e.env(env); ok {
		x, err := parse(v)
		if err != nil {
			e.badEnv(env, v, err)
		}
		def = x
	}
	define(p, flagName, def, usage+" ($"+env+")")
}

func (e *envFlags) str(p *string, flagName, env, def, usage string) {
	envVar(e, e.fs.StringVar, func(v string) (string, error) { return v, nil }, p, flagName, env, def, usage)
}

func (e *envFlags) dur(p *time.Duration, flagName, env string, def time.Duration, usage string) {
	envVar(e, e.fs.DurationVar, time.ParseDuration, p, flagName, env, def, usage)
}

func (e *envFlags) int(p *int, flagName, env string, def int, usage string) {
	envVar(e, e.fs.IntVar, strconv.Atoi, p, flagName, env, def, usage)
}

func (e *envFlags) int64(p *int64, flagName, env string, def int64, usage string) {
	parse := func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) }
	envVar(e, e.fs.Int64Var, parse, p, flagName, env, def, usage)
}

func (e *envFlags) bool(p *bool, flagName, env string, def bool, usage string) {
	envVar(e, e.fs.BoolVar, strconv.ParseBool, p, flagName, env, def, usage)
}

func (f *serveFlags) register(fs *flag.FlagSet, a *app) *envFlags {
	e := &envFlags{fs: fs, a: a}
	e.str(&f.addr, "addr", "ICTHP_ADDR", ":8080", "address to listen on")
	e.str(&f.debugAddr, "debug-addr", "ICTHP_DEBUG_ADDR", "", "a second, private address serving net/http/pprof (/debug/pprof/: heap, goroutine, profile, ...); off when empty")
	e.dur(&f.batchWait, "batch-wait", "ICTHP_BATCH_WAIT", models.DefaultBatchWait, "longest wait for a batch to fill (--batch-size is its size)")
	e.int(&f.queueSize, "queue-size", "ICTHP_QUEUE_SIZE", models.DefaultQueueItems, "items that may wait per model graph, at least --admit-images; beyond it, 429")
	e.int(&f.admitImages, "admit-images", "ICTHP_ADMIT_IMAGES", 0,
		"images admitted at once over all requests (waiting for decode, decoding, waiting for or in a model); a request past it gets 429 before any image is read (0: twice --queue-size)")
	e.int64(&f.pixelBudget, "pixel-budget", "ICTHP_PIXEL_BUDGET", 0,
		"decoded pixels held at once over all requests and models; an image waits for its share (width × height from its header) before it is decoded (0: twice --max-image-pixels)")
	e.int(&f.decoders, "decoders", "ICTHP_DECODERS", 0, "images decoded and preprocessed at once, over all requests (0: one per core)")
	e.int(&f.batchWorkers, "batch-workers", "ICTHP_BATCH_WORKERS", 1, "model runs at once per graph")
	e.dur(&f.timeout, "timeout", "ICTHP_TIMEOUT", server.DefaultTimeout, "a request's deadline (the "+server.TimeoutHeader+" header may shorten it)")
	e.dur(&f.drainDelay, "drain-delay", "ICTHP_DRAIN_DELAY", 2*time.Second, "on SIGTERM, how long /readyz is false and new requests get 503 before the listener closes")
	e.dur(&f.grace, "grace", "ICTHP_GRACE", server.DefaultGrace, "on SIGTERM, how long requests in flight have to finish")
	e.dur(&f.readTimeout, "read-timeout", "ICTHP_READ_TIMEOUT", server.DefaultReadTimeout, "longest time to read a request")
	e.dur(&f.headerTimeout, "header-timeout", "ICTHP_HEADER_TIMEOUT", server.DefaultHeaderTimeout, "longest time to read a request's headers")
	e.dur(&f.idleTimeout, "idle-timeout", "ICTHP_IDLE_TIMEOUT", server.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	e.int64(&f.maxBody, "max-body-bytes", "ICTHP_MAX_BODY_BYTES", server.DefaultMaxBodyBytes, "largest request body")
	e.int64(&f.maxRawInFlight, "max-raw-bytes-in-flight", "ICTHP_MAX_RAW_BYTES_IN_FLIGHT", server.DefaultMaxRawBytesInFlight,
		"raw-tensor pixel bytes held by all requests together, counted as they arrive; beyond it, 429")
	e.int(&f.maxImages, "max-images", "ICTHP_MAX_IMAGES", server.DefaultMaxImages, "most images (reward items, texts) per request")
	e.int(&f.maxPrompt, "max-prompt-bytes", "ICTHP_MAX_PROMPT_BYTES", server.DefaultMaxPromptBytes, "longest prompt or text, in bytes")
	e.str(&f.tokensFile, "auth-tokens-file", "ICTHP_AUTH_TOKENS_FILE", "", "file of bearer tokens, one per line (# comments); with $ICTHP_AUTH_TOKENS (comma-separated), turns auth on")
	e.bool(&f.authHealth, "auth-health", "ICTHP_AUTH_HEALTH", false, "require a token on /healthz and /readyz too")
	e.bool(&f.authMetrics, "auth-metrics", "ICTHP_AUTH_METRICS", false, "require a token on /metrics too")
	e.str(&f.reward, "reward", "ICTHP_REWARD", "product", "default /v1/reward combination: product, ict, hp, imagereward, weighted:NAME=W,...")
	e.str(&f.logLevel, "log-level", "ICTHP_LOG_LEVEL", "info", "debug, info, warn or error")
	e.dur(&f.jobTTL, "job-ttl", "ICTHP_JOB_TTL", server.DefaultJobTTL, "how long an async job's result is kept (in Redis with --redis)")
	e.int(&f.maxJobs, "max-jobs", "ICTHP_MAX_JOBS", server.DefaultMaxJobs, "async jobs running at once; beyond it, 429")
	return e
}

// tokens reads the bearer tokens from the file and $ICTHP_AUTH_TOKENS.
func (f *serveFlags) tokens(a *app) ([]string, error) {
	var out []string
	for _, t := range strings.Split(a.getenv("ICTHP_AUTH_TOKENS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	if f.tokensFile != "" {
		b, err := os.ReadFile(f.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("auth tokens: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			t := strings.TrimSpace(sc.Text())
			if t != "" && !strings.HasPrefix(t, "#") {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("auth tokens: %s holds no token", f.tokensFile)
		}
	}
	return out, nil
}

// servePlan is what validate derives from the serve flags.
type servePlan struct {
	level slog.Level
	comb  scoring.Combination
	admit int // images admitted server-wide
}

// validate checks the serve flags that need more than parsing (usage errors)
// and derives the log level, the reward combination and the admission limit.
func (sf *serveFlags) validate() (servePlan, error) {
	var p servePlan
	if err := p.level.UnmarshalText([]byte(sf.logLevel)); err != nil {
		return p, usagef("--log-level %q: want debug, info, warn or error", sf.logLevel)
	}
	comb, err := scoring.ParseCombination(sf.reward)
	if err != nil {
		return p, usagef("--reward: %v", err)
	}
	if err := knownScores(comb); err != nil {
		return p, err
	}
	p.comb = comb
	if sf.decoders < 0 {
		return p, usagef("--decoders cannot be negative")
	}
	for name, v := range map[string]int{"--queue-size": sf.queueSize, "--batch-workers": sf.batchWorkers, "--max-images": sf.maxImages, "--max-prompt-bytes": sf.maxPrompt} {
		if v <= 0 {
			return p, usagef("%s must be positive", name)
		}
	}
	if sf.maxBody <= 0 || sf.maxRawInFlight <= 0 {
		return p, usagef("--max-body-bytes and --max-raw-bytes-in-flight must be positive")
	}
	if sf.admitImages < 0 || sf.pixelBudget < 0 {
		return p, usagef("--admit-images and --pixel-budget cannot be negative")
	}
	p.admit = sf.admitImages
	if p.admit == 0 {
		p.admit = 2 * sf.queueSize
	}
	return p, nil
}

func runServe(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "serve")
	var mf modelFlags
	mf.register(fs, a)
	var sf serveFlags
	envs := sf.register(fs, a)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if envs.bad != nil {
		return envs.bad
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	v, err := sf.validate()
	if err != nil {
		return err
	}
	level, comb, admit := v.level, v.comb, v.admit
	tokens, err := sf.tokens(a)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	mf.cache.logger = log // the cache's circuit-breaker lines go to the same JSON log

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var batchers []*models.Batcher
	defer func() {
		for _, b := range batchers {
			b.Close()
		}
	}()
	mf.encoderFor = func(name string, md *models.Model) (models.BatchEncoder, error) {
		// A graph's queue holds at least what admission lets in: an image
		// admitted, decoded and resized is never then refused for a full
		// queue, which threw that work away under overload (RELIABILITY.md,
		// overload on pinned cores).
		b, err := models.NewBatcher(md, models.BatcherOptions{Name: name, MaxBatch: mf.batch, MaxWait: sf.batchWait,
			QueueSize: max(sf.queueSize, admit), Workers: sf.batchWorkers, Metrics: reg})
		if err != nil {
			return nil, err
		}
		batchers = append(batchers, b)
		return b, nil
	}
	l, err := mf.loadModels(a, scoring.Options{Reward: comb, Metrics: reg, MaxQueue: admit, PixelBudget: sf.pixelBudget, Workers: sf.decoders})
	if err != nil {
		return err
	}
	defer l.close()

	so, _ := mf.sessionOptions() // checked by loadModels
	// Async jobs: in Redis with --redis, else in memory (serve_jobs.go).
	jobs, closeJobs, err := jobStore(&mf.cache)
	if err != nil {
		return err
	}
	defer closeJobs()
	srv, err := server.New(l.svc, server.Options{
		Registry: reg, Logger: log, Tokens: tokens, AuthHealth: sf.authHealth, AuthMetrics: sf.authMetrics,
		Timeout: sf.timeout, MaxBodyBytes: sf.maxBody, MaxImages: sf.maxImages, MaxPromptBytes: sf.maxPrompt,
		DrainDelay: sf.drainDelay, Grace: sf.grace, MaxRawBytesInFlight: sf.maxRawInFlight,
		HeaderTimeout: sf.headerTimeout, ReadTimeout: sf.readTimeout, IdleTimeout: sf.idleTimeout,
		Models: modelInfo(l.svc, so), Warmup: func(ctx context.Context) error { return warmup(ctx, l.svc, min(mf.batch, sf.queueSize, admit)) },
		Jobs: jobs, JobTTL: sf.jobTTL, MaxJobs: sf.maxJobs,
	})
	if err != nil {
		return err
	}
	if len(tokens) == 0 {
		log.Warn("authentication is off: no --auth-tokens-file or $ICTHP_AUTH_TOKENS")
	}
	return listenAndRun(ctx, srv, sf.addr, sf.debugAddr, log)
}

// modelInfo describes the loaded models for /v1/models and the metrics.
func modelInfo(svc *scoring.Service, so models.SessionOptions) []server.ModelInfo {
	device := string(so.Provider)
	if so.Provider != models.CPU && so.Provider != "" {
		device = "cuda:" + strconv.Itoa(so.DeviceID)
	}
	var out []server.ModelInfo
	for _, m := range svc.Models() {
		man := m.Manifest()
		info := server.ModelInfo{Name: m.Name, Version: man.Version, Kind: string(man.Kind), Provider: string(so.Provider),
			Device: device, EmbeddingDim: man.EmbeddingDim, Precision: man.Precision, MaxBatch: so.MaxBatch,
			Source: publicSource(man.Source)}
		for _, o := range m.Outputs {
			info.Scores = append(info.Scores, o.Name)
		}
		if f := man.Formula; f != nil {
			info.Formula = &api.ModelFormula{Name: f.Name, Description: f.Describe(), Reference: f.Source}
		}
		out = append(out, info)
	}
	return out
}

// publicSource is a manifest's source with every string that names a file
// reduced to the file's base name: /v1/models tells what a model was made
// from, not where the server keeps it.
func publicSource(src map[string]any) map[string]any {
	if src == nil {
		return nil
	}
	out := make(map[string]any, len(src))
	for k, v := range src {
		switch v := v.(type) {
		case string:
			if strings.ContainsRune(v, '/') || strings.ContainsRune(v, os.PathSeparator) {
				v = filepath.Base(v)
			}
			out[k] = v
		case map[string]any:
			out[k] = publicSource(v)
		default:
			out[k] = v
		}
	}
	return out
}

// warmup scores one small generated image with every loaded model, then a
// full batch (batchSize distinct images, as the batcher merges equal ones;
// no more than the queue and the admission limit take), so that onnxruntime
// has made its allocations before /readyz says ready: its CPU arena grows to
// the largest batch it has run and keeps that size, and without the full
// batch RSS stepped up at the first burst of traffic (about 8 MB with the
// demo models; RELIABILITY.md's soak).
func warmup(ctx context.Context, svc *scoring.Service, batchSize int) error {
	prompt := "warm-up"
	for off, n := range []int{1, batchSize} { // off: the batch's images differ from the first (a cache hit)
		imgs := make([]scoring.Image, n)
		for i := range imgs {
			b, err := warmupImage(off + i)
			if err != nil {
				return err
			}
			imgs[i] = scoring.Image{Data: b}
		}
		res, err := svc.Score(ctx, scoring.ScoreRequest{Prompt: &prompt, Images: imgs})
		if err != nil {
			return err
		}
		for _, sc := range res.Scores {
			if e := sc.Err; e != nil {
				return errors.New("warm-up image: " + e.Error())
			}
		}
	}
	return nil
}

// warmupImage is a small PNG, a different one for each i.
func warmupImage(i int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(5 * y), uint8(128 + 7*i), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// knownScores refuses a combination that reads a score no model kind of
// the registry gives.
func knownScores(c scoring.Combination) error {
	known := map[string]bool{}
	var all []string
	for _, e := range modelset.Registry() {
		for _, o := range e.Outputs {
			known[o.Name] = true
			all = append(all, o.Name)
		}
	}
	for _, n := range c.Names() {
		if !known[n] {
			return usagef("--reward: unknown score %q (want product, weighted:NAME=W,... or one of %s)", n, strings.Join(all, ", "))
		}
	}
	return nil
}
