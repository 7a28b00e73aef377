package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/icthp/icthp/models/clip"
)

var (
	_ clip.Weights = (*StateDict)(nil)
	_ clip.Weights = (*Layered)(nil)
)

// expectedTensor is what testdata/gen_fixtures.py recorded from torch:
// float32 bit patterns of torch's t.float().
type expectedTensor struct {
	DType string   `json:"dtype"`
	Shape []int64  `json:"shape"`
	Bits  []uint32 `json:"bits"`
}

type expectedFile struct {
	Keys    []string                  `json:"keys"`
	Tensors map[string]expectedTensor `json:"tensors"`
}

func loadExpected(t *testing.T) map[string]expectedFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]expectedFile
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameBits(a float32, b uint32) bool {
	if math.Float32bits(a) == b {
		return true
	}
	return math.IsNaN(float64(a)) && math.IsNaN(float64(math.Float32frombits(b)))
}

// TestTorchWrittenFixtures reads every fixture torch (or gen_fixtures.py's
// hand-written safetensors) produced and compares keys, order, dtypes,
// shapes and every value bit-for-bit with torch's own float32 conversion.
func TestTorchWrittenFixtures(t *testing.T) {
	exp := loadExpected(t)
	if len(exp) < 13 {
		t.Fatalf("expected.json has %d entries", len(exp))
	}
	for name, want := range exp {
		t.Run(name, func(t *testing.T) {
			s, err := Open(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.Keys(); !slices.Equal(got, want.Keys) {
				t.Fatalf("keys %v, want %v", got, want.Keys)
			}
			for _, k := range want.Keys {
				w := want.Tensors[k]
				if dt, _ := s.DType(k); string(dt) != w.DType {
					t.Errorf("%s: dtype %s, want %s", k, dt, w.DType)
				}
				if sh, _ := s.Shape(k); !slices.Equal(sh, w.Shape) {
					t.Errorf("%s: shape %v, want %v", k, sh, w.Shape)
				}
				if b, _ := s.Bytes(k); b != int64(len(w.Bits)*DType(w.DType).Size()) {
					t.Errorf("%s: Bytes %d, want %d", k, b, len(w.Bits)*DType(w.DType).Size())
				}
				got, err := s.Float32(k)
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if len(got) != len(w.Bits) {
					t.Fatalf("%s: %d values, want %d", k, len(got), len(w.Bits))
				}
				for i := range got {
					if !sameBits(got[i], w.Bits[i]) {
						t.Errorf("%s[%d] = %v (%08x), torch says %v (%08x)", k, i, got[i], math.Float32bits(got[i]),
							math.Float32frombits(w.Bits[i]), w.Bits[i])
						break
					}
				}
			}
		})
	}
}

// TestFixtureLayouts checks that the fixtures exercise what they are meant
// to: strided views, shared storages, deflate, unaligned safetensors data.
func TestFixtureLayouts(t *testing.T) {
	s, err := Open("testdata/views.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	strided := 0
	for _, k := range s.keys {
		if s.tensors[k].stride != nil {
			strided++
		}
	}
	if strided < 4 {
		t.Errorf("views.pt: only %d non-contiguous tensors", strided)
	}
	if s.tensors["embed.weight"].data != s.tensors["lm_head.weight"].data || s.tensors["a"].data != s.tensors["a_t"].data {
		t.Error("views.pt: tied tensors do not share one storage")
	}
	if s.tensors["row1"].offset != 4 || s.tensors["col2"].offset != 2 {
		t.Error("views.pt: storage offsets not as torch wrote them")
	}
	d, err := Open("testdata/deflate.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.tensors["w"].data.zf == nil {
		t.Error("deflate.pt: entries are not read through the decompressor")
	}
	m, err := Open("testdata/mixed.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.tensors["f32"].data == m.tensors["h3"].data {
		t.Error("mixed.safetensors: the unaligned F32 tensor should get its own blob")
	}
}

func TestHalfRoundingMatchesTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/half_rounding.json")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		F32  []uint32 `json:"f32_bits"`
		F16  []uint16 `json:"f16_bits"`
		BF16 []uint16 `json:"bf16_bits"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.F32) < 2000 || len(r.F16) != len(r.F32) || len(r.BF16) != len(r.F32) {
		t.Fatal("bad half_rounding.json")
	}
	for i, b := range r.F32 {
		f := math.Float32frombits(b)
		if got := Float32ToHalf(f); got != r.F16[i] {
			t.Errorf("Float32ToHalf(%v) = %04x, torch %04x", f, got, r.F16[i])
		}
		// torch 1.13's CPU kernel writes NaN as 0xffff, c10's scalar path as
		// 0x7fc0 (what we write); any NaN encoding is a NaN.
		isNaN := func(h uint16) bool { return h&0x7f80 == 0x7f80 && h&0x7f != 0 }
		if got := Float32ToBFloat16(f); got != r.BF16[i] && !(isNaN(got) && isNaN(r.BF16[i])) {
			t.Errorf("Float32ToBFloat16(%v) = %04x, torch %04x", f, got, r.BF16[i])
		}
	}
}

// TestHalfToFloat32Exhaustive: every half converts to a float32 that
// converts back to the same half (NaNs stay NaN), and subnormals are exact.
func TestHalfToFloat32Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := HalfToFloat32(uint16(h))
		exp := (h >> 10) & 0x1f
		mant := h & 0x3ff
		if exp == 0x1f && mant != 0 {
			if !math.IsNaN(float64(f)) {
				t.Fatalf("%04x: want NaN, got %v", h, f)
			}
			continue
		}
		if back := Float32ToHalf(f); back != uint16(h) {
			t.Fatalf("%04x -> %v -> %04x", h, f, back)
		}
		if exp == 0 {
			want := math.Ldexp(float64(mant), -24)
			if h&0x8000 != 0 {
				want = -want
			}
			if float64(f) != want {
				t.Fatalf("subnormal %04x = %v, want %v", h, f, want)
			}
		}
	}
}

func TestLegacyTorchFileRejected(t *testing.T) {
	_, err := Open("testdata/legacy.pt")
	if err == nil || !strings.Contains(err.Error(), "legacy") || !strings.Contains(err.Error(), "torch >= 1.6") {
		t.Fatalf("legacy file: got %v", err)
	}
}

func TestMaliciousPickleRejected(t *testing.T) {
	const marker = "/tmp/icthp_checkpoint_pwned"
	os.Remove(marker)
	for _, name := range []string{"malicious.pt", "malicious_p4.pt"} {
		_, err := Open(filepath.Join("testdata", name))
		var ue *UnsafeGlobalError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: want UnsafeGlobalError, got %v", name, err)
		}
		if ue.Module != "posix" || ue.Name != "system" {
			t.Errorf("%s: flagged %s.%s", name, ue.Module, ue.Name)
		}
		if !strings.Contains(err.Error(), "posix.system") || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("%s: unclear message %q", name, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the malicious pickle's command ran")
	}
}

// TestUnsafeGlobals covers globals a hand-written pickle could name.
func TestUnsafeGlobals(t *testing.T) {
	for _, g := range [][2]string{
		{"builtins", "eval"}, {"os", "system"}, {"subprocess", "Popen"}, {"torch", "load"},
		{"torch._utils", "_rebuild_device_tensor_from_numpy"}, {"numpy.core.multiarray", "_reconstruct"},
		{"torch.storage", "_load_from_bytes"}, {"__builtin__", "getattr"},
	} {
		var p pickleBuf
		p.WriteString("\x80\x02")
		p.global(g[0], g[1])
		p.WriteString(")R.")
		_, err := unpickle(p.Bytes(), &torchArchive{storages: map[string]*storage{}})
		var ue *UnsafeGlobalError
		if !errors.As(err, &ue) {
			t.Errorf("%s.%s: got %v", g[0], g[1], err)
		}
	}
}

func TestOpenFolder(t *testing.T) {
	for _, c := range []struct {
		dir, which string
		from       float32
		index      bool
	}{
		{"folder_both", "folder_both", 1, false}, // safetensors preferred
		{"folder_pt", "folder_pt", 2, false},
		{"sharded_st", "sharded_st", 0, true},
		{"sharded_pt", "sharded_pt", 0, true},
	} {
		s, cfg, err := OpenFolder(filepath.Join("testdata", c.dir))
		if err != nil {
			t.Fatalf("%s: %v", c.dir, err)
		}
		if !bytes.Contains(cfg, []byte(c.which)) {
			t.Errorf("%s: config %q", c.dir, cfg)
		}
		if c.index {
			if !strings.HasSuffix(s.Path(), ".index.json") || len(s.files) != 2 {
				t.Errorf("%s: opened %s with %d files", c.dir, s.Path(), len(s.files))
			}
		} else if v, err := s.Float32("from"); err != nil || v[0] != c.from {
			t.Errorf("%s: from = %v, %v", c.dir, v, err)
		}
		s.Close()
	}
	if _, _, err := OpenFolder(t.TempDir()); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("empty folder: %v", err)
	}
	// Open on a directory delegates to OpenFolder.
	s, err := Open("testdata/folder_pt")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestShardedErrors(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "testdata/sharded_st/model-00001-of-00002.safetensors", filepath.Join(dir, "a.safetensors"))
	copyFile(t, "testdata/sharded_st/model-00002-of-00002.safetensors", filepath.Join(dir, "b.safetensors"))
	for name, idx := range map[string]string{
		"missing_key":  `{"weight_map": {"m.a": "a.safetensors", "nope": "a.safetensors"}}`,
		"missing_file": `{"weight_map": {"m.a": "zzz.safetensors"}}`,
		"escape":       `{"weight_map": {"m.a": "../a.safetensors"}}`,
		"no_map":       `{"metadata": {}}`,
		"dup_across":   `{"weight_map": {"m.a": "a.safetensors", "m.c": "b.safetensors", "x": "c.safetensors"}}`,
		"self":         `{"weight_map": {"m.a": "self.json"}}`,
		"not_json":     `{"weight_map": `,
	} {
		p := filepath.Join(dir, name+".json")
		if name == "self" {
			p = filepath.Join(dir, "self.json")
		}
		if name == "dup_across" {
			copyFile(t, "testdata/sharded_st/model-00001-of-00002.safetensors", filepath.Join(dir, "c.safetensors"))
		}
		if err := os.WriteFile(p, []byte(idx), 0o644); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(p); err == nil {
			s.Close()
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sample returns n deterministic values with a spread of magnitudes.
func sample(n int, seed float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		x := math.Sin(float64(i)*12.9898+seed) * 43758.5453
		x -= math.Floor(x)
		out[i] = float32((x - 0.5) * math.Pow(10, float64(i%7)-3))
	}
	return out
}

func ints(vals ...float32) []float32 { return vals }

func roundTripTensors() []NamedTensor {
	return []NamedTensor{
		{"enc.w", F32, []int64{3, 5}, sample(15, 1)},
		{"enc.h", F16, []int64{2, 2, 3}, append(sample(8, 2), float32(math.Inf(1)), float32(math.NaN()), 1e-7, 70000)},
		{"enc.bf", BF16, []int64{4}, ints(1, -2.5, 3e38, float32(math.NaN()))},
		{"enc.d", F64, []int64{2}, ints(1.0/3, -7)},
		{"position_ids", I64, []int64{1, 5}, ints(0, 1, 2, 3, 4)},
		{"i32", I32, []int64{3}, ints(-5, 0, 1<<20)},
		{"i16", I16, []int64{2}, ints(-32768, 32767)},
		{"i8", I8, []int64{2}, ints(-128, 127)},
		{"u8", U8, []int64{2}, ints(0, 255)},
		{"mask", Bool, []int64{3}, ints(1, 0, 1)},
		{"scalar", F32, []int64{}, ints(42)},
		{"empty", F32, []int64{0, 4}, nil},
		{"unicode.名前", F32, []int64{1}, ints(-1)},
	}
}

// converted is what a reader must return for a written tensor.
func converted(nt NamedTensor) []float32 {
	out := make([]float32, len(nt.Data))
	for i, v := range nt.Data {
		switch nt.DType {
		case F16:
			out[i] = HalfToFloat32(Float32ToHalf(v))
		case BF16:
			out[i] = math.Float32frombits(uint32(Float32ToBFloat16(v)) << 16)
		case Bool:
			if v != 0 {
				out[i] = 1
			}
		default:
			out[i] = v
		}
	}
	return out
}

func checkRoundTrip(t *testing.T, path string, tensors []NamedTensor) {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	for _, nt := range tensors {
		names = append(names, nt.Name)
		if dt, _ := s.DType(nt.Name); dt != nt.DType {
			t.Errorf("%s: dtype %s, want %s", nt.Name, dt, nt.DType)
		}
		if sh, _ := s.Shape(nt.Name); !slices.Equal(sh, nt.Shape) {
			t.Errorf("%s: shape %v, want %v", nt.Name, sh, nt.Shape)
		}
		got, err := s.Float32(nt.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := converted(nt)
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", nt.Name, len(got), len(want))
		}
		for i := range want {
			if !sameBits(got[i], math.Float32bits(want[i])) {
				t.Errorf("%s[%d] = %v, want %v", nt.Name, i, got[i], want[i])
			}
		}
	}
	if !slices.Equal(s.Keys(), names) {
		t.Errorf("keys %v, want %v", s.Keys(), names)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tensors := roundTripTensors()
	var st bytes.Buffer
	if err := WriteSafetensors(&st, tensors); err != nil {
		t.Fatal(err)
	}
	if n := len(st.Bytes()); n < 8 || (int(st.Bytes()[0])+8)%8 != 0 {
		t.Errorf("header not padded to 8: %d", st.Bytes()[0])
	}
	p := filepath.Join(dir, "x.safetensors")
	os.WriteFile(p, st.Bytes(), 0o644)
	checkRoundTrip(t, p, tensors)

	var tz bytes.Buffer
	if err := WriteTorchZip(&tz, "pytorch_model", tensors); err == nil {
		// U16/U32/U64 aside, all round-trip dtypes have torch storages.
		p := filepath.Join(dir, "pytorch_model.bin")
		os.WriteFile(p, tz.Bytes(), 0o644)
		checkRoundTrip(t, p, tensors)
	} else {
		t.Fatal(err)
	}
	// Layout as torch writes it: entries under the stem, stored, data 64-aligned.
	zr, err := zip.NewReader(bytes.NewReader(tz.Bytes()), int64(tz.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Store {
			t.Errorf("%s compressed", f.Name)
		}
		off, _ := f.DataOffset()
		if off%64 != 0 {
			t.Errorf("%s: data at %d, not 64-aligned", f.Name, off)
		}
		rc, err := f.Open() // checks the CRC
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bytes.NewBuffer(nil).ReadFrom(rc); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		rc.Close()
	}
	if names[0] != "pytorch_model/data.pkl" || names[1] != "pytorch_model/byteorder" || names[len(names)-1] != "pytorch_model/version" {
		t.Errorf("entries %v", names)
	}

	// Errors.
	for _, bad := range [][]NamedTensor{
		{{"a", F32, []int64{2}, []float32{1}}},
		{{"a", F32, []int64{1}, []float32{1}}, {"a", F32, []int64{1}, []float32{1}}},
		{{"", F32, []int64{1}, []float32{1}}},
		{{"a", "F8", []int64{1}, []float32{1}}},
		{{"a", I64, []int64{1}, []float32{1.5}}},
		{{"a", U8, []int64{1}, []float32{256}}},
		{{"a", F32, []int64{-1}, nil}},
	} {
		if err := WriteSafetensors(&bytes.Buffer{}, bad); err == nil {
			t.Errorf("WriteSafetensors(%v): no error", bad)
		}
		if err := WriteTorchZip(&bytes.Buffer{}, "x", bad); err == nil {
			t.Errorf("WriteTorchZip(%v): no error", bad)
		}
	}
	if err := WriteTorchZip(&bytes.Buffer{}, "x", []NamedTensor{{"a", U16, []int64{1}, []float32{1}}}); err == nil {
		t.Error("WriteTorchZip U16: no error")
	}
	if err := WriteTorchZip(&bytes.Buffer{}, "a/b", nil); err == nil {
		t.Error("stem with slash: no error")
	}
}

// TestWriteForTorch writes files for testdata/check_written.py, which loads
// them with the real torch.load (and numpy for safetensors). It only runs
// when CHECKPOINT_WRITE_DIR is set.
func TestWriteForTorch(t *testing.T) {
	dir := os.Getenv("CHECKPOINT_WRITE_DIR")
	if dir == "" {
		t.Skip("set CHECKPOINT_WRITE_DIR to write files for check_written.py")
	}
	tensors := roundTripTensors()
	exp := map[string]expectedTensor{}
	var keys []string
	for _, nt := range tensors {
		b := []uint32{}
		for _, v := range converted(nt) {
			b = append(b, math.Float32bits(v))
		}
		exp[nt.Name] = expectedTensor{DType: string(nt.DType), Shape: nt.Shape, Bits: b}
		keys = append(keys, nt.Name)
	}
	var st, tz bytes.Buffer
	if err := WriteSafetensors(&st, tensors); err != nil {
		t.Fatal(err)
	}
	if err := WriteTorchZip(&tz, "go_written", tensors); err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(expectedFile{Keys: keys, Tensors: exp}, "", " ")
	for name, b := range map[string][]byte{"go_written.safetensors": st.Bytes(), "go_written.pt": tz.Bytes(), "go_written.json": js} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLayer(t *testing.T) {
	dir := t.TempDir()
	base := []NamedTensor{
		{"a", F32, []int64{2}, ints(1, 2)},
		{"b", F32, []int64{2, 2}, ints(1, 2, 3, 4)},
		{"c", F16, []int64{1}, ints(5)},
	}
	over := []NamedTensor{
		{"extra", F32, []int64{1}, ints(9)},
		{"b", F16, []int64{2, 2}, ints(10, 20, 30, 40)},
	}
	var bb, ob bytes.Buffer
	WriteSafetensors(&bb, base)
	WriteTorchZip(&ob, "over", over)
	os.WriteFile(filepath.Join(dir, "base.safetensors"), bb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "over.bin"), ob.Bytes(), 0o644)
	bs, err := Open(filepath.Join(dir, "base.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	ov, err := Open(filepath.Join(dir, "over.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	l, rep, err := Layer(bs, ov)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Replaced, []string{"b"}) || !slices.Equal(rep.Unexpected, []string{"extra"}) || !slices.Equal(rep.Missing, []string{"a", "c"}) {
		t.Errorf("report %+v", rep)
	}
	if !slices.Equal(l.Keys(), []string{"a", "b", "c"}) {
		t.Errorf("keys %v", l.Keys())
	}
	if v, _ := l.Float32("b"); !slices.Equal(v, []float32{10, 20, 30, 40}) {
		t.Errorf("b = %v", v)
	}
	if v, _ := l.Float32("a"); !slices.Equal(v, []float32{1, 2}) {
		t.Errorf("a = %v", v)
	}
	if dt, _ := l.DType("b"); dt != F16 || !l.FromOver("b") || l.FromOver("a") {
		t.Errorf("b dtype %s", dt)
	}
	if _, ok := l.Shape("extra"); ok {
		t.Error("unexpected key visible")
	}
	if _, err := l.Float32("extra"); err == nil {
		t.Error("unexpected key readable")
	}

	// Shape mismatch is an error, as in torch.
	var mb bytes.Buffer
	WriteTorchZip(&mb, "bad", []NamedTensor{{"b", F32, []int64{4}, ints(1, 2, 3, 4)}})
	os.WriteFile(filepath.Join(dir, "bad.bin"), mb.Bytes(), 0o644)
	bad, err := Open(filepath.Join(dir, "bad.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, _, err := Layer(bs, bad); err == nil || !strings.Contains(err.Error(), "size mismatch") {
		t.Errorf("mismatch: %v", err)
	}
}

func TestConcurrentReadsAndClose(t *testing.T) {
	s, err := Open("testdata/views.pt")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{}
	for _, k := range s.Keys() {
		want[k], _ = s.Float32(k)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for _, k := range s.Keys() {
					got, err := s.Float32(k)
					if err != nil || !slices.EqualFunc(got, want[k], func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
						t.Errorf("%s: %v", k, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := s.Float32("a"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after Close: %v", err)
	}
	if _, ok := s.Shape("a"); !ok {
		t.Error("metadata gone after Close")
	}
	if _, err := s.Float32("nope"); err == nil {
		t.Error("absent key: no error")
	}
}
