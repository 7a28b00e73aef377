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
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--threads", "1", "--drain-delay", "100ms")
	lib, err := ortlib.Locate("")
	if err != nil {
		t.Skipf("onnxruntime is not installed: %v", err)
	}
	// A fresh cache folder: the demo models are made there on first use.
	cmd.Env = append(os.Environ(), "ICTHP_CACHE="+t.TempDir(), ortlib.EnvLib+"="+lib, "ICTHP_AUTH_TOKENS=tok")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 64)
	var logs bytes.Buffer
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stderr, &logs))
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	var addr string
	for l := range lines {
		if l["msg"] == "listening" {
			addr = l["addr"].(string)
			break
		}
	}
	if addr == "" {
		t.Fatalf("no listening line:\n%s", logs.String())
	}
	url := "http://" + addr
	for deadline := time.Now().Add(time.Minute); ; {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	img, err := os.ReadFile(filepath.Join(repoRoot, "testdata/demo/sunset.png"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"prompt": "a sunset", "images": []string{base64.StdEncoding.EncodeToString(img)}})
	req, _ := http.NewRequest("POST", url+"/v1/score", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines { // drain the log until the process closes stderr
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0\n%s", err, logs.String())
	}
	for _, want := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
