// Package cache keeps what the encoders produce (text embeddings, image
// embeddings, HP results) in two tiers: an in-process cache with a byte
// budget (otter) in front of an optional Redis (standalone, Sentinel or
// Cluster, through go-redis's UniversalClient). Entries are keyed by the
// model's version string, the kind and a SHA-256 of the content.
//
// One request's keys are looked up together (one pipelined Redis round trip)
// and its misses stored together (one more); concurrent misses of one key
// are computed once. Redis is never a point of failure: every round trip has
// a short timeout, and a circuit breaker skips Redis while it is down, with
// a half-open probe to come back to it.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults of Options' zero fields.
const (
	DefaultBreakerThreshold = 3
	DefaultBreakerCooldown  = 5 * time.Second
)

// Options configure a Cache.
type Options struct {
	// LocalBytes is the in-process tier's budget (keys, vectors and
	// per-entry overhead); 0 disables that tier.
	LocalBytes int64
	// TTL is how long an entry lives in either tier; 0 means until evicted.
	TTL time.Duration
	// Redis is the shared tier; nil means in-process only.
	Redis redis.UniversalClient
	// RedisTimeout bounds each Redis round trip; 0 means
	// DefaultRedisTimeout.
	RedisTimeout time.Duration
	// Float16 stores vectors in Redis as IEEE half floats: half the memory,
	// at most 2⁻¹¹ relative error per element (see README, "Cache").
	// Scalars (the HP logit) are always float64.
	Float16 bool
	// BreakerThreshold is how many consecutive Redis failures open the
	// circuit; BreakerCooldown how long it stays open before a probe.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Metrics, when set, receives the cache's Prometheus collectors.
	Metrics prometheus.Registerer
	// Logger gets one line per circuit transition (open, closed again);
	// nil means slog.Default().
	Logger *slog.Logger
}

// Cache is safe for concurrent use. A nil *Cache is valid and caches
// nothing: Resolve then computes every key.
type Cache struct {
	local   *otter.Cache[string, Value]
	rdb     redis.UniversalClient
	timeout time.Duration
	ttl     time.Duration
	f16     bool
	br      *breaker
	log     *slog.Logger
	m       *metrics
	stats   counters

	mu      sync.Mutex
	flights map[string]*flight
}

// flight is one key being looked up or computed by one request; others that
// miss the same key wait for it.
type flight struct {
	done   chan struct{}
	val    Value
	err    error // the key's own, deterministic failure (an undecodable image)
	failed bool  // the owner gave up (its context ended): waiters compute it
}

// ComputeFunc computes the values of keys[missing[k]] for each k. errs, when
// not nil, holds per-key failures, which are returned but never stored; err
// fails the whole call. A per-key ErrNotComputed says the call chose not to
// compute that key (the request turned out not to need it): other requests
// waiting for the key then compute it themselves.
type ComputeFunc func(ctx context.Context, missing []int) (vals []Value, errs []error, err error)

// ErrNotComputed is the per-key error a ComputeFunc gives a key it skipped.
var ErrNotComputed = errors.New("cache: not computed")

// New makes a Cache. It does not contact Redis: the first request does, and
// its failure only opens the circuit.
func New(o Options) (*Cache, error) {
	if o.LocalBytes < 0 || o.TTL < 0 || o.RedisTimeout < 0 || o.BreakerThreshold < 0 || o.BreakerCooldown < 0 {
		return nil, errors.New("cache: negative size, TTL, timeout or breaker setting")
	}
	c := &Cache{rdb: o.Redis, timeout: o.RedisTimeout, ttl: o.TTL, f16: o.Float16, log: o.Logger,
		flights: map[string]*flight{}}
	if c.timeout == 0 {
		c.timeout = DefaultRedisTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if o.LocalBytes > 0 {
		lo := &otter.Options[string, Value]{
			MaximumWeight: uint64(o.LocalBytes),
			Weigher:       func(k string, v Value) uint32 { return uint32(entryWeight(k, v)) },
		}
		if o.TTL > 0 {
			lo.ExpiryCalculator = otter.ExpiryWriting[string, Value](o.TTL)
		}
		var err error
		if c.local, err = otter.New(lo); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	th, cd := o.BreakerThreshold, o.BreakerCooldown
	if th == 0 {
		th = DefaultBreakerThreshold
	}
	if cd == 0 {
		cd = DefaultBreakerCooldown
	}
	c.m = newMetrics(c)
	c.br = &breaker{threshold: th, cooldown: cd, now: time.Now, onChange: c.circuitChanged}
	if o.Metrics != nil {
		if err := c.m.register(o.Metrics); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// entryOverhead approximates what the in-process tier spends per entry
// beyond the key and the numbers: slice and string headers, otter's node
// and its hash-table slot.
const entryOverhead = 128

func entryWeight(k string, v Value) int {
	return entryOverhead + len(k) + 4*len(v.Vec) + 8*len(v.Scalars)
}

// Close stops the in-process tier's goroutines and closes the Redis client.
func (c *Cache) Close() error {
	if c == nil {
		return nil
	}
	if c.local != nil {
		c.local.StopAllGoroutines()
	}
	if c.rdb != nil {
		return c.rdb.Close()
	}
	return nil
}

// Circuit is the Redis circuit breaker's state (Closed when there is no
// Redis).
func (c *Cache) Circuit() State {
	if c == nil {
		return Closed
	}
	return c.br.State()
}

func (c *Cache) circuitChanged(from, to State) {
	c.m.circuit.Set(float64(to))
	c.m.transitions.WithLabelValues(to.String()).Inc()
	// One line when Redis is lost and one when it is back; the probes in
	// between are counted, not logged.
	switch {
	case from == Closed && to == Open:
		c.log.Warn("cache: Redis unavailable, circuit open: serving without it", "retry_after", c.br.cooldown)
	case to == Closed:
		c.log.Info("cache: Redis is back, circuit closed")
	}
}

// Resolve returns the value (or the per-key error) of every key: from the
// in-process tier, else from Redis in one pipelined round trip, else from
// another request already computing it, else from compute, called once with
// all the keys left; what compute returns is stored in both tiers (one more
// round trip). Duplicate keys are computed once. Values are the caller's to
// keep; do not modify them.
func (c *Cache) Resolve(ctx context.Context, keys []Key, compute ComputeFunc) ([]Value, []error, error) {
	n := len(keys)
	vals, errs := make([]Value, n), make([]error, n)
	if n == 0 {
		return vals, errs, nil
	}
	if c == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		if err := fill(ctx, compute, all, vals, errs); err != nil {
			return nil, nil, err
		}
		return vals, errs, nil
	}
	strs := make([]string, n)
	first := make([]int, n)
	seen := make(map[string]int, n)
	var uniq []int
	for i, k := range keys {
		strs[i] = k.String()
		if j, ok := seen[strs[i]]; ok {
			first[i] = j
			continue
		}
		seen[strs[i]], first[i] = i, i
		uniq = append(uniq, i)
	}

	// 1. The in-process tier.
	var rest []int
	for _, i := range uniq {
		if v, ok := c.localGet(strs[i]); ok {
			vals[i] = v
			c.hit(tierLocal, keys[i].Kind)
			continue
		}
		c.miss(tierLocal, keys[i].Kind)
		rest = append(rest, i)
	}

	// 2. Claim the rest, or wait for whoever already has.
	flights := make(map[int]*flight, len(rest))
	var owned, waits []int
	c.mu.Lock()
	for _, i := range rest {
		if f, ok := c.flights[strs[i]]; ok {
			flights[i] = f
			waits = append(waits, i)
			c.stats.waiting.Add(1)
			continue
		}
		f := &flight{done: make(chan struct{})}
		c.flights[strs[i]], flights[i] = f, f
		owned = append(owned, i)
	}
	c.mu.Unlock()
	finished := make(map[int]bool, len(owned))
	defer func() {
		// Whatever this call claimed and did not finish (it failed, or its
		// context ended) is released for the waiters to compute.
		for _, i := range owned {
			if !finished[i] {
				c.finish(strs[i], flights[i], Value{}, nil, true)
			}
		}
	}()

	// A request that finished between our lookup and our claim has left
	// its value in the in-process tier (it stores before it lets go).
	if c.local != nil {
		kept := owned[:0:0]
		for _, i := range owned {
			if v, ok := c.localGet(strs[i]); ok {
				vals[i] = v
				c.finish(strs[i], flights[i], v, nil, false)
				finished[i] = true
				continue
			}
			kept = append(kept, i)
		}
		owned = kept
	}

	// 3. Redis, one round trip for all the owned keys.
	need := owned
	if c.rdb != nil && len(owned) > 0 {
		ks := make([]string, len(owned))
		for k, i := range owned {
			ks[k] = strs[i]
		}
		got := c.redisGet(ctx, ks)
		need = nil
		for k, i := range owned {
			if got == nil || got[k] == nil {
				if got != nil {
					c.miss(tierRedis, keys[i].Kind)
				}
				need = append(need, i)
				continue
			}
			v, err := decode(strs[i], got[k])
			if err != nil {
				// Counted, then recomputed and overwritten like a miss.
				c.m.corrupt.WithLabelValues(keys[i].Kind.String()).Inc()
				c.stats.corrupt.Add(1)
				c.miss(tierRedis, keys[i].Kind)
				need = append(need, i)
				continue
			}
			c.hit(tierRedis, keys[i].Kind)
			vals[i] = v
			c.localSet(strs[i], v)
			c.finish(strs[i], flights[i], v, nil, false)
			finished[i] = true
		}
	}

	// 4. Compute what is left, in one call, and store it.
	if len(need) > 0 {
		if err := c.computeAndStore(ctx, compute, need, keys, strs, vals, errs, flights, finished); err != nil {
			return nil, nil, err
		}
	}

	// 5. Collect what other requests were computing.
	var again []int
	for _, i := range waits {
		f := flights[i]
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if f.failed {
			again = append(again, i)
			continue
		}
		c.m.shared.WithLabelValues(keys[i].Kind.String()).Inc()
		c.stats.shared.Add(1)
		if f.err != nil {
			errs[i] = f.err
		} else {
			vals[i] = f.val.clone()
		}
	}
	if len(again) > 0 {
		if err := c.computeAndStore(ctx, compute, again, keys, strs, vals, errs, nil, nil); err != nil {
			return nil, nil, err
		}
	}

	for i, j := range first {
		if j != i {
			vals[i], errs[i] = vals[j], errs[j]
		}
	}
	return vals, errs, nil
}

// fill calls compute for idx and puts its results in place.
func fill(ctx context.Context, compute ComputeFunc, idx []int, vals []Value, errs []error) error {
	v, e, err := compute(ctx, idx)
	if err != nil {
		return err
	}
	if len(v) != len(idx) || (e != nil && len(e) != len(idx)) {
		return fmt.Errorf("cache: compute returned %d values and %d errors for %d keys", len(v), len(e), len(idx))
	}
	for k, i := range idx {
		if e != nil && e[k] != nil {
			errs[i] = e[k]
			continue
		}
		vals[i] = v[k]
	}
	return nil
}

func (c *Cache) computeAndStore(ctx context.Context, compute ComputeFunc, idx []int, keys []Key, strs []string,
	vals []Value, errs []error, flights map[int]*flight, finished map[int]bool) error {
	if err := fill(ctx, compute, idx, vals, errs); err != nil {
		return err
	}
	puts := make([]kv, 0, len(idx))
	for _, i := range idx {
		if errors.Is(errs[i], ErrNotComputed) {
			if f := flights[i]; f != nil {
				c.finish(strs[i], f, Value{}, nil, true)
				finished[i] = true
			}
			continue
		}
		c.m.computed.WithLabelValues(keys[i].Kind.String()).Inc()
		c.stats.computed.Add(1)
		if errs[i] == nil {
			c.localSet(strs[i], vals[i])
			puts = append(puts, kv{strs[i], vals[i]})
		}
		if f := flights[i]; f != nil {
			c.finish(strs[i], f, vals[i], errs[i], false)
			finished[i] = true
		}
	}
	// The waiters have their values already; Redis is written after.
	c.redisSet(ctx, puts)
	return nil
}

// finish publishes a flight's outcome and forgets it.
func (c *Cache) finish(key string, f *flight, v Value, err error, failed bool) {
	c.mu.Lock()
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	f.val, f.err, f.failed = v, err, failed
	close(f.done)
}

func (c *Cache) localGet(key string) (Value, bool) {
	if c.local == nil {
		return Value{}, false
	}
	v, ok := c.local.GetIfPresent(key)
	if !ok {
		return Value{}, false
	}
	return v.clone(), true
}

func (c *Cache) localSet(key string, v Value) {
	if c.local != nil {
		c.local.Set(key, v.clone())
	}
}

type kv struct {
	key string
	val Value
}

// redisGet fetches keys in one pipeline. It returns nil when Redis is not
// usable now (circuit open, error, timeout); otherwise one entry per key,
// nil for a miss.
func (c *Cache) redisGet(ctx context.Context, keys []string) [][]byte {
	ok, probe := c.br.allow()
	if !ok {
		c.m.skipped.WithLabelValues(opGet).Inc()
		c.stats.redisSkipped.Add(1)
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmds := make([]*redis.StringCmd, len(keys))
	start := time.Now()
	_, _ = c.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(rctx, k)
		}
		return nil
	})
	c.m.redisSeconds.WithLabelValues(opGet).Observe(time.Since(start).Seconds())
	c.stats.roundTrips.Add(1)
	out := make([][]byte, len(keys))
	var failed error
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		switch {
		case err == nil:
			out[i] = b
		case errors.Is(err, redis.Nil):
		default:
			failed = err
		}
	}
	if failed != nil {
		c.redisFailed(ctx, opGet, probe)
		return nil
	}
	c.br.done(probe, true, true)
	return out
}

// redisSet stores entries in one pipeline, detached from the caller's
// cancellation (the work is done; keep it) but not from the timeout.
func (c *Cache) redisSet(ctx context.Context, entries []kv) {
	if c.rdb == nil || len(entries) == 0 {
		return
	}
	ok, probe := c.br.allow()
	if !ok {
		c.m.skipped.WithLabelValues(opSet).Inc()
		c.stats.redisSkipped.Add(1)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	start := time.Now()
	var n int64
	_, err := c.rdb.Pipelined(rctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			b, err := encode(e.key, e.val, c.f16)
			if err != nil {
				return err
			}
			n += int64(len(b))
			p.Set(rctx, e.key, b, c.ttl)
		}
		return nil
	})
	c.m.redisSeconds.WithLabelValues(opSet).Observe(time.Since(start).Seconds())
	c.stats.roundTrips.Add(1)
	if err != nil {
		c.redisFailed(context.Background(), opSet, probe)
		return
	}
	c.m.redisBytes.Add(float64(n))
	c.br.done(probe, true, true)
}

// redisFailed counts a failed round trip; it is held against Redis unless
// the caller's own context ended first (then it says nothing about Redis).
func (c *Cache) redisFailed(caller context.Context, op string, probe bool) {
	c.m.redisErrors.WithLabelValues(op).Inc()
	c.stats.redisErrors.Add(1)
	c.br.done(probe, false, caller.Err() == nil)
}

const (
	tierLocal = "local"
	tierRedis = "redis"
	opGet     = "get"
	opSet     = "set"
)

func (c *Cache) hit(tier string, k Kind) {
	c.m.lookups.WithLabelValues(tier, k.String(), "hit").Inc()
	if tier == tierLocal {
		c.stats.localHits.Add(1)
	} else {
		c.stats.redisHits.Add(1)
	}
}

func (c *Cache) miss(tier string, k Kind) {
	c.m.lookups.WithLabelValues(tier, k.String(), "miss").Inc()
	if tier == tierLocal {
		c.stats.localMisses.Add(1)
	} else {
		c.stats.redisMisses.Add(1)
	}
}

type counters struct {
	localHits, localMisses, redisHits, redisMisses atomic.Int64
	roundTrips, redisErrors, redisSkipped          atomic.Int64
	corrupt, shared, computed                      atomic.Int64
	waiting                                        atomic.Int64 // keys found in flight (tests watch it)
}

// Stats are totals since the cache was made, over all kinds.
type Stats struct {
	LocalHits, LocalMisses int64
	RedisHits, RedisMisses int64
	// RedisRoundTrips counts pipelines sent (a Cluster pipeline goes to
	// each node concerned at once and counts as one); RedisSkipped the
	// round trips not attempted because the circuit was open.
	RedisRoundTrips, RedisErrors, RedisSkipped int64
	// Corrupt entries read (and then overwritten); Shared keys that
	// another request computed; Computed keys handed to compute.
	Corrupt, Shared, Computed int64
	// LocalBytes is the in-process tier's weighted size.
	LocalBytes int64
}

// Stats returns the totals so far.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	s := &c.stats
	st := Stats{
		LocalHits: s.localHits.Load(), LocalMisses: s.localMisses.Load(),
		RedisHits: s.redisHits.Load(), RedisMisses: s.redisMisses.Load(),
		RedisRoundTrips: s.roundTrips.Load(), RedisErrors: s.redisErrors.Load(), RedisSkipped: s.redisSkipped.Load(),
		Corrupt: s.corrupt.Load(), Shared: s.shared.Load(), Computed: s.computed.Load(),
	}
	if c.local != nil {
		st.LocalBytes = int64(c.local.WeightedSize())
	}
	return st
}
