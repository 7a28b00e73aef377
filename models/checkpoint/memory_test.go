package checkpoint

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// procStatus returns a field of /proc/self/status ("VmRSS", "VmHWM") in KiB,
// or -1 where there is no /proc.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(line[len(field)+1:]), "%d", &kb)
			return kb
		}
	}
	return -1
}

func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// writeCheckpointFile writes tensors to path as format ("safetensors" or
// "torch", archive name "big").
func writeCheckpointFile(t *testing.T, path, format string, tensors []NamedTensor) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if format == "torch" {
		err = WriteTorchZip(w, "big", tensors)
	} else {
		err = WriteSafetensors(w, tensors)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestLargeCheckpointIsReadLazily writes a 544 MB checkpoint in each format
// (eight 64 MB F32 tensors and one 32 MB F16 tensor, in a temp dir removed
// afterwards) and shows with the Go allocator's own counters that Open
// reads no tensor data and that Float32 allocates one tensor's worth: the
// float32 result itself, plus a 1 MiB conversion buffer for non-F32 types.
func TestLargeCheckpointIsReadLazily(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 2 × 544 MB to a temp dir")
	}
	const side = 4096
	const per = side * side // 16 Mi elements: 64 MB as F32
	data := make([]float32, per)
	for i := range data {
		data[i] = float32(i%4093) * 0.25
	}
	var tensors []NamedTensor
	for i := range 8 {
		tensors = append(tensors, NamedTensor{fmt.Sprintf("layers.%d.weight", i), F32, []int64{side, side}, data})
	}
	tensors = append(tensors, NamedTensor{"half", F16, []int64{side, side}, data})
	dir := t.TempDir()
	for _, format := range []string{"safetensors", "torch"} {
		p := filepath.Join(dir, "big."+format)
		writeCheckpointFile(t, p, format, tensors)
		st, _ := os.Stat(p)

		runtime.GC()
		rss0 := procStatus("VmRSS")
		a0 := allocated()
		s, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		openAlloc := allocated() - a0
		rss1 := procStatus("VmRSS")
		if openAlloc > 256<<10 {
			t.Errorf("%s: Open of %d MB allocated %d bytes", format, st.Size()>>20, openAlloc)
		}

		a1 := allocated()
		v, err := s.Float32("layers.5.weight")
		if err != nil {
			t.Fatal(err)
		}
		f32Alloc := allocated() - a1
		for _, i := range []int{0, 1, per / 2, per - 1} {
			if v[i] != data[i] {
				t.Fatalf("%s: v[%d] = %v, want %v", format, i, v[i], data[i])
			}
		}
		if f32Alloc < 4*per || f32Alloc > 4*per+64<<10 {
			t.Errorf("%s: Float32 of a 64 MiB F32 tensor allocated %d bytes", format, f32Alloc)
		}
		v = nil

		a2 := allocated()
		h, err := s.Float32("half")
		if err != nil {
			t.Fatal(err)
		}
		f16Alloc := allocated() - a2
		if h[per-1] != HalfToFloat32(Float32ToHalf(data[per-1])) {
			t.Fatalf("%s: half value", format)
		}
		if f16Alloc < 4*per || f16Alloc > 4*per+readChunk+64<<10 {
			t.Errorf("%s: Float32 of a 32 MiB F16 tensor allocated %d bytes", format, f16Alloc)
		}
		h = nil
		t.Logf("%s: file %d MiB; Open allocated %d KiB (RSS %+d KiB); Float32 of 64 MiB F32 tensor allocated %.2f MiB, of 32 MiB F16 tensor %.2f MiB",
			format, st.Size()>>20, openAlloc>>10, rss1-rss0, float64(f32Alloc)/(1<<20), float64(f16Alloc)/(1<<20))
		s.Close()
		os.Remove(p)
	}
	t.Logf("peak RSS of the test process (incl. the 64 MiB source slice and writers): %d MiB", procStatus("VmHWM")>>10)
}
