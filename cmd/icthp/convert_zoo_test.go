package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/icthp/icthp/models"
)

// convert random writes each zoo kind (tiny) with its formula recorded;
// bad zoo invocations exit 2 (usage) or 1 (a missing file) with one line.
func TestConvertZooCommands(t *testing.T) {
	root := t.TempDir()
	for _, k := range []string{"pickscore", "clipscore", "clipscore-100", "hpsv2", "aesthetic"} {
		out := filepath.Join(root, k)
		stdout := mustRun(t, "convert", "random", "--kind", k, "--preset", "tiny", "--seed", "3", "--out", out)
		if !strings.Contains(stdout, "wrote "+out) {
			t.Errorf("%s: stdout %q", k, stdout)
		}
		m, err := models.ReadManifest(out)
		if err != nil {
			t.Fatal(err)
		}
		if m.Formula == nil || m.Formula.Name != k {
			t.Errorf("%s: formula %+v", k, m.Formula)
		}
	}
	if out := mustRun(t, "models", "inspect", filepath.Join(root, "clipscore")); !strings.Contains(out, `clipscore = 2.5·max(cos(text, image), 0) (caption prefixed with "A photo depicts ")`) {
		t.Errorf("inspect does not describe the formula:\n%s", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"convert", "hpsv2", "--out", root + "/x"}, 2, "--checkpoint is required"},
		{[]string{"convert", "aesthetic", "--clip", root, "--out", root + "/x"}, 2, "--clip and --head are required"},
		{[]string{"convert", "hpsv2", "--checkpoint", root + "/none.pt", "--out", root + "/x"}, 1, "none.pt"},
		{[]string{"convert", "random", "--kind", "hpsv2", "--preset", "vit-x", "--out", root + "/x"}, 2, "unknown preset"},
	} {
		_, stderr, code := icthp(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}
