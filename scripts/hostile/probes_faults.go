package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pngHeader is a PNG that declares w×h and holds no pixel data: a
// decompression bomb by its header.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

type badCase struct {
	name, ctype string
	body        []byte
	want        int // exact status; 0: any 4xx
}

func badInputs() []badCase {
	good := pngImage(64, 64, 7, true)
	raw := func(hdr string, px int) []byte { return append([]byte(hdr+"\n"), make([]byte, px)...) }
	deep := strings.Repeat("[", 100000)
	many := make([][]byte, 65)
	for i := range many {
		many[i] = good
	}
	return []badCase{
		{"broken JSON", "application/json", []byte(`{"images": [`), 400},
		{"images not a list", "application/json", []byte(`{"images": "x"}`), 400},
		{"invalid base64", "application/json", []byte(`{"prompt":"a","images":["%%%"]}`), 400},
		{"truncated PNG", "application/json", scoreBody(good[:100]), 0},
		{"PNG header 100000×100000", "application/json", scoreBody(pngHeader(100000, 100000)), 413},
		{"PNG header 7100×7100 (50.4 Mpx)", "application/json", scoreBody(pngHeader(7100, 7100)), 413},
		{"not an image", "application/json", scoreBody([]byte("hello, world")), 0},
		{"JSON nested 100000 deep", "application/json", []byte(`{"images":` + deep), 400},
		{"prompt of 1 MB", "application/json", []byte(`{"prompt":"` + strings.Repeat("a", 1<<20) + `","images":[]}`), 0},
		{"65 images", "application/json", scoreBody(many...), 413},
		{"raw shape [0,0,3]", "application/x-icthp-tensor", raw(`{"prompt":"a","shape":[0,0,3],"dtype":"uint8"}`, 0), 0},
		{"raw shape negative", "application/x-icthp-tensor", raw(`{"prompt":"a","shape":[-4,4,3],"dtype":"uint8"}`, 48), 0},
		{"raw short pixels", "application/x-icthp-tensor", raw(`{"prompt":"a","shape":[64,64,3],"dtype":"uint8"}`, 100), 0},
		{"raw float32", "application/x-icthp-tensor", raw(`{"prompt":"a","shape":[4,4,3],"dtype":"float32"}`, 192), 0},
		{"raw header without newline", "application/x-icthp-tensor", bytes.Repeat([]byte("{"), 2<<20), 0},
		{"raw side over 32768", "application/x-icthp-tensor", raw(`{"prompt":"a","shape":[1,40000,3],"dtype":"uint8"}`, 0), 0},
	}
}

// probeBadInput: each bad request is refused with its 4xx in < 2 s; the
// server still answers a normal request afterwards.
func probeBadInput(ctx context.Context, c *config, s *server) []result {
	cl := &http.Client{Timeout: 30 * time.Second}
	var wrong []string
	var slowest time.Duration
	cases := badInputs()
	for _, bc := range cases {
		code, lat, body, err := post(ctx, cl, s.url+"/v1/score", bc.ctype, bc.body)
		slowest = max(slowest, lat)
		if err != nil || (bc.want != 0 && code != bc.want) || code < 400 || code >= 500 || lat > 2*time.Second {
			wrong = append(wrong, fmt.Sprintf("%s: %d %v %.80s", bc.name, code, err, body))
		}
	}
	code, _, _, err := post(ctx, cl, s.url+"/v1/score", "application/json", scoreBody(pngImage(64, 64, 8, true)))
	if err != nil || code != 200 {
		wrong = append(wrong, fmt.Sprintf("normal request afterwards: %d %v", code, err))
	}
	fig := fmt.Sprintf("%d/%d refused as expected, slowest %s", len(cases)-min(len(wrong), len(cases)), len(cases), slowest.Round(time.Millisecond))
	if len(wrong) > 0 {
		fig += "; " + strings.Join(wrong, "; ")
	}
	return []result{{probe: "badinput: bad inputs and bombs", figure: fig, target: "each its 4xx in < 2 s, then a 200", ok: len(wrong) == 0}}
}

// probeContract: the HTTP contract edges of issue 16 item 5.
func probeContract(ctx context.Context, c *config, s *server) []result {
	img := `"` + base64.StdEncoding.EncodeToString(pngImage(32, 32, 9, true)) + `"`
	cases := []struct {
		name, path, ctype, body string
		want                    int
		code                    string // the error code the body must carry ("": any)
	}{
		{"text/plain", "/v1/score", "text/plain", "hello", 415, "unsupported_media_type"},
		{"form-urlencoded", "/v1/score", "application/x-www-form-urlencoded", "a=b", 415, "unsupported_media_type"},
		{"overflowing weights", "/v1/reward", "application/json", overflowBody(ctx, s.url), 422, "reward_overflow"},
		{"invalid UTF-8 prompt", "/v1/score", "application/json", "{\"prompt\":\"a\xff\",\"images\":[" + img + "]}", 400, "bad_request"},
		{"JSON key in another case", "/v1/score", "application/json", `{"Images":[` + img + `],"prompt":"a"}`, 400, "bad_request"},
	}
	var rows []result
	cl := &http.Client{Timeout: 30 * time.Second}
	for _, k := range cases {
		code, _, body, err := post(ctx, cl, s.url+k.path, k.ctype, []byte(k.body))
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		rows = append(rows, result{probe: "contract: " + k.name, figure: fmt.Sprintf("%d %.60s %v", code, body, errOrNil(err)),
			target: strconv.Itoa(k.want) + " " + k.code, ok: err == nil && code == k.want && (k.code == "" || e.Error.Code == k.code)})
	}
	return rows
}

// overflowBody is a /v1/reward body whose weighted sum overflows float64
// with finite weights: an item's scores are asked first (the default
// reward), and each score gets the largest finite weight of its sign, so
// the sum is MaxFloat64 × Σ|score|, which is +Inf when Σ|score| > 1. With
// the demo models every |score| < 1, so one score alone never overflows
// (the earlier fixed {"ict":1.79e308,"hp":1.79e308} answered 200); their
// sum over ict, hp and hp_logit does for a solid green image (1.37 with
// the prompt "a"; most textured images stay under 1), so the candidates
// are tried in turn. When none overflows, the body carries a field the
// server refuses (400, not the 422 the row wants) naming the sums.
func overflowBody(ctx context.Context, url string) string {
	green := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	draw.Draw(green, green.Bounds(), &image.Uniform{color.NRGBA{0, 255, 0, 255}}, image.Point{}, draw.Src)
	var gb bytes.Buffer
	_ = png.Encode(&gb, green) // encoding to memory does not fail
	cl := &http.Client{Timeout: 30 * time.Second}
	var seen []string
	for _, im := range [][]byte{gb.Bytes(), pngImage(32, 32, 9, true)} {
		item := `{"items":[{"prompt":"a","image":"` + base64.StdEncoding.EncodeToString(im) + `"}]`
		code, _, body, err := post(ctx, cl, url+"/v1/reward", "application/json", []byte(item+"}"))
		var cols map[string]json.RawMessage
		if err != nil || code != 200 || json.Unmarshal(body, &cols) != nil {
			seen = append(seen, fmt.Sprintf("%d %v %.80s", code, err, body))
			continue
		}
		weights := map[string]float64{}
		sum := 0.0
		for k, raw := range cols {
			var v []float64
			if k == "rewards" || json.Unmarshal(raw, &v) != nil || len(v) != 1 {
				continue // not a score column (models, errors, the rewards themselves)
			}
			weights[k] = math.Copysign(math.MaxFloat64, v[0])
			sum += math.Abs(v[0])
		}
		if sum > 1.001 {
			w, _ := json.Marshal(weights)
			return item + `,"weights":` + string(w) + `}`
		}
		seen = append(seen, fmt.Sprintf("sum of |scores| %.4f", sum))
	}
	return fmt.Sprintf(`{"items":[],"no_overflow_possible":%q}`, strings.Join(seen, "; "))
}

func errOrNil(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// probeBatchKill: `icthp batch` killed with SIGKILL mid-run, then rerun:
// every image has exactly one row, none with an error.
func probeBatchKill(ctx context.Context, c *config) []result {
	const name = "batch"
	n := map[bool]int{true: 120, false: 400}[c.short]
	dir := filepath.Join(c.work, "batch-in")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failed(name, err)
	}
	for i := 0; i < n; i++ {
		k := filepath.Join(dir, fmt.Sprintf("img%04d", i))
		if os.WriteFile(k+".png", pngImage(96, 96, uint64(i+1000), true), 0o644) != nil || os.WriteFile(k+".txt", []byte("a photo of a cat"), 0o644) != nil {
			return failed(name, fmt.Errorf("writing %s", k))
		}
	}
	out := filepath.Join(c.work, "batch-out.jsonl")
	os.RemoveAll(out + ".parts") // a run before this one in the same --work
	os.Remove(out)
	args := []string{"batch", "--input", dir, "--out", out, "--part-size", "10", "--progress", "never", "--json", "--cache-bytes", "0"}
	first := exec.CommandContext(ctx, c.bin, args...)
	if err := first.Start(); err != nil {
		return failed(name, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) { // kill once some parts are committed
		if parts, _ := filepath.Glob(out + ".parts/part-*"); len(parts) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	sum, err := exec.CommandContext(ctx, c.bin, args...).Output()
	if err != nil {
		return failed(name, fmt.Errorf("rerun: %v", err))
	}
	var s struct {
		PartsSkipped int `json:"parts_skipped"`
		Parts        int `json:"parts"`
	}
	json.Unmarshal(sum, &s)
	rows, uniq, errs := countRows(out)
	return []result{{probe: "batch: kill -9 mid-run, rerun", figure: fmt.Sprintf("%d rows, %d distinct keys, %d errors of %d images; rerun skipped %d of %d parts", rows, uniq, errs, n, s.PartsSkipped, s.Parts),
		target: "every image once, no error, parts reused", ok: rows == n && uniq == n && errs == 0 && s.PartsSkipped > 0}}
}

func countRows(path string) (rows, uniq, errs int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r struct {
			Key   string  `json:"key"`
			Error *string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		rows++
		seen[r.Key] = true
		if r.Error != nil {
			errs++
		}
	}
	return rows, len(seen), errs
}

// probeSlowloris: connections that send their headers a byte at a time
// are closed by --header-timeout, and a normal request meanwhile is
// answered promptly.
func probeSlowloris(ctx context.Context, c *config, s *server) []result {
	n := map[bool]int{true: 200, false: 1000}[c.short]
	closed := make(chan time.Duration, n)
	for i := 0; i < n; i++ {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			n = i
			break
		}
		go func() {
			defer conn.Close()
			start := time.Now()
			msg := "POST /v1/score HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100)
			for j := 0; j < len(msg) && time.Since(start) < 8*time.Second; j++ {
				if _, err := conn.Write([]byte{msg[j]}); err != nil {
					closed <- time.Since(start)
					return
				}
				conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
				if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					closed <- time.Since(start)
					return
				}
			}
			closed <- -1
		}()
	}
	time.Sleep(500 * time.Millisecond)
	var worst time.Duration
	cl := &http.Client{Timeout: 30 * time.Second}
	okN := 0
	for i := 0; i < 5; i++ {
		code, lat, _, err := post(ctx, cl, s.url+"/v1/score", "application/json", scoreBody(pngImage(64, 64, uint64(i), true)))
		worst = max(worst, lat)
		if err == nil && code == 200 {
			okN++
		}
		time.Sleep(200 * time.Millisecond)
	}
	within, slowest := 0, time.Duration(0)
	for i := 0; i < n; i++ {
		d := <-closed
		if d >= 0 && d < 4*time.Second {
			within++
		}
		slowest = max(slowest, d)
	}
	return []result{
		{probe: fmt.Sprintf("slowloris: %d slow-header connections", n), figure: fmt.Sprintf("%d closed within 4 s (slowest %s)", within, slowest.Round(100*time.Millisecond)),
			target: "all closed by --header-timeout 2s", ok: within == n && n > 0},
		{probe: "slowloris: normal requests meanwhile", figure: fmt.Sprintf("%d/5 answered 200, slowest %s", okN, worst.Round(time.Millisecond)),
			target: "5/5 in < 1 s", ok: okN == 5 && worst < time.Second},
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
