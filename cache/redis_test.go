package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/icthp/icthp/cache/redistest"
)

func newRedisCache(t *testing.T, url string, o Options) *Cache {
	t.Helper()
	rdb, err := NewRedis(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	o.Redis = rdb
	if o.Logger == nil {
		o.Logger = quiet()
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func manyKeys(n int, prefix string) []Key {
	names := make([]string, n)
	for i := range names {
		names[i] = prefix + strconv.Itoa(i)
	}
	ks := keysOf("clip-test", KindImage, names...)
	ks = append(ks, keysOf("hp-test", KindHP, names...)...)
	return append(ks, keysOf("clip-test", KindText, "prompt "+prefix)...)
}

// A second process (a second cache, empty in-process tier) reads what the
// first stored, with one round trip for the lookup and one for the store.
func TestRedisStandalone(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret")
	url := "redis://:s3cret@" + srv.Addr()
	for _, f16 := range []bool{false, true} {
		t.Run(fmt.Sprintf("float16=%v", f16), func(t *testing.T) {
			keys := manyKeys(4, fmt.Sprint(f16))
			a := newRedisCache(t, url, Options{LocalBytes: 1 << 20, Float16: f16, TTL: time.Hour})
			var n counter
			vals, errs, err := a.Resolve(context.Background(), keys, n.compute(keys))
			if err != nil {
				t.Fatal(err)
			}
			checkValues(t, keys, vals, errs)
			if st := a.Stats(); st.RedisRoundTrips != 2 || st.RedisMisses != int64(len(keys)) || st.RedisErrors != 0 {
				t.Fatalf("first request: %+v, want 2 round trips and %d misses", st, len(keys))
			}
			b := newRedisCache(t, url, Options{LocalBytes: 1 << 20, Float16: f16})
			vals, errs, err = b.Resolve(context.Background(), keys, n.compute(keys))
			if err != nil {
				t.Fatal(err)
			}
			if n.calls != 1 {
				t.Fatalf("second cache computed again")
			}
			if st := b.Stats(); st.RedisRoundTrips != 1 || st.RedisHits != int64(len(keys)) {
				t.Fatalf("second cache: %+v, want 1 round trip and %d hits", st, len(keys))
			}
			for i, k := range keys {
				want := valueOf(k)
				for j, x := range want.Vec {
					if f16 {
						x = f16to32(f32to16(x))
					}
					if vals[i].Vec[j] != x {
						t.Fatalf("key %d element %d: %g, want %g", i, j, vals[i].Vec[j], x)
					}
				}
				if len(want.Scalars) > 0 && vals[i].Scalars[0] != want.Scalars[0] || errs[i] != nil {
					t.Fatalf("key %d: scalars %v, want %v (%v)", i, vals[i].Scalars, want.Scalars, errs[i])
				}
			}
			// The entries carry the TTL.
			ttl, err := srv.CLI("-a", "s3cret", "--no-auth-warning", "ttl", keys[0].String())
			if d, _ := strconv.Atoi(ttl); err != nil || d <= 3500 || d > 3600 {
				t.Errorf("TTL of %s: %q (%v), want about 3600", keys[0], ttl, err)
			}
		})
	}
	// A wrong password is a Redis failure like any other: served without it.
	c := newRedisCache(t, "redis://:wrong@"+srv.Addr(), Options{LocalBytes: 1 << 20})
	keys := manyKeys(1, "pw")
	vals, errs, err := c.Resolve(context.Background(), keys, (&counter{}).compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if st := c.Stats(); st.RedisErrors == 0 {
		t.Errorf("wrong password: %+v, want errors counted", st)
	}
}

// A corrupt or truncated entry is ignored, counted and overwritten.
func TestRedisCorruptEntry(t *testing.T) {
	srv := redistest.Start(t)
	keys := keysOf("clip-test", KindImage, "x", "y", "z")
	a := newRedisCache(t, srv.URL(), Options{})
	if _, _, err := a.Resolve(context.Background(), keys, (&counter{}).compute(keys)); err != nil {
		t.Fatal(err)
	}
	// Damage two of the three: truncate one, replace the other.
	good, err := srv.CLI("--no-raw", "get", keys[0].String())
	if err != nil || len(good) < 10 {
		t.Fatalf("stored entry %q: %v", good, err)
	}
	if out, err := srv.CLI("setrange", keys[0].String(), "20", "garbage!"); err != nil {
		t.Fatal(out, err)
	}
	if out, err := srv.CLI("set", keys[1].String(), "ICH"); err != nil {
		t.Fatal(out, err)
	}
	b := newRedisCache(t, srv.URL(), Options{})
	var n counter
	vals, errs, err := b.Resolve(context.Background(), keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if st := b.Stats(); st.Corrupt != 2 || st.RedisHits != 1 || n.keys != 2 {
		t.Fatalf("%+v, %d keys recomputed; want 2 corrupt, 1 hit, 2 recomputed", st, n.keys)
	}
	// They were overwritten: a third process reads all three.
	c := newRedisCache(t, srv.URL(), Options{})
	var m counter
	if _, _, err := c.Resolve(context.Background(), keys, m.compute(keys)); err != nil || m.calls != 0 {
		t.Fatalf("after overwrite: %d calls (%v), want 0", m.calls, err)
	}
}

// Killing Redis in the middle of a stream of requests: every request is
// still answered correctly; the circuit opens; once Redis is back the probe
// closes it and new entries are shared through Redis again.
func TestRedisKillAndRestart(t *testing.T) {
	srv := redistest.Start(t)
	var changes []string
	var mu sync.Mutex
	c := newRedisCache(t, srv.URL(), Options{LocalBytes: 1 << 20, BreakerThreshold: 2, BreakerCooldown: 200 * time.Millisecond})
	c.br.onChange = func(from, to State) {
		mu.Lock()
		changes = append(changes, from.String()+">"+to.String())
		mu.Unlock()
		c.circuitChanged("", from, to)
	}
	ctx := context.Background()
	request := func(i int) {
		t.Helper()
		// Each request has new keys and one seen before.
		keys := append(manyKeys(2, "r"+strconv.Itoa(i)), manyKeys(1, "r0")...)
		vals, errs, err := c.Resolve(ctx, keys, (&counter{}).compute(keys))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		checkValues(t, keys, vals, errs)
	}
	for i := 0; i < 10; i++ {
		request(i)
	}
	srv.Stop()
	for i := 10; i < 30; i++ {
		request(i)
	}
	if c.Circuit() == Closed {
		t.Fatalf("circuit still closed after Redis died")
	}
	st := c.Stats()
	if st.RedisErrors < 2 || st.RedisSkipped == 0 {
		t.Fatalf("after the kill: %+v, want errors and skipped round trips", st)
	}
	srv.Restart()
	// Keep serving until the half-open probe has closed the circuit.
	deadline := time.Now().Add(10 * time.Second)
	for i := 30; c.Circuit() != Closed; i++ {
		if time.Now().After(deadline) {
			t.Fatal("circuit did not close within 10 s of Redis coming back")
		}
		request(i)
		time.Sleep(10 * time.Millisecond)
	}
	// Hits again: what this cache stores now, another one reads.
	keys := manyKeys(3, "after")
	if _, _, err := c.Resolve(ctx, keys, (&counter{}).compute(keys)); err != nil {
		t.Fatal(err)
	}
	other := newRedisCache(t, srv.URL(), Options{})
	var n counter
	if _, _, err := other.Resolve(ctx, keys, n.compute(keys)); err != nil || n.calls != 0 {
		t.Fatalf("after restart: %d computes (%v), want Redis hits", n.calls, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes[0] != "closed>open" || changes[len(changes)-1] != "half-open>closed" {
		t.Errorf("transitions %v", changes)
	}
}

// A Redis that hangs (SIGSTOP: connections open, nothing answered) costs a
// request at most the timeout, then the circuit opens and requests stop
// waiting for it. A request whose lookup went unanswered does not write
// either: one round trip at most, one skipped after.
func TestRedisHung(t *testing.T) {
	srv := redistest.Start(t)
	c := newRedisCache(t, srv.URL(), Options{RedisTimeout: 50 * time.Millisecond, BreakerThreshold: 1, BreakerCooldown: time.Hour})
	keys := manyKeys(1, "h")
	if _, _, err := c.Resolve(context.Background(), keys, (&counter{}).compute(keys)); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	for i := 0; i < 5; i++ {
		keys := manyKeys(1, "hung"+strconv.Itoa(i))
		vals, errs, err := c.Resolve(context.Background(), keys, (&counter{}).compute(keys))
		if err != nil {
			t.Fatal(err)
		}
		checkValues(t, keys, vals, errs)
	}
	st := c.Stats()
	if c.Circuit() != Open || st.RedisErrors != 1 || st.RedisSkipped != 4 || st.RedisRoundTrips != 3 {
		t.Fatalf("circuit %v, %+v: want open after one timeout, later round trips skipped", c.Circuit(), st)
	}
}

// A three-master Cluster: the keys of one request spread over the nodes,
// one pipelined round trip (to each node at once) reads them all back.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	keys := manyKeys(20, "cl")
	a := newRedisCache(t, cl.URL(), Options{RedisTimeout: time.Second})
	var n counter
	vals, errs, err := a.Resolve(context.Background(), keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if st := a.Stats(); st.RedisErrors != 0 || st.RedisMisses != int64(len(keys)) {
		t.Fatalf("cluster first request: %+v", st)
	}
	total := 0
	for _, node := range cl.Nodes {
		out, err := node.CLI("dbsize")
		d, _ := strconv.Atoi(out)
		if err != nil || d == 0 {
			t.Errorf("node %s holds %q keys (%v): the keys did not spread", node.Addr(), out, err)
		}
		total += d
	}
	if total != len(keys) {
		t.Errorf("the cluster holds %d keys, want %d", total, len(keys))
	}
	b := newRedisCache(t, cl.URL(), Options{RedisTimeout: time.Second})
	vals, errs, err = b.Resolve(context.Background(), keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if st := b.Stats(); n.calls != 1 || st.RedisRoundTrips != 1 || st.RedisHits != int64(len(keys)) {
		t.Fatalf("cluster second cache: %+v, computes %d", st, n.calls)
	}
}

// A Cluster that loses a master: the other masters' hits are still used and
// only the dead one's keys are computed, and not written; after the
// threshold its circuit opens and its keys are no longer sent at all. Which
// master holds what is read from the nodes themselves (SCAN).
func TestRedisClusterNodeDown(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	keys := manyKeys(20, "down")
	ctx := context.Background()
	if _, _, err := newRedisCache(t, cl.URL(), Options{}).Resolve(ctx, keys, (&counter{}).compute(keys)); err != nil {
		t.Fatal(err)
	}
	held := make([]map[string]bool, len(cl.Nodes))
	for i := range cl.Nodes {
		held[i] = scanNode(t, cl, i)
	}
	dead := len(held[1])
	live := len(keys) - dead
	if dead == 0 || live == 0 {
		t.Fatalf("node 1 holds %d of %d keys: want some on each side", dead, len(keys))
	}
	cl.Nodes[1].Stop()

	// No in-process tier: every request goes to Redis.
	c := newRedisCache(t, cl.URL(), Options{RedisTimeout: 500 * time.Millisecond, BreakerThreshold: 2, BreakerCooldown: time.Hour})
	request := func() Stats { t.Helper(); return resolveAll(t, c, keys) }
	for _, step := range []struct {
		name                           string
		hits, misses, errors, computed int
		skipped                        int
		circuit                        State
	}{
		// The dead master fails its part: counted once (its keys are not
		// written, so the store does not fail again).
		{"first", live, 0, 1, dead, 0, Closed},
		// The second failure opens its circuit.
		{"second", 2 * live, 0, 2, 2 * dead, 0, Open},
		// Its keys are skipped now: no error, no wait; the live hits stay.
		{"third", 3 * live, 0, 2, 3 * dead, 1, Open},
	} {
		st := request()
		if st.RedisHits != int64(step.hits) || st.RedisMisses != int64(step.misses) || st.RedisErrors != int64(step.errors) ||
			st.Computed != int64(step.computed) || st.RedisSkipped != int64(step.skipped) || c.Circuit() != step.circuit {
			t.Fatalf("%s request (%d keys on live masters, %d on the dead one): circuit %v, %+v; want %d hits, %d misses, %d errors, %d computed, %d skipped, %v",
				step.name, live, dead, c.Circuit(), st, step.hits, step.misses, step.errors, step.computed, step.skipped, step.circuit)
		}
	}

	// The live masters lose their entries: they are looked up, missed,
	// computed and written back where they were; nothing goes to the dead
	// master's slots.
	for _, i := range []int{0, 2} {
		if out, err := cl.Nodes[i].CLI("flushall"); err != nil {
			t.Fatal(out, err)
		}
	}
	before := c.Stats()
	st := request()
	if st.RedisMisses-before.RedisMisses != int64(live) || st.RedisErrors != before.RedisErrors || st.RedisRoundTrips-before.RedisRoundTrips != 2 {
		t.Fatalf("after the flush: %+v, before %+v; want %d more misses, no more errors, 2 round trips", st, before, live)
	}
	for _, i := range []int{0, 2} {
		if got := scanNode(t, cl, i); fmt.Sprint(got) != fmt.Sprint(held[i]) {
			t.Errorf("node %d holds %d keys after the rewrite, want the %d it held before", i, len(got), len(held[i]))
		}
	}
}

// scanNode is the set of keys node i of the cluster holds.
func scanNode(t *testing.T, cl *redistest.Cluster, i int) map[string]bool {
	t.Helper()
	out, err := cl.Nodes[i].CLI("--scan")
	if err != nil {
		t.Fatalf("scan of node %d: %v", i, err)
	}
	m := map[string]bool{}
	for _, k := range strings.Fields(out) {
		m[k] = true
	}
	return m
}

// resolveAll resolves keys through c, checks the values and returns c's
// statistics after it.
func resolveAll(t *testing.T, c *Cache, keys []Key) Stats {
	t.Helper()
	var n counter
	vals, errs, err := c.Resolve(context.Background(), keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	return c.Stats()
}

// Through a Sentinel: the client asks it for the primary and uses that.
func TestRedisSentinel(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, primary, "icthp")
	keys := manyKeys(3, "sentinel")
	a := newRedisCache(t, "redis://"+sentinel.Addr()+"?master_name=icthp", Options{RedisTimeout: time.Second})
	if _, _, err := a.Resolve(context.Background(), keys, (&counter{}).compute(keys)); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.RedisErrors != 0 || st.RedisRoundTrips != 2 {
		t.Fatalf("through the sentinel: %+v", st)
	}
	if out, err := primary.CLI("dbsize"); err != nil || out != strconv.Itoa(len(keys)) {
		t.Fatalf("the primary holds %q keys (%v), want %d", out, err, len(keys))
	}
}

func TestParseRedisURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		addrs   []string
		user    string
		pass    string
		db      int
		master  string
		cluster bool
		tls     bool
		client  string // the client type NewUniversalClient picks
	}{
		{url: "redis://localhost", addrs: []string{"localhost:6379"}, client: "*redis.Client"},
		{url: "redis://:pw@10.0.0.1:6380/2", addrs: []string{"10.0.0.1:6380"}, pass: "pw", db: 2, client: "*redis.Client"},
		{url: "rediss://user:pw@cache.example:6390", addrs: []string{"cache.example:6390"}, user: "user", pass: "pw", tls: true, client: "*redis.Client"},
		{url: "redis://a:7000?addr=b:7001&addr=c", addrs: []string{"a:7000", "b:7001", "c:6379"}, client: "*redis.ClusterClient"},
		{url: "redis://a:7000?cluster=true", addrs: []string{"a:7000"}, cluster: true, client: "*redis.ClusterClient"},
		{url: "redis://:pw@s1:26379?master_name=mymaster&addr=s2:26379", addrs: []string{"s1:26379", "s2:26379"}, pass: "pw",
			master: "mymaster", client: "*redis.Client"},
		{url: "redis://[::1]:6379", addrs: []string{"[::1]:6379"}, client: "*redis.Client"},
	} {
		o, err := ParseRedisURL(c.url, 0)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		if fmt.Sprint(o.Addrs) != fmt.Sprint(c.addrs) || o.Username != c.user || o.Password != c.pass || o.DB != c.db ||
			o.MasterName != c.master || o.IsClusterMode != c.cluster || (o.TLSConfig != nil) != c.tls {
			t.Errorf("%s: got %v %q %q db%d %q cluster=%v tls=%v", c.url, o.Addrs, o.Username, o.Password, o.DB,
				o.MasterName, o.IsClusterMode, o.TLSConfig != nil)
		}
		if o.ReadTimeout != DefaultRedisTimeout || o.MaxRetries != -1 {
			t.Errorf("%s: timeout %v, retries %d", c.url, o.ReadTimeout, o.MaxRetries)
		}
		cl := redis.NewUniversalClient(o)
		if got := fmt.Sprintf("%T", cl); got != c.client {
			t.Errorf("%s: client %s, want %s", c.url, got, c.client)
		}
		cl.Close()
	}
	for _, bad := range []string{"http://x", "redis://", "redis://h/notanumber", "redis://h?bogus=1", "redis://h?cluster=maybe",
		"redis://h?master_name=m&cluster=true", "redis://a?addr=b&db=1", "redis://a/1?addr=b", "redis://:secret@h:99999999x"} {
		_, err := ParseRedisURL(bad, 0)
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("%q: err %v, want ErrBadURL", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}
