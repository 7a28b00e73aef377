package main

// ImageReward behind serve's dynamic batcher: the real `icthp serve` in
// process with only --imagereward (a tiny random model made by
// `icthp convert random`), real onnxruntime sessions, loopback HTTP.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// irTestPNG is a small PNG that differs with i (size and colours), so that
// no two requests send the same image.
func irTestPNG(t *testing.T, i int) []byte {
	t.Helper()
	w, h := 40+7*i, 30+5*i
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*5 + 31*i), uint8(y*3 + 17*i), uint8(200 - 13*i), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// metricValue reads one sample from /metrics' text format: the series name
// with its labels as written there; 0 for a series not yet observed.
func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

type irReply struct {
	status     int
	retryAfter string
	score      float64
	code       string
	reason     string
}

func postIRScore(url, prompt string, img []byte) (irReply, error) {
	body, _ := json.Marshal(map[string]any{"prompt": prompt, "images": []string{base64.StdEncoding.EncodeToString(img)}})
	res, err := http.Post(url+"/v1/score", "application/json", bytes.NewReader(body))
	if err != nil {
		return irReply{}, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Scores []struct {
			ImageReward *float64 `json:"imagereward"`
		} `json:"scores"`
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return irReply{}, fmt.Errorf("status %d, body %q: %w", res.StatusCode, raw, err)
	}
	r := irReply{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), code: out.Error.Code, reason: out.Error.Message}
	if res.StatusCode == http.StatusOK {
		if len(out.Scores) != 1 || out.Scores[0].ImageReward == nil {
			return r, fmt.Errorf("body %q has no imagereward score", raw)
		}
		r.score = *out.Scores[0].ImageReward
	}
	return r, nil
}

// Concurrent single-image /v1/score requests meet in the ImageReward image
// encoder's batcher: with --batch-size larger than the requests and a long
// --batch-wait, all of them wait in its queue (seen in
// icthp_batcher_queue_depth), one more request finds the queue full and gets
// 429, and then the waiting ones run as one batch (the batch-size histogram
// gains one run of all of them) and get the scores the scorer gives each
// image alone, without a batcher.
func TestServeImageRewardBatched(t *testing.T) {
	needORT(t)
	const (
		prompt  = "a red fox in the snow"
		n       = 8 // requests that wait together; also --queue-size and --admit-images
		maxWait = 4 * time.Second
	)
	dir, imgs, want := irBatchFixture(t, prompt, n)

	// /readyz waits for the warm-up: one image, then a batch of n (--queue-size).
	url := serveInProcess(t, "--imagereward", dir, "--drain-delay", "0s", "--threads", "1",
		"--cache-bytes", "0", "--batch-size", "16", "--batch-wait", maxWait.String(), "--queue-size", strconv.Itoa(n), "--admit-images", strconv.Itoa(n))
	const (
		lbl   = `{graph="vision",model="imagereward"}`
		runs  = "icthp_batcher_batch_size_count" + lbl
		items = "icthp_batcher_batch_size_sum" + lbl
		depth = "icthp_batcher_queue_depth" + lbl
		// Admission refuses the request past --admit-images unread; the
		// graph's queue, never smaller, refuses nothing.
		full  = `icthp_http_rejected_total{reason="queue_full"}`
		qfull = `icthp_batcher_rejected_total{graph="vision",model="imagereward",reason="queue_full"}`
	)
	runs0, items0 := metricValue(t, url, runs), metricValue(t, url, items)
	if runs0 != 2 || items0 != 1+n {
		t.Fatalf("after warm-up: %v runs of %v items, want the warm-up image alone, then a batch of %d", runs0, items0, n)
	}

	replies := make([]irReply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = postIRScore(url, prompt, imgs[i])
		}()
	}
	// Wait until all n images are queued; no batch may have run before.
	for metricValue(t, url, depth) < n {
		if r := metricValue(t, url, runs); r != runs0 {
			wg.Wait()
			t.Fatalf("a batch ran before all %d requests were queued (the requests took longer than --batch-wait %v to arrive)", n, maxWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	over, err := postIRScore(url, prompt, imgs[n])
	if err != nil {
		t.Fatal(err)
	}
	if over.status != http.StatusTooManyRequests || over.code != "overloaded" || over.retryAfter == "" {
		t.Errorf("request beyond --admit-images: status %d, code %q, Retry-After %q (%s); want 429 overloaded with Retry-After",
			over.status, over.code, over.retryAfter, over.reason)
	}
	wg.Wait()
	worst := 0.0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if replies[i].status != http.StatusOK {
			t.Fatalf("request %d: status %d %s", i, replies[i].status, replies[i].reason)
		}
		d := math.Abs(replies[i].score - want[i])
		if d > 1e-5 {
			t.Errorf("image %d: batched %v, alone %v (|Δ| %.3g > 1e-5)", i, replies[i].score, want[i], d)
		}
		worst = max(worst, d)
	}
	t.Logf("%d images in one batch: largest |batched − alone| %.3g", n, worst)
	if r, it := metricValue(t, url, runs)-runs0, metricValue(t, url, items)-items0; r != 1 || it != n {
		t.Errorf("%d requests ran as %v runs of %v images in all; want one run of %d", n, r, it, n)
	}
	for name, want := range map[string]float64{full: 1, qfull: 0} {
		if v := metricValue(t, url, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// irBatchFixture makes a tiny random ImageReward model, n+1 test PNGs and
// the first n's scores, each image scored alone (the reference).
func irBatchFixture(t *testing.T, prompt string, n int) (dir string, imgs [][]byte, want []float64) {
	dir = filepath.Join(t.TempDir(), "ir")
	mustRun(t, "convert", "random", "--preset", "imagereward-tiny", "--kind", "imagereward", "--seed", "7", "--out", dir)
	imgs = make([][]byte, n+1)
	for i := range imgs {
		imgs[i] = irTestPNG(t, i)
	}
	return dir, imgs, irScoresAlone(t, dir, prompt, imgs[:n])
}

// irScoresAlone is the reference: each image scored alone by the model in
// dir without a batcher.
func irScoresAlone(t *testing.T, dir, prompt string, imgs [][]byte) []float64 {
	t.Helper()
	ref, err := imagereward.Open(dir, models.SessionOptions{IntraOpThreads: 1}, imagereward.Options{})
	if err != nil {
		t.Fatal(err)
	}
	refSvc, err := scoring.New([]scorer.Model{{Spec: imagereward.Entry.Spec, Scorer: ref}}, scoring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(imgs))
	for i := range imgs {
		p := prompt
		res, err := refSvc.Score(context.Background(), scoring.ScoreRequest{Prompt: &p, Images: []scoring.Image{{Data: imgs[i]}}})
		if err != nil || res.Scores[0].Err != nil {
			t.Fatalf("unbatched image %d: %v %+v", i, err, res)
		}
		want[i] = *res.Scores[0].Get("imagereward")
	}
	ref.Close()
	return want
}
