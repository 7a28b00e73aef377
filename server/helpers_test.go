package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/ict"
	"github.com/icthp/icthp/internal/logbuf"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/modelset"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
	"github.com/icthp/icthp/server"
)

// modelDirs are tiny random ICT and HP model directories, made once for the
// package's tests.
var modelDirs struct {
	once    sync.Once
	ict, hp string
	err     error
}

func tinyModels(t testing.TB) (ictDir, hpDir string) {
	t.Helper()
	if _, err := ortlib.Init(""); err != nil {
		t.Fatalf("onnxruntime is required (run `make setup`): %v", err)
	}
	modelDirs.once.Do(func() {
		root, err := os.MkdirTemp("", "icthp-server-test-")
		if err != nil {
			modelDirs.err = err
			return
		}
		dirs, err := modelset.RandomModels(root, 11, 500)
		modelDirs.ict, modelDirs.hp, modelDirs.err = dirs["ict"], dirs["hp"], err
	})
	if modelDirs.err != nil {
		t.Fatal(modelDirs.err)
	}
	return modelDirs.ict, modelDirs.hp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if modelDirs.ict != "" {
		os.RemoveAll(filepath.Dir(modelDirs.ict))
	}
	os.Exit(code)
}

// gate wraps an encoder: each run reports its row count on started (when
// set), waits until release is closed (when set), and records its rows.
type gate struct {
	models.BatchEncoder
	started chan int
	release chan struct{}

	mu   sync.Mutex
	runs []int
}

func (g *gate) EncodeImages(ctx context.Context, px []float32, n int) ([][]float32, error) {
	g.mu.Lock()
	g.runs = append(g.runs, n)
	g.mu.Unlock()
	if g.started != nil {
		g.started <- n
	}
	if g.release != nil {
		<-g.release
	}
	return g.BatchEncoder.EncodeImages(ctx, px, n)
}

func (g *gate) rows() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := 0
	for _, r := range g.runs {
		s += r
	}
	return s
}

// envConfig says what a test server has.
type envConfig struct {
	noICT   bool // serve HP only
	batch   models.BatcherOptions
	hpGate  *gate // put in front of the HP model, behind its batcher
	server  server.Options
	scoring scoring.Options
}

// env is a test server on loopback and a reference service over the same
// models without batchers.
type env struct {
	url    string
	srv    *server.Server
	reg    *prometheus.Registry
	ref    *scoring.Service
	hpB    *models.Batcher
	logs   *logbuf.Buffer
	client *http.Client
}

// newEnv builds the service and server; with listen false the caller
// serves srv itself (Run).
func newEnv(t testing.TB, cfg envConfig, listen bool) *env {
	t.Helper()
	ictDir, hpDir := tinyModels(t)
	so := models.SessionOptions{IntraOpThreads: 1, MaxBatch: 64}
	reg := prometheus.NewRegistry()
	e := &env{reg: reg, logs: &logbuf.Buffer{}, client: &http.Client{}}
	var ictS, ictRef *ict.Scorer
	if !cfg.noICT {
		m, err := models.Open(ictDir, so)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		o := cfg.batch
		o.Name, o.Metrics = "ict", reg
		b, err := models.NewBatcher(m, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if ictS, err = ict.New(ictDir, m.Manifest, b); err != nil {
			t.Fatal(err)
		}
		if ictRef, err = ict.New(ictDir, m.Manifest, m); err != nil {
			t.Fatal(err)
		}
	}
	m, err := models.Open(hpDir, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	var enc models.BatchEncoder = m
	if cfg.hpGate != nil {
		cfg.hpGate.BatchEncoder = m
		enc = cfg.hpGate
	}
	o := cfg.batch
	o.Name, o.Metrics = "hp", reg
	if e.hpB, err = models.NewBatcher(enc, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.hpB.Close() })
	hpS, err := hp.New(hpDir, m.Manifest, e.hpB)
	if err != nil {
		t.Fatal(err)
	}
	hpRef, err := hp.New(hpDir, m.Manifest, m)
	if err != nil {
		t.Fatal(err)
	}
	so2 := cfg.scoring
	so2.Metrics = reg
	svc, err := newService(ictS, hpS, so2)
	if err != nil {
		t.Fatal(err)
	}
	if e.ref, err = newService(ictRef, hpRef, scoring.Options{MaxImageBytes: cfg.scoring.MaxImageBytes, MaxImagePixels: cfg.scoring.MaxImagePixels}); err != nil {
		t.Fatal(err)
	}
	opts := cfg.server
	opts.Registry = reg
	if opts.Logger == nil {
		opts.Logger = slogTo(e.logs)
	}
	if e.srv, err = server.New(svc, opts); err != nil {
		t.Fatal(err)
	}
	if listen {
		hs := httptest.NewServer(e.srv.Handler())
		t.Cleanup(hs.Close)
		e.url = hs.URL
	}
	return e
}

// testImage is a w×h image with a pattern that depends on seed.
func testImage(seed, w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x*7 + seed*31), uint8(y*5 + seed*17), uint8((x + y + seed) * 3), 255})
		}
	}
	return img
}

func pngBytes(t testing.TB, seed, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, testImage(seed, w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t *testing.T, seed, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(seed, w, h), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	// closes: the answer said Connection: close (net/http takes that
	// header out of Header and sets Response.Close).
	closes bool
	body   map[string]any
	raw    []byte
}

func (r *response) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (e *env) do(t *testing.T, req *http.Request) *response {
	t.Helper()
	return send(t, e.client, req)
}

// send does req with client and reads the answer; a JSON answer that does
// not decode fails the test.
func send(t *testing.T, client *http.Client, req *http.Request) *response {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{status: res.StatusCode, header: res.Header, closes: res.Close, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %v\n%s", req.Method, req.URL.Path, err, raw)
		}
	}
	return r
}

func (e *env) post(t *testing.T, path string, body any, hdr ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(http.MethodPost, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(t, req)
}

func (e *env) get(t *testing.T, path string, hdr ...string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(t, req)
}

// multipartBody builds a form with fields (name, value pairs) and files.
func multipartBody(t testing.TB, fields [][2]string, files [][]byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range files {
		fw, err := w.CreateFormFile("images", fmt.Sprintf("img%d.png", i))
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(f)
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func (e *env) postMultipart(t *testing.T, path string, fields [][2]string, files [][]byte) *response {
	t.Helper()
	ct, body := multipartBody(t, fields, files)
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	return e.do(t, req)
}

// metric reads one sample of /metrics' text format: name with labels as
// written there, e.g. `icthp_batcher_batch_size_count{graph="vision",model="hp"}`.
func (e *env) metric(t *testing.T, series string) float64 {
	t.Helper()
	r := e.get(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.status)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0 // a series not yet observed
}

func num(t *testing.T, v any, what string) float64 {
	t.Helper()
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s: %v (%T) is not a number", what, v, v)
	}
	return f
}

func near(t *testing.T, what string, got float64, want *float64) {
	t.Helper()
	if want == nil {
		t.Fatalf("%s: the reference has no value", what)
	}
	if math.Abs(got-*want) > 1e-5 {
		t.Errorf("%s: got %v, want %v", what, got, *want)
	}
}

// newService makes a Service over whichever of the scorers are not nil.
func newService(ictS *ict.Scorer, hpS *hp.Scorer, o scoring.Options) (*scoring.Service, error) {
	var ms []scorer.Model
	if ictS != nil {
		ms = append(ms, scorer.Model{Spec: ict.Entry.Spec, Scorer: ictS})
	}
	if hpS != nil {
		ms = append(ms, scorer.Model{Spec: hp.Entry.Spec, Scorer: hpS})
	}
	return scoring.New(ms, o)
}

// run serves e through Run on a loopback listener, as icthp serve does, and
// sets e.url. stop ends Run's context (what SIGTERM does); Run's result
// comes on ran. The context also ends with the test.
func (e *env) run(t testing.TB) (stop context.CancelFunc, ran <-chan error) {
	t.Helper()
	ln, err := server.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	return stop, done
}
