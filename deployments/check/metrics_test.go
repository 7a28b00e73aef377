package check

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// eventOnly are metric families that a label-vector only shows on /metrics
// after the event it counts has happened (a failed model run, a request
// dropped in the queue), which the scrape below cannot cheaply cause. For
// them the check asks for the name verbatim in the source of the package
// that registers it, so that a rename still fails.
var eventOnly = map[string]string{
	"icthp_batcher_rejected_total":           "models/batcher.go",
	"icthp_batcher_run_errors_total":         "models/batcher.go",
	"icthp_batcher_dropped_items_total":      "models/batcher.go",
	"icthp_batcher_deduplicated_items_total": "models/batcher.go",
}

// prometheusOwn are series Prometheus makes itself when it scrapes.
var prometheusOwn = map[string]bool{"up": true, "scrape_duration_seconds": true}

var (
	scrapeOnce sync.Once
	scraped    map[string]Series
	scrapeErr  error
	scrapeSkip string
)

// liveMetrics starts `icthp serve` (the demo models, a Redis of its own
// when serve takes --redis), sends it work of every kind, and returns what
// its /metrics exports.
func liveMetrics(t *testing.T) map[string]Series {
	t.Helper()
	scrapeOnce.Do(func() { scraped, scrapeSkip, scrapeErr = scrape(t) })
	if scrapeSkip != "" {
		t.Skip(scrapeSkip)
	}
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	return scraped
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// scrape runs the live check: it returns the exported series, or a reason
// to skip (no onnxruntime), or an error.
func scrape(t *testing.T) (map[string]Series, string, error) {
	icthpBin := bin(t)
	if out, err := exec.Command(icthpBin, "setup", "--ort-lib", os.Getenv("ICTHP_ORT_LIB")).CombinedOutput(); os.Getenv("ICTHP_ORT_LIB") != "" && err != nil {
		return nil, "", fmt.Errorf("ICTHP_ORT_LIB does not load: %s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"serve", "--addr", addr, "--threads", "1", "--batch-wait", "2ms", "--log-level", "warn"}
	var redis *exec.Cmd
	if strings.Contains(help(t, "serve"), "-redis") {
		var redisURL string
		if redis, redisURL, err = startRedis(ctx); err != nil {
			return nil, "", err
		}
		defer func() { redis.Process.Kill(); redis.Wait() }()
		args = append(args, "--redis", redisURL)
	}
	base := "http://" + addr
	stop, skip, err := startServe(ctx, icthpBin, args, base)
	if skip != "" || err != nil {
		return nil, skip, err
	}
	defer stop()
	if err := exercise(base, redis); err != nil {
		return nil, "", err
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, "", fmt.Errorf("/metrics answered %s", resp.Status)
	}
	m, err := Exported(resp.Body)
	return m, "", err
}

// startRedis starts a redis-server of the check's own on a free port and
// returns it with its URL.
func startRedis(ctx context.Context) (*exec.Cmd, string, error) {
	rp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	rs, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", fmt.Errorf("serve takes --redis but redis-server is not installed (make setup installs it): %w", err)
	}
	redis := exec.CommandContext(ctx, rs, "--port", strconv.Itoa(rp), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := redis.Start(); err != nil {
		return nil, "", err
	}
	if err := waitTCP(ctx, fmt.Sprintf("127.0.0.1:%d", rp)); err != nil {
		redis.Process.Kill()
		redis.Wait()
		return nil, "", fmt.Errorf("redis-server: %w", err)
	}
	return redis, fmt.Sprintf("redis://127.0.0.1:%d/0", rp), nil
}

// startServe starts `icthp serve` and waits until base answers /readyz. It
// returns the function that stops it, or a reason to skip when serve cannot
// start without onnxruntime.
func startServe(ctx context.Context, icthpBin string, args []string, base string) (func(), string, error) {
	var stderr bytes.Buffer
	srv := exec.CommandContext(ctx, icthpBin, args...)
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	stop := func() {
		srv.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, "", nil
			}
		}
		select {
		case err := <-done:
			msg := strings.TrimSpace(stderr.String())
			if strings.Contains(msg, "onnxruntime library not found") {
				return nil, "icthp serve cannot start without onnxruntime (run `make setup`): " + msg, nil
			}
			return nil, "", fmt.Errorf("icthp serve exited before it was ready: %v: %s", err, msg)
		case <-ctx.Done():
			stop()
			return nil, "", fmt.Errorf("icthp serve not ready: %v: %s", ctx.Err(), stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exercise asks the paths the probes and the scraper use, then sends work
// of every kind twice (the second time from the cache) and some mistakes, so
// that the labelled series exist; with a Redis, it then stops it and scores
// new images, which makes Redis errors.
func exercise(base string, redis *exec.Cmd) error {
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s, want 200 (probes and Prometheus use it)", path, resp.Status)
		}
	}
	var images []string
	for _, f := range []string{"apple.jpg", "sunset.png", "checkers.webp"} {
		b, err := os.ReadFile(repoPath("testdata", "demo", f))
		if err != nil {
			return err
		}
		images = append(images, base64.StdEncoding.EncodeToString(b))
	}
	reqs := []workRequest{
		{"/v1/score", map[string]any{"prompt": "a red apple", "images": images}, 200},
		{"/v1/score", map[string]any{"images": images[:1]}, 200},
		{"/v1/rank", map[string]any{"prompt": "a red apple", "images": images}, 200},
		{"/v1/reward", map[string]any{"items": []any{map[string]any{"prompt": "a sunset", "image": images[1]}}}, 200},
		{"/v1/embed", map[string]any{"texts": []string{"a cat"}, "images": images[2:]}, 200},
		{"/v1/score", "not an object", 400},
		{"/v1/score", map[string]any{"prompt": "x", "images": []string{"%%%"}}, 400},
	}
	for round := 0; round < 2; round++ {
		for _, r := range reqs {
			if err := r.post(base, ""); err != nil {
				return err
			}
		}
		if _, err := http.Get(base + "/v1/models"); err != nil {
			return err
		}
	}
	if redis == nil {
		return nil
	}
	// Redis goes away: the next new images make Redis errors (and the
	// circuit breaker open) while the service keeps answering.
	redis.Process.Kill()
	redis.Wait()
	for i := 0; i < 8; i++ {
		r := workRequest{"/v1/score", map[string]any{"images": []string{solidPNG(uint8(i))}}, 200}
		if err := r.post(base, "with Redis gone (the cache is optional): "); err != nil {
			return err
		}
	}
	return nil
}

// workRequest is one POST and the status it must get.
type workRequest struct {
	path string
	body any
	want int
}

func (r workRequest) post(base, why string) error {
	b, _ := json.Marshal(r.body)
	resp, err := http.Post(base+r.path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != r.want {
		return fmt.Errorf("%sPOST %s: %d %s, want %d", why, r.path, resp.StatusCode, body, r.want)
	}
	return nil
}

func waitTCP(ctx context.Context, addr string) error {
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkQuery fails the test when q reads a metric icthp does not export, or
// matches on a label the metric does not carry.
func checkQuery(t reporter, where, q string, exported map[string]Series) {
	t.Helper()
	sels, err := Selectors(ExpandGrafana(q))
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	if len(sels) == 0 {
		t.Errorf("%s: %q reads no metric", where, q)
	}
	for _, s := range sels {
		if prometheusOwn[s.Metric] {
			continue
		}
		if src, ok := eventOnly[s.Metric]; ok {
			b, err := os.ReadFile(repoPath(filepath.FromSlash(src)))
			if err != nil || !bytes.Contains(b, []byte(`"`+s.Metric+`"`)) {
				t.Errorf("%s: %s is neither on /metrics nor registered in %s", where, s.Metric, src)
			}
			continue
		}
		series, ok := exported[s.Metric]
		if !ok {
			t.Errorf("%s: metric %s is not exported by icthp serve", where, s.Metric)
			continue
		}
		for _, l := range s.Labels {
			if l == "job" || l == "instance" {
				continue // added by Prometheus
			}
			if !series.Labels[l] {
				t.Errorf("%s: %s has no label %q (it has %v)", where, s.Metric, l, keys(series.Labels))
			}
		}
	}
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(repoPath("deployments", "grafana", "dashboards", "icthp.json"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := DashboardQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	exported := liveMetrics(t)
	used := map[string]bool{}
	for where, q := range qs {
		checkQuery(t, where, q, exported)
		sels, _ := Selectors(ExpandGrafana(q))
		for _, s := range sels {
			used[s.Metric] = true
		}
	}
	// What the issue asks the dashboard to show.
	for what, m := range map[string]string{
		"throughput": "icthp_http_requests_total", "latency percentiles": "icthp_http_request_duration_seconds_bucket",
		"queue depth": "icthp_batcher_queue_depth", "batch sizes": "icthp_batcher_batch_size_bucket",
		"cache hit rate": "icthp_cache_lookups_total", "Redis errors": "icthp_cache_redis_errors_total",
		"model versions": "icthp_model_info", "readiness": "icthp_ready",
	} {
		if !used[m] {
			t.Errorf("the dashboard shows no %s (%s)", what, m)
		}
	}
}

func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(repoPath("deployments", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	exported := liveMetrics(t)
	var names []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			names = append(names, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no severity label or summary", r.Alert)
			}
			checkQuery(t, "alert "+r.Alert, r.Expr, exported)
		}
	}
	// What the issue asks to be alerted on.
	for _, want := range []string{"IcthpHighErrorRate", "IcthpHighLatencyP99", "IcthpQueueSaturated", "IcthpRedisDown", "IcthpNotReady"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s (have %v)", want, names)
		}
	}
}

// reporter is the part of testing.T checkQuery uses.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder is a reporter that remembers whether it was told of an error.
type recorder struct{ failed bool }

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

// solidPNG is a base64 8×8 PNG of one grey level: a new image for the cache.
func solidPNG(v uint8) string {
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = v*16 + 7
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// TestQueryCheckCatches: the checks above fail on what they should.
func TestQueryCheckCatches(t *testing.T) {
	exported := map[string]Series{
		"icthp_http_requests_total": {Labels: map[string]bool{"route": true, "status": true}},
	}
	tests := []struct {
		q    string
		fail bool
	}{
		{`sum by (route) (rate(icthp_http_requests_total{route=~"$route", job="$job"}[$__rate_interval]))`, false},
		{`rate(icthp_http_request_total[5m])`, true},               // misspelt metric
		{`rate(icthp_http_requests_total{model="ict"}[5m])`, true}, // label it does not have
		{`rate({route="/v1/score"}[5m])`, true},                    // no metric name
		{`sum(rate(icthp_http_requests_total[5m]`, true},           // does not parse
		{`label_values(icthp_http_requests_total{job=~"$job"}, route)`, false},
		{`label_values(icthp_http_requests_total, model)`, true},
		{`up{job="icthp"} == 0`, false},
		{`sum by (route, le) (rate(icthp_http_requests_total[5m]))`, true},  // le is no label of a counter
		{`sum by (rout) (rate(icthp_http_requests_total[5m]))`, true},       // misspelt grouping label
		{`sum without (rout) (rate(icthp_http_requests_total[5m]))`, false}, // without: absent labels are harmless
		{`sum by (job) (rate(icthp_http_requests_total[5m])) > 0`, false},
	}
	for _, tc := range tests {
		var r recorder
		checkQuery(&r, "q", tc.q, exported)
		if r.failed != tc.fail {
			t.Errorf("%s: failed %v, want %v", tc.q, r.failed, tc.fail)
		}
	}
}

// TestAutoscalingMetricExported: the metric the chart's HPA scales on is one
// icthp exports (prometheus-adapter serves it under the same name).
func TestAutoscalingMetricExported(t *testing.T) {
	exported := liveMetrics(t)
	for _, rc := range renderCases[:2] {
		objs := render(t, rc)
		hpas := find[*autoscalingv2.HorizontalPodAutoscaler](objs)
		if len(hpas) == 0 {
			t.Fatalf("%s: no HPA rendered", rc.name)
		}
		for _, h := range hpas {
			for _, m := range h.Spec.Metrics {
				if m.Pods == nil {
					continue
				}
				if _, ok := exported[m.Pods.Metric.Name]; !ok {
					t.Errorf("%s: the HPA scales on %s, which icthp serve does not export", rc.name, m.Pods.Metric.Name)
				}
			}
		}
	}
}
