package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icthp/icthp/internal/logbuf"
	"github.com/icthp/icthp/models/ortlib"
)

// fakeScorer answers /v1/score, /v1/rank and /v1/reward as SPEC §4 shapes
// them, checks each request's body, and records what it was sent.
type fakeScorer struct {
	t      *testing.T
	mu     sync.Mutex
	paths  map[string]int
	prompt map[string]int
	images map[string]int // decoded image bytes → count
}

func newFakeScorer(t *testing.T) *fakeScorer {
	return &fakeScorer{t: t, paths: map[string]int{}, prompt: map[string]int{}, images: map[string]int{}}
}

func (f *fakeScorer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Prompt string   `json:"prompt"`
		Images []string `json:"images"`
		Items  []struct {
			Prompt string `json:"prompt"`
			Image  string `json:"image"`
		} `json:"items"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":"bad_request","message":"want a JSON POST"}}`)
		return
	}
	imgs, prompts := body.Images, []string{body.Prompt}
	if r.URL.Path == "/v1/reward" {
		imgs, prompts = nil, nil
		for _, it := range body.Items {
			imgs, prompts = append(imgs, it.Image), append(prompts, it.Prompt)
		}
	}
	f.mu.Lock()
	f.paths[r.URL.Path]++
	for _, p := range prompts {
		f.prompt[p]++
	}
	for _, b := range imgs {
		raw, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			f.t.Errorf("image not base64: %v", err)
		}
		f.images[string(raw)]++
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/score":
		scores := make([]map[string]float64, len(imgs))
		for i := range scores {
			scores[i] = map[string]float64{"ict": 0.3, "hp": 0.6, "hp_logit": 0.4}
		}
		json.NewEncoder(w).Encode(map[string]any{"scores": scores})
	case "/v1/rank":
		io.WriteString(w, `{"ranking":[]}`)
	case "/v1/reward":
		io.WriteString(w, `{"rewards":[]}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no such route"}}`)
	}
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = run(context.Background(), a, args)
	return code, out.String(), errb.String()
}

func TestLoadtestJSON(t *testing.T) {
	f := newFakeScorer(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	prompts := filepath.Join(t.TempDir(), "prompts.txt")
	os.WriteFile(prompts, []byte("one prompt\nanother prompt\n"), 0o644)
	demo := filepath.Join("..", "..", "testdata", "demo")

	for _, tc := range []struct {
		route string
		k     int
	}{{"score", 2}, {"rank", 3}, {"reward", 1}} {
		t.Run(tc.route, func(t *testing.T) {
			before := f.paths["/v1/"+tc.route]
			code, stdout, stderr := runCLI(t, "loadtest", "--url", srv.URL, "--route", tc.route,
				"--concurrency", "2", "--requests", "12", "--images", demo, "--prompts", prompts,
				"--images-per-request", strconv.Itoa(tc.k), "--json")
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			var rep struct {
				Requests      *int64             `json:"requests"`
				Errors        *int64             `json:"errors"`
				ThroughputRPS *float64           `json:"throughput_rps"`
				ImagesPerS    *float64           `json:"images_per_s"`
				Latency       map[string]float64 `json:"latency_ms"`
			}
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
			}
			if rep.Requests == nil || *rep.Requests != 12 || rep.Errors == nil || *rep.Errors != 0 {
				t.Errorf("requests/errors: %s", stdout)
			}
			if rep.ThroughputRPS == nil || *rep.ThroughputRPS <= 0 || rep.ImagesPerS == nil ||
				abs(*rep.ImagesPerS-float64(tc.k)**rep.ThroughputRPS) > 1e-9**rep.ImagesPerS {
				t.Errorf("throughput_rps / images_per_s (want ratio %d): %s", tc.k, stdout)
			}
			for _, q := range []string{"p50", "p90", "p99", "max"} {
				if v, ok := rep.Latency[q]; !ok || v <= 0 {
					t.Errorf("latency_ms.%s missing or not positive: %s", q, stdout)
				}
			}
			if got := f.paths["/v1/"+tc.route] - before; got != 12 {
				t.Errorf("server saw %d requests on /v1/%s, want 12", got, tc.route)
			}
		})
	}
	// Every demo image and both prompts were sent, nothing else.
	entries, _ := os.ReadDir(demo)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(demo, e.Name()))
		if f.images[string(b)] == 0 {
			t.Errorf("%s never sent", e.Name())
		}
	}
	if len(f.images) != len(entries) {
		t.Errorf("%d distinct images sent, the folder has %d", len(f.images), len(entries))
	}
	var ps []string
	for p := range f.prompt {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	if !slices.Equal(ps, []string{"another prompt", "one prompt"}) {
		t.Errorf("prompts sent %q", ps)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestLoadtestTextOpenLoop(t *testing.T) {
	srv := httptest.NewServer(newFakeScorer(t))
	defer srv.Close()
	code, stdout, stderr := runCLI(t, "loadtest", "--url", srv.URL, "--rate", "200", "--requests", "20",
		"--seed", "1", "--images", filepath.Join("..", "..", "testdata", "demo"))
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"POST " + srv.URL + "/v1/score", "open loop at 200 req/s (Poisson)", "latency ms", "p99", "from their scheduled arrival time"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
}

func TestLoadtestErrors(t *testing.T) {
	demo := filepath.Join("..", "..", "testdata", "demo")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in the one stderr line
	}{
		{"no url", []string{"--images", demo}, 2, "--url is required"},
		{"no images", []string{"--url", closed}, 2, "--images is required"},
		{"both loops", []string{"--url", closed, "--images", demo, "--rate", "5", "--concurrency", "2"}, 2, "not both"},
		{"bad route", []string{"--url", closed, "--images", demo, "--route", "embed"}, 2, "route"},
		{"bad scheme", []string{"--url", "ftp://127.0.0.1/", "--images", demo}, 2, "scheme"},
		{"stray argument", []string{"--url", closed, "--images", demo, "extra"}, 2, "unexpected argument"},
		{"bad flag", []string{"--url", closed, "--images", demo, "--concurrency", "many"}, 2, "invalid value"},
		{"missing folder", []string{"--url", closed, "--images", filepath.Join(t.TempDir(), "nope")}, 1, "--images"},
		{"empty folder", []string{"--url", closed, "--images", t.TempDir()}, 1, "no .png"},
		{"server down", []string{"--url", closed, "--images", demo, "--requests", "3", "--json"}, 1, "no request succeeded: 3 failed (refused: 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"loadtest"}, tc.args...)...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if tc.name == "bad flag" { // the flag package prints the flags first
				lines = lines[len(lines)-1:]
			}
			if code != tc.code || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d (want %d), stderr %q (want one line with %q)", code, tc.code, stderr, tc.want)
			}
		})
	}
}

// serveInProcess runs `icthp serve --addr A ARGS...` in this process on a
// free loopback port until the test ends, waits for /readyz (the warm-up
// image has run) and returns the base URL. At the end it stops the server
// and fails the test unless serve exited 0, with its log.
func serveInProcess(t *testing.T, args ...string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var serveLog logbuf.Buffer
	done := make(chan int, 1)
	go func() {
		a := &app{stdout: io.Discard, stderr: &serveLog, getenv: func(string) string { return "" }}
		done <- run(ctx, a, append([]string{"serve", "--addr", addr}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, serveLog.String())
		}
	})
	url := "http://" + addr
	for ready := false; !ready; {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited with %d before it was ready:\n%s", code, serveLog.String())
		case <-time.After(20 * time.Millisecond):
		}
		if res, err := http.Get(url + "/readyz"); err == nil {
			res.Body.Close()
			ready = res.StatusCode == http.StatusOK
		}
	}
	return url
}

// The load generator against the real `icthp serve` (demo models, real
// onnxruntime sessions, loopback HTTP): every route answers every request.
func TestLoadtestAgainstServe(t *testing.T) {
	needORT(t)
	t.Setenv(ortlib.EnvCache, t.TempDir())
	// The demo models are made and warmed up first.
	url := serveInProcess(t, "--drain-delay", "0s")
	demo := filepath.Join("..", "..", "testdata", "demo")
	for _, route := range []string{"score", "rank", "reward"} {
		code, stdout, stderr := runCLI(t, "loadtest", "--url", url, "--route", route, "--concurrency", "2",
			"--requests", "6", "--images", demo, "--json")
		var rep struct {
			Requests, OK, Errors int64
			ErrorsByCode         map[string]int64 `json:"errors_by_code"`
			ImagesPerS           float64          `json:"images_per_s"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 {
			t.Fatalf("%s: exit %d, stderr %q, stdout %q", route, code, stderr, stdout)
		}
		if rep.Requests != 6 || rep.OK != 6 || rep.Errors != 0 || rep.ImagesPerS <= 0 {
			t.Errorf("%s: %s", route, stdout)
		}
	}
}

// What admission lets in is never then refused for a full graph queue:
// with --queue-size 1 and room for 16 images, eight clients sending two
// images each all get 200, however their decodes and the model's runs
// interleave (a full queue used to refuse images already decoded and
// resized, the work thrown away under overload).
func TestAdmittedImagesAreNotRefusedLater(t *testing.T) {
	needORT(t)
	t.Setenv(ortlib.EnvCache, t.TempDir())
	url := serveInProcess(t, "--drain-delay", "0s", "--threads", "1", "--batch-size", "1",
		"--queue-size", "1", "--admit-images", "16", "--cache-bytes", "0")
	demo := filepath.Join("..", "..", "testdata", "demo")
	code, stdout, stderr := runCLI(t, "loadtest", "--url", url, "--concurrency", "8", "--images-per-request", "2",
		"--requests", "64", "--images", demo, "--json")
	var rep struct {
		Requests, OK, Errors int64
		ErrorsByCode         map[string]int64 `json:"errors_by_code"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	if rep.Requests != 64 || rep.OK != 64 || rep.Errors != 0 {
		t.Errorf("8 clients × 2 images within an admission of 16: %s", stdout)
	}
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "icthp_batcher_rejected_total") && !strings.HasSuffix(l, " 0") {
			t.Errorf("a graph queue refused admitted work: %s", l)
		}
	}
}
