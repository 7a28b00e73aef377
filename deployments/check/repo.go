package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// RepoRoot is the repository's root: the folder two levels above this
// module, checked by the main module's go.mod being there.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/icthp/icthp\n")) {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no icthp repository above %s", wd)
		}
	}
}

// Binary builds cmd/icthp once per process into dir and returns its path.
type Binary struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the repository's cmd/icthp into dir (once; later calls
// return the first result).
func (b *Binary) Build(ctx context.Context, dir string) (string, error) {
	b.once.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "icthp")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.path, "./cmd/icthp")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.err = fmt.Errorf("go build ./cmd/icthp: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
	})
	return b.path, b.err
}

// ErrFlags is returned by CheckFlags when icthp refuses a command line.
var ErrFlags = errors.New("icthp refuses the command line")

// CheckFlags runs `icthp ARGS... -h`: the flag package reads every flag
// before -h in order and stops at -h with status 0, so a misspelt flag or a
// value of the wrong type fails (status 2) while nothing is loaded or served.
// args[0] must be the subcommand.
func CheckFlags(ctx context.Context, bin string, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: %q does not start with a subcommand", ErrFlags, args)
	}
	cmd := exec.CommandContext(ctx, bin, append(append([]string{}, args...), "-h")...)
	cmd.Env = append(os.Environ(), "ICTHP_ORT_LIB=/nonexistent/only-flags-are-checked")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return fmt.Errorf("%w: icthp %s: %v: %s", ErrFlags, strings.Join(args, " "), err, lines[0])
	}
	return nil
}
