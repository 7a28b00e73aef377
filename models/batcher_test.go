package models_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/preprocess/text"
)

// fakeEnc computes a known function of each row, so that a caller can check
// it got its own rows' outputs back, and records what each run received.
// Output 0 has one value per row (the row's sum), output 1 two (first value,
// last value × 2).
type fakeEnc struct {
	rowLen  int
	started chan int      // when set, each run sends its row count first
	gate    chan struct{} // when set, each run waits for a receive
	sleep   time.Duration // each run lasts at least this long
	fail    error

	mu   sync.Mutex
	runs []int     // rows per run
	seen []float64 // first value of every row run
}

func (f *fakeEnc) encode(rows [][]float64) ([][]float32, error) {
	n := len(rows)
	f.mu.Lock()
	f.runs = append(f.runs, n)
	for _, r := range rows {
		f.seen = append(f.seen, r[0])
	}
	f.mu.Unlock()
	if f.started != nil {
		f.started <- n
	}
	if f.gate != nil {
		<-f.gate
	}
	time.Sleep(f.sleep)
	if f.fail != nil {
		return nil, f.fail
	}
	out0, out1 := make([]float32, 0, n), make([]float32, 0, 2*n)
	for _, r := range rows {
		s := 0.0
		for _, v := range r {
			s += v
		}
		out0 = append(out0, float32(s))
		out1 = append(out1, float32(r[0]), float32(2*r[len(r)-1]))
	}
	return [][]float32{out0, out1}, nil
}

func split[T float32 | int64](data []T, n int) [][]float64 {
	l := len(data) / n
	rows := make([][]float64, n)
	for i := range rows {
		for _, v := range data[i*l : (i+1)*l] {
			rows[i] = append(rows[i], float64(v))
		}
	}
	return rows
}

func (f *fakeEnc) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	return f.encode(split(px, n))
}

func (f *fakeEnc) EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error) {
	return f.encode(split(ids, n))
}

// rowsOf makes n distinct rows for caller c: [c*1000+k, c, k, 1].
func rowsOf(c, n int) []float32 {
	var d []float32
	for k := range n {
		d = append(d, float32(c*1000+k), float32(c), float32(k), 1)
	}
	return d
}

// checkOuts compares a call's outputs with fakeEnc's function of its rows.
func checkOuts(t *testing.T, data []float32, n int, outs [][]float32) {
	t.Helper()
	if len(outs) != 2 || len(outs[0]) != n || len(outs[1]) != 2*n {
		t.Fatalf("outputs have shapes %d, want 2 outputs of %d and %d", len(outs), n, 2*n)
	}
	for k, r := range split(data, n) {
		sum := 0.0
		for _, v := range r {
			sum += v
		}
		if float64(outs[0][k]) != sum || float64(outs[1][2*k]) != r[0] || float64(outs[1][2*k+1]) != 2*r[3] {
			t.Fatalf("row %d (%v): got %v, %v", k, r, outs[0][k], outs[1][2*k:2*k+2])
		}
	}
}

func newBatcher(t *testing.T, enc models.BatchEncoder, o models.BatcherOptions) *models.Batcher {
	t.Helper()
	b, err := models.NewBatcher(enc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBatcherRoutesResults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBatch int
		workers  int
	}{{"batch8", 8, 1}, {"batch3-two-workers", 3, 2}, {"batch1", 1, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeEnc{rowLen: 4}
			b := newBatcher(t, f, models.BatcherOptions{MaxBatch: tc.maxBatch, Workers: tc.workers, MaxWait: 5 * time.Millisecond})
			var wg sync.WaitGroup
			total := 0
			errs := make(chan error, 40)
			for c := range 40 {
				n := 1 + c%5 // some requests are larger than a batch
				total += n
				wg.Add(1)
				go func() {
					defer wg.Done()
					data := rowsOf(c, n)
					outs, err := b.EncodeImages(context.Background(), data, n)
					if err != nil {
						errs <- err
						return
					}
					checkOuts(t, data, n, outs)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			sum := 0
			for _, r := range f.runs {
				if r > tc.maxBatch || r < 1 {
					t.Errorf("a run had %d rows, max %d", r, tc.maxBatch)
				}
				sum += r
			}
			if sum != total {
				t.Errorf("runs covered %d rows, requests had %d", sum, total)
			}
		})
	}
}

func TestBatcherSplitsLargeRequests(t *testing.T) {
	f := &fakeEnc{rowLen: 4}
	b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 8})
	data := rowsOf(7, 20)
	outs, err := b.EncodeImages(context.Background(), data, 20)
	if err != nil {
		t.Fatal(err)
	}
	checkOuts(t, data, 20, outs)
	if fmt.Sprint(f.runs) != "[8 8 4]" {
		t.Errorf("runs %v, want [8 8 4]", f.runs)
	}
}

// blocked starts a run that waits on f.gate and returns once it has begun,
// so that what is queued next waits behind it.
func blocked(t *testing.T, b *models.Batcher, f *fakeEnc) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.EncodeImages(context.Background(), rowsOf(999, 1), 1)
		done <- err
	}()
	<-f.started
	return done
}

// waitQueued waits until the image queue holds n items (the callers are
// goroutines; this is synchronisation, not a timing assertion).
func waitQueued(t *testing.T, b *models.Batcher, text bool, n int) {
	t.Helper()
	for i := 0; ; i++ {
		s := b.ImageStats()
		if text {
			s = b.TextStats()
		}
		if s.Queued == n {
			return
		}
		if i > 10000 {
			t.Fatalf("queue holds %d items, want %d", s.Queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatcherDeduplicatesTokenRows(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeEnc{rowLen: 4, started: make(chan int, 8), gate: make(chan struct{})}
	b := newBatcher(t, f, models.BatcherOptions{Name: "ict", MaxBatch: 16, MaxWait: -1, Metrics: reg})
	go func() { b.EncodeTexts(context.Background(), []int64{5, 0, 0, 9}, 1) }()
	<-f.started // the first run holds the worker; the rest queue behind it
	reqs := [][]int64{
		{1, 2, 3, 4},
		{1, 2, 3, 4, 7, 7, 7, 7},
		{7, 7, 7, 7},
		{1, 2, 3, 4, 8, 8, 8, 8, 1, 2, 3, 4},
	}
	var wg sync.WaitGroup
	queued := 0
	for _, r := range reqs {
		n := len(r) / 4
		queued += n
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs, err := b.EncodeTexts(context.Background(), r, n)
			if err != nil {
				t.Error(err)
				return
			}
			f32 := make([]float32, len(r))
			for i, v := range r {
				f32[i] = float32(v)
			}
			checkOuts(t, f32, n, outs)
		}()
		waitQueued(t, b, true, queued)
	}
	f.gate <- struct{}{} // the first run
	<-f.started
	f.gate <- struct{}{} // the batch of all queued rows
	wg.Wait()
	if fmt.Sprint(f.runs) != "[1 3]" {
		t.Errorf("runs %v, want [1 3]: 7 queued rows, 3 distinct", f.runs)
	}
	if got := counterSum(t, reg, "icthp_batcher_deduplicated_items_total"); got != 4 {
		t.Errorf("deduplicated items %v, want 4", got)
	}
}

// counterSum adds up every series of a counter family on reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			s := 0.0
			for _, m := range mf.GetMetric() {
				s += m.GetCounter().GetValue()
			}
			return s
		}
	}
	return math.NaN()
}

func TestBatcherQueueFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeEnc{rowLen: 4, started: make(chan int, 8), gate: make(chan struct{})}
	b := newBatcher(t, f, models.BatcherOptions{Name: "hp", MaxBatch: 2, QueueSize: 4, MaxWait: -1, Metrics: reg})
	first := blocked(t, b, f)
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := rowsOf(c, 2)
			outs, err := b.EncodeImages(context.Background(), data, 2)
			if err != nil {
				t.Error(err)
				return
			}
			checkOuts(t, data, 2, outs)
		}()
		waitQueued(t, b, false, 2*(c+1))
	}
	_, err := b.EncodeImages(context.Background(), rowsOf(5, 1), 1)
	var oe *models.OverloadError
	if !errors.Is(err, models.ErrOverloaded) || !errors.As(err, &oe) || oe.Reason != models.ReasonQueueFull {
		t.Fatalf("a request beyond the queue's 4 items: got %v, want an OverloadError for queue_full", err)
	}
	close(f.gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := counterSum(t, reg, "icthp_batcher_rejected_total"); got != 1 {
		t.Errorf("rejected %v, want 1", got)
	}
	// A request larger than the whole queue still runs when the queue is empty.
	data := rowsOf(3, 9)
	outs, err := b.EncodeImages(context.Background(), data, 9)
	if err != nil {
		t.Fatalf("a 9-item request at an empty queue of 4: %v", err)
	}
	checkOuts(t, data, 9, outs)
}

func TestBatcherRefusesWorkThatWouldMissItsDeadline(t *testing.T) {
	// Each run lasts at least 50 ms, so after one run the estimated cost of
	// an item is at least 50 ms: a request with 10 ms left cannot make it.
	f := &fakeEnc{rowLen: 4, sleep: 50 * time.Millisecond}
	b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 4})
	if _, err := b.EncodeImages(context.Background(), rowsOf(1, 1), 1); err != nil {
		t.Fatal(err)
	}
	if s := b.ImageStats(); s.PerItem < 50*time.Millisecond {
		t.Fatalf("estimated cost per item %v, want at least the run's 50 ms", s.PerItem)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := b.EncodeImages(ctx, rowsOf(2, 1), 1)
	var oe *models.OverloadError
	if !errors.As(err, &oe) || oe.Reason != models.ReasonDeadline {
		t.Fatalf("got %v, want an OverloadError for the deadline", err)
	}
	// Nothing was queued, so the error blames the request, not the queue,
	// and does not ask for a retry that cannot help.
	if oe.Needed < 50*time.Millisecond || !strings.Contains(err.Error(), "this request alone needs") || strings.Contains(err.Error(), "retry after") {
		t.Errorf("refusal at an empty queue: needed %v, message %q", oe.Needed, err)
	}
	if len(f.runs) != 1 {
		t.Errorf("the refused request ran: runs %v", f.runs)
	}
	// With time enough it is taken.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	if _, err := b.EncodeImages(ctx2, rowsOf(2, 1), 1); err != nil {
		t.Fatal(err)
	}
}

func TestBatcherDropsCancelledWork(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := &fakeEnc{rowLen: 4, started: make(chan int, 8), gate: make(chan struct{})}
	b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 8, MaxWait: -1, Metrics: reg})
	first := blocked(t, b, f)
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := b.EncodeImages(ctx, rowsOf(42, 3), 3)
		gone <- err
	}()
	waitQueued(t, b, false, 3)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v", err)
	}
	if s := b.ImageStats(); s.Queued != 0 {
		t.Errorf("%d items still queued after the cancel", s.Queued)
	}
	close(f.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	data := rowsOf(43, 1)
	outs, err := b.EncodeImages(context.Background(), data, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkOuts(t, data, 1, outs)
	for _, v := range f.seen {
		if v >= 42000 && v < 43000 {
			t.Fatalf("a row of the cancelled request ran (seen %v)", f.seen)
		}
	}
	if got := counterSum(t, reg, "icthp_batcher_dropped_items_total"); got != 3 {
		t.Errorf("dropped items %v, want 3", got)
	}
}

func TestBatcherRunErrorReachesEveryCaller(t *testing.T) {
	boom := errors.New("boom")
	f := &fakeEnc{rowLen: 4, fail: boom}
	b := newBatcher(t, f, models.BatcherOptions{MaxBatch: 4})
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.EncodeImages(context.Background(), rowsOf(c, 3), 3); !errors.Is(err, boom) {
				t.Errorf("caller %d: got %v, want the run's error", c, err)
			}
		}()
	}
	wg.Wait()
}

func TestBatcherClose(t *testing.T) {
	f := &fakeEnc{rowLen: 4, started: make(chan int, 8), gate: make(chan struct{})}
	b, err := models.NewBatcher(f, models.BatcherOptions{MaxBatch: 2, MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	first := blocked(t, b, f)
	queued := make(chan error, 1)
	data := rowsOf(5, 3)
	go func() {
		outs, err := b.EncodeImages(context.Background(), data, 3)
		if err == nil {
			checkOuts(t, data, 3, outs)
		}
		queued <- err
	}()
	waitQueued(t, b, false, 3)
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	for !b.ImageStats().Closed {
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	<-closed
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatalf("work queued before Close: %v", err)
	}
	if _, err := b.EncodeImages(context.Background(), rowsOf(6, 1), 1); !errors.Is(err, models.ErrClosed) {
		t.Fatalf("after Close: got %v, want ErrClosed", err)
	}
}

// TestBatcherRealModel runs a tiny random CLIP model through a batcher from
// many goroutines and compares every caller's rows with a direct run of the
// same model on that caller's input alone.
func TestBatcherRealModel(t *testing.T) {
	dir := t.TempDir()
	o := convert.RandomOptions{Preset: clip.PresetTiny, Kind: models.KindCLIP, Seed: 5, Out: dir,
		Vocab: text.SyntheticVocab(200), Synthetic: true, Build: clip.BuildOptions{Fused: true}}
	man, err := convert.Random(o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.Open(dir, models.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Skipf("onnxruntime unavailable (run `make setup`): %v", err)
	}
	defer m.Close()
	b := newBatcher(t, m, models.BatcherOptions{MaxBatch: 4, MaxWait: 2 * time.Millisecond})
	size := man.Image.CropSize
	rowLen := 3 * size * size
	ctxLen := man.Text.ContextLength
	rng := rand.New(rand.NewPCG(1, 2))
	type call struct {
		pixels []float32
		ids    []int64
		n      int
	}
	calls := make([]call, 12)
	for c := range calls {
		n := 1 + c%3
		calls[c] = call{pixels: make([]float32, n*rowLen), ids: make([]int64, n*ctxLen), n: n}
		for i := range calls[c].pixels {
			calls[c].pixels[i] = float32(rng.NormFloat64())
		}
		for k := range n {
			row := calls[c].ids[k*ctxLen : (k+1)*ctxLen]
			row[0] = 1
			row[1] = int64(2 + (c+k)%3) // repeats across calls: merged in batches
			row[2] = 200                // the largest id: the pooling position
		}
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			got, err := b.EncodeImages(ctx, c.pixels, c.n)
			if err != nil {
				t.Error(err)
				return
			}
			want, err := m.EncodeImages(ctx, c.pixels, c.n)
			if err != nil {
				t.Error(err)
				return
			}
			closeTo(t, "image", got, want)
			got, err = b.EncodeTexts(ctx, c.ids, c.n)
			if err != nil {
				t.Error(err)
				return
			}
			want, err = m.EncodeTexts(ctx, c.ids, c.n)
			if err != nil {
				t.Error(err)
				return
			}
			closeTo(t, "text", got, want)
		}()
	}
	wg.Wait()
}

func closeTo(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d outputs, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s output %d: %d values, want %d", what, i, len(got[i]), len(want[i]))
			return
		}
		for k := range got[i] {
			if d := math.Abs(float64(got[i][k] - want[i][k])); d > 1e-5 {
				t.Errorf("%s output %d value %d: %v, want %v", what, i, k, got[i][k], want[i][k])
				return
			}
		}
	}
}
