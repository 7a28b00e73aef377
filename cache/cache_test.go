package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// valueOf is the test's "encoder": a value that depends only on the key.
func valueOf(k Key) Value {
	v := Value{Vec: make([]float32, 8)}
	for i := range v.Vec {
		v.Vec[i] = float32(int(k.Sum[i])-128) / 100
	}
	if k.Kind == KindHP {
		v.Scalars = []float64{float64(k.Sum[31]) / 7}
	}
	return v
}

func keysOf(version string, kind Kind, names ...string) []Key {
	ks := make([]Key, len(names))
	for i, n := range names {
		ks[i] = Key{Version: version, Kind: kind, Sum: BytesSum([]byte(n))}
	}
	return ks
}

// counter is a ComputeFunc that records what it was asked.
type counter struct {
	mu    sync.Mutex
	calls int
	keys  int
	fail  map[string]bool // names whose key fails with errBad
}

var errBad = errors.New("bad content")

func (c *counter) compute(keys []Key) ComputeFunc {
	return func(ctx context.Context, missing []int) ([]Value, []error, error) {
		c.mu.Lock()
		c.calls++
		c.keys += len(missing)
		c.mu.Unlock()
		vals, errs := make([]Value, len(missing)), make([]error, len(missing))
		for k, i := range missing {
			if c.fail[fmt.Sprint(keys[i].Sum)] {
				errs[k] = errBad
				continue
			}
			vals[k] = valueOf(keys[i])
		}
		return vals, errs, nil
	}
}

func checkValues(t *testing.T, keys []Key, vals []Value, errs []error) {
	t.Helper()
	for i, k := range keys {
		if errs[i] != nil {
			t.Fatalf("key %d: %v", i, errs[i])
		}
		want := valueOf(k)
		if len(vals[i].Vec) != len(want.Vec) || len(vals[i].Scalars) != len(want.Scalars) {
			t.Fatalf("key %d: %v, want %v", i, vals[i], want)
		}
		for j := range want.Vec {
			if math.Float32bits(vals[i].Vec[j]) != math.Float32bits(want.Vec[j]) {
				t.Fatalf("key %d: vec %v, want %v", i, vals[i].Vec, want.Vec)
			}
		}
		for j := range want.Scalars {
			if vals[i].Scalars[j] != want.Scalars[j] {
				t.Fatalf("key %d: scalars %v, want %v", i, vals[i].Scalars, want.Scalars)
			}
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestResolveLocal(t *testing.T) {
	c, err := New(Options{LocalBytes: 1 << 20, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	keys := append(keysOf("v1", KindImage, "a", "b", "a", "c"), keysOf("v1", KindHP, "a")...)
	var n counter
	vals, errs, err := c.Resolve(ctx, keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if n.calls != 1 || n.keys != 4 { // "a" twice as an image is computed once; "a" as hp is its own key
		t.Fatalf("compute called %d times for %d keys, want 1 for 4", n.calls, n.keys)
	}
	// Callers may scribble on what they got without harming the cache.
	vals[0].Vec[0] = 42
	vals, errs, err = c.Resolve(ctx, keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if n.calls != 1 {
		t.Fatalf("second request computed again (%d calls)", n.calls)
	}
	// A new model version never reads the old entries.
	k2 := keysOf("v2", KindImage, "a")
	if _, _, err := c.Resolve(ctx, k2, n.compute(k2)); err != nil || n.calls != 2 {
		t.Fatalf("new version: %d calls (err %v), want 2", n.calls, err)
	}
	c.local.CleanUp() // otter applies writes to its weight asynchronously
	st := c.Stats()
	if st.LocalHits != 4 || st.LocalMisses != 5 || st.Computed != 5 || st.LocalBytes <= 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestResolvePerKeyErrors(t *testing.T) {
	c, _ := New(Options{LocalBytes: 1 << 20})
	defer c.Close()
	keys := keysOf("v", KindImage, "good", "bad")
	n := counter{fail: map[string]bool{fmt.Sprint(keys[1].Sum): true}}
	for round := 1; round <= 2; round++ {
		vals, errs, err := c.Resolve(context.Background(), keys, n.compute(keys))
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(errs[1], errBad) || errs[0] != nil || vals[0].Vec == nil {
			t.Fatalf("round %d: errs %v", round, errs)
		}
	}
	// The failure is not cached: the bad key is asked for again.
	if n.calls != 2 || n.keys != 3 {
		t.Errorf("%d calls for %d keys, want 2 for 3", n.calls, n.keys)
	}
}

func TestResolveWholeFailure(t *testing.T) {
	c, _ := New(Options{LocalBytes: 1 << 20})
	defer c.Close()
	keys := keysOf("v", KindText, "x")
	boom := errors.New("encoder down")
	_, _, err := c.Resolve(context.Background(), keys, func(context.Context, []int) ([]Value, []error, error) {
		return nil, nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want %v", err, boom)
	}
	// Nothing was left in flight: the next request computes normally.
	var n counter
	if _, _, err := c.Resolve(context.Background(), keys, n.compute(keys)); err != nil || n.calls != 1 {
		t.Fatalf("after a failure: %d calls, err %v", n.calls, err)
	}
	// A compute that returns the wrong number of values is an error, not a panic.
	k2 := keysOf("v", KindText, "y", "z")
	if _, _, err := c.Resolve(context.Background(), k2, func(context.Context, []int) ([]Value, []error, error) {
		return []Value{{}}, nil, nil
	}); err == nil {
		t.Fatal("short compute result accepted")
	}
}

func TestResolveNilCache(t *testing.T) {
	var c *Cache
	keys := keysOf("v", KindImage, "a", "a")
	var n counter
	vals, errs, err := c.Resolve(context.Background(), keys, n.compute(keys))
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, keys, vals, errs)
	if n.keys != 2 || c.Stats() != (Stats{}) || c.Close() != nil {
		t.Errorf("nil cache: %d keys computed", n.keys)
	}
}

// Concurrent misses of one key are computed once: the others wait for the
// first request and get its value.
func TestSingleflight(t *testing.T) {
	c, _ := New(Options{LocalBytes: 1 << 20})
	defer c.Close()
	keys := keysOf("v", KindImage, "shared")
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	slow := func(ctx context.Context, missing []int) ([]Value, []error, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return []Value{valueOf(keys[0])}, nil, nil
	}
	const waiters = 8
	var wg sync.WaitGroup
	results := make([][]Value, waiters+1)
	run := func(i int) {
		defer wg.Done()
		vals, errs, err := c.Resolve(context.Background(), keys, slow)
		if err != nil || errs[0] != nil {
			t.Errorf("request %d: %v %v", i, err, errs)
		}
		results[i] = vals
	}
	wg.Add(1)
	go run(0)
	<-entered
	for i := 1; i <= waiters; i++ {
		wg.Add(1)
		go run(i)
	}
	for c.stats.waiting.Load() < waiters {
		runtimeYield()
	}
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("computed %d times, want once", calls.Load())
	}
	for i := range results {
		checkValues(t, keys, results[i], []error{nil})
	}
	if st := c.Stats(); st.Shared != waiters {
		t.Errorf("shared %d, want %d", st.Shared, waiters)
	}
}

// When the request computing a key gives up, the ones waiting for it
// compute it themselves.
func TestSingleflightOwnerFails(t *testing.T) {
	c, _ := New(Options{LocalBytes: 1 << 20})
	defer c.Close()
	keys := keysOf("v", KindImage, "k")
	entered, release := make(chan struct{}), make(chan struct{})
	ownerErr := make(chan error, 1)
	go func() {
		_, _, err := c.Resolve(context.Background(), keys, func(context.Context, []int) ([]Value, []error, error) {
			close(entered)
			<-release
			return nil, nil, context.Canceled
		})
		ownerErr <- err
	}()
	<-entered
	done := make(chan struct{})
	var n counter
	go func() {
		defer close(done)
		vals, errs, err := c.Resolve(context.Background(), keys, n.compute(keys))
		if err != nil {
			t.Errorf("waiter: %v", err)
			return
		}
		checkValues(t, keys, vals, errs)
	}()
	for c.stats.waiting.Load() < 1 {
		runtimeYield()
	}
	close(release)
	<-done
	if err := <-ownerErr; !errors.Is(err, context.Canceled) {
		t.Errorf("owner err %v", err)
	}
	if n.calls != 1 {
		t.Errorf("waiter computed %d times, want 1", n.calls)
	}
}

// The in-process tier keeps to its byte budget.
func TestLocalBudget(t *testing.T) {
	const budget = 64 << 10
	c, _ := New(Options{LocalBytes: budget})
	defer c.Close()
	for i := 0; i < 200; i++ {
		keys := keysOf("v", KindImage, fmt.Sprint(i))
		_, _, err := c.Resolve(context.Background(), keys, func(context.Context, []int) ([]Value, []error, error) {
			return []Value{{Vec: make([]float32, 1024)}}, nil, nil // 4 KiB each
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c.local.CleanUp()
	if b := c.Stats().LocalBytes; b > budget || b < budget/2 {
		t.Errorf("local tier holds %d bytes, budget %d", b, budget)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := New(Options{LocalBytes: 1 << 20, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys := append(keysOf("v", KindText, "p"), keysOf("v", KindImage, "a", "b")...)
	var n counter
	for i := 0; i < 2; i++ {
		if _, _, err := c.Resolve(context.Background(), keys, n.compute(keys)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"local", "text", "miss"}, 1}, {[]string{"local", "text", "hit"}, 1},
		{[]string{"local", "image", "miss"}, 2}, {[]string{"local", "image", "hit"}, 2},
	} {
		if got := metricValue(t, c.m.lookups.WithLabelValues(m.labels...)); got != m.want {
			t.Errorf("lookups%v = %v, want %v", m.labels, got, m.want)
		}
	}
	c.local.CleanUp()
	if got := metricValue(t, c.m.localEntries); got != 3 {
		t.Errorf("local_entries = %v, want 3", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	// A second cache on the same registry is refused, not a panic.
	if _, err := New(Options{Metrics: reg}); err == nil {
		t.Error("second registration accepted")
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{{LocalBytes: -1}, {TTL: -1}, {RedisTimeout: -1}, {BreakerThreshold: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func runtimeYield() { runtime.Gosched() }

// metricValue reads a single counter or gauge.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue() + d.GetGauge().GetValue()
	}
	return sum
}
