package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// modelFlags are the flags every command that loads models shares.
type modelFlags struct {
	// dirs are the model directories by registry name (--ict, --hp,
	// --imagereward, ...: one flag per modelset.Registry entry).
	dirs                map[string]*string
	provider            string
	threads             int
	spin                bool
	batch               int
	optLevel            string
	ortLib              string
	epLib               string
	tf32                bool
	maxBytes, maxPixels int64
	// encoderFor, when set (by serve), puts something in front of each
	// opened model (a dynamic batcher); name is the registry name.
	encoderFor func(name string, md *models.Model) (models.BatchEncoder, error)
	cache      cacheFlags
}

// cacheFlags configure the embedding cache (README: Cache).
type cacheFlags struct {
	redisURL     string
	bytes        int64
	ttl          time.Duration
	redisTimeout time.Duration
	float16      bool
	// breakerFailures and breakerCooldown tune the Redis circuit breaker
	// (a Cluster's masters each have one).
	breakerFailures int
	breakerCooldown time.Duration
	// badEnv is a malformed $ICTHP_CACHE_BREAKER_* value, reported by open.
	badEnv error
	// logger gets the cache's circuit-breaker lines; nil: text lines on
	// stderr. serve may set its JSON logger here.
	logger *slog.Logger
}

func (c *cacheFlags) register(fs *flag.FlagSet, a *app) {
	fs.StringVar(&c.redisURL, "redis", a.getenv("ICTHP_REDIS"),
		"Redis for the shared embedding cache: redis://[:PASSWORD@]HOST:PORT[/DB], rediss://..., ?addr=HOST:PORT... (Cluster), ?master_name=NAME (Sentinel) ($ICTHP_REDIS); empty: in-process cache only")
	fs.Int64Var(&c.bytes, "cache-bytes", 256<<20, "in-process embedding cache budget in bytes (0: none)")
	fs.DurationVar(&c.ttl, "cache-ttl", 7*24*time.Hour, "how long cached embeddings live, in both tiers (0: until evicted)")
	fs.DurationVar(&c.redisTimeout, "redis-timeout", cache.DefaultRedisTimeout, "longest wait for one Redis round trip before going on without it")
	fs.BoolVar(&c.float16, "cache-float16", false, "store embeddings in Redis as float16 (half the memory; ict moves by < 1e-3)")
	e := &envFlags{fs: fs, a: a}
	e.int(&c.breakerFailures, "cache-breaker-failures", "ICTHP_CACHE_BREAKER_FAILURES", cache.DefaultBreakerThreshold,
		"consecutive failed Redis round trips that open the circuit (Redis is then skipped)")
	e.dur(&c.breakerCooldown, "cache-breaker-cooldown", "ICTHP_CACHE_BREAKER_COOLDOWN", cache.DefaultBreakerCooldown,
		"how long an open circuit skips Redis before one request probes it")
	c.badEnv = e.bad
}

// open makes the cache the flags describe; it registers its metrics on reg
// when reg is set.
func (c *cacheFlags) open(a *app, reg prometheus.Registerer) (*cache.Cache, error) {
	if c.badEnv != nil {
		return nil, c.badEnv
	}
	if c.bytes < 0 || c.ttl < 0 || c.redisTimeout < 0 {
		return nil, usagef("--cache-bytes, --cache-ttl and --redis-timeout cannot be negative")
	}
	// 0 would mean the default to cache.Options: refused rather than
	// silently replaced.
	if c.breakerFailures < 1 {
		return nil, usagef("--cache-breaker-failures must be at least 1, not %d", c.breakerFailures)
	}
	if c.breakerCooldown <= 0 {
		return nil, usagef("--cache-breaker-cooldown must be positive, not %v", c.breakerCooldown)
	}
	log := c.logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(a.stderr, nil))
	}
	o := cache.Options{LocalBytes: c.bytes, TTL: c.ttl, RedisTimeout: c.redisTimeout, Float16: c.float16,
		BreakerThreshold: c.breakerFailures, BreakerCooldown: c.breakerCooldown, Metrics: reg, Logger: log}
	if c.redisURL != "" {
		rdb, err := cache.NewRedis(c.redisURL, c.redisTimeout)
		if err != nil {
			return nil, usagef("--redis: %v", err)
		}
		// go-redis logs every failed dial; the cache says once that Redis
		// is gone and once that it is back.
		redis.SetLogger(cache.RedisLogger{L: log})
		o.Redis = rdb
	}
	if o.Redis == nil && o.LocalBytes == 0 {
		return nil, nil
	}
	return cache.New(o)
}

func (m *modelFlags) register(fs *flag.FlagSet, a *app) {
	m.dirs = map[string]*string{}
	for _, e := range modelset.Registry() {
		env := modelset.EnvVar(e.Name)
		m.dirs[e.Name] = fs.String(e.Name, a.getenv(env), e.Help+" ($"+env+")")
	}
	fs.StringVar(&m.provider, "provider", envOr(a, "ICTHP_PROVIDER", "cpu"), "execution provider: cpu, cuda[:N] or tensorrt[:N] ($ICTHP_PROVIDER)")
	fs.IntVar(&m.threads, "threads", 0, "onnxruntime intra-op threads per session (0: one per core)")
	fs.BoolVar(&m.spin, "spin", true, "onnxruntime's threads spin-wait for work between operators; false leaves those cycles to decoding and HTTP")
	fs.IntVar(&m.batch, "batch-size", 16, "largest batch one model run takes")
	fs.StringVar(&m.optLevel, "opt-level", "all", "onnxruntime graph optimisation: all, extended, basic, disable")
	fs.StringVar(&m.ortLib, "ort-lib", "", "libonnxruntime.so to load (default $"+ortlib.EnvLib+", then the one icthp setup fetched)")
	fs.StringVar(&m.epLib, "ep-library", "", "plugin execution provider library for --provider cuda (libonnxruntime_providers_cuda.so; default $"+ortlib.EnvEPLib+", then the core's CUDA API, then one next to the core; README: GPUs)")
	fs.BoolVar(&m.tf32, "tf32", false, "let the CUDA provider run float32 matmuls with TF32 (its own default; about 1e-3 relative error; icthp turns it off)")
	fs.Int64Var(&m.maxBytes, "max-image-bytes", preprocess.DefaultMaxBytes, "largest encoded image accepted, in bytes")
	fs.Int64Var(&m.maxPixels, "max-image-pixels", preprocess.DefaultMaxPixels, "largest image accepted, in pixels (width × height)")
	m.cache.register(fs, a)
}

func envOr(a *app, k, def string) string {
	if v := a.getenv(k); v != "" {
		return v
	}
	return def
}

func (m *modelFlags) sessionOptions() (models.SessionOptions, error) {
	p, dev, err := models.ParseProvider(m.provider)
	if err != nil {
		return models.SessionOptions{}, usageError{err.Error()}
	}
	if m.batch <= 0 {
		return models.SessionOptions{}, usagef("--batch-size must be positive")
	}
	return models.SessionOptions{Provider: p, DeviceID: dev, IntraOpThreads: m.threads, NoSpin: !m.spin, OptLevel: m.optLevel,
		MaxBatch: m.batch, LibraryPath: m.ortLib, EPLibrary: m.epLib, TF32: m.tf32}, nil
}

// dir is the directory given for a registry name ("" when none).
func (m *modelFlags) dir(name string) string {
	if d := m.dirs[name]; d != nil {
		return *d
	}
	return ""
}

// setDir sets (or with "" clears) the directory of a registry name.
func (m *modelFlags) setDir(name, dir string) {
	if m.dirs[name] == nil {
		m.dirs[name] = new(string)
	}
	*m.dirs[name] = dir
}

// promptModels names the flags of the given models that need a prompt
// ("--ict or --imagereward"), "" for none.
func (m *modelFlags) promptModels() string {
	var names []string
	for _, e := range modelset.Registry() {
		if e.Prompt && m.dir(e.Name) != "" {
			names = append(names, "--"+e.Name)
		}
	}
	return strings.Join(names, " or ")
}

// anyDir says whether any model directory was given.
func (m *modelFlags) anyDir() bool {
	for _, d := range m.dirs {
		if *d != "" {
			return true
		}
	}
	return false
}

// loaded is what loadModels opened; close releases the sessions.
type loaded struct {
	svc   *scoring.Service
	set   *modelset.Set
	demo  bool
	cache *cache.Cache
}

func (l *loaded) close() {
	if l.set != nil {
		l.set.Close()
	}
	l.cache.Close()
}

// loadModels opens the models named by the flags. With none named it uses
// the built-in demo: tiny random ICT and HP models made on first use in the
// cache folder, announced on stderr as meaningless.
func (m *modelFlags) loadModels(a *app, opts scoring.Options) (*loaded, error) {
	so, err := m.sessionOptions()
	if err != nil {
		return nil, err
	}
	if _, err := ortlib.Init(m.ortLib); err != nil {
		return nil, err
	}
	l := &loaded{}
	dirs := map[string]string{}
	for name := range m.dirs {
		dirs[name] = m.dir(name)
	}
	if !m.anyDir() {
		root, err := ortlib.CacheDir()
		if err != nil {
			return nil, fmt.Errorf("demo models: %w", err)
		}
		if dirs, err = modelset.Demo(filepath.Join(root, "demo")); err != nil {
			return nil, fmt.Errorf("demo models: %w", err)
		}
		for name, d := range dirs {
			m.setDir(name, d)
		}
		l.demo = true
		fmt.Fprintln(a.stderr, "icthp: *** DEMO MODE: no model directory given (--ict, --hp, --imagereward, --pickscore, ...), so tiny RANDOM ICT and HP models are used ***")
		fmt.Fprintln(a.stderr, "icthp: *** their scores are MEANINGLESS; they only exercise the plumbing. See README: Getting real models ***")
	}
	opts.MaxImageBytes, opts.MaxImagePixels = m.maxBytes, m.maxPixels
	if opts.Cache == nil {
		if l.cache, err = m.cache.open(a, opts.Metrics); err != nil {
			return nil, err
		}
		opts.Cache = l.cache
	}
	l.set, err = modelset.Open(modelset.Options{Dirs: dirs, Scoring: opts,
		Open: scorer.OpenOptions{Session: so, Encoder: m.encoderFor, MaxImageBytes: m.maxBytes, MaxImagePixels: m.maxPixels}})
	if err != nil {
		l.close()
		return nil, err
	}
	l.svc = l.set.Service
	return l, nil
}
