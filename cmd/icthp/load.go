package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/icthp/icthp/cache"
	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scoring"
)

// modelFlags are the flags every command that loads models shares.
type modelFlags struct {
	ict, hp, imagereward string
	provider             string
	threads              int
	batch                int
	optLevel             string
	ortLib               string
	maxBytes, maxPixels  int64
	// encoderFor, when set (by serve), puts something in front of each
	// opened model (a dynamic batcher); name is ict, hp or imagereward
	// (its image encoder).
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

// encoder is what the scorer of an opened model calls: the model itself, or
// what encoderFor puts in front of it.
func (m *modelFlags) encoder(name string, md *models.Model) (models.BatchEncoder, error) {
	if m.encoderFor == nil {
		return md, nil
	}
	return m.encoderFor(name, md)
}

func (m *modelFlags) register(fs *flag.FlagSet, a *app) {
	fs.StringVar(&m.ict, "ict", a.getenv("ICTHP_ICT"), "ICT model directory (clip kind) ($ICTHP_ICT)")
	fs.StringVar(&m.hp, "hp", a.getenv("ICTHP_HP"), "HP model directory (hp kind) ($ICTHP_HP)")
	fs.StringVar(&m.imagereward, "imagereward", a.getenv("ICTHP_IMAGEREWARD"), "ImageReward model directory ($ICTHP_IMAGEREWARD)")
	fs.StringVar(&m.provider, "provider", envOr(a, "ICTHP_PROVIDER", "cpu"), "execution provider: cpu, cuda[:N] or tensorrt[:N] ($ICTHP_PROVIDER)")
	fs.IntVar(&m.threads, "threads", 0, "onnxruntime intra-op threads per session (0: one per core)")
	fs.IntVar(&m.batch, "batch-size", 16, "largest batch one model run takes")
	fs.StringVar(&m.optLevel, "opt-level", "all", "onnxruntime graph optimisation: all, extended, basic, disable")
	fs.StringVar(&m.ortLib, "ort-lib", "", "libonnxruntime.so to load (default $"+ortlib.EnvLib+", then the one icthp setup fetched)")
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
	return models.SessionOptions{Provider: p, DeviceID: dev, IntraOpThreads: m.threads, OptLevel: m.optLevel,
		MaxBatch: m.batch, LibraryPath: m.ortLib}, nil
}

// loaded is what loadModels opened; close releases the sessions.
type loaded struct {
	svc     *scoring.Service
	models  []*models.Model
	closers []io.Closer // scorers that own their sessions (ImageReward)
	demo    bool
	cache   *cache.Cache
}

func (l *loaded) close() {
	for _, m := range l.models {
		m.Close()
	}
	for _, c := range l.closers {
		c.Close()
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
	if m.ict == "" && m.hp == "" && m.imagereward == "" {
		if m.ict, m.hp, err = demoModels(); err != nil {
			return nil, fmt.Errorf("demo models: %w", err)
		}
		l.demo = true
		fmt.Fprintln(a.stderr, "icthp: *** DEMO MODE: no --ict/--hp/--imagereward given, so tiny RANDOM models are used ***")
		fmt.Fprintln(a.stderr, "icthp: *** their scores are MEANINGLESS; they only exercise the plumbing. See README: Getting real models ***")
	}
	var ictS *ict.Scorer
	var hpS *hp.Scorer
	var irS scoring.ImageRewardScorer
	if m.ict != "" {
		md, err := models.Open(m.ict, so)
		if err != nil {
			l.close()
			return nil, err
		}
		l.models = append(l.models, md)
		enc, err := m.encoder(scoring.ModelICT, md)
		if err != nil {
			l.close()
			return nil, err
		}
		if ictS, err = ict.New(m.ict, md.Manifest, enc); err != nil {
			l.close()
			return nil, err
		}
	}
	if m.hp != "" {
		md, err := models.Open(m.hp, so)
		if err != nil {
			l.close()
			return nil, err
		}
		l.models = append(l.models, md)
		enc, err := m.encoder(scoring.ModelHP, md)
		if err != nil {
			l.close()
			return nil, err
		}
		if hpS, err = hp.New(m.hp, md.Manifest, enc); err != nil {
			l.close()
			return nil, err
		}
	}
	if m.imagereward != "" {
		if irS, err = openImageReward(m.imagereward, so, m.maxBytes, m.maxPixels, m.encoder); err != nil {
			l.close()
			return nil, err
		}
		if c, ok := irS.(io.Closer); ok {
			l.closers = append(l.closers, c)
		}
	}
	opts.MaxImageBytes, opts.MaxImagePixels = m.maxBytes, m.maxPixels
	if opts.Cache == nil {
		if l.cache, err = m.cache.open(a, opts.Metrics); err != nil {
			l.close()
			return nil, err
		}
		opts.Cache = l.cache
	}
	setImageRewardCache(irS, opts.Cache)
	if l.svc, err = scoring.New(ictS, hpS, irS, opts); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// demoModels makes (once) and returns the demo ICT and HP directories.
func demoModels() (string, string, error) {
	cache, err := ortlib.CacheDir()
	if err != nil {
		return "", "", err
	}
	root := filepath.Join(cache, "demo")
	dirs := map[models.Kind]string{models.KindCLIP: filepath.Join(root, "ict"), models.KindHP: filepath.Join(root, "hp")}
	for kind, dir := range dirs {
		if _, err := models.ReadManifest(dir); err == nil {
			continue
		}
		// Build in a temporary folder and rename, so that two processes
		// starting at once never see half a model.
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", "", err
		}
		tmp, err := os.MkdirTemp(root, "build-")
		if err != nil {
			return "", "", err
		}
		o := convert.RandomOptions{Preset: clip.PresetTiny, Kind: kind, Seed: 2025, Out: tmp, Build: clip.BuildOptions{Fused: true}}
		if kind == models.KindCLIP {
			o.Vocab, o.Synthetic = text.SyntheticVocab(syntheticMerges), true
		}
		if _, err := convert.Random(o); err != nil {
			os.RemoveAll(tmp)
			return "", "", err
		}
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			if _, err2 := models.ReadManifest(dir); err2 != nil {
				return "", "", err
			}
		}
	}
	return dirs[models.KindCLIP], dirs[models.KindHP], nil
}
