package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	root   string // the repository
	binDir string
	icthp  Binary
)

func TestMain(m *testing.M) {
	var err error
	if root, err = RepoRoot(); err != nil {
		panic(err)
	}
	if binDir, err = os.MkdirTemp("", "icthp-check-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// bin returns the icthp binary built from this repository, or
// $ICTHP_CHECK_BIN when set (a binary built already).
func bin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ICTHP_CHECK_BIN"); p != "" {
		return p
	}
	p, err := icthp.Build(context.Background(), binDir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// help returns what `icthp SUB -h` prints: every flag and the environment
// variable each one reads.
func help(t *testing.T, sub string) string {
	t.Helper()
	out, _ := exec.Command(bin(t), sub, "-h").CombinedOutput()
	if !strings.Contains(string(out), "-") {
		t.Fatalf("icthp %s -h printed no flags: %s", sub, out)
	}
	return string(out)
}

// checkFlags fails the test when icthp refuses args.
func checkFlags(t *testing.T, what string, args []string) {
	t.Helper()
	if err := CheckFlags(context.Background(), bin(t), args); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func repoPath(p ...string) string { return filepath.Join(append([]string{root}, p...)...) }
