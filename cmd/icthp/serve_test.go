package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icthp/icthp/models/ortlib"
)

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "tokens")
	os.WriteFile(empty, []byte("# no tokens here\n\n"), 0o600)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"bad env number", map[string]string{"ICTHP_QUEUE_SIZE": "lots"}, nil, 2, "$ICTHP_QUEUE_SIZE"},
		{"bad env duration", map[string]string{"ICTHP_TIMEOUT": "5"}, nil, 2, "$ICTHP_TIMEOUT"},
		{"bad env bool", map[string]string{"ICTHP_AUTH_METRICS": "maybe"}, nil, 2, "$ICTHP_AUTH_METRICS"},
		{"zero limit", nil, []string{"--max-images", "0"}, 2, "--max-images must be positive"},
		{"positional", nil, []string{"extra"}, 2, "unexpected arguments"},
		{"bad reward", nil, []string{"--reward", "max"}, 2, "--reward"},
		{"bad log level", nil, []string{"--log-level", "loud"}, 2, "--log-level"},
		{"missing tokens file", nil, []string{"--auth-tokens-file", filepath.Join(dir, "none")}, 1, "auth tokens"},
		{"empty tokens file", nil, []string{"--auth-tokens-file", empty}, 1, "holds no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			getenv := func(k string) string { return tc.env[k] }
			code := run(context.Background(), &app{stdout: &o, stderr: &e, getenv: getenv}, append([]string{"serve"}, tc.args...))
			if code != tc.code || !strings.Contains(e.String(), tc.msg) || strings.Count(strings.TrimSpace(e.String()), "\n") != 0 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line with %q", code, e.String(), tc.code, tc.msg)
			}
		})
	}
}

// TestServeSIGTERM runs the real binary with the demo models, scores an
// image over HTTP, sends SIGTERM, and expects a clean drain and exit 0.
func TestServeSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := builtBinary(t)
	lib, err := ortlib.Locate("")
	if err != nil {
		t.Skipf("onnxruntime is not installed: %v", err)
	}
	// A fresh cache folder: the demo models are made there on first use.
	p := startBinary(t, bin, []string{"ICTHP_CACHE=" + t.TempDir(), ortlib.EnvLib + "=" + lib, "ICTHP_AUTH_TOKENS=tok"},
		"serve", "--addr", "127.0.0.1:0", "--threads", "1", "--drain-delay", "100ms")
	scoreSunset(t, p.url, "tok")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range p.lines { // drain the log until the process closes stderr
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, p.logs.String())
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, p.logs.String())
		}
	}
}

// servedBinary is an `icthp serve` process: its JSON log lines as they come
// (closed when it closes stderr), all of its log, and its base URL.
type servedBinary struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	logs  *bytes.Buffer
	url   string
}

// startBinary starts bin with args and env added to this process's, reads
// the address from its "listening" log line and waits for /readyz. The
// process is killed when the test ends.
func startBinary(t *testing.T, bin string, env []string, args ...string) *servedBinary {
	t.Helper()
	p := &servedBinary{cmd: exec.Command(bin, args...), lines: make(chan map[string]any, 64), logs: &bytes.Buffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, p.logs))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				p.lines <- l
			}
		}
		close(p.lines)
	}()
	var addr string
	for l := range p.lines {
		if l["msg"] == "listening" {
			addr = l["addr"].(string)
			break
		}
	}
	if addr == "" {
		t.Fatalf("no listening line:\n%s", p.logs.String())
	}
	p.url = "http://" + addr
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := http.Get(p.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scoreSunset scores the demo sunset with token and expects its three
// scores.
func scoreSunset(t *testing.T, url, token string) {
	t.Helper()
	img, err := os.ReadFile(filepath.Join(repoRoot, "testdata/demo/sunset.png"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"prompt": "a sunset", "images": []string{base64.StdEncoding.EncodeToString(img)}})
	req, _ := http.NewRequest("POST", url+"/v1/score", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Scores []map[string]float64 `json:"scores"`
	}
	json.NewDecoder(res.Body).Decode(&out)
	res.Body.Close()
	if res.StatusCode != 200 || len(out.Scores) != 1 || len(out.Scores[0]) != 3 {
		t.Fatalf("score: %d %v", res.StatusCode, out)
	}
}
