// Package ortlib finds, installs and loads onnxruntime's shared library.
//
// The library comes from the npm package onnxruntime-node, which ships the
// Linux x64 build inside it; Install fetches it with the npm client into a
// cache folder the project owns. A path given by the user (a flag, or
// $ICTHP_ORT_LIB) always wins.
package ortlib

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

const (
	// Version is the onnxruntime release Install fetches.
	Version = "1.30.0"
	// MinVersion is the oldest release the Go binding's C API (version 24)
	// runs against.
	MinVersion = "1.24.0"
	// EnvLib names the environment variable holding a user-given library path.
	EnvLib = "ICTHP_ORT_LIB"
	// EnvCache overrides the cache folder (default: the user cache dir/icthp).
	EnvCache = "ICTHP_CACHE"

	npmPackage = "onnxruntime-node"
	libInTar   = "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
	libName    = "libonnxruntime.so.1"
)

// ErrNotFound means no library was found where one was looked for.
var ErrNotFound = errors.New("onnxruntime library not found")

// Fix is the one-line remedy printed with every library error.
const Fix = "run `icthp setup` (or `make setup`), or set " + EnvLib + " to a libonnxruntime.so of version >= " + MinVersion

// CacheDir is the folder the project keeps downloads and demo models in.
func CacheDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: set %s: %w", EnvCache, err)
	}
	return filepath.Join(d, "icthp"), nil
}

// InstalledPath is where Install puts the library under cache.
func InstalledPath(cache string) string { return InstalledPathVersion(cache, Version) }

// InstalledPathVersion is where InstallVersion puts release version.
func InstalledPathVersion(cache, version string) string {
	return filepath.Join(cache, "onnxruntime", version, libName)
}

// Locate returns the library to load: explicit if given, else $ICTHP_ORT_LIB,
// else the one Install put in the cache.
func Locate(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(EnvLib)} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w at %s: %v; %s", ErrNotFound, p, err, Fix)
		}
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	p := InstalledPath(cache)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w (looked in %s); %s", ErrNotFound, p, Fix)
	}
	return p, nil
}

// Install fetches onnxruntime-node's tarball with `npm pack` and extracts the
// Linux x64 library into the cache. It does nothing when the library is
// already there. Progress goes to log.
func Install(ctx context.Context, cache string, log io.Writer) (string, error) {
	return InstallVersion(ctx, cache, Version, log)
}

// InstallVersion is Install for another onnxruntime-node release (the
// tests run one binary with 1.29, 1.30 and 1.31.1).
func InstallVersion(ctx context.Context, cache, version string, log io.Writer) (string, error) {
	if !atLeast(version, MinVersion) {
		return "", fmt.Errorf("install onnxruntime %s: icthp needs >= %s", version, MinVersion)
	}
	dst := InstalledPathVersion(cache, version)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("install onnxruntime: npm is needed to fetch %s@%s: %w", npmPackage, version, err)
	}
	tmp, err := os.MkdirTemp("", "icthp-ort-")
	if err != nil {
		return "", fmt.Errorf("install onnxruntime: %w", err)
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(log, "fetching %s@%s with npm pack ...\n", npmPackage, version)
	cmd := exec.CommandContext(ctx, npm, "pack", "--silent", "--pack-destination", tmp, npmPackage+"@"+version)
	cmd.Dir = tmp
	cmd.Stderr = log
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("install onnxruntime: npm pack %s@%s: %w", npmPackage, version, err)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("install onnxruntime: %w", err)
	}
	if err := extractFile(tgz, libInTar, dst); err != nil {
		return "", fmt.Errorf("install onnxruntime: %w", err)
	}
	return dst, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// extractFile copies one member of a .tgz to dst, atomically.
func extractFile(tgz, member, dst string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s has no %s", tgz, member)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", tgz, err)
		}
		if h.Name != member {
			continue
		}
		tmp := dst + ".part"
		out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	}
}

// Info describes the loaded library.
type Info struct {
	Path    string
	Version string
}

// The onnxruntime environment is process-global in the C library and in the
// Go binding, so loading it is guarded once per process here; everything
// else in the project receives what it needs as values.
var (
	initMu   sync.Mutex
	initInfo *Info
)

// Init loads the library at path (see Locate) and creates the onnxruntime
// environment. Later calls return the first result; a call naming another
// path after a success is an error.
func Init(path string) (Info, error) {
	initMu.Lock()
	defer initMu.Unlock()
	if initInfo != nil {
		if path != "" && path != initInfo.Path {
			return *initInfo, fmt.Errorf("onnxruntime already loaded from %s, not %s", initInfo.Path, path)
		}
		return *initInfo, nil
	}
	p, err := Locate(path)
	if err != nil {
		return Info{}, err
	}
	if err := checkCommandLine(); err != nil {
		return Info{}, err
	}
	ort.SetSharedLibraryPath(p)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return Info{}, fmt.Errorf("load onnxruntime from %s: %v; %s", p, err, Fix)
	}
	v := ort.GetVersion()
	if !atLeast(v, MinVersion) {
		ort.DestroyEnvironment()
		return Info{}, fmt.Errorf("onnxruntime at %s is version %s, icthp needs >= %s; %s", p, v, MinVersion, Fix)
	}
	initInfo = &Info{Path: p, Version: v}
	return *initInfo, nil
}

// MaxCommandLine is the longest process command line (/proc/self/cmdline,
// in bytes) under which Init starts onnxruntime. onnxruntime 1.30's
// environment set-up walks the command line recursively and overflows an
// 8 MiB thread stack (SIGSEGV, no error) at about 28 KB of arguments.
const MaxCommandLine = 16 << 10

// checkCommandLine turns that crash into an error.
func checkCommandLine() error {
	b, err := os.ReadFile("/proc/self/cmdline")
	if err != nil || len(b) <= MaxCommandLine {
		return nil
	}
	return fmt.Errorf("the command line is %d bytes; onnxruntime crashes on command lines over about 28 KB "+
		"(a stack overflow as it starts), so icthp refuses more than %d: pass long prompts and many files another way "+
		"(icthp score --prompt-file, a directory or a glob)", len(b), MaxCommandLine)
}

// atLeast compares dotted versions numerically.
func atLeast(v, min string) bool {
	a, b := strings.Split(v, "."), strings.Split(min, ".")
	for i := 0; i < len(b); i++ {
		var x, y int
		if i < len(a) {
			x, _ = strconv.Atoi(a[i])
		}
		y, _ = strconv.Atoi(b[i])
		if x != y {
			return x > y
		}
	}
	return true
}
