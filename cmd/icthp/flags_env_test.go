package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestFlagEnv: every flag takes its value from ICTHP_<NAME> unless the
// command line gives it; an empty variable is ignored; a value the flag
// refuses is a usage error naming the variable.
func TestFlagEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		n    int
		d    time.Duration
		b    bool
		s    string
		// inputs are the values a repeatable flag received, comma-joined.
		inputs string
		bad    string
	}{
		{name: "defaults", n: 7, d: time.Second, s: "def"},
		{name: "env", env: map[string]string{"ICTHP_QUEUE_SIZE": "16", "ICTHP_BATCH_WAIT": "3ms", "ICTHP_AUTH_HEALTH": "true", "ICTHP_LOG_LEVEL": "warn"},
			n: 16, d: 3 * time.Millisecond, b: true, s: "warn"},
		{name: "flag over env", env: map[string]string{"ICTHP_QUEUE_SIZE": "16", "ICTHP_LOG_LEVEL": "warn"}, args: []string{"--queue-size", "4", "pos", "--log-level=debug"},
			n: 4, d: time.Second, s: "debug"},
		{name: "empty env ignored", env: map[string]string{"ICTHP_QUEUE_SIZE": ""}, n: 7, d: time.Second, s: "def"},
		{name: "bad int", env: map[string]string{"ICTHP_QUEUE_SIZE": "many"}, bad: `$ICTHP_QUEUE_SIZE="many"`},
		{name: "bad duration", env: map[string]string{"ICTHP_BATCH_WAIT": "3"}, bad: `$ICTHP_BATCH_WAIT="3"`},
		{name: "bad bool", env: map[string]string{"ICTHP_AUTH_HEALTH": "maybe"}, bad: `$ICTHP_AUTH_HEALTH="maybe"`},
		{name: "repeatable: flag replaces env", env: map[string]string{"ICTHP_INPUT": "env"}, args: []string{"--input", "a", "--input", "b"},
			n: 7, d: time.Second, s: "def", inputs: "a,b"},
		{name: "repeatable: env alone", env: map[string]string{"ICTHP_INPUT": "env"}, n: 7, d: time.Second, s: "def", inputs: "env"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return c.env[k] }}
			fs := newFlags(a, "test")
			n := fs.Int("queue-size", 7, "")
			d := fs.Duration("batch-wait", time.Second, "")
			b := fs.Bool("auth-health", false, "")
			s := fs.String("log-level", "def", "")
			var inputs []string
			fs.Func("input", "", func(v string) error { inputs = append(inputs, v); return nil })
			_, err := parseFlags(fs, c.args)
			if c.bad != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.bad) {
					t.Fatalf("err %v, want a usage error naming %s", err, c.bad)
				}
				return
			}
			if got := strings.Join(inputs, ","); err != nil || *n != c.n || *d != c.d || *b != c.b || *s != c.s || got != c.inputs {
				t.Errorf("got %d %v %v %q %q (%v), want %d %v %v %q %q", *n, *d, *b, *s, got, err, c.n, c.d, c.b, c.s, c.inputs)
			}
		})
	}
}

// TestFlagEnvCommandLine: a malformed variable for a flag that had none of
// its own before (serve's --batch-size) exits 2 with one line naming it,
// before any model is loaded.
func TestFlagEnvCommandLine(t *testing.T) {
	var o, e bytes.Buffer
	env := map[string]string{"ICTHP_BATCH_SIZE": "lots"}
	code := run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(k string) string { return env[k] }}, []string{"serve"})
	if code != 2 || strings.Count(e.String(), "\n") != 1 || !strings.Contains(e.String(), "$ICTHP_BATCH_SIZE") {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming $ICTHP_BATCH_SIZE", code, e.String())
	}
}

// helpFlags runs `icthp ARGS -h` and returns the flag names it lists.
func helpFlags(t *testing.T, args ...string) []string {
	t.Helper()
	var o, e bytes.Buffer
	if code := run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, append(args, "-h")); code != 0 {
		t.Fatalf("icthp %v -h: exit %d: %s", args, code, e.String())
	}
	if !strings.Contains(e.String(), "ICTHP_") {
		t.Errorf("icthp %v -h does not say how flags map to environment variables", args)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(e.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("icthp %v -h lists no flags:\n%s", args, e.String())
	}
	return names
}

// TestREADMEFlags: the README and --help agree: every flag of every command
// is named in the README, and every flag in a README flag table exists.
func TestREADMEFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]bool{}
	for _, cmd := range [][]string{{"score"}, {"batch"}, {"serve"}, {"loadtest"}, {"tokenize"}, {"setup"},
		{"convert", "clip"}, {"convert", "hp"}, {"convert", "random"}, {"convert", "imagereward"},
		{"models", "inspect"}, {"models", "compare"}} {
		for _, f := range helpFlags(t, cmd...) {
			all[f] = true
		}
	}
	var missing []string
	for f := range all {
		if !regexp.MustCompile("--" + regexp.QuoteMeta(f) + "([^a-z0-9-]|$)").Match(readme) {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("flags not in README.md: %v", missing)
	}
	for _, line := range strings.Split(string(readme), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cell := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range regexp.MustCompile("--([a-z0-9-]+)").FindAllStringSubmatch(cell, -1) {
			if !all[m[1]] {
				t.Errorf("README.md's flag table names --%s, which no command has: %s", m[1], line)
			}
		}
	}
}

// TestFlagPlaceholders: every flag of every command (and of each kind of
// convert and models) shows as "-name" alone or "-name PLACEHOLDER", one
// word, in its -h: package flag takes a backquoted word of the usage text
// as the placeholder, and usage text quoting a command once made the zoo
// flags read "-pickscore icthp convert pickscore".
func TestFlagPlaceholders(t *testing.T) {
	flagLine := regexp.MustCompile(`^  -(\S+)(.*)$`)
	var lines []string
	for name, c := range commands() {
		argv := [][]string{{name, "-h"}}
		if first := strings.Fields(c.args); len(first) > 0 && strings.Contains(first[0], "|") {
			argv = argv[:0]
			for _, sub := range strings.Split(first[0], "|") {
				argv = append(argv, []string{name, sub, "-h"})
			}
		}
		if name == "models" {
			argv = [][]string{{name, "inspect", "-h"}, {name, "compare", "-h"}}
		}
		for _, args := range argv {
			var o, e bytes.Buffer
			run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, args)
			n := 0
			for _, l := range strings.Split(e.String(), "\n") {
				m := flagLine.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				n++
				if p := strings.TrimSpace(m[2]); strings.Contains(p, " ") {
					t.Errorf("icthp %s: flag -%s shows placeholder %q, want one word", strings.Join(args, " "), m[1], p)
				}
			}
			lines = append(lines, strings.Join(args, " "))
			if n == 0 {
				t.Errorf("icthp %s printed no flags: %q", strings.Join(args, " "), e.String())
			}
		}
	}
	sort.Strings(lines)
	t.Logf("checked: %s", strings.Join(lines, "; "))
}
