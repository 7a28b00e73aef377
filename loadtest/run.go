package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/icthp/icthp/api"
)

// Error keys in Report.ErrorsByCode besides HTTP status codes ("429", "500").
const (
	ErrRefused         = "refused"          // connection refused: nothing listens (the clients back off)
	ErrTransport       = "transport"        // no HTTP response: connection reset, not HTTP, …
	ErrTimeout         = "timeout"          // Config.Timeout passed before the whole response was read
	ErrInvalidResponse = "invalid_response" // a 2xx whose body is not a JSON object
)

// Back-off of a closed-loop client after a refused connection: it waits
// before its next request, twice as long after each refusal in a row, so
// that a server that is down (or restarting) is not spun against.
const (
	backoffMin = 5 * time.Millisecond
	backoffMax = 500 * time.Millisecond
)

// Run sends requests to cfg.URL until the configured duration or number of
// requests is reached, or ctx is cancelled, and reports what it measured.
// Requests in flight when the bound is reached are waited for (each at most
// cfg.Timeout); when ctx is cancelled they are abandoned and counted as
// Report.Canceled, and the report (Interrupted set) is still returned.
// Progress lines go to progress unless it is nil. The error is non-nil only
// for a configuration that Validate rejects.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.close()
	r.start = time.Now()
	stopProgress := r.startProgress(progress, isTerminal(progress))
	if r.cfg.Rate > 0 {
		r.openLoop(ctx)
	} else {
		r.closedLoop(ctx)
	}
	end := time.Now()
	stopProgress()
	return r.report(end.Sub(r.start), ctx.Err() != nil), nil
}

// newRunner applies the defaults, builds the request bodies and the HTTP
// client; close releases the client's idle connections.
func newRunner(cfg Config) (*runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	base, _ := ValidateURL(cfg.URL)
	client, err := api.NewClient(base.String())
	if err != nil {
		return nil, err
	}
	bodies, err := newPayloads(cfg)
	if err != nil {
		return nil, err
	}
	r := &runner{
		cfg:    cfg,
		api:    client,
		path:   "/v1/" + cfg.Route,
		target: strings.TrimRight(base.String(), "/") + "/v1/" + cfg.Route,
		bodies: bodies,
		rec:    recorder{byCode: map[string]int64{}},
	}
	workers := cfg.Concurrency
	if cfg.Rate > 0 {
		workers = cfg.MaxInflight
	}
	tr := &http.Transport{
		Proxy: nil, // only ever the URL given
		DialContext: (&net.Dialer{
			Timeout:   min(cfg.Timeout, 10*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: min(cfg.Timeout, 10*time.Second),
	}
	client.HTTP = &http.Client{
		Transport: tr,
		// Never follow a redirect: a 3xx is an answer, counted as an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client.Token = cfg.Token
	r.close = tr.CloseIdleConnections
	return r, nil
}

type runner struct {
	cfg      Config
	api      *api.Client
	path     string // /v1/ROUTE, under the URL's path prefix
	target   string // the full URL, for the report
	bodies   *payloads
	close    func()
	start    time.Time
	nextBody atomic.Uint64
	inflight atomic.Int64
	rec      recorder
}

// closedLoop runs cfg.Concurrency clients, each sending its next request as
// soon as the previous one is answered; latency runs from the send.
func (r *runner) closedLoop(ctx context.Context) {
	stop := make(chan struct{})
	var deadline *time.Timer
	if r.cfg.Duration > 0 {
		deadline = time.AfterFunc(r.cfg.Duration, func() { close(stop) })
		defer deadline.Stop()
	}
	var issued atomic.Int64
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			wait := time.Duration(0) // back-off after refused connections
			for {
				if wait > 0 && !sleep(ctx, stop, wait) {
					return
				}
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				if r.cfg.Requests > 0 && issued.Add(1) > int64(r.cfg.Requests) {
					return
				}
				if r.do(ctx, time.Now()) == ErrRefused {
					wait = min(backoffMax, max(backoffMin, 2*wait))
				} else {
					wait = 0
				}
			}
		})
	}
	wg.Wait()
}

// sleep waits for d; false when the run ended meanwhile.
func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
	case <-ctx.Done():
	}
	return false
}

// openLoop starts requests at Poisson arrival times, whatever the answers do,
// with at most cfg.MaxInflight in flight: an arrival that finds the cap
// reached is dropped (counted, not sent). Each request's latency runs from
// its scheduled arrival time, not from when it got sent, so that a server
// (or a client) that falls behind shows as latency instead of being hidden
// by fewer samples (coordinated omission).
func (r *runner) openLoop(ctx context.Context) {
	seed := r.cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	sem := make(chan struct{}, r.cfg.MaxInflight)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()

	end := r.start.Add(r.cfg.Duration)
	next := r.start
	for arrivals := 0; r.cfg.Requests == 0 || arrivals < r.cfg.Requests; arrivals++ {
		next = next.Add(time.Duration(rng.ExpFloat64() / r.cfg.Rate * float64(time.Second)))
		wake := next
		last := r.cfg.Duration > 0 && !next.Before(end)
		if last {
			wake = end // stay until the window closes, so that elapsed covers it
		}
		if d := time.Until(wake); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		if last {
			break
		}
		select {
		case sem <- struct{}{}:
			wg.Add(1)
			go func(sched time.Time) {
				defer wg.Done()
				r.do(ctx, sched)
				<-sem
			}(next)
		default:
			r.rec.drop()
		}
	}
	if r.cfg.arrivalsDone != nil {
		r.cfg.arrivalsDone()
	}
}

// do sends one request and records its outcome; latency runs from sched.
// It returns the error key it recorded ("" for a success).
func (r *runner) do(ctx context.Context, sched time.Time) string {
	r.inflight.Add(1)
	defer r.inflight.Add(-1)
	body, ctype := r.bodies.request(r.nextBody.Add(1) - 1)
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var answer jsonObject
	err := r.api.Do(rctx, http.MethodPost, r.path, ctype, body, nil, &answer)
	var ae *api.Error
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		r.rec.success(time.Since(sched))
		return ""
	case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
		r.rec.throttle(time.Since(sched))
		return "429"
	case errors.As(err, &ae):
		code := strconv.Itoa(ae.Status)
		r.rec.fail(code)
		return code
	case errors.As(err, &se), errors.As(err, &te), errors.Is(err, errNotObject):
		r.rec.fail(ErrInvalidResponse)
		return ErrInvalidResponse
	}
	return r.failed(ctx, rctx, err)
}

// jsonObject accepts any JSON object, and nothing else.
type jsonObject struct{}

var errNotObject = errors.New("the answer is not a JSON object")

func (jsonObject) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return errNotObject
	}
	return nil
}

// failed records a request that got no (complete) response, and returns
// the key it recorded.
func (r *runner) failed(ctx, rctx context.Context, err error) string {
	var ne net.Error
	key := ErrTransport
	switch {
	case ctx.Err() != nil:
		r.rec.cancel()
		return ""
	case rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		key = ErrTimeout
	case errors.As(err, &ne) && ne.Timeout():
		key = ErrTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		key = ErrRefused
	}
	r.rec.fail(key)
	return key
}

// recorder gathers the outcomes; it is shared by every client.
type recorder struct {
	mu       sync.Mutex
	hist     Histogram // latency in ns of successful requests
	hist429  Histogram // latency in ns of 429 answers
	ok       int64
	errs     int64
	byCode   map[string]int64
	dropped  int64
	canceled int64
}

func (c *recorder) success(d time.Duration) {
	c.mu.Lock()
	c.ok++
	c.hist.Record(int64(d))
	c.mu.Unlock()
}

// throttle records a 429: an error, whose latency is kept apart from the
// answered requests'.
func (c *recorder) throttle(d time.Duration) {
	c.mu.Lock()
	c.errs++
	c.byCode["429"]++
	c.hist429.Record(int64(d))
	c.mu.Unlock()
}

func (c *recorder) fail(code string) {
	c.mu.Lock()
	c.errs++
	c.byCode[code]++
	c.mu.Unlock()
}

func (c *recorder) drop() {
	c.mu.Lock()
	c.dropped++
	c.mu.Unlock()
}

func (c *recorder) cancel() {
	c.mu.Lock()
	c.canceled++
	c.mu.Unlock()
}

// isTerminal reports whether w is a terminal (an *os.File on a tty).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// startProgress writes a progress line every second, rewritten in place with
// \r, when tty is set (w is a terminal), and a plain line every five seconds
// otherwise. The function it returns stops it (and ends the terminal line).
func (r *runner) startProgress(w io.Writer, tty bool) (stop func()) {
	if w == nil {
		return func() {}
	}
	every := 5 * time.Second
	if tty {
		every = time.Second
	}
	if r.cfg.ProgressInterval > 0 {
		every = r.cfg.ProgressInterval
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		var lastN int64
		lastT := r.start
		wrote := false
		for {
			select {
			case <-done:
				if tty && wrote {
					fmt.Fprintln(w)
				}
				return
			case now := <-t.C:
				line, n := r.progressLine(now, lastN, lastT)
				lastN, lastT = n, now
				if tty {
					fmt.Fprintf(w, "\r%s\x1b[K", line)
				} else {
					fmt.Fprintln(w, line)
				}
				wrote = true
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// progressLine describes the run so far; n is the number of answered
// requests, for the rate over the next period.
func (r *runner) progressLine(now time.Time, lastN int64, lastT time.Time) (string, int64) {
	c := &r.rec
	c.mu.Lock()
	n := c.ok + c.errs
	ok, errs, dropped := c.ok, c.errs, c.dropped
	p50 := c.hist.Quantile(0.50) / 1e6
	p99 := c.hist.Quantile(0.99) / 1e6
	c.mu.Unlock()
	rate := 0.0
	if dt := now.Sub(lastT).Seconds(); dt > 0 {
		rate = float64(n-lastN) / dt
	}
	s := fmt.Sprintf("loadtest %5.1fs: %d requests (%d ok, %d errors", now.Sub(r.start).Seconds(), n, ok, errs)
	if r.cfg.Rate > 0 {
		s += fmt.Sprintf(", %d dropped", dropped)
	}
	s += fmt.Sprintf("), %d in flight, %.1f req/s, p50 %.1f ms, p99 %.1f ms", r.inflight.Load(), rate, p50, p99)
	return s, n
}
