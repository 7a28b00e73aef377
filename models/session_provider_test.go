package models

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	og "github.com/icthp/icthp/models/onnxgraph"
	"github.com/icthp/icthp/models/ortlib"
)

func needORT(t *testing.T) {
	t.Helper()
	if _, err := ortlib.Locate(""); err != nil {
		t.Skipf("onnxruntime is not installed (run `make setup`): %v", err)
	}
	if _, err := ortlib.Init(""); err != nil {
		t.Fatal(err)
	}
}

// matmulGraph saves y = x·W for x [batch, 4] and a fixed W [4, 3]; reshape,
// when set, reshapes x to [-1, 8] and back first: a graph that loads and
// fails on runs of an odd number of items (the warm-up's one).
func matmulGraph(t *testing.T, reshape bool) (string, []float32) {
	t.Helper()
	w := []float32{1, 2, 3, -1, 0.5, 0, 2, 2, -2, 0.25, 1, 4}
	g := og.New("mm", 17)
	x := g.Input("x", og.Float, og.P("batch"), og.D(4))
	if reshape {
		x = g.Op("Reshape", []string{x, g.ConstInt64("shape", []int64{2}, -1, 8)})
		x = g.Op("Reshape", []string{x, g.ConstInt64("shape", []int64{2}, -1, 4)})
	}
	y := g.Op("MatMul", []string{x, g.ConstFloat("w", []int64{4, 3}, w...)})
	g.Node("", "Identity", []string{y}, []string{"y"})
	g.Output("y", og.Float, og.P("batch"), og.D(3))
	path := filepath.Join(t.TempDir(), "mm.onnx")
	if _, err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	return path, w
}

// A batch the device has no memory for is split in halves and retried down
// to single items; the results are those of the unsplit run (checked here
// against x·W computed in Go). A single item that does not fit fails that
// call with ErrOutOfMemory, and the session keeps serving. The fault is put
// at the session boundary: a GPU out of memory cannot be caused on a CPU.
func TestOutOfMemorySplitsBatch(t *testing.T) {
	needORT(t)
	path, w := matmulGraph(t, false)
	s, err := OpenSession(path, "x", []string{"y"}, SessionOptions{MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	real := s.exec
	var mu sync.Mutex
	var sizes []int64
	limit := int64(2)
	s.exec = func(ctx context.Context, in ort.Value) ([][]float32, error) {
		n := in.GetShape()[0]
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
		if n > limit {
			return nil, fmt.Errorf("onnxruntime: %s", "Non-zero status code returned while running MatMul node. CUDA failure 2: out of memory ; GPU=0")
		}
		return real(ctx, in)
	}
	const n = 7
	x := make([]float32, n*4)
	for i := range x {
		x[i] = float32(i%5) - 1.5
	}
	out, err := s.RunFloat(context.Background(), x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		for j := 0; j < 3; j++ {
			var want float32
			for k := 0; k < 4; k++ {
				want += x[i*4+k] * w[k*3+j]
			}
			if out[0][i*3+j] != want {
				t.Fatalf("y[%d][%d] = %v, want %v", i, j, out[0][i*3+j], want)
			}
		}
	}
	t.Logf("run sizes: %v", sizes)
	if sizes[0] != n || len(sizes) < 4 {
		t.Errorf("runs of %v: want the batch of %d first, then its halves", sizes, n)
	}
	limit = 0
	_, err = s.RunFloat(context.Background(), x[:8], 2)
	if !errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("one item out of memory: %v, want ErrOutOfMemory", err)
	}
	limit = 2
	if _, err := s.RunFloat(context.Background(), x[:8], 2); err != nil {
		t.Fatalf("after an out-of-memory failure: %v", err)
	}
	// Other failures are not retried.
	s.exec = func(ctx context.Context, in ort.Value) ([][]float32, error) {
		return nil, errors.New("onnxruntime: bad shape")
	}
	if _, err := s.RunFloat(context.Background(), x, n); err == nil || errors.Is(err, ErrOutOfMemory) {
		t.Fatalf("a non-memory failure: %v", err)
	}
}

// A graph that loads but cannot run is refused when it opens if a warm-up
// run is asked for (always, for the GPU providers), and not otherwise.
func TestWarmUpRefusesGraphThatCannotRun(t *testing.T) {
	needORT(t)
	path, _ := matmulGraph(t, true)
	s, err := OpenSession(path, "x", []string{"y"}, SessionOptions{})
	if err != nil {
		t.Fatalf("without warm-up: %v", err)
	}
	s.Close()
	_, err = OpenSession(path, "x", []string{"y"}, SessionOptions{WarmUp: true})
	if !errors.Is(err, ErrProvider) || !strings.Contains(err.Error(), "warm-up") || !strings.Contains(err.Error(), "mm.onnx") {
		t.Fatalf("with warm-up: %v, want ErrProvider naming the graph and the warm-up", err)
	}
	t.Log(err)
}

// The same for a graph of two inputs (MultiSession): refused when it opens
// with a warm-up, and runs of an even number of items work without.
func TestMultiSessionWarmUp(t *testing.T) {
	needORT(t)
	g := og.New("two", 17)
	x := g.Input("x", og.Float, og.P("batch"), og.D(4))
	z := g.Input("z", og.Int64, og.P("batch"), og.D(4))
	y := g.Op("Add", []string{x, g.Op("Cast", []string{z}, og.AttrInt("to", int64(og.Float)))})
	y = g.Op("Reshape", []string{y, g.ConstInt64("shape", []int64{2}, -1, 8)})
	y = g.Op("Reshape", []string{y, g.ConstInt64("shape2", []int64{2}, -1, 4)})
	g.Node("", "Identity", []string{y}, []string{"y"})
	g.Output("y", og.Float, og.P("batch"), og.D(4))
	path := filepath.Join(t.TempDir(), "two.onnx")
	if _, err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	s, err := OpenMultiSession(path, []string{"x", "z"}, []string{"y"}, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.RunInputs(context.Background(), 2, Input{Name: "x", Float: make([]float32, 8)}, Input{Name: "z", Int64: []int64{1, 2, 3, 4, 5, 6, 7, 8}})
	s.Close()
	if err != nil || out[0][7] != 8 {
		t.Fatalf("two items: %v, %v", out, err)
	}
	_, err = OpenMultiSession(path, []string{"x", "z"}, []string{"y"}, SessionOptions{WarmUp: true})
	if !errors.Is(err, ErrProvider) || !strings.Contains(err.Error(), "warm-up") {
		t.Fatalf("with warm-up: %v", err)
	}
}

// --provider cuda on a CPU-only onnxruntime with no plugin library: one
// line, ErrProvider; a named plugin library that does not exist: named.
func TestCUDAUnavailableOneLine(t *testing.T) {
	needORT(t)
	t.Setenv(ortlib.EnvEPLib, "")
	info, _ := ortlib.Init("")
	if _, err := os.Stat(filepath.Join(filepath.Dir(info.Path), ortlib.CUDAPluginName)); err == nil {
		t.Skip("a CUDA provider lies next to the loaded onnxruntime")
	}
	path, _ := matmulGraph(t, false)
	for _, tc := range []struct {
		name string
		o    SessionOptions
		want string
	}{
		{"cpu build", SessionOptions{Provider: CUDA}, "cuda"},
		{"missing plugin", SessionOptions{Provider: CUDA, EPLibrary: "/nonexistent/libonnxruntime_providers_cuda.so"}, "/nonexistent/libonnxruntime_providers_cuda.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenSession(path, "x", []string{"y"}, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !errors.Is(err, ErrProvider) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: want one line with %q wrapping ErrProvider", err, tc.want)
			}
		})
	}
}

// With the npm ORT 1.29 kit (a core without the classic CUDA API and the
// CUDA provider as a plugin beside it) and no CUDA libraries (this machine),
// --provider cuda finds the plugin, and refuses in one line naming the
// missing CUDA library. Run in a child process: the kit's core must be the
// process's onnxruntime. `scripts/fetch-ort.sh --cuda-kit` puts the kit in
// the cache.
func TestCUDAPluginKitNamesMissingLibrary(t *testing.T) {
	if os.Getenv("ICTHP_TEST_KIT_CHILD") == "1" {
		path, _ := matmulGraph(t, false)
		_, err := OpenSession(path, "x", []string{"y"}, SessionOptions{Provider: CUDA})
		fmt.Printf("KIT-ERROR: %v\n", err)
		return
	}
	cache, err := ortlib.CacheDir()
	if err != nil {
		t.Skip(err)
	}
	core := filepath.Join(cache, "onnxruntime", "asus4-0.4.9", "libonnxruntime.so")
	if _, err := os.Stat(filepath.Join(filepath.Dir(core), ortlib.CUDAPluginName)); err != nil {
		t.Skipf("the ORT 1.29 CUDA kit is not in %s (scripts/fetch-ort.sh --cuda-kit)", filepath.Dir(core))
	}
	if _, err := exec.LookPath("nvidia-smi"); err == nil {
		t.Skip("this machine has a GPU: the CUDA libraries may be present")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCUDAPluginKitNamesMissingLibrary$")
	cmd.Env = append(os.Environ(), "ICTHP_TEST_KIT_CHILD=1", ortlib.EnvLib+"="+core, ortlib.EnvEPLib+"=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	line := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "KIT-ERROR: ") {
			line = strings.TrimPrefix(l, "KIT-ERROR: ")
		}
	}
	t.Log(line)
	if !strings.Contains(line, ortlib.CUDAPluginName) || !strings.Contains(line, "not found") || !strings.Contains(line, "libcu") {
		t.Errorf("kit without CUDA: %q, want one line naming the plugin and the missing libcu*.so", line)
	}
}

// NoSpin reaches onnxruntime as its two spinning entries set to "0"; by
// default they are left unset (onnxruntime spins).
func TestNoSpinConfig(t *testing.T) {
	needORT(t)
	for _, noSpin := range []bool{false, true} {
		so, err := SessionOptions{NoSpin: noSpin}.ortOptions()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
			has, err := so.HasSessionConfigEntry(k)
			if err != nil {
				t.Fatal(err)
			}
			v := ""
			if has {
				if v, err = so.GetSessionConfigEntry(k); err != nil {
					t.Fatal(err)
				}
			}
			if want := map[bool]string{false: "", true: "0"}[noSpin]; v != want {
				t.Errorf("NoSpin %v: %s = %q, want %q", noSpin, k, v, want)
			}
		}
		so.Destroy()
	}
	// A session opens and runs with it: y = x·W for x = (1, 0, 0, 0) is W's
	// first row.
	path, w := matmulGraph(t, false)
	s, err := OpenSession(path, "x", []string{"y"}, SessionOptions{NoSpin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.RunFloat(context.Background(), []float32{1, 0, 0, 0}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out[0]) != fmt.Sprint(w[:3]) {
		t.Errorf("y = %v, want %v", out[0], w[:3])
	}
}
