package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/icthp/icthp/cache/redistest"
)

func runWithEnv(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var o, e bytes.Buffer
	code := run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(k string) string { return env[k] }}, args)
	return o.String(), e.String(), code
}

// score with --redis stores its entries under the documented keys (the
// image key ends in the file's sha256sum); a dead Redis changes nothing in
// the output; a bad URL is a usage error.
func TestScoreWithRedis(t *testing.T) {
	needORT(t)
	srv := redistest.Start(t)
	img := "../../testdata/demo/sunset.png"
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	args := []string{"score", "--prompt", "a sunset", img}
	plain, errOut, code := runWithEnv(t, nil, append([]string{"score", "--cache-bytes", "0"}, args[1:]...)...)
	if code != 0 {
		t.Fatalf("without a cache: exit %d: %s", code, errOut)
	}
	out, errOut, code := runWithEnv(t, map[string]string{"ICTHP_REDIS": srv.URL()}, args...)
	if code != 0 || out != plain {
		t.Fatalf("with Redis: exit %d, output %q, want %q (%s)", code, out, plain, errOut)
	}
	keys, err := srv.CLI("--scan")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(keys)
	if len(lines) != 3 {
		t.Fatalf("Redis holds %q, want a text, an image and an hp entry", keys)
	}
	for _, kind := range []string{":text:", ":image:" + hex.EncodeToString(sum[:]), ":hp:" + hex.EncodeToString(sum[:])} {
		if !strings.Contains(keys, kind) {
			t.Errorf("no key with %q in %q", kind, keys)
		}
	}
	// Served from Redis: the same output.
	if out, _, code = runWithEnv(t, nil, append([]string{"score", "--redis", srv.URL()}, args[1:]...)...); code != 0 || out != plain {
		t.Errorf("from Redis: exit %d, %q", code, out)
	}
	srv.Stop()
	if out, errOut, code = runWithEnv(t, nil, append([]string{"score", "--redis", srv.URL(), "--redis-timeout", "50ms"}, args[1:]...)...); code != 0 || out != plain {
		t.Errorf("Redis down: exit %d, %q (%s)", code, out, errOut)
	}
	for _, bad := range [][]string{{"--redis", "http://x"}, {"--cache-bytes", "-1"}} {
		if _, errOut, code := runWithEnv(t, nil, append(append([]string{"score"}, bad...), args[1:]...)...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", bad, code, errOut)
		}
	}
}
