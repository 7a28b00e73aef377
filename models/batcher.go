package models

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/x448/float16"
)

// ErrOverloaded means a batcher refused work at once because its queue is
// full or because the work would not finish before the caller's deadline.
// The error is an *OverloadError, which says why and when to retry.
var ErrOverloaded = errors.New("overloaded")

// ErrClosed means the batcher was closed and takes no more work.
var ErrClosed = errors.New("batcher closed")

// Reasons an OverloadError gives.
const (
	ReasonQueueFull = "queue_full" // the queue holds QueueSize items already
	ReasonDeadline  = "deadline"   // the estimated wait passes the caller's deadline
)

// OverloadError is the refusal of a batcher.
type OverloadError struct {
	Reason string // ReasonQueueFull or ReasonDeadline
	// RetryAfter is the estimated time until the queue has drained what it
	// holds now; zero when there is no estimate yet, or when the queue is
	// empty and the request alone needs longer than its deadline (retrying
	// the same request cannot help then).
	RetryAfter time.Duration
	// Needed is the estimated time to finish this request from now (the
	// queue ahead of it plus its own run), for deadline refusals.
	Needed time.Duration
}

func (e *OverloadError) Error() string {
	switch e.Reason {
	case ReasonDeadline:
		if e.RetryAfter <= 0 {
			// Nothing is queued: the request itself is the problem.
			return fmt.Sprintf("%v: this request alone needs about %v, more than its deadline allows (allow a longer deadline or send fewer images)", ErrOverloaded, e.Needed.Round(time.Millisecond))
		}
		return fmt.Sprintf("%v: the queue would not reach this request before its deadline (about %v needed; retry after %v)", ErrOverloaded, e.Needed.Round(time.Millisecond), e.RetryAfter.Round(time.Millisecond))
	default:
		return fmt.Sprintf("%v: queue full (retry after %v)", ErrOverloaded, e.RetryAfter.Round(time.Millisecond))
	}
}

func (e *OverloadError) Unwrap() error { return ErrOverloaded }

// Defaults of BatcherOptions.
const (
	DefaultBatchSize  = 16
	DefaultBatchWait  = 2 * time.Millisecond
	DefaultQueueItems = 512
)

// BatcherOptions configure a Batcher.
type BatcherOptions struct {
	// Name labels the batcher's metrics (the model name: "ict", "hp").
	Name string
	// MaxBatch is the most items one run takes (default DefaultBatchSize);
	// larger requests are split over several runs.
	MaxBatch int
	// MaxWait is how long the oldest queued item may wait for the batch to
	// fill before a smaller batch runs (default DefaultBatchWait; negative
	// means run at once). A batch never waits while the model is busy: the
	// queue fills while the previous batch runs.
	MaxWait time.Duration
	// QueueSize bounds the items waiting per graph (default
	// DefaultQueueItems). A request that does not fit is refused with an
	// OverloadError, except that a request arriving at an empty queue is
	// always taken, however large.
	QueueSize int
	// Workers is how many batches of one graph may run at once (default 1:
	// on a CPU one run already uses every core).
	Workers int
	// Metrics, when set, receives the batcher's collectors, shared by every
	// batcher registered there and told apart by the model and graph labels.
	Metrics prometheus.Registerer
}

// BatchEncoder is what a Batcher sits in front of; *Model is one.
type BatchEncoder interface {
	EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error)
	EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error)
}

// HalfEncoder runs a vision graph on binary16 rows: *Model, and a *Batcher
// in front of one.
type HalfEncoder interface {
	// HalfPixels says whether the vision graph takes float16 pixels (an
	// --fp16 model directory of format 2): then EncodeImagesHalf feeds it
	// as it is, with no float32 row and no rounding pass.
	HalfPixels() bool
	// EncodeImagesHalf is EncodeImages for rows of binary16 values.
	EncodeImagesHalf(ctx context.Context, pixels []float16.Float16, n int) ([][]float32, error)
}

// Batcher is a dynamic batcher in front of a model: concurrent
// EncodeImages (and EncodeTexts) calls are queued, gathered into runs of up
// to MaxBatch items, and each caller gets its own rows back, as if it had
// called the model alone. Identical token rows within one text batch are
// encoded once. Queued work whose context ends is dropped before it runs.
// The queue is bounded, and work that would wait past its context's deadline
// (estimated from the recent cost per item) is refused at once.
//
// The vision graph has one queue, of its own element type: float32 rows, or
// binary16 rows (EncodeImagesHalf) when the model is a HalfEncoder whose
// graph takes float16 pixels. Callers of the other type are converted
// (rounded to nearest-even, or widened exactly) and share that queue.
type Batcher struct {
	images *lane[float32]         // nil when the graph takes float16 pixels
	halves *lane[float16.Float16] // nil otherwise
	vision queue                  // whichever of the two is set
	texts  *lane[int64]
}

// queue is what the Batcher asks of a lane whatever its element type.
type queue interface {
	stats() Stats
	close()
}

// NewBatcher starts a batcher in front of enc; Close stops it.
func NewBatcher(enc BatchEncoder, o BatcherOptions) (*Batcher, error) {
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultBatchSize
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultBatchWait
	}
	if o.MaxWait < 0 {
		o.MaxWait = 0
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueItems
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	m, err := newBatcherMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	b := &Batcher{texts: newLane(o, "text", enc.EncodeTexts, true, m)}
	if h, ok := enc.(HalfEncoder); ok && h.HalfPixels() {
		b.halves = newLane(o, "vision", h.EncodeImagesHalf, false, m)
		b.vision = b.halves
	} else {
		b.images = newLane(o, "vision", enc.EncodeImages, false, m)
		b.vision = b.images
	}
	return b, nil
}

// EncodeImages queues n preprocessed images (NCHW float32, one after
// another) and returns the model's outputs for them, n rows each. pixels
// must not be changed until the call returns; if ctx ends first, the call
// returns at once and the images are dropped if they have not started.
// For a graph that takes float16 pixels the rows are rounded first (as
// Session.RunFloat would round them): EncodeImagesHalf spares that.
func (b *Batcher) EncodeImages(ctx context.Context, pixels []float32, n int) ([][]float32, error) {
	if b.halves != nil {
		h := make([]float16.Float16, len(pixels))
		HalfFromFloat32(h, pixels)
		return b.halves.do(ctx, h, n)
	}
	return b.images.do(ctx, pixels, n)
}

// HalfPixels says whether the vision graph takes float16 pixels, so that
// EncodeImagesHalf hands the callers' rows to it as they are.
func (b *Batcher) HalfPixels() bool { return b.halves != nil }

// EncodeImagesHalf is EncodeImages for binary16 rows: gathered as they
// are for a graph that takes float16 pixels, widened (exactly) for one
// that takes float32.
func (b *Batcher) EncodeImagesHalf(ctx context.Context, pixels []float16.Float16, n int) ([][]float32, error) {
	if b.images != nil {
		f := make([]float32, len(pixels))
		floatFromHalf(f, pixels)
		return b.images.do(ctx, f, n)
	}
	return b.halves.do(ctx, pixels, n)
}

// EncodeTexts queues n rows of token ids; as EncodeImages.
func (b *Batcher) EncodeTexts(ctx context.Context, ids []int64, n int) ([][]float32, error) {
	return b.texts.do(ctx, ids, n)
}

// Close refuses new work, lets queued work finish, and waits for it.
func (b *Batcher) Close() error {
	b.vision.close()
	b.texts.close()
	return nil
}

// Stats is a snapshot of one graph's queue.
type Stats struct {
	Queued  int // items waiting
	Running int // items in runs now
	// PerItem is the recent cost of one item in a run (an exponentially
	// weighted average over runs); zero before the first run.
	PerItem time.Duration
	Closed  bool // Close has begun
}

// ImageStats and TextStats are snapshots of the two queues.
func (b *Batcher) ImageStats() Stats { return b.vision.stats() }
func (b *Batcher) TextStats() Stats  { return b.texts.stats() }

// batcherMetrics are shared by every batcher on one registry.
type batcherMetrics struct {
	depth     *prometheus.GaugeVec
	wait      *prometheus.HistogramVec
	size      *prometheus.HistogramVec
	infer     *prometheus.HistogramVec
	rejected  *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	deduped   *prometheus.CounterVec
	runErrors *prometheus.CounterVec
}

func newBatcherMetrics(reg prometheus.Registerer) (*batcherMetrics, error) {
	labels := []string{"model", "graph"}
	m := &batcherMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "icthp_batcher_queue_depth",
			Help: "Items waiting in the batcher's queue."}, labels),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_batcher_queue_wait_seconds",
			Help:    "Time from a request's arrival at the batcher to the start of its first run.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, labels),
		size: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_batcher_batch_size",
			Help:    "Items per model run (before identical token rows are merged).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}, labels),
		infer: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_inference_seconds",
			Help:    "Duration of one model run.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, labels),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_batcher_rejected_total",
			Help: "Requests the batcher refused at once, by reason (queue_full, deadline, closed)."}, append(labels, "reason")),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_batcher_dropped_items_total",
			Help: "Queued items dropped before running because their request's context ended."}, labels),
		deduped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_batcher_deduplicated_items_total",
			Help: "Items not run because an identical row was in the same batch."}, labels),
		runErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_batcher_run_errors_total",
			Help: "Model runs that failed."}, labels),
	}
	if reg == nil {
		return m, nil
	}
	// A second batcher on the same registry reuses the first one's vectors.
	var err error
	share(reg, &err, &m.depth)
	share(reg, &err, &m.wait)
	share(reg, &err, &m.size)
	share(reg, &err, &m.infer)
	share(reg, &err, &m.rejected)
	share(reg, &err, &m.dropped)
	share(reg, &err, &m.deduped)
	share(reg, &err, &m.runErrors)
	return m, err
}

// share replaces *c by the collector registered under its name (registerShared)
// unless an earlier one failed (*err).
func share[C prometheus.Collector](reg prometheus.Registerer, err *error, c *C) {
	if *err == nil {
		*c, *err = registerShared(reg, *c)
	}
}

func registerShared[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex, nil
			}
		}
		return c, fmt.Errorf("batcher metrics: %w", err)
	}
	return c, nil
}

// request is one caller's call, queued until all its rows have run.
type request[T any] struct {
	ctx    context.Context
	data   []T
	n      int
	enq    time.Time
	next   int // first row not yet handed to a run
	ran    int // rows whose outputs are in outs
	outs   [][]float32
	err    error
	done   chan struct{}
	closed bool // done is closed
	queued bool // in the lane's queue
}

// part is a range of a request's rows within one run.
type part[T any] struct {
	r      *request[T]
	lo, hi int
}

type lane[T any] struct {
	model, graph string
	run          func(context.Context, []T, int) ([][]float32, error)
	dedup        bool
	maxBatch     int
	maxWait      time.Duration
	capacity     int
	workers      int
	m            *batcherMetrics

	mu      sync.Mutex
	queue   []*request[T]
	queued  int // rows waiting (not yet handed to a run)
	running int // rows in runs
	perItem time.Duration
	started bool
	closed  bool
	kick    chan struct{} // wakes one idle worker
	stop    chan struct{} // closed by close
	wg      sync.WaitGroup
	// bufs holds the buffers (*[]T) that runs of several requests gather
	// their rows into: a batch of images is megabytes, and allocating it
	// afresh for every run cost the server a tenth of its CPU under load
	// (clearing and collecting it; RELIABILITY.md, overload).
	bufs sync.Pool
}

func newLane[T any](o BatcherOptions, graph string, run func(context.Context, []T, int) ([][]float32, error), dedup bool, m *batcherMetrics) *lane[T] {
	return &lane[T]{model: o.Name, graph: graph, run: run, dedup: dedup, maxBatch: o.MaxBatch,
		maxWait: o.MaxWait, capacity: o.QueueSize, workers: o.Workers, m: m,
		kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// labels are the metric labels of this lane.
func (l *lane[T]) labels() prometheus.Labels {
	return prometheus.Labels{"model": l.model, "graph": l.graph}
}

func (l *lane[T]) reject(reason string) {
	l.m.rejected.With(prometheus.Labels{"model": l.model, "graph": l.graph, "reason": reason}).Inc()
}

func (l *lane[T]) stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Queued: l.queued, Running: l.running, PerItem: l.perItem, Closed: l.closed}
}

// estimate is how long until n more items queued now would be done, and how
// long until the current queue has drained (l.mu held).
func (l *lane[T]) estimate(n int) (done, drain time.Duration) {
	if l.perItem == 0 {
		return 0, 0
	}
	per := l.perItem / time.Duration(l.workers)
	drain = time.Duration(l.queued+l.running) * per
	return drain + time.Duration(n)*per + l.maxWait, drain
}

func (l *lane[T]) do(ctx context.Context, data []T, n int) ([][]float32, error) {
	if n <= 0 {
		return l.run(ctx, data, n)
	}
	if len(data)%n != 0 {
		return nil, fmt.Errorf("batcher: %d values do not split into %d rows", len(data), n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request[T]{ctx: ctx, data: data, n: n, enq: time.Now(), done: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.reject("closed")
		return nil, ErrClosed
	}
	done, drain := l.estimate(n)
	if l.queued > 0 && l.queued+n > l.capacity {
		l.mu.Unlock()
		l.reject(ReasonQueueFull)
		return nil, &OverloadError{Reason: ReasonQueueFull, RetryAfter: drain}
	}
	if dl, ok := ctx.Deadline(); ok && r.enq.Add(done).After(dl) {
		l.mu.Unlock()
		l.reject(ReasonDeadline)
		return nil, &OverloadError{Reason: ReasonDeadline, RetryAfter: drain, Needed: done}
	}
	if !l.started {
		l.started = true
		for range l.workers {
			l.wg.Add(1)
			go l.loop()
		}
	}
	r.queued = true
	l.queue = append(l.queue, r)
	l.queued += n
	l.m.depth.With(l.labels()).Set(float64(l.queued))
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.outs, r.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.closed { // finished as the context ended: the answer is there
		return r.outs, r.err
	}
	l.abandon(r, ctx.Err())
	return nil, ctx.Err()
}

// abandon takes r's waiting rows off the queue and finishes it with err
// (l.mu held). Rows already in a run complete, and their outputs are
// discarded.
func (l *lane[T]) abandon(r *request[T], err error) {
	if r.queued {
		for i, q := range l.queue {
			if q == r {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				break
			}
		}
		r.queued = false
		left := r.n - r.next
		l.queued -= left
		r.next = r.n
		l.m.depth.With(l.labels()).Set(float64(l.queued))
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			l.m.dropped.With(l.labels()).Add(float64(left))
		}
	}
	l.finish(r, err)
}

func (l *lane[T]) finish(r *request[T], err error) {
	if r.closed {
		return
	}
	if err != nil {
		r.err, r.outs = err, nil
	}
	r.closed = true
	close(r.done)
}

func (l *lane[T]) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.stop)
	l.mu.Unlock()
	l.wg.Wait()
}

// loop is one worker: it waits for work, lets the batch fill for at most
// maxWait after the oldest item arrived, runs it, and routes the results.
func (l *lane[T]) loop() {
	defer l.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-l.kick:
			case <-l.stop:
			}
			continue
		}
		if l.queued < l.maxBatch && !l.closed {
			if wait := time.Until(l.queue[0].enq.Add(l.maxWait)); wait > 0 {
				l.mu.Unlock()
				timer.Reset(wait)
				select {
				case <-l.kick:
					timer.Stop()
				case <-timer.C:
				case <-l.stop:
					timer.Stop()
				}
				continue
			}
		}
		parts, rows := l.take()
		more := len(l.queue) > 0
		l.mu.Unlock()
		if more { // let another idle worker start on the rest
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
		if rows > 0 {
			l.runBatch(parts, rows)
		}
	}
}

// take hands up to maxBatch waiting rows to a run, FIFO, dropping requests
// whose context has ended (l.mu held).
func (l *lane[T]) take() ([]part[T], int) {
	var parts []part[T]
	rows := 0
	now := time.Now()
	for len(l.queue) > 0 && rows < l.maxBatch {
		r := l.queue[0]
		if err := r.ctx.Err(); err != nil {
			l.abandon(r, err)
			continue
		}
		if r.next == 0 {
			l.m.wait.With(l.labels()).Observe(now.Sub(r.enq).Seconds())
		}
		k := min(r.n-r.next, l.maxBatch-rows)
		parts = append(parts, part[T]{r: r, lo: r.next, hi: r.next + k})
		r.next += k
		rows += k
		l.queued -= k
		if r.next == r.n {
			r.queued = false
			l.queue[0] = nil
			l.queue = l.queue[1:]
		}
	}
	l.running += rows
	l.m.depth.With(l.labels()).Set(float64(l.queued))
	return parts, rows
}

// runBatch runs the rows of parts as one batch and routes each part's
// output rows back to its request.
func (l *lane[T]) runBatch(parts []part[T], rows int) {
	rowLen := len(parts[0].r.data) / parts[0].r.n
	var in []T
	if len(parts) == 1 {
		p := parts[0]
		in = p.r.data[p.lo*rowLen : p.hi*rowLen] // no copy for a lone request
	} else {
		buf := l.gatherBuf(rows, rowLen)
		defer l.bufs.Put(buf) // the run is over by then: nothing keeps in
		in = (*buf)[:0]
		for _, p := range parts {
			in = append(in, p.r.data[p.lo*rowLen:p.hi*rowLen]...)
		}
	}
	// where[i] is the row of the run that batch row i reads.
	var where []int
	runRows := rows
	if l.dedup && rows > 1 {
		in, where = dedupRows(in, rows, rowLen)
		runRows = len(in) / rowLen
		if saved := rows - runRows; saved > 0 {
			l.m.deduped.With(l.labels()).Add(float64(saved))
		}
	}
	l.m.size.With(l.labels()).Observe(float64(rows))
	start := time.Now()
	// The run serves many callers, so no single caller's context may stop
	// it; callers that leave simply stop waiting.
	outs, err := l.run(context.Background(), in, runRows)
	took := time.Since(start)
	l.m.infer.With(l.labels()).Observe(took.Seconds())
	if err == nil {
		for i, o := range outs {
			if len(o)%runRows != 0 {
				err = fmt.Errorf("batcher: output %d has %d values for %d rows", i, len(o), runRows)
			}
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.running -= rows
	if err != nil {
		l.m.runErrors.With(l.labels()).Inc()
		for _, p := range parts {
			l.abandon(p.r, err)
		}
		return
	}
	per := took / time.Duration(rows)
	if l.perItem == 0 {
		l.perItem = per
	} else {
		l.perItem = (4*l.perItem + per) / 5
	}
	l.deliver(parts, outs, runRows, where)
}

// gatherBuf is a pooled buffer with room for rows rows of rowLen values:
// a new one has room for a full batch, so that one buffer serves every
// run size.
func (l *lane[T]) gatherBuf(rows, rowLen int) *[]T {
	if b, ok := l.bufs.Get().(*[]T); ok && cap(*b) >= rows*rowLen {
		return b
	}
	b := make([]T, 0, max(rows, l.maxBatch)*rowLen)
	return &b
}

// deliver copies each part's rows of the run's outputs (runRows rows each,
// batch row i read from run row where[i] when deduplicated) into its
// request, and finishes the requests all of whose rows have run. l.mu is
// held.
func (l *lane[T]) deliver(parts []part[T], outs [][]float32, runRows int, where []int) {
	at := 0
	for _, p := range parts {
		r := p.r
		if r.closed {
			at += p.hi - p.lo
			continue
		}
		if r.outs == nil {
			r.outs = make([][]float32, len(outs))
			for i, o := range outs {
				r.outs[i] = make([]float32, r.n*(len(o)/runRows))
			}
		}
		for i, o := range outs {
			w := len(o) / runRows
			for k := p.lo; k < p.hi; k++ {
				src := at + k - p.lo
				if where != nil {
					src = where[src]
				}
				copy(r.outs[i][k*w:(k+1)*w], o[src*w:(src+1)*w])
			}
		}
		at += p.hi - p.lo
		r.ran += p.hi - p.lo
		if r.ran == r.n {
			l.finish(r, nil)
		}
	}
}

// dedupRows returns the distinct rows of in (rows × rowLen) in order of
// first appearance and, for each original row, the index of its distinct
// row.
func dedupRows[T any](in []T, rows, rowLen int) ([]T, []int) {
	seen := make(map[string]int, rows)
	where := make([]int, rows)
	var zero T
	size := int(unsafe.Sizeof(zero))
	var out []T
	for i := range rows {
		row := in[i*rowLen : (i+1)*rowLen]
		key := string(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(row))), len(row)*size))
		j, ok := seen[key]
		if !ok {
			j = len(seen)
			seen[key] = j
			if out != nil {
				out = append(out, row...)
			}
		} else if out == nil { // the first repeat: copy the distinct rows so far
			out = make([]T, 0, len(in))
			for k := range i {
				if where[k] == len(out)/rowLen {
					out = append(out, in[k*rowLen:(k+1)*rowLen]...)
				}
			}
		}
		where[i] = j
	}
	if out == nil {
		return in, nil
	}
	return out, where
}
