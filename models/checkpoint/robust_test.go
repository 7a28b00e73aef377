package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// openBytes is Open on in-memory bytes (data files only).
func openBytes(b []byte, name string) (*StateDict, error) {
	h := b[:min(len(b), 16)]
	kind, err := sniff(h, int64(len(b)))
	if err != nil {
		return nil, err
	}
	if kind == kindIndex {
		return nil, errors.New("index")
	}
	return openReaderAt(bytes.NewReader(b), int64(len(b)), kind, name)
}

// wantRefused checks that the file b (called name) does not open, with an
// error that mentions want.
func wantRefused(t *testing.T, b []byte, name, want string) {
	t.Helper()
	s, err := openBytes(b, name)
	if err == nil {
		s.Close()
		t.Errorf("%s: no error", name)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %q does not mention %q", name, err, want)
	}
	t.Logf("%s: %v", name, err)
}

// readAll reads every tensor, checking the value count; it must not panic.
func readAll(t testing.TB, s *StateDict) {
	for _, k := range s.Keys() {
		v, err := s.Float32(k)
		if err != nil {
			continue
		}
		sh, _ := s.Shape(k)
		n, _ := numelOf(sh, 1)
		if int64(len(v)) != n {
			t.Fatalf("%s: %d values for shape %v", k, len(v), sh)
		}
	}
}

// TestTruncatedFiles: every proper prefix of every fixture is an error,
// never a panic.
func TestTruncatedFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.pt")
	more, _ := filepath.Glob("testdata/*.safetensors")
	files = append(files, more...)
	if len(files) < 14 {
		t.Fatalf("only %d fixtures", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n++ {
			s, err := openBytes(b[:n], f)
			if err == nil {
				readAll(t, s)
				t.Errorf("%s cut to %d of %d bytes: opened without error", f, n, len(b))
			}
		}
	}
}

func stFile(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestBadSafetensors(t *testing.T) {
	eight := make([]byte, 8)
	for name, c := range map[string]struct {
		file []byte
		want string
	}{
		"short":              {[]byte{1, 2, 3}, "too short"},
		"length past end":    {append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...), "exceeds the file size"},
		"length 2^63":        {append(binary.LittleEndian.AppendUint64(nil, 1<<63), `{"a":1}`...), "exceeds"},
		"not json":           {stFile(`{"a":`, nil), "header"},
		"array":              {stFile(`[1,2]`, nil), "unrecognised format"},
		"offsets past data":  {stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight[:4]), "outside"},
		"offsets mismatch":   {stFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs 12"},
		"begin after end":    {stFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, eight), "outside"},
		"negative begin":     {stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, eight), "outside"},
		"negative dim":       {stFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), "negative"},
		"huge dims":          {stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, eight), "too large"},
		"dim not integer":    {stFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, eight), "shape"},
		"unknown dtype":      {stFile(`{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}`, eight), "unsupported dtype"},
		"duplicate":          {stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, eight), "duplicate"},
		"trailing garbage":   {stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} x`, eight), "trailing"},
		"no shape":           {stFile(`{"a":{"dtype":"U8","data_offsets":[0,1]}}`, eight), "no shape"},
		"three offsets":      {stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}`, eight), "data_offsets"},
		"entry not object":   {stFile(`{"a":[1]}`, eight), "header entry"},
		"legacy torch":       {[]byte("\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."), "legacy"},
		"zip without dir":    {zipOf(t, map[string][]byte{"data.pkl": []byte("\x80\x02}.")}), "not inside a directory"},
		"zip without pickle": {zipOf(t, map[string][]byte{"a/version": []byte("3\n")}), "no a/data.pkl"},
		"torchscript":        {zipOf(t, map[string][]byte{"a/data.pkl": []byte("\x80\x02}."), "a/constants.pkl": nil}), "TorchScript"},
	} {
		wantRefused(t, c.file, name, c.want)
	}
	// Valid edge cases: a scalar, an empty tensor, an empty header.
	for name, file := range map[string][]byte{
		"scalar":       stFile(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, []byte{0, 0, 0x80, 0x3f}),
		"empty":        stFile(`{"__metadata__":{"x":"y"},"e":{"dtype":"BF16","shape":[0,5],"data_offsets":[0,0]}}`, nil),
		"empty header": stFile(`{}      `, nil),
	} {
		s, err := openBytes(file, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		readAll(t, s)
		if name == "scalar" {
			if v, _ := s.Float32("s"); len(v) != 1 || v[0] != 1 {
				t.Errorf("scalar = %v", v)
			}
		}
	}
}

// zipOf builds a zip (stored entries, names in sorted order for determinism).
func zipOf(t testing.TB, entries map[string][]byte) []byte {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		// data.pkl first, as torch writes it
		ap, bp := strings.HasSuffix(a, "data.pkl"), strings.HasSuffix(b, "data.pkl")
		if ap != bp {
			if ap {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(entries[n])
	}
	zw.Close()
	return buf.Bytes()
}

// tensorPickle builds data.pkl for {name: _rebuild_tensor_v2(storage, off, shape, stride)}
// with a given storage class, key and numel.
func tensorPickle(storageClass, key string, numel, off int64, shape, stride []int64) []byte {
	var p pickleBuf
	p.WriteString("\x80\x02}(")
	p.str("t")
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.WriteString("((")
	p.str("storage")
	p.global("torch", storageClass)
	p.str(key)
	p.str("cpu")
	p.int(numel)
	p.WriteString("tQ")
	p.int(off)
	p.tuple(shape)
	p.tuple(stride)
	p.WriteString("\x89}tRu.")
	return p.Bytes()
}

// floats1234 is the storage of float32 1, 2, 3, 4 in the given byte order.
func floats1234(order binary.ByteOrder) []byte {
	b := make([]byte, 16)
	for i := range 4 {
		order.PutUint32(b[4*i:], math.Float32bits(float32(i+1)))
	}
	return b
}

// goodTensorPickle is the 2×2 tensor t over storage "0" of 4 floats.
func goodTensorPickle() []byte {
	return tensorPickle("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{2, 1})
}

// oneStorageZip is a torch zip's entries with data.pkl and storage "0"
// holding float32 1, 2, 3, 4.
func oneStorageZip(pkl []byte) map[string][]byte {
	return map[string][]byte{"a/data.pkl": pkl, "a/data/0": floats1234(binary.LittleEndian), "a/version": []byte("3\n")}
}

// TestTorchZipViews reads a tensor, a transposed view of its storage, and a
// big-endian archive.
func TestTorchZipViews(t *testing.T) {
	ok := oneStorageZip
	good := goodTensorPickle()
	if s, err := openBytes(zipOf(t, ok(good)), "good"); err != nil {
		t.Fatalf("good: %v", err)
	} else if v, _ := s.Float32("t"); !slices.Equal(v, []float32{1, 2, 3, 4}) {
		t.Fatalf("good: %v", v)
	}
	// A transposed view of the same storage.
	if s, err := openBytes(zipOf(t, ok(tensorPickle("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{1, 2}))), "t"); err != nil {
		t.Fatal(err)
	} else if v, _ := s.Float32("t"); !slices.Equal(v, []float32{1, 3, 2, 4}) {
		t.Fatalf("transpose: %v", v)
	}
	// Big-endian archives (byteorder record "big") are byte-swapped.
	be := floats1234(binary.BigEndian)
	if s, err := openBytes(zipOf(t, map[string][]byte{"a/data.pkl": good, "a/data/0": be, "a/byteorder": []byte("big")}), "be"); err != nil {
		t.Fatal(err)
	} else if v, _ := s.Float32("t"); !slices.Equal(v, []float32{1, 2, 3, 4}) {
		t.Fatalf("big-endian: %v", v)
	}
}

func TestBadTorchZips(t *testing.T) {
	f32x4 := floats1234(binary.LittleEndian)
	ok := oneStorageZip
	good := goodTensorPickle()
	var huge pickleBuf
	huge.WriteString("\x80\x04\x8e")
	huge.Write(binary.LittleEndian.AppendUint64(nil, 1<<60))
	huge.WriteString("abc.")
	var list pickleBuf
	list.WriteString("\x80\x02]K\x01a.")
	var intKey pickleBuf
	intKey.WriteString("\x80\x02}K\x01K\x02s.")
	var notTensor pickleBuf
	notTensor.WriteString("\x80\x02}(")
	notTensor.str("x")
	notTensor.WriteString("K\x05u.")
	var otherPID pickleBuf
	otherPID.WriteString("\x80\x02}(")
	otherPID.str("x")
	otherPID.str("module")
	otherPID.WriteString("\x85Qu.")

	for name, c := range map[string]struct {
		entries map[string][]byte
		want    string
	}{
		"missing storage":   {map[string][]byte{"a/data.pkl": good}, "no entry a/data/0"},
		"storage too short": {ok(tensorPickle("FloatStorage", "0", 5, 0, []int64{5}, []int64{1})), "need 20 bytes"},
		"view past storage": {ok(tensorPickle("FloatStorage", "0", 4, 1, []int64{2, 2}, []int64{2, 1})), "reaches element 4"},
		"negative stride":   {ok(tensorPickle("FloatStorage", "0", 4, 3, []int64{2}, []int64{-1})), "negative stride"},
		"negative offset":   {ok(tensorPickle("FloatStorage", "0", 4, -1, []int64{2}, []int64{1})), "negative storage offset"},
		"rank mismatch":     {ok(tensorPickle("FloatStorage", "0", 4, 0, []int64{2, 2}, []int64{1})), "does not match"},
		"negative dim":      {ok(tensorPickle("FloatStorage", "0", 4, 0, []int64{-2}, []int64{1})), "negative dimension"},
		"complex storage":   {ok(tensorPickle("ComplexFloatStorage", "0", 2, 0, []int64{2}, []int64{1})), "unsupported tensor storage type torch.ComplexFloatStorage"},
		"mixed dtypes":      {ok(append(tensorPickle("FloatStorage", "0", 4, 0, []int64{4}, []int64{1})[:0:0], mixedPickle()...)), "referenced as"},
		"huge string":       {ok(huge.Bytes()), "runs past the end"},
		"no STOP":           {ok(good[:len(good)-1]), "no STOP"},
		"unknown opcode":    {ok([]byte("\x80\x02\xff.")), "unknown opcode"},
		"list":              {ok(list.Bytes()), "not a state dict"},
		"int key":           {ok(intKey.Bytes()), "not a string"},
		"not a tensor":      {ok(notTensor.Bytes()), "not a tensor"},
		"other persistent":  {ok(otherPID.Bytes()), "persistent id"},
		"bad byteorder":     {map[string][]byte{"a/data.pkl": good, "a/data/0": f32x4, "a/byteorder": []byte("middle")}, "byteorder"},
		"stack underflow":   {ok([]byte("\x80\x02R.")), "stack is empty"},
		"odd dict":          {ok([]byte("\x80\x02(K\x01d.")), "malformed pickle"},
	} {
		wantRefused(t, zipOf(t, c.entries), name, c.want)
	}

	// An entry with an unsupported compression method.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("a/data.pkl")
	w.Write(good)
	w, _ = zw.CreateRaw(&zip.FileHeader{Name: "a/data/0", Method: 12, CRC32: crc32.ChecksumIEEE(f32x4), CompressedSize64: 16, UncompressedSize64: 16})
	w.Write(f32x4)
	zw.Close()
	if _, err := openBytes(buf.Bytes(), "bzip2"); err == nil || !strings.Contains(err.Error(), "compression method 12") {
		t.Errorf("method 12: %v", err)
	}
}

// mixedPickle refers to storage "0" as FloatStorage and as HalfStorage.
func mixedPickle() []byte {
	a := tensorPickle("FloatStorage", "0", 4, 0, []int64{4}, []int64{1})
	b := tensorPickle("HalfStorage", "0", 8, 0, []int64{8}, []int64{1})
	// {t: a, u: b}: splice b's item (renamed u) before a's "u." end.
	item := b[len("\x80\x02}(") : len(b)-2]
	item = bytes.Replace(item, []byte("X\x01\x00\x00\x00t"), []byte("X\x01\x00\x00\x00u"), 1)
	return append(append(a[:len(a)-2:len(a)-2], item...), "u."...)
}

// TestPickleFeatures covers pickle forms torch may write that the fixtures
// do not: Parameters, _rebuild_from_type_v2, bytes via _codecs.encode,
// the 7-argument _rebuild_tensor_v2 of torch 2, wrapped dicts.
func TestPickleFeatures(t *testing.T) {
	f32x4 := floats1234(binary.LittleEndian)
	storage := func(p *pickleBuf) {
		p.WriteString("(")
		p.str("storage")
		p.global("torch", "FloatStorage")
		p.str("0")
		p.str("cpu")
		p.int(4)
		p.WriteString("tQ")
	}
	rebuild := func(p *pickleBuf, extra string) {
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("(")
		storage(p)
		p.int(0)
		p.tuple([]int64{4})
		p.tuple([]int64{1})
		p.WriteString("\x89")
		p.global("collections", "OrderedDict")
		p.WriteString(")R" + extra + "tR")
	}
	var p pickleBuf
	p.WriteString("\x80\x02}(")
	p.str("model")
	p.WriteString("}(")
	p.str("param") // _rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict())
	p.global("torch._utils", "_rebuild_parameter")
	p.WriteString("(")
	rebuild(&p, "")
	p.WriteString("\x88")
	p.global("collections", "OrderedDict")
	p.WriteString(")RtR")
	p.str("v7") // torch 2's optional metadata argument
	rebuild(&p, "N")
	p.str("typed") // _rebuild_from_type_v2(_rebuild_tensor_v2, Parameter, args, {})
	p.global("torch._tensor", "_rebuild_from_type_v2")
	p.WriteString("(")
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.global("torch.nn.parameter", "Parameter")
	p.WriteString("(")
	storage(&p)
	p.int(1)
	p.tuple([]int64{3})
	p.tuple([]int64{1})
	p.WriteString("\x89")
	p.global("collections", "OrderedDict")
	p.WriteString(")Rt}tR")
	p.WriteString("u") // end of inner dict
	p.str("blob")      // bytes in protocol 2: _codecs.encode('\xff', 'latin1')
	p.global("_codecs", "encode")
	p.str("\u00ff")
	p.str("latin1")
	p.WriteString("\x86R")
	p.str("epoch")
	p.int(7)
	p.WriteString("u.")
	s, err := openBytes(zipOf(t, map[string][]byte{"a/data.pkl": p.Bytes(), "a/data/0": f32x4}), "features")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Keys(), []string{"param", "v7", "typed"}) {
		t.Fatalf("keys %v", s.Keys())
	}
	for k, want := range map[string][]float32{"param": {1, 2, 3, 4}, "v7": {1, 2, 3, 4}, "typed": {2, 3, 4}} {
		if v, err := s.Float32(k); err != nil || !slices.Equal(v, want) {
			t.Errorf("%s = %v, %v", k, v, err)
		}
	}
}

// TestDeflatedStorageRange reads strided views out of a DEFLATE entry,
// exercising the decompress-and-skip path at a non-zero offset.
func TestDeflatedStorageRange(t *testing.T) {
	vals := make([]byte, 4*100)
	for i := range 100 {
		binary.LittleEndian.PutUint32(vals[4*i:], math.Float32bits(float32(i)))
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("a/data.pkl") // Create deflates
	w.Write(tensorPickle("FloatStorage", "0", 100, 10, []int64{3, 2}, []int64{20, 5}))
	w, _ = zw.Create("a/data/0")
	w.Write(vals)
	zw.Close()
	s, err := openBytes(buf.Bytes(), "deflated")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Float32("t"); err != nil || !slices.Equal(v, []float32{10, 15, 30, 35, 50, 55}) {
		t.Fatalf("t = %v, %v", v, err)
	}
}

func TestScanPickleAcceptsFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.pt")
	for _, f := range files {
		if strings.Contains(f, "legacy") {
			continue
		}
		for _, p := range dataPickles(t, f) {
			if err := scanPickle(p); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

func dataPickles(t testing.TB, path string) [][]byte {
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out [][]byte
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") {
			rc, _ := f.Open()
			b, _ := io.ReadAll(rc)
			rc.Close()
			out = append(out, b)
		}
	}
	return out
}

func FuzzOpenSafetensors(f *testing.F) {
	for _, p := range []string{"testdata/mixed.safetensors", "testdata/sharded_st/model-00001-of-00002.safetensors"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	var w bytes.Buffer
	WriteSafetensors(&w, roundTripTensors())
	f.Add(w.Bytes())
	f.Add(stFile(`{"a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := openBytes(b, "fuzz")
		if err != nil {
			return
		}
		readAll(t, s)
	})
}

// FuzzUnpickle runs arbitrary data.pkl bytes against an archive whose
// storages are those of views.pt: errors are fine, panics and runaway
// allocations are not.
func FuzzUnpickle(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pt")
	for _, p := range files {
		if !strings.Contains(p, "legacy") {
			for _, b := range dataPickles(f, p) {
				f.Add(b)
			}
		}
	}
	raw, err := os.ReadFile("testdata/views.pt")
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		a := &torchArchive{f: bytes.NewReader(raw), size: int64(len(raw)), prefix: "views", name: "fuzz",
			entries: map[string]*zip.File{}, order: binary.LittleEndian, storages: map[string]*storage{}}
		for _, zf := range zr.File {
			a.entries[zf.Name] = zf
		}
		obj, err := unpickle(p, a)
		if err != nil {
			return
		}
		s := &StateDict{path: "fuzz", tensors: map[string]*tensor{}}
		if s.addStateDict(obj) == nil {
			readAll(t, s)
		}
	})
}

func ExampleOpen() {
	s, err := Open("testdata/hp_head.pt")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	for _, k := range s.Keys() {
		sh, _ := s.Shape(k)
		dt, _ := s.DType(k)
		fmt.Println(k, dt, sh)
	}
	// Output:
	// layers.0.weight F32 [32 12]
	// layers.0.bias F32 [32]
	// layers.2.weight F32 [16 32]
	// layers.2.bias F32 [16]
	// layers.4.weight F32 [8 16]
	// layers.4.bias F32 [8]
	// layers.6.weight F32 [4 8]
	// layers.6.bias F32 [4]
	// layers.7.weight F32 [1 4]
	// layers.7.bias F32 [1]
}
