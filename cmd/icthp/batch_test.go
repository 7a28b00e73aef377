package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icthp/icthp/batch"
	"github.com/icthp/icthp/batch/batchtest"
	"github.com/icthp/icthp/models/ortlib"
)

// builtBinary builds the real icthp binary once per test binary run.
func builtBinary(t *testing.T) string {
	t.Helper()
	if _, err := ortlib.Locate(""); err != nil {
		t.Skipf("onnxruntime is not installed (run `make setup`): %v", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; cannot build the binary")
	}
	bin := filepath.Join(t.TempDir(), "icthp")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("icthp %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// TestBatchKill9 is the crash test of the issue: it scores a dataset with
// the real binary and real onnxruntime sessions, kills the process with
// SIGKILL part way, reruns the same command, and checks that the output has
// every image exactly once with the scores of an uninterrupted run (byte for
// byte). It then scores the dataset in 3 shards into Parquet and checks
// that they cover it exactly once with the same scores.
func TestBatchKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and scores 320 images")
	}
	bin := builtBinary(t)
	d := t.TempDir()
	ict, hpDir := filepath.Join(d, "ict"), filepath.Join(d, "hp")
	runBin(t, bin, "convert", "random", "--preset", "tiny", "--kind", "clip", "--seed", "7", "--out", ict)
	runBin(t, bin, "convert", "random", "--preset", "tiny", "--kind", "hp", "--seed", "8", "--out", hpDir)
	ds := filepath.Join(d, "ds")
	const n = 320
	keys, err := batchtest.WriteFolder(ds, n, batchtest.Options{Size: 64, MissingPrompts: []int{3, 300}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ds, "000", "000010.jpg"), []byte("not a jpeg"), 0o644)
	common := []string{"batch", "--ict", ict, "--hp", hpDir, "--input", ds, "--batch-size", "4", "--part-size", "8", "--threads", "1"}

	// stderr is a pipe here: no progress line, only the summary.
	wholeOut := filepath.Join(d, "whole.jsonl")
	_, serr := runBin(t, bin, append(common, "--out", wholeOut)...)
	if strings.Contains(serr, "\r") || strings.Count(serr, "\n") != 1 || !strings.Contains(serr, "320 images") || !strings.Contains(serr, "3 with errors") {
		t.Errorf("stderr of a run without a terminal = %q, want just the summary line", serr)
	}
	whole, err := batch.ReadJSONL(wholeOut)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != n {
		t.Fatalf("uninterrupted run: %d rows, want %d", len(whole), n)
	}
	checkWholeRun(t, whole, keys)
	checkBatchMatchesScore(t, bin, ict, hpDir, whole, []int{0, 1, 77, n - 1})

	out := filepath.Join(d, "killed.jsonl")
	journal := filepath.Join(out+".parts", "journal.jsonl")
	cmd, stderr := startBatchUntilParts(t, bin, append(common, "--out", out), journal, 3)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first run ended with %v before the kill (make the dataset bigger): %s", err, stderr.String())
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the killed run had already written the merged output")
	}
	b, _ := os.ReadFile(journal)
	done := bytes.Count(b, []byte(`"part":{`))

	sout, serr := runBin(t, bin, append(common, "--out", out, "--json", "--progress", "always")...)
	if !strings.Contains(serr, "\r") || !strings.Contains(serr, "img/s") || !strings.Contains(serr, "ETA") {
		t.Errorf("--progress always drew no progress line: %q", serr)
	}
	var sum batch.Summary
	if err := json.Unmarshal([]byte(sout), &sum); err != nil {
		t.Fatalf("summary %q: %v", sout, err)
	}
	t.Logf("killed with %d of %d parts committed; the rerun skipped %d images and scored %d at %.0f img/s", done, n/8, sum.Skipped, sum.Scored, sum.ImagesPerSecond())
	if sum.Items != n || sum.Skipped < done*8 || sum.Skipped+sum.Scored != n || sum.Errors != 3 {
		t.Errorf("rerun summary %+v (journal named %d parts at the kill); stderr %s", sum, done, serr)
	}
	a, _ := os.ReadFile(wholeOut)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(a, got) {
		rows, _ := batch.ReadJSONL(out)
		t.Fatalf("resumed output (%d rows) differs from the uninterrupted run's (%d rows)", len(rows), len(whole))
	}

	// SIGTERM (what Kubernetes sends first) stops the run cleanly: exit 1,
	// one line saying how to resume, and the rerun completes the output.
	checkSIGTERMResumes(t, bin, append(common, "--out", filepath.Join(d, "term.jsonl")), a)

	// Three workers of an indexed job: one command line, --shard I/3.
	checkShardsCoverOnce(t, bin, common, filepath.Join(d, "shards", "s.parquet"), whole)
}

// checkWholeRun: the rows are in key order, and all but the 3 error rows
// (two without prompts, one damaged image) have every score in range.
func checkWholeRun(t *testing.T, whole []batch.Row, keys []string) {
	t.Helper()
	errRows := 0
	for i, r := range whole {
		if r.Key != keys[i] {
			t.Fatalf("row %d key %q, want %q", i, r.Key, keys[i])
		}
		if r.Error != nil {
			errRows++
			continue
		}
		ict, hp, logit := r.Score("ict"), r.Score("hp"), r.Score("hp_logit")
		if ict == nil || hp == nil || logit == nil || *ict < -1 || *ict > 1 || *hp <= 0 || *hp >= 1 {
			t.Fatalf("row %d = %+v: scores missing or out of range", i, r)
		}
	}
	if errRows != 3 {
		t.Errorf("%d error rows, want 3 (two without prompts, one damaged image)", errRows)
	}
}

// checkBatchMatchesScore: batch decodes ahead and hands the service pixels;
// `score` hands it the file: both must give the same numbers for the rows
// at idx.
func checkBatchMatchesScore(t *testing.T, bin, ict, hpDir string, whole []batch.Row, idx []int) {
	t.Helper()
	for _, i := range idx {
		r := whole[i]
		out, _ := runBin(t, bin, "score", "--ict", ict, "--hp", hpDir, "--threads", "1", "--prompt", *r.Prompt, r.Source)
		var s outLine
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("score output %q: %v", out, err)
		}
		for name, pair := range map[string][2]*float64{"ict": {s.ICT, r.Score("ict")}, "hp": {s.HP, r.Score("hp")}, "hp_logit": {s.HPLogit, r.Score("hp_logit")}} {
			if pair[0] == nil || pair[1] == nil || math.Abs(*pair[0]-*pair[1]) > 1e-6 {
				t.Errorf("%s: batch %s %v, score %v", r.Source, name, deref(pair[1]), deref(pair[0]))
			}
		}
	}
}

// checkSIGTERMResumes: SIGTERM (what Kubernetes sends first) stops the
// batch run of args (its --out last) cleanly: exit 1, one line saying how to
// resume, and the rerun writes want.
func checkSIGTERMResumes(t *testing.T, bin string, args []string, want []byte) {
	t.Helper()
	out := args[len(args)-1]
	cmd, stderr := startBatchUntilParts(t, bin, args, filepath.Join(out+".parts", "journal.jsonl"), 1)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "run the same command again to resume") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("after SIGTERM: exit %d (%v), stderr %q; want 1 and one line on resuming", code, err, stderr.String())
	}
	runBin(t, bin, args...)
	if got, _ := os.ReadFile(out); !bytes.Equal(want, got) {
		t.Error("output resumed after SIGTERM differs from the uninterrupted run's")
	}
}

// startBatchUntilParts starts the binary with args and returns once its
// journal names at least parts committed parts (failing the test after 2
// minutes), with the process still running and its stderr.
func startBatchUntilParts(t *testing.T, bin string, args []string, journal string, parts int) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(journal)
		if bytes.Count(b, []byte(`"part":{`)) >= parts {
			return cmd, stderr
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no %d parts committed in 2 minutes: %s", parts, stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkShardsCoverOnce scores the dataset of common in 3 shards into
// Parquet (pq) and checks that they cover it exactly once with the rows of
// the whole run.
func checkShardsCoverOnce(t *testing.T, bin string, common []string, pq string, whole []batch.Row) {
	t.Helper()
	byKey := map[string]batch.Row{}
	for _, r := range whole {
		byKey[r.Key] = r
	}
	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		sh := batch.Shard{I: i, N: 3}
		runBin(t, bin, append(common, "--out", pq, "--shard", sh.String())...)
		rows, err := batch.ReadParquet(sh.OutputPath(pq))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			seen[r.Key]++
			w := byKey[r.Key]
			r.Embedding = nil
			if !reflect.DeepEqual(r, w) {
				t.Fatalf("shard %v row %q = %+v, want %+v as in the whole run", sh, r.Key, r, w)
			}
		}
	}
	if len(seen) != len(whole) {
		t.Errorf("the shards cover %d of %d images", len(seen), len(whole))
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%q is in %d shards", k, c)
		}
	}
}

func TestBatchUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"batch", "--out", "x.jsonl"}, "--input"},
		{[]string{"batch", "--input", "."}, "--out"},
		{[]string{"batch", "--input", ".", "--out", "x.csv"}, ".jsonl or .parquet"},
		{[]string{"batch", "--input", ".", "--out", "x.jsonl", "--shard", "3/3"}, "shard"},
		{[]string{"batch", "--input", "/does/not/exist", "--out", "x.jsonl"}, "no such file"},
		{[]string{"batch", "--input", ".", "--out", "x.jsonl", "--progress", "sometimes"}, "--progress"},
	} {
		var stderr bytes.Buffer
		code := run(t.Context(), &app{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}, c.args)
		if code != 2 || !strings.Contains(stderr.String(), c.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("icthp %v: exit %d, stderr %q; want 2 and one line naming %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
