package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The GPU flags: a plugin library that is not there is one line naming it
// (exit 1); --fuse takes known kinds only, not with --unfused or --int8
// (exit 2); a --fuse graph scores.
func TestGPUFlags(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	hp := filepath.Join(dir, "hp")
	mustRun(t, "convert", "random", "--preset", "tiny", "--kind", "hp", "--fuse", "mha,skiplayernorm,gelu", "--fp16", "--out", hp)
	out := mustRun(t, "score", "--hp", hp, "../../testdata/demo/sunset.png")
	if l := parseLines(t, out); len(l) != 1 || l[0].HP == nil {
		t.Errorf("score of a --fuse graph: %q", out)
	}
	lib := filepath.Join(dir, "nothere", "libonnxruntime_providers_cuda.so")
	out, errOut, code := icthp(t, "score", "--provider", "cuda", "--ep-library", lib, "--hp", hp, "../../testdata/demo/sunset.png")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, lib) {
		t.Errorf("--ep-library %s: exit %d, stdout %q, stderr %q", lib, code, out, errOut)
	}
	for _, args := range [][]string{
		{"--fuse", "flash"},
		{"--fuse", "gelu", "--unfused"},
		{"--fuse", "gelu", "--int8"},
		{"--fuse", "attention,mha"},
	} {
		a := append([]string{"convert", "random", "--preset", "tiny", "--out", filepath.Join(dir, "bad")}, args...)
		if _, errOut, code := icthp(t, a...); code != 2 || strings.Count(errOut, "\n") != 1 {
			t.Errorf("convert %v: exit %d, stderr %q, want 2 and one line", args, code, errOut)
		}
	}
}
