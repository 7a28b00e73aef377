package ortlib

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	og "github.com/icthp/icthp/models/onnxgraph"
)

func needInit(t *testing.T) {
	t.Helper()
	if _, err := Locate(""); err != nil {
		t.Skipf("onnxruntime is not installed (run `make setup`): %v", err)
	}
	if _, err := Init(""); err != nil {
		t.Fatal(err)
	}
}

// The OrtApi slots the C side calls are those of the C API header the
// binding compiles against (onnxruntime_go's onnxruntime_c_api.h): a C
// program prints their offsets.
func TestAPISlots(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to read the header with")
	}
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		t.Skipf("go list the binding: %v", err)
	}
	src := "#include <stdio.h>\n#include <stddef.h>\n#include \"onnxruntime_c_api.h\"\nint main(void) {\n"
	for name := range apiSlots() {
		src += `printf("` + name + ` %zu\n", offsetof(OrtApi, ` + name + `) / sizeof(void *));` + "\n"
	}
	src += "return 0; }\n"
	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "slots.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "slots")
	if out, err := exec.Command(gcc, "-I", strings.TrimSpace(string(dir)), "-o", bin, filepath.Join(tmp, "slots.c")).CombinedOutput(); err != nil {
		t.Fatalf("compile: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := apiSlots()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, v, _ := strings.Cut(line, " ")
		n, _ := strconv.Atoi(v)
		if want[name] != n {
			t.Errorf("%s: slot %d in ep.go, %d in the header", name, want[name], n)
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("not checked: %v", want)
	}
}

// GetEpDevices works on a CPU-only library: it lists onnxruntime's own CPU
// provider.
func TestEPDevicesListCPU(t *testing.T) {
	needInit(t)
	devs, err := EPDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		t.Logf("%s (%s), hardware type %d", d.EP, d.Vendor, d.Hardware)
		if d.EP == "CPUExecutionProvider" && d.Hardware == DeviceCPU {
			return
		}
	}
	t.Fatalf("no CPUExecutionProvider on a CPU device in %v", devs)
}

// cpuDevice is the CPU provider's EPDevice.
func cpuDevice(t *testing.T) EPDevice {
	t.Helper()
	devs, err := EPDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.EP == "CPUExecutionProvider" {
			return d
		}
	}
	t.Fatal("no CPU provider device")
	return EPDevice{}
}

// The plugin path (SessionOptionsAppendExecutionProvider_V2 on an EPDevice)
// runs a session: here with the CPU provider's device, the one a CPU
// machine has, and options the binding sets (threads) kept. The graph
// computes 2x + 1.
func TestAppendEPRunsSession(t *testing.T) {
	needInit(t)
	g := og.New("affine", 17)
	x := g.Input("x", og.Float, og.P("batch"), og.D(3))
	y := g.Op("Add", []string{g.Op("Mul", []string{x, g.ConstFloat("two", []int64{}, 2)}), g.ConstFloat("one", []int64{}, 1)})
	g.Node("", "Identity", []string{y}, []string{"y"})
	g.Output("y", og.Float, og.P("batch"), og.D(3))
	path := filepath.Join(t.TempDir(), "affine.onnx")
	if _, err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := so.SetIntraOpNumThreads(1); err != nil {
		t.Fatal(err)
	}
	if err := AppendEP(so, cpuDevice(t), map[string]string{}); err != nil {
		t.Fatal(err)
	}
	sess, err := ort.NewDynamicAdvancedSession(path, []string{"x"}, []string{"y"}, so)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Destroy()
	in := []float32{-1, 0, 2.5, 7, 1e3, -0.25}
	xt, err := ort.NewTensor(ort.NewShape(2, 3), in)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Destroy()
	outs := []ort.Value{nil}
	if err := sess.Run([]ort.Value{xt}, outs); err != nil {
		t.Fatal(err)
	}
	defer outs[0].Destroy()
	got := outs[0].(*ort.Tensor[float32]).GetData()
	for i, v := range in {
		if got[i] != 2*v+1 {
			t.Fatalf("y[%d] = %v, want %v", i, got[i], 2*v+1)
		}
	}
	so2, _ := ort.NewSessionOptions()
	so2.Destroy()
	if err := AppendEP(so2, cpuDevice(t), nil); err == nil {
		t.Error("AppendEP on destroyed session options: no error")
	}
}

// A plugin library that is missing, whose dependency is missing, or that is
// no execution provider gives one line naming the library (and the missing
// dependency), and wraps ErrEPLibrary.
func TestRegisterEPLibraryErrors(t *testing.T) {
	needInit(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the test libraries")
	}
	dir := t.TempDir()
	build := func(name, src string, args ...string) string {
		c := filepath.Join(dir, name+".c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		so := filepath.Join(dir, name)
		if out, err := exec.Command(gcc, append([]string{"-shared", "-fPIC", "-o", so, c}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
		return so
	}
	build("libicthpdep.so", "int icthp_dep(void) { return 1; }\n")
	needsDep := build("libneedsdep.so", "int icthp_dep(void);\nint f(void) { return icthp_dep(); }\n", "-L"+dir, "-licthpdep")
	notEP := build("libnotep.so", "int g(void) { return 2; }\n")
	if err := os.Remove(filepath.Join(dir, "libicthpdep.so")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing dependency", needsDep, "libicthpdep.so not found"},
		{"not an EP library", notEP, notEP},
		{"no such file", filepath.Join(dir, "nothere.so"), "nothere.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RegisterEPLibrary("test-"+filepath.Base(tc.path), tc.path)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !errors.Is(err, ErrEPLibrary) || strings.Contains(err.Error(), "\n") ||
				!strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q: want one line with %q and the path, wrapping ErrEPLibrary", err, tc.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: cannot open shared object file: No such file or directory\n at foo": "libcublasLt.so.12 not found",
		"a\n  b\tc": "a b c",
	} {
		if got := OneLine(in); !strings.HasPrefix(got, want) {
			t.Errorf("OneLine(%q) = %q, want prefix %q", in, got, want)
		}
	}
}
