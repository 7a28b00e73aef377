package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icthp/icthp/api"
)

// testImages writes a folder with three "images" (distinct bytes; the load
// generator never decodes them) and files it must ignore.
func testImages(t *testing.T) (dir string, files map[string][]byte) {
	t.Helper()
	dir = t.TempDir()
	files = map[string][]byte{
		"a.png":  append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1, 2, 3}, 100)...),
		"b.JPG":  append([]byte{0xff, 0xd8, 0xff}, bytes.Repeat([]byte("jpeg"), 50)...),
		"c.webp": []byte("RIFF\x10\x00\x00\x00WEBPVP8 some bytes \x00\xff"),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.png"), 0o755)
	return dir, files
}

func loadTestImages(t *testing.T) ([]Image, map[string][]byte) {
	t.Helper()
	dir, files := testImages(t)
	imgs, err := LoadImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	return imgs, files
}

// runCtx bounds every test run, so that a bug fails the test instead of
// hanging it.
func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRun(t *testing.T, cfg Config) *Report {
	t.Helper()
	start := time.Now()
	rep, err := Run(runCtx(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interrupted {
		t.Fatalf("run hit the test's safety deadline after %v", time.Since(start))
	}
	return rep
}

func TestLoadImagesAndPrompts(t *testing.T) {
	imgs, files := loadTestImages(t)
	var names []string
	for _, im := range imgs {
		names = append(names, im.Name)
		if !bytes.Equal(im.Data, files[im.Name]) {
			t.Errorf("%s: bytes differ", im.Name)
		}
	}
	if want := []string{"a.png", "b.JPG", "c.webp"}; !slices.Equal(names, want) {
		t.Errorf("images %v, want %v", names, want)
	}
	if _, err := LoadImages(t.TempDir()); err == nil {
		t.Error("empty folder: want an error")
	}
	if _, err := LoadImages(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing folder: want an error")
	}
	p := filepath.Join(t.TempDir(), "prompts.txt")
	os.WriteFile(p, []byte("first prompt\n\n  second \"quoted\" prompt  \r\n"), 0o644)
	ps, err := LoadPrompts(p)
	if err != nil || !slices.Equal(ps, []string{"first prompt", `second "quoted" prompt`}) {
		t.Errorf("prompts %q, %v", ps, err)
	}
}

// shapeServer checks each request as an icthp server would receive it and
// counts them.
type shapeServer struct {
	t       *testing.T
	route   string
	k       int
	token   string
	prompts []string
	files   map[string][]byte
	count   atomic.Int64
	mu      sync.Mutex
	seen    map[string]bool // image names seen
}

func (s *shapeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.count.Add(1)
	t := s.t
	if r.Method != http.MethodPost || r.URL.Path != "/prefix/v1/"+s.route {
		t.Errorf("got %s %s, want POST /prefix/v1/%s", r.Method, r.URL.Path, s.route)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+s.token {
		t.Errorf("Authorization %q, want bearer %q", got, s.token)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	type item struct {
		Prompt string `json:"prompt"`
		Image  string `json:"image"`
	}
	var body struct {
		Prompt *string  `json:"prompt"`
		Images []string `json:"images"`
		Items  []item   `json:"items"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Errorf("body: %v", err)
		http.Error(w, `{"error":{"code":"bad_request","message":"bad json"}}`, 400)
		return
	}
	var images []string
	var prompts []string
	switch s.route {
	case RouteReward:
		if body.Prompt != nil || body.Images != nil {
			t.Errorf("reward body has prompt/images")
		}
		for _, it := range body.Items {
			images = append(images, it.Image)
			prompts = append(prompts, it.Prompt)
		}
	default:
		if body.Items != nil || body.Prompt == nil {
			t.Errorf("%s body: items %v, prompt %v", s.route, body.Items, body.Prompt)
		} else {
			prompts = append(prompts, *body.Prompt)
		}
		images = body.Images
	}
	if len(images) != s.k {
		t.Errorf("%d images in a request, want %d", len(images), s.k)
	}
	for _, p := range prompts {
		if !slices.Contains(s.prompts, p) {
			t.Errorf("unknown prompt %q", p)
		}
	}
	for _, b64 := range images {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Errorf("image is not base64: %v", err)
			continue
		}
		found := ""
		for n, b := range s.files {
			if bytes.Equal(raw, b) {
				found = n
			}
		}
		if found == "" {
			t.Errorf("image of %d bytes matches no file", len(raw))
		}
		s.mu.Lock()
		s.seen[found] = true
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"scores":[]}`)
}

func TestClosedLoopRoutesAndBodies(t *testing.T) {
	imgs, files := loadTestImages(t)
	prompts := []string{"a red apple", `a "quoted" prompt with \ and ünïcode`}
	for _, tc := range []struct {
		route string
		k     int // images per request asked for (0: default)
		wantK int
	}{
		{RouteScore, 0, 1},
		{RouteRank, 0, 4},
		{RouteReward, 0, 1},
		{RouteReward, 3, 3},
		{RouteScore, 2, 2},
	} {
		t.Run(tc.route, func(t *testing.T) {
			s := &shapeServer{t: t, route: tc.route, k: tc.wantK, token: "s3cret-token",
				prompts: prompts, files: files, seen: map[string]bool{}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			const n = 37
			rep := mustRun(t, Config{
				URL: srv.URL + "/prefix/", Route: tc.route, Concurrency: 3, Requests: n,
				Images: imgs, ImagesPerRequest: tc.k, Prompts: prompts, Token: "s3cret-token",
				Timeout: 5 * time.Second,
			})
			if got := s.count.Load(); got != n {
				t.Errorf("server saw %d requests, want exactly %d", got, n)
			}
			if rep.Requests != n || rep.OK != n || rep.Errors != 0 || rep.Dropped != 0 {
				t.Errorf("report: requests %d ok %d errors %d dropped %d, want %d/%d/0/0",
					rep.Requests, rep.OK, rep.Errors, rep.Dropped, n, n)
			}
			if len(s.seen) != len(files) {
				t.Errorf("images sent: %v, want all of %d", s.seen, len(files))
			}
			if rep.ImagesPerRequest != tc.wantK || rep.Mode != "closed" || rep.LatencyFrom != "send" {
				t.Errorf("report: %+v", rep)
			}
			if rep.ThroughputRPS <= 0 || math.Abs(rep.ImagesPerS-rep.ThroughputRPS*float64(tc.wantK)) > 1e-6*rep.ImagesPerS {
				t.Errorf("throughput %g req/s, %g images/s", rep.ThroughputRPS, rep.ImagesPerS)
			}
			l := rep.Latency
			if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Min <= l.P50) {
				t.Errorf("latency %+v", l)
			}
		})
	}
}

// The default prompts are used when none are given; no token, no header.
func TestDefaultPromptsNoToken(t *testing.T) {
	imgs, _ := loadTestImages(t)
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Prompt string }
		json.NewDecoder(r.Body).Decode(&body)
		if !slices.Contains(DefaultPrompts, body.Prompt) || r.Header.Get("Authorization") != "" {
			bad.Add(1)
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	rep := mustRun(t, Config{URL: srv.URL, Requests: 10, Images: imgs})
	if rep.OK != 10 || bad.Load() != 0 {
		t.Errorf("ok %d, bad %d", rep.OK, bad.Load())
	}
}

func TestClosedLoopDuration(t *testing.T) {
	imgs, _ := loadTestImages(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	const dur = 200 * time.Millisecond
	rep := mustRun(t, Config{URL: srv.URL, Concurrency: 2, Duration: dur, Images: imgs})
	// The window is a lower bound of the run (requests are started until
	// it closes); the upper bound is runCtx's safety deadline.
	if rep.ElapsedS < dur.Seconds() {
		t.Errorf("a %v run reports %g s", dur, rep.ElapsedS)
	}
	if rep.Requests == 0 || rep.Errors != 0 {
		t.Errorf("requests %d errors %d", rep.Requests, rep.Errors)
	}
}

func TestOpenLoopPoissonCount(t *testing.T) {
	imgs, _ := loadTestImages(t)
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	const rate, dur = 1000.0, 500 * time.Millisecond
	rep := mustRun(t, Config{URL: srv.URL, Rate: rate, Duration: dur, Images: imgs, Seed: 42})
	// Arrivals in the window are Poisson(rate·dur): mean 500, σ ≈ 22. The
	// arrival times come from the seed alone (a late timer makes a request
	// late, not absent), so the count does not depend on the machine's load.
	arrivals := float64(rep.Requests + rep.Dropped + rep.Canceled)
	mean := rate * dur.Seconds()
	if math.Abs(arrivals-mean) > 5*math.Sqrt(mean) {
		t.Errorf("%g arrivals in %v at %g/s: more than 5σ from %g", arrivals, dur, rate, mean)
	}
	if count.Load() != rep.Requests {
		t.Errorf("server saw %d, report says %d", count.Load(), rep.Requests)
	}
	if rep.Mode != "open" || rep.LatencyFrom != "scheduled" || rep.MaxInflight != DefaultMaxInflight {
		t.Errorf("report: %+v", rep)
	}
	if rep.ElapsedS < dur.Seconds() {
		t.Errorf("elapsed %g s < window %v", rep.ElapsedS, dur)
	}

	// Without a duration, --requests N bounds the arrivals.
	count.Store(0)
	rep = mustRun(t, Config{URL: srv.URL, Rate: 1000, Requests: 50, Images: imgs})
	if rep.Requests+rep.Dropped != 50 || count.Load() != rep.Requests {
		t.Errorf("requests %d + dropped %d, server %d; want 50 arrivals", rep.Requests, rep.Dropped, count.Load())
	}
}

// A server that answers nothing until every arrival has been made, and an
// in-flight cap of 2: exactly the first two arrivals are sent, the other 98
// are counted as dropped and never sent.
func TestOpenLoopDrops(t *testing.T) {
	imgs, _ := loadTestImages(t)
	var count atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	const arrivals = 100
	cfg := Config{URL: srv.URL, Rate: 500, MaxInflight: 2, Requests: arrivals, Images: imgs, Seed: 7}
	cfg.arrivalsDone = func() { close(release) }
	rep := mustRun(t, cfg)
	if rep.Requests != 2 || rep.OK != 2 || rep.Dropped != arrivals-2 || count.Load() != 2 {
		t.Errorf("requests %d (ok %d), dropped %d, server saw %d; want 2 (2), %d, 2",
			rep.Requests, rep.OK, rep.Dropped, count.Load(), arrivals-2)
	}
	if rep.MaxInflight != 2 {
		t.Errorf("max_inflight %d", rep.MaxInflight)
	}
}

// In the open loop latency runs from the scheduled arrival, not from the
// send: a request scheduled 1 s ago and answered at once has a latency of at
// least 1 s (coordinated omission is not hidden).
func TestLatencyFromSchedule(t *testing.T) {
	imgs, _ := loadTestImages(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	r, err := newRunner(Config{URL: srv.URL, Rate: 10, Images: imgs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.do(runCtx(t), time.Now().Add(-time.Second))
	if r.rec.ok != 1 || r.rec.hist.Min() < int64(time.Second) {
		t.Errorf("ok %d, latency %v; want 1 request of at least 1 s", r.rec.ok, time.Duration(r.rec.hist.Min()))
	}
}

func TestErrorAccounting(t *testing.T) {
	imgs, _ := loadTestImages(t)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch (n.Add(1) - 1) % 5 {
		case 0:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"scores":[{"hp":0.5}]}`)
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":"overloaded","message":"try later"}}`)
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"code":"internal","message":"boom"}}`)
		case 3:
			io.WriteString(w, "garbage, not JSON")
		case 4:
			http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound) // never followed
		}
	}))
	defer srv.Close()
	rep := mustRun(t, Config{URL: srv.URL, Concurrency: 1, Requests: 50, Images: imgs})
	want := map[string]int64{"429": 10, "500": 10, ErrInvalidResponse: 10, "302": 10}
	if !mapsEqual(rep.ErrorsByCode, want) {
		t.Errorf("errors by code %v, want %v", rep.ErrorsByCode, want)
	}
	if rep.Requests != 50 || rep.OK != 10 || rep.Errors != 40 || rep.Throttled != 10 || n.Load() != 50 {
		t.Errorf("requests %d ok %d errors %d 429 %d server %d", rep.Requests, rep.OK, rep.Errors, rep.Throttled, n.Load())
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestTransportErrors(t *testing.T) {
	imgs, _ := loadTestImages(t)

	// A closed port: connection refused, at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rep := mustRun(t, Config{URL: "http://" + addr, Concurrency: 2, Requests: 20, Images: imgs, Timeout: 2 * time.Second})
	if rep.Requests != 20 || rep.ErrorsByCode[ErrRefused] != 20 || rep.OK != 0 {
		t.Errorf("closed port: %+v", rep)
	}
	// Each client backed off after each refusal: 9 waits of 5, 10, 20, …
	// ms (at most 500) between its 10 requests, 1.6 s in all.
	if rep.ElapsedS < 1.6 {
		t.Errorf("20 refused requests took %.3f s: the clients did not back off", rep.ElapsedS)
	}
	// Over a fixed window, back-off bounds the requests made: a client
	// waits 5+10+20+40+80+160 ms after its first 7 refusals, so by 0.5 s
	// each has made at most 8.
	rep = mustRun(t, Config{URL: "http://" + addr, Concurrency: 2, Duration: 500 * time.Millisecond, Images: imgs})
	if rep.Requests > 16 || rep.Requests < 2 {
		t.Errorf("a 0.5 s run against a closed port made %d requests, want 2 to 16", rep.Requests)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "backed off") {
		t.Errorf("text report does not say the clients backed off:\n%s", text.String())
	}
	if rep.Latency.Max != 0 {
		t.Errorf("latency of failed requests recorded: %+v", rep.Latency)
	}

	// A server that answers something that is not HTTP and hangs up.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 4096)
				c.Read(buf)
				c.Write([]byte("SSH-2.0-garbage\r\n\r\n"))
				c.Close()
			}()
		}
	}()
	rep = mustRun(t, Config{URL: "http://" + l.Addr().String(), Concurrency: 2, Requests: 10, Images: imgs, Timeout: 2 * time.Second})
	if rep.Requests != 10 || rep.ErrorsByCode[ErrTransport] != 10 {
		t.Errorf("not HTTP: %+v", rep.ErrorsByCode)
	}
}

func TestTimeout(t *testing.T) {
	imgs, _ := loadTestImages(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // else the server never notices the client leaving
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handlers
	rep := mustRun(t, Config{URL: srv.URL, Concurrency: 3, Requests: 6, Images: imgs, Timeout: 100 * time.Millisecond})
	if rep.ErrorsByCode[ErrTimeout] != 6 || rep.Requests != 6 || rep.OK != 0 {
		t.Errorf("requests %d ok %d errors %v, want 6 timeouts", rep.Requests, rep.OK, rep.ErrorsByCode)
	}
}

// Cancelling the context stops the run early and still gives a report. The
// server answers five requests and cancels the run from the sixth, which it
// holds: the report has exactly 5 ok and 1 canceled, in both loops (the open
// loop with one request in flight at a time, so that the order is fixed).
//
// The handler reads the body before it waits: a Go server notices that the
// client has gone (and cancels r.Context()) only once the request body has
// been read, and httptest.Server.Close waits for every handler. That is why
// this test used to hang for the whole test timeout: the runner had
// returned, but Close waited for a handler that could never end.
func TestInterrupt(t *testing.T) {
	imgs, _ := loadTestImages(t)
	release := make(chan struct{})
	var count atomic.Int64
	var cancel atomic.Pointer[context.CancelFunc]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if count.Add(1) > 5 {
			(*cancel.Load())()
			select { // held until the client goes away
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	defer close(release)
	for _, cfg := range []Config{
		{URL: srv.URL, Concurrency: 1, Duration: time.Minute, Images: imgs},
		{URL: srv.URL, Rate: 1000, MaxInflight: 1, Duration: time.Minute, Images: imgs, Seed: 3},
	} {
		count.Store(0)
		ctx, c := context.WithCancel(runCtx(t))
		cancel.Store(&c)
		rep, err := Run(ctx, cfg, nil)
		c()
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Interrupted || rep.OK != 5 || rep.Canceled != 1 || rep.Errors != 0 || rep.Requests != 5 {
			t.Errorf("%s: interrupted %v requests %d ok %d canceled %d errors %v; want true 5 5 1 none",
				rep.Mode, rep.Interrupted, rep.Requests, rep.OK, rep.Canceled, rep.ErrorsByCode)
		}
	}
}

// syncWriter collects progress output and says when it has had n writes.
type syncWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	n      int
	done   chan struct{}
}

func newSyncWriter(n int) *syncWriter { return &syncWriter{n: n, done: make(chan struct{})} }

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes == w.n {
		close(w.done)
	}
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Not on a terminal, progress is plain lines; the one request is held until
// two have been written, so the test waits for events, not for time.
func TestProgress(t *testing.T) {
	imgs, _ := loadTestImages(t)
	w := newSyncWriter(2)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-w.done:
		case <-r.Context().Done():
		}
		io.WriteString(rw, `{}`)
	}))
	defer srv.Close()
	rep, err := Run(runCtx(t), Config{URL: srv.URL, Requests: 1, Images: imgs,
		ProgressInterval: 5 * time.Millisecond}, w)
	if err != nil || rep.OK != 1 {
		t.Fatalf("ok %v, %v", rep, err)
	}
	out := w.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.Contains(out, "\r") || !strings.HasPrefix(lines[0], "loadtest ") ||
		!strings.Contains(lines[0], "0 requests (0 ok, 0 errors), 1 in flight") {
		t.Errorf("progress (not a terminal: plain lines):\n%s", out)
	}
}

// On a terminal, one line rewritten in place, ended by a newline at the end.
func TestProgressTerminal(t *testing.T) {
	imgs, _ := loadTestImages(t)
	r, err := newRunner(Config{URL: "http://127.0.0.1:1", Rate: 5, Images: imgs, ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.start = time.Now()
	r.rec.success(3 * time.Millisecond)
	r.rec.fail("503")
	r.rec.drop()
	w := newSyncWriter(2)
	stop := r.startProgress(w, true)
	select {
	case <-w.done:
	case <-runCtx(t).Done():
		t.Fatal("no progress written")
	}
	stop()
	out := w.String()
	if !strings.HasPrefix(out, "\rloadtest ") || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 ||
		!strings.Contains(out, "\x1b[K") || !strings.Contains(out, "2 requests (1 ok, 1 errors, 1 dropped)") ||
		!strings.Contains(out, "p50 3.0 ms") {
		t.Errorf("terminal progress %q", out)
	}
}

func TestReportJSONAndText(t *testing.T) {
	imgs, _ := loadTestImages(t)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, `{"ranking":[]}`)
	}))
	defer srv.Close()
	rep := mustRun(t, Config{URL: srv.URL, Route: RouteRank, Concurrency: 2, Requests: 40, Images: imgs})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "errors", "throughput_rps", "images_per_s", "latency_ms", "errors_by_code", "dropped"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "max", "mean"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency_ms lacks %q: %s", k, b)
		}
	}
	if m["requests"].(float64) != 40 || m["errors"].(float64) != 10 {
		t.Errorf("JSON: %s", b)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	s := text.String()
	if l, ok := m["latency_429_ms"].(map[string]any); !ok || l["p50"] == nil {
		t.Errorf("JSON lacks latency_429_ms: %s", b)
	}
	for _, want := range []string{"/v1/rank", "40 (30 ok, 10 errors)", "429: 10", "4 images per request", "p99", "429 ms", "the 10 answers 429"} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q:\n%s", want, s)
		}
	}
}

func TestValidate(t *testing.T) {
	imgs := []Image{{Name: "a.png", Data: []byte{1}}}
	good := Config{URL: "http://127.0.0.1:1", Images: imgs}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"both loops":   func(c *Config) { c.Concurrency, c.Rate = 2, 10 },
		"ftp":          func(c *Config) { c.URL = "ftp://127.0.0.1/" },
		"no scheme":    func(c *Config) { c.URL = "127.0.0.1:8080" },
		"no host":      func(c *Config) { c.URL = "http:///v1" },
		"file":         func(c *Config) { c.URL = "file:///etc/passwd" },
		"query":        func(c *Config) { c.URL = "http://127.0.0.1:1/?a=b" },
		"credentials":  func(c *Config) { c.URL = "http://u:p@127.0.0.1:1" },
		"route":        func(c *Config) { c.Route = "embed" },
		"no images":    func(c *Config) { c.Images = nil },
		"neg requests": func(c *Config) { c.Requests = -1 },
		"NaN rate":     func(c *Config) { c.Rate = math.NaN() },
		"token":        func(c *Config) { c.Token = "a\nb" },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: want an error", name)
		}
		if _, err := Run(context.Background(), c, nil); err == nil {
			t.Errorf("%s: Run should refuse", name)
		}
	}
}

// TestRotatesEveryFile: however many files --images has, each is sent
// within the first cycle of requests (there used to be a cap of 64 bodies).
func TestRotatesEveryFile(t *testing.T) {
	const files = 150
	var imgs []Image
	for i := range files {
		imgs = append(imgs, Image{Name: fmt.Sprintf("%03d.png", i), Data: []byte(fmt.Sprintf("image %d", i))})
	}
	for _, tc := range []struct {
		route string
		k     int
	}{{RouteScore, 1}, {RouteRank, 4}, {RouteReward, 3}} {
		t.Run(tc.route, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]bool{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				var body struct {
					Images []api.Image      `json:"images"`
					Items  []api.RewardItem `json:"items"`
				}
				if err := json.Unmarshal(b, &body); err != nil {
					t.Errorf("body: %v", err)
				}
				for _, it := range body.Items {
					body.Images = append(body.Images, it.Image)
				}
				mu.Lock()
				for _, im := range body.Images {
					seen[im.Base64] = true
				}
				mu.Unlock()
				io.WriteString(w, `{}`)
			}))
			defer srv.Close()
			n := (files + tc.k - 1) / tc.k
			rep := mustRun(t, Config{URL: srv.URL, Route: tc.route, Concurrency: 2, Requests: n, Images: imgs, ImagesPerRequest: tc.k})
			if rep.OK != int64(n) || len(seen) != files {
				t.Errorf("%d requests sent %d distinct images, want all %d", rep.OK, len(seen), files)
			}
		})
	}
}

// testPayloads is the bodies Run would send for cfg.
func testPayloads(t *testing.T, cfg Config) *payloads {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPayloads(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBodiesAreAPIRequests: the bodies assembled by hand are the bytes
// json.Marshal makes of the api package's request types.
func TestBodiesAreAPIRequests(t *testing.T) {
	imgs := []Image{{Name: "a", Data: []byte("first")}, {Name: "b", Data: []byte("second \x00\xff")}, {Name: "c", Data: []byte("3")}}
	prompts := []string{"a <b> & \"c\"", "ünï\u2028code"}
	for _, route := range []string{RouteScore, RouteRank, RouteReward} {
		p := testPayloads(t, Config{URL: "http://127.0.0.1:1", Route: route, Images: imgs, Prompts: prompts, ImagesPerRequest: 2})
		for i := range p.n + 1 { // the last one is the first again
			j := i % p.n
			var want any
			im := func(t int) api.Image { return api.File(imgs[(j*2+t)%len(imgs)].Data) }
			switch route {
			case RouteReward:
				want = api.RewardRequest{Items: []api.RewardItem{
					{Prompt: api.String(prompts[(j*2)%2]), Image: im(0)}, {Prompt: api.String(prompts[(j*2+1)%2]), Image: im(1)}}}
			case RouteRank:
				want = api.RankRequest{Prompt: api.String(prompts[j%2]), Images: []api.Image{im(0), im(1)}}
			default:
				want = api.ScoreRequest{Prompt: api.String(prompts[j%2]), Images: []api.Image{im(0), im(1)}}
			}
			wb, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.body(uint64(i)); !bytes.Equal(got, wb) {
				t.Errorf("%s body %d:\n got %s\nwant %s", route, i, got, wb)
			}
		}
	}
}

// TestLatency429Apart: 429 answers are timed apart from the answered
// requests. Successes take at least 80 ms and 429s none, then the other way
// round: each histogram's minimum shows the other's samples are not in it.
func TestLatency429Apart(t *testing.T) {
	imgs, _ := loadTestImages(t)
	for _, slow429 := range []bool{false, true} {
		var n atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			throttle := n.Add(1)%2 == 0
			if throttle == slow429 {
				time.Sleep(80 * time.Millisecond)
			}
			if throttle {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":{"code":"overloaded","message":"later"}}`)
				return
			}
			io.WriteString(w, `{}`)
		}))
		rep := mustRun(t, Config{URL: srv.URL, Concurrency: 1, Requests: 10, Images: imgs})
		srv.Close()
		if rep.OK != 5 || rep.Throttled != 5 || rep.Latency429 == nil {
			t.Fatalf("ok %d, 429 %d, latency_429 %v; want 5, 5, present", rep.OK, rep.Throttled, rep.Latency429)
		}
		slow := rep.Latency
		if slow429 {
			slow = *rep.Latency429
		}
		if slow.Min < 80 {
			t.Errorf("slow429=%v: the slow answers' minimum is %.3f ms: fast ones are mixed in", slow429, slow.Min)
		}
	}
}
