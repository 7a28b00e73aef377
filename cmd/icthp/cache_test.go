package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/icthp/icthp/cache"
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
	for _, bad := range [][]string{{"--redis", "http://x"}, {"--cache-bytes", "-1"}, {"--cache-breaker-failures", "0"},
		{"--cache-breaker-failures", "x"}, {"--cache-breaker-cooldown", "-1s"}, {"--cache-breaker-cooldown", "5"}} {
		if _, errOut, code := runWithEnv(t, nil, append(append([]string{"score"}, bad...), args[1:]...)...); code != 2 ||
			len(errorLines(errOut)) != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", bad, code, errOut)
		}
	}
	if _, errOut, code := runWithEnv(t, map[string]string{"ICTHP_CACHE_BREAKER_COOLDOWN": "soon"}, args...); code != 2 ||
		len(errorLines(errOut)) != 1 || !strings.Contains(errorLines(errOut)[0], "ICTHP_CACHE_BREAKER_COOLDOWN") {
		t.Errorf("bad $ICTHP_CACHE_BREAKER_COOLDOWN: exit %d, stderr %q; want 2 and one line naming it", code, errOut)
	}
}

// errorLines are stderr's lines less the demo-mode banner.
func errorLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !strings.HasPrefix(l, "icthp: *** ") {
			out = append(out, l)
		}
	}
	return out
}

// The breaker flags (or their environment variables) reach the cache: with
// a dead Redis the circuit opens on the N-th failed request and not before,
// and the line that says so carries the cool-down. Bad values are usage
// errors.
func TestCacheBreakerFlags(t *testing.T) {
	dead := redistest.Start(t)
	dead.Stop() // nothing listens there now: every round trip fails at once
	for _, c := range []struct {
		name     string
		args     []string
		env      map[string]string
		failures int
		cooldown time.Duration
		bad      string // the usage error's text, when it is one
	}{
		{name: "defaults", failures: 3, cooldown: 5 * time.Second},
		{name: "flags", args: []string{"--cache-breaker-failures", "1", "--cache-breaker-cooldown", "90s"}, failures: 1, cooldown: 90 * time.Second},
		{name: "env", env: map[string]string{"ICTHP_CACHE_BREAKER_FAILURES": "5", "ICTHP_CACHE_BREAKER_COOLDOWN": "2m"}, failures: 5, cooldown: 2 * time.Minute},
		{name: "flag over env", args: []string{"--cache-breaker-failures", "2"}, env: map[string]string{"ICTHP_CACHE_BREAKER_FAILURES": "5"},
			failures: 2, cooldown: 5 * time.Second},
		{name: "zero failures", args: []string{"--cache-breaker-failures", "0"}, bad: "--cache-breaker-failures must be at least 1"},
		{name: "negative failures", args: []string{"--cache-breaker-failures", "-2"}, bad: "--cache-breaker-failures must be at least 1"},
		{name: "zero cool-down", args: []string{"--cache-breaker-cooldown", "0s"}, bad: "--cache-breaker-cooldown must be positive"},
		{name: "bad env", env: map[string]string{"ICTHP_CACHE_BREAKER_FAILURES": "many"}, bad: "$ICTHP_CACHE_BREAKER_FAILURES"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return c.env[k] }}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var cf cacheFlags
			cf.register(fs, a)
			if err := fs.Parse(append(c.args, "--redis", dead.URL(), "--cache-bytes", "0")); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			cf.logger = slog.New(slog.NewTextHandler(&log, nil))
			ch, err := cf.open(a, nil)
			if c.bad != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.bad) {
					t.Fatalf("err %v, want a usage error with %q", err, c.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			for i := 1; i <= c.failures; i++ {
				if got := ch.Circuit(); got != cache.Closed {
					t.Fatalf("circuit %v after %d failed requests, want closed until %d", got, i-1, c.failures)
				}
				key := []cache.Key{{Version: "v", Kind: cache.KindText, Sum: cache.BytesSum([]byte{byte(i)})}}
				vals, _, err := ch.Resolve(context.Background(), key, func(context.Context, []int) ([]cache.Value, []error, error) {
					return []cache.Value{{Vec: []float32{float32(i)}}}, nil, nil
				})
				if err != nil || vals[0].Vec[0] != float32(i) {
					t.Fatalf("request %d: %v, %v", i, vals, err)
				}
			}
			if got := ch.Circuit(); got != cache.Open {
				t.Fatalf("circuit %v after %d failed requests, want open", got, c.failures)
			}
			if want := "retry_after=" + c.cooldown.String(); !strings.Contains(log.String(), want) {
				t.Errorf("log %q, want %q", log.String(), want)
			}
		})
	}
}
