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
// a half-open probe to come back to it. A Cluster has one breaker per
// master: while one is down, the others' hits are still used and only the
// dead master's keys are computed (and not written).
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	// circuit; BreakerCooldown how long it stays open before a probe. A
	// Cluster's masters each have their own circuit with these settings.
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
	// br guards Redis as a whole; for a Cluster, finding the cluster's
	// layout (without it no key can be placed on a master).
	br *breaker
	// cluster is set when Redis is a Cluster: each master's keys then go
	// in their own pipeline, behind that master's breaker in nodes.
	cluster   *redis.ClusterClient
	threshold int
	cooldown  time.Duration
	log       *slog.Logger
	m         *metrics
	stats     counters

	nodesMu sync.Mutex
	nodes   map[string]*breaker // by the master's address, made on first use

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
	c.threshold, c.cooldown = o.BreakerThreshold, o.BreakerCooldown
	if c.threshold == 0 {
		c.threshold = DefaultBreakerThreshold
	}
	if c.cooldown == 0 {
		c.cooldown = DefaultBreakerCooldown
	}
	c.cluster, _ = o.Redis.(*redis.ClusterClient)
	c.nodes = map[string]*breaker{}
	c.m = newMetrics(c)
	c.br = c.newBreaker("")
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
	return entryOverhead + 8 + len(k) + 4*len(v.Vec) + 8*len(v.Scalars)
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

// newBreaker makes the breaker of Redis as a whole (node "") or of one
// Cluster master.
func (c *Cache) newBreaker(node string) *breaker {
	return &breaker{threshold: c.threshold, cooldown: c.cooldown, now: time.Now,
		onChange: func(from, to State) { c.circuitChanged(node, from, to) }}
}

// nodeBreaker is the breaker of the Cluster master at addr.
func (c *Cache) nodeBreaker(addr string) *breaker {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	b := c.nodes[addr]
	if b == nil {
		b = c.newBreaker(addr)
		c.nodes[addr] = b
	}
	return b
}

// Circuit is the Redis circuit breaker's state (Closed when there is no
// Redis). For a Cluster it is the worst of its breakers: Open while any
// master is skipped, else HalfOpen while one is probed, else Closed.
func (c *Cache) Circuit() State {
	if c == nil {
		return Closed
	}
	// Open outranks HalfOpen, which outranks Closed.
	rank := func(s State) int { return [...]int{Closed: 0, HalfOpen: 1, Open: 2}[s] }
	s := c.br.State()
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	for _, b := range c.nodes {
		if t := b.State(); rank(t) > rank(s) {
			s = t
		}
	}
	return s
}

func (c *Cache) circuitChanged(node string, from, to State) {
	c.m.transitions.WithLabelValues(to.String()).Inc()
	// One line when Redis (or a master) is lost and one when it is back;
	// the probes in between are counted, not logged.
	switch {
	case from == Closed && to == Open && node == "":
		c.log.Warn("cache: Redis unavailable, circuit open: serving without it", "retry_after", c.cooldown)
	case from == Closed && to == Open:
		c.log.Warn("cache: Redis Cluster master unavailable, circuit open: its keys are served without it",
			"node", node, "retry_after", c.cooldown)
	case to == Closed && node == "":
		c.log.Info("cache: Redis is back, circuit closed")
	case to == Closed:
		c.log.Info("cache: Redis Cluster master is back, circuit closed", "node", node)
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
	r := &resolution{c: c, keys: keys, vals: vals, errs: errs, strs: make([]string, n), first: make([]int, n)}
	uniq := r.dedupe()
	rest := r.localLookup(uniq)
	r.claim(rest)
	// Whatever this call claimed and did not finish (it failed, or its
	// context ended) is released for the waiters to compute.
	defer r.release()
	r.recheckLocal()
	need, unanswered := r.redisLookup(ctx)
	if len(need) > 0 {
		if err := c.computeAndStore(ctx, compute, need, keys, r.strs, vals, errs, r.flights, r.finished, unanswered); err != nil {
			return nil, nil, err
		}
	}
	if err := r.collect(ctx, compute); err != nil {
		return nil, nil, err
	}
	for i, j := range r.first {
		if j != i {
			vals[i], errs[i] = vals[j], errs[j]
		}
	}
	return vals, errs, nil
}

// resolution is one Resolve call's state, in the order of its steps.
type resolution struct {
	c        *Cache
	keys     []Key
	vals     []Value
	errs     []error
	strs     []string
	first    []int // the first index of each key's duplicate group
	flights  map[int]*flight
	owned    []int        // keys this call computes or looks up in Redis
	waits    []int        // keys another request has claimed
	finished map[int]bool // owned keys whose flight is published
}

// dedupe names each key and returns the first index of each distinct one.
func (r *resolution) dedupe() []int {
	seen := make(map[string]int, len(r.keys))
	var uniq []int
	for i, k := range r.keys {
		r.strs[i] = k.String()
		if j, ok := seen[r.strs[i]]; ok {
			r.first[i] = j
			continue
		}
		seen[r.strs[i]], r.first[i] = i, i
		uniq = append(uniq, i)
	}
	return uniq
}

// localLookup takes what the in-process tier has and returns the rest.
func (r *resolution) localLookup(uniq []int) []int {
	var rest []int
	for _, i := range uniq {
		if v, ok := r.c.localGet(r.strs[i]); ok {
			r.vals[i] = v
			r.c.hit(tierLocal, r.keys[i].Kind)
			continue
		}
		r.c.miss(tierLocal, r.keys[i].Kind)
		rest = append(rest, i)
	}
	return rest
}

// claim takes a flight for each key of rest, or notes whose flight to
// wait for.
func (r *resolution) claim(rest []int) {
	c := r.c
	r.flights = make(map[int]*flight, len(rest))
	r.finished = make(map[int]bool, len(rest))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range rest {
		if f, ok := c.flights[r.strs[i]]; ok {
			r.flights[i] = f
			r.waits = append(r.waits, i)
			c.stats.waiting.Add(1)
			continue
		}
		f := &flight{done: make(chan struct{})}
		c.flights[r.strs[i]], r.flights[i] = f, f
		r.owned = append(r.owned, i)
	}
}

func (r *resolution) release() {
	for _, i := range r.owned {
		if !r.finished[i] {
			r.c.finish(r.strs[i], r.flights[i], Value{}, nil, true)
		}
	}
}

// publish gives key i its value and its waiters theirs.
func (r *resolution) publish(i int, v Value) {
	r.vals[i] = v
	r.c.finish(r.strs[i], r.flights[i], v, nil, false)
	r.finished[i] = true
}

// recheckLocal: a request that finished between our lookup and our claim
// has left its value in the in-process tier (it stores before it lets go).
func (r *resolution) recheckLocal() {
	if r.c.local == nil {
		return
	}
	kept := r.owned[:0:0]
	for _, i := range r.owned {
		if v, ok := r.c.localGet(r.strs[i]); ok {
			r.publish(i, v)
			continue
		}
		kept = append(kept, i)
	}
	r.owned = kept
}

// redisLookup looks the owned keys up in one round trip and returns those
// left to compute; unanswered ones (no verdict from Redis) are not written
// either.
func (r *resolution) redisLookup(ctx context.Context) (need []int, unanswered map[int]bool) {
	c := r.c
	if c.rdb == nil || len(r.owned) == 0 {
		return r.owned, nil
	}
	ks := make([]string, len(r.owned))
	for k, i := range r.owned {
		ks[k] = r.strs[i]
	}
	got, answered := c.redisGet(ctx, ks)
	for k, i := range r.owned {
		kind := r.keys[i].Kind
		if !answered[k] {
			if unanswered == nil {
				unanswered = map[int]bool{}
			}
			unanswered[i] = true
			need = append(need, i)
			continue
		}
		if got[k] == nil {
			c.miss(tierRedis, kind)
			need = append(need, i)
			continue
		}
		v, err := decode(r.strs[i], got[k])
		if err != nil {
			// Counted, then recomputed and overwritten like a miss.
			c.m.corrupt.WithLabelValues(kind.String()).Inc()
			c.stats.corrupt.Add(1)
			c.miss(tierRedis, kind)
			need = append(need, i)
			continue
		}
		c.hit(tierRedis, kind)
		c.localSet(r.strs[i], v)
		r.publish(i, v)
	}
	return need, unanswered
}

// collect waits for what other requests were computing, and computes
// itself what they gave up on.
func (r *resolution) collect(ctx context.Context, compute ComputeFunc) error {
	c := r.c
	var again []int
	for _, i := range r.waits {
		f := r.flights[i]
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.failed {
			again = append(again, i)
			continue
		}
		c.m.shared.WithLabelValues(r.keys[i].Kind.String()).Inc()
		c.stats.shared.Add(1)
		if f.err != nil {
			r.errs[i] = f.err
		} else {
			r.vals[i] = f.val.clone()
		}
	}
	if len(again) == 0 {
		return nil
	}
	return c.computeAndStore(ctx, compute, again, r.keys, r.strs, r.vals, r.errs, nil, nil, nil)
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

// computeAndStore computes idx and stores what it gets, in Redis too except
// the keys in noRedis: their lookup had no answer (Redis, or their Cluster
// master, just failed or is skipped), and writing them would only wait for
// it again.
func (c *Cache) computeAndStore(ctx context.Context, compute ComputeFunc, idx []int, keys []Key, strs []string,
	vals []Value, errs []error, flights map[int]*flight, finished map[int]bool, noRedis map[int]bool) error {
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
			if !noRedis[i] {
				puts = append(puts, kv{strs[i], vals[i]})
			}
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

// part is the share of one round trip that one breaker answers for: every
// key for a single Redis (or Sentinel), one master's keys for a Cluster.
type part struct {
	br    *breaker
	probe bool
	via   interface {
		Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	}
	keys []int
	err  error // what Pipelined returned
}

// route splits keys into the parts whose breakers let them through now; the
// parts skipped are counted. caller is the context a failure is judged by
// (see redisFailed).
func (c *Cache) route(ctx, caller context.Context, op string, keys []string) []*part {
	ok, probe := c.br.allow()
	if !ok {
		c.skip(op)
		return nil
	}
	if c.cluster == nil {
		all := make([]int, len(keys))
		for k := range all {
			all[k] = k
		}
		return []*part{{br: c.br, probe: probe, via: c.rdb, keys: all}}
	}
	byAddr := map[string]*part{}
	var parts []*part
	for k, key := range keys {
		// From the layout go-redis keeps; it is fetched (within ctx) only
		// when there is none yet.
		node, err := c.cluster.MasterForKey(ctx, key)
		if err != nil {
			c.redisFailed(caller, op, probe, c.br)
			return nil
		}
		addr := node.Options().Addr
		p, seen := byAddr[addr]
		if !seen {
			br := c.nodeBreaker(addr)
			if ok, probe := br.allow(); ok {
				p = &part{br: br, probe: probe, via: node}
				parts = append(parts, p)
			} else {
				c.skip(op)
			}
			byAddr[addr] = p // nil when skipped
		}
		if p != nil {
			p.keys = append(p.keys, k)
		}
	}
	c.br.done(probe, true, true)
	return parts
}

// exchange sends add's command for each key that route lets through, in one
// round trip: one pipeline, or for a Cluster one per master at once, and
// reports each part to its breaker. A key's command is nil when it was not
// sent or its part failed: only the others' replies are to be read.
// (go-redis' own Cluster pipeline is not used: when a master is down
// it retries that master after a backoff, and when the deadline cuts the
// backoff short it marks every command failed, the answered ones too.)
func (c *Cache) exchange(ctx, caller context.Context, op string, keys []string, add func(p redis.Pipeliner, k int) redis.Cmder) []redis.Cmder {
	cmds := make([]redis.Cmder, len(keys))
	parts := c.route(ctx, caller, op, keys)
	if len(parts) == 0 {
		return cmds
	}
	send := func(p *part) {
		_, p.err = p.via.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for _, k := range p.keys {
				cmds[k] = add(pl, k)
			}
			return nil
		})
	}
	start := time.Now()
	if len(parts) == 1 {
		send(parts[0])
	} else {
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				send(p)
			}()
		}
		wg.Wait()
	}
	c.m.redisSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	c.stats.roundTrips.Add(1)
	for _, p := range parts {
		// Pipelined's error is the first command's, or one from before any
		// was sent (a refused AUTH), which leaves the commands without
		// one: so both are looked at.
		failed := p.err != nil && !errors.Is(p.err, redis.Nil) && !moved(p.err)
		for _, k := range p.keys {
			err := cmds[k].Err()
			switch {
			case err == nil || errors.Is(err, redis.Nil):
			case c.cluster != nil && moved(err):
				// The master answered: the slot is elsewhere now (a
				// resharding). The key goes without Redis this time and
				// the next request finds the new layout.
				c.cluster.ReloadState(ctx)
			default:
				failed = true
			}
		}
		if !failed {
			p.br.done(p.probe, true, true)
			continue
		}
		c.redisFailed(caller, op, p.probe, p.br)
		for _, k := range p.keys {
			cmds[k] = nil
		}
	}
	return cmds
}

// moved says whether err is a Cluster redirection (MOVED or ASK).
func moved(err error) bool {
	return strings.HasPrefix(err.Error(), "MOVED ") || strings.HasPrefix(err.Error(), "ASK ")
}

// redisGet fetches keys in one round trip. answered[k] says whether Redis
// gave key k's verdict; got[k] is then its value, nil for a miss. Keys not
// answered are those of a Redis (or Cluster master) that failed, timed out
// or is skipped while its circuit is open: the others are still used.
func (c *Cache) redisGet(ctx context.Context, keys []string) (got [][]byte, answered []bool) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	gets := make([]*redis.StringCmd, len(keys))
	cmds := c.exchange(rctx, ctx, opGet, keys, func(p redis.Pipeliner, k int) redis.Cmder {
		gets[k] = p.Get(rctx, keys[k])
		return gets[k]
	})
	got, answered = make([][]byte, len(keys)), make([]bool, len(keys))
	for k, cmd := range cmds {
		if cmd == nil {
			continue
		}
		b, err := gets[k].Bytes()
		switch {
		case err == nil:
			got[k], answered[k] = b, true
		case errors.Is(err, redis.Nil):
			answered[k] = true
		}
	}
	return got, answered
}

// redisSet stores entries in one round trip, detached from the caller's
// cancellation (the work is done; keep it) but not from the timeout.
func (c *Cache) redisSet(ctx context.Context, entries []kv) {
	if c.rdb == nil || len(entries) == 0 {
		return
	}
	keys := make([]string, 0, len(entries))
	vals := make([][]byte, 0, len(entries))
	for _, e := range entries {
		b, err := encode(e.key, e.val, c.f16)
		if err != nil {
			// Too large to encode: it lives in process only. No fault of
			// Redis, so no failure either.
			continue
		}
		keys, vals = append(keys, e.key), append(vals, b)
	}
	if len(keys) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	cmds := c.exchange(rctx, context.Background(), opSet, keys, func(p redis.Pipeliner, k int) redis.Cmder {
		return p.Set(rctx, keys[k], vals[k], c.ttl)
	})
	var n int64
	for k, cmd := range cmds {
		if cmd != nil && cmd.Err() == nil {
			n += int64(len(vals[k]))
		}
	}
	c.m.redisBytes.Add(float64(n))
}

func (c *Cache) skip(op string) {
	c.m.skipped.WithLabelValues(op).Inc()
	c.stats.redisSkipped.Add(1)
}

// redisFailed counts a failed round trip (or a Cluster master's part of
// one); it is held against br unless the caller's own context ended first
// (then it says nothing about Redis).
func (c *Cache) redisFailed(caller context.Context, op string, probe bool, br *breaker) {
	c.m.redisErrors.WithLabelValues(op).Inc()
	c.stats.redisErrors.Add(1)
	br.done(probe, false, caller.Err() == nil)
}

const (
	tierLocal = "local"
	tierRedis = "redis"
	opGet     = "get"
	opSet     = "set"
)

func (c *Cache) hit(tier string, k Kind) {
	c.lookup(tier, k, "hit", &c.stats.localHits, &c.stats.redisHits)
}

func (c *Cache) miss(tier string, k Kind) {
	c.lookup(tier, k, "miss", &c.stats.localMisses, &c.stats.redisMisses)
}

// lookup counts one lookup of kind k in tier with its outcome: in the
// metrics, and in the local or the redis counter.
func (c *Cache) lookup(tier string, k Kind, outcome string, local, redis *atomic.Int64) {
	c.m.lookups.WithLabelValues(tier, k.String(), outcome).Inc()
	if tier == tierLocal {
		local.Add(1)
	} else {
		redis.Add(1)
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
	// RedisRoundTrips counts pipelines sent (a Cluster's go to each master
	// concerned at once and count as one); RedisErrors those that failed
	// and RedisSkipped those not attempted because the circuit was open
	// (for a Cluster, each master's part of one counts once).
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
