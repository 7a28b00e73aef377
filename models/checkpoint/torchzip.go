package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// maxPickleBytes bounds data.pkl. A state dict's pickle holds only metadata
// (about 150 bytes per tensor), so this is generous.
const maxPickleBytes = 1 << 30

// UnsafeGlobalError is returned for a pickle that names a global outside the
// whitelist (e.g. posix.system): such a file is not a plain state dict, and
// loading it with torch.load(weights_only=False) could run code.
type UnsafeGlobalError struct{ Module, Name string }

func (e *UnsafeGlobalError) Error() string {
	return fmt.Sprintf("pickle refers to global %s.%s, which is not allowed (only torch tensor/storage rebuild "+
		"functions and collections.OrderedDict are); refusing to load it", e.Module, e.Name)
}

// storageType is what a torch.XxxStorage global unpickles to.
type storageType struct{ dtype DType }

var storageTypes = map[string]DType{
	"FloatStorage":    F32,
	"DoubleStorage":   F64,
	"HalfStorage":     F16,
	"BFloat16Storage": BF16,
	"LongStorage":     I64,
	"IntStorage":      I32,
	"ShortStorage":    I16,
	"CharStorage":     I8,
	"ByteStorage":     U8,
	"BoolStorage":     Bool,
	"UntypedStorage":  U8, // torch >= 2 for storages saved on their own; counts bytes
}

// storage is a persistent-load result: one zip entry of the archive.
type storage struct {
	key   string
	dtype DType
	numel int64
	data  *blob
}

// typeMarker stands for a tensor class (torch.Tensor, nn.Parameter).
type typeMarker struct{ name string }

// pyFunc adapts a Go function to gopickle's Callable.
type pyFunc struct {
	name string
	fn   func(args []interface{}) (interface{}, error)
}

func (p *pyFunc) Call(args ...interface{}) (interface{}, error) {
	v, err := p.fn(args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return v, nil
}

var (
	rebuildTensorV2 = &pyFunc{"torch._utils._rebuild_tensor_v2", func(a []interface{}) (interface{}, error) {
		// (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
		if len(a) < 4 || len(a) > 7 {
			return nil, fmt.Errorf("%d arguments", len(a))
		}
		return newTensor(a[0], a[1], a[2], a[3])
	}}
	rebuildTensorV1 = &pyFunc{"torch._utils._rebuild_tensor", func(a []interface{}) (interface{}, error) {
		if len(a) != 4 {
			return nil, fmt.Errorf("%d arguments", len(a))
		}
		return newTensor(a[0], a[1], a[2], a[3])
	}}
	rebuildParameter = &pyFunc{"torch._utils._rebuild_parameter", func(a []interface{}) (interface{}, error) {
		// (data, requires_grad, backward_hooks[, state])
		if len(a) < 3 || len(a) > 4 {
			return nil, fmt.Errorf("%d arguments", len(a))
		}
		t, ok := a[0].(*tensor)
		if !ok {
			return nil, fmt.Errorf("data is %T, not a tensor", a[0])
		}
		return t, nil
	}}
	rebuildFromTypeV2 = &pyFunc{"torch._tensor._rebuild_from_type_v2", func(a []interface{}) (interface{}, error) {
		// (func, new_type, args, state): func(*args), then the type and state.
		if len(a) != 4 {
			return nil, fmt.Errorf("%d arguments", len(a))
		}
		fn, ok := a[0].(*pyFunc)
		if !ok || (fn != rebuildTensorV2 && fn != rebuildTensorV1 && fn != rebuildParameter) {
			return nil, fmt.Errorf("func %T is not a tensor rebuild function", a[0])
		}
		if _, ok := a[1].(*typeMarker); !ok {
			return nil, fmt.Errorf("type %T is not torch.Tensor or nn.Parameter", a[1])
		}
		args, ok := a[2].(*types.Tuple)
		if !ok {
			return nil, fmt.Errorf("args are %T, not a tuple", a[2])
		}
		return fn.Call(*args...)
	}}
	codecsEncode = &pyFunc{"_codecs.encode", func(a []interface{}) (interface{}, error) {
		// Protocol-2 pickles write bytes objects as _codecs.encode(str, 'latin1').
		if len(a) != 2 {
			return nil, fmt.Errorf("%d arguments", len(a))
		}
		s, ok1 := a[0].(string)
		enc, ok2 := a[1].(string)
		if !ok1 || !ok2 || (enc != "latin1" && enc != "latin-1") {
			return nil, errors.New("only encode(str, 'latin1') is supported")
		}
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil, errors.New("character outside latin1")
			}
			out = append(out, byte(r))
		}
		return out, nil
	}}
)

// findClass is the pickle global whitelist.
func findClass(module, name string) (interface{}, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensorV2, nil
	case "torch._utils._rebuild_tensor":
		return rebuildTensorV1, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return rebuildParameter, nil
	case "torch._tensor._rebuild_from_type_v2":
		return rebuildFromTypeV2, nil
	case "torch.Tensor", "torch._tensor.Tensor", "torch.nn.parameter.Parameter":
		return &typeMarker{module + "." + name}, nil
	case "_codecs.encode":
		return codecsEncode, nil
	case "collections.OrderedDict":
		return &types.OrderedDictClass{}, nil
	}
	if module == "torch" || module == "torch.storage" {
		if dt, ok := storageTypes[name]; ok {
			return &storageType{dt}, nil
		}
		if strings.HasSuffix(name, "Storage") {
			return nil, fmt.Errorf("unsupported tensor storage type %s.%s (supported: float, half, bfloat16, double and integer/bool storages)", module, name)
		}
	}
	return nil, &UnsafeGlobalError{Module: module, Name: name}
}

func toInt64(v interface{}) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

func toInts(v interface{}) ([]int64, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(*t))
	for i, e := range *t {
		n, ok := toInt64(e)
		if !ok {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}

func newTensor(st, off, size, stride interface{}) (*tensor, error) {
	s, ok := st.(*storage)
	if !ok {
		return nil, fmt.Errorf("storage argument is %T, not a persistent storage", st)
	}
	o, ok := toInt64(off)
	if !ok {
		return nil, fmt.Errorf("storage offset %v is not an integer", off)
	}
	shape, ok := toInts(size)
	if !ok {
		return nil, fmt.Errorf("size %v is not a tuple of integers", size)
	}
	strides, ok := toInts(stride)
	if !ok {
		return nil, fmt.Errorf("stride %v is not a tuple of integers", stride)
	}
	es := int64(s.dtype.Size())
	numel, err := numelOf(shape, es)
	if err != nil {
		return nil, err
	}
	t := &tensor{dtype: s.dtype, shape: shape, offset: o, numel: numel, data: s.data}
	if err := t.setLayout(strides, s.numel); err != nil {
		return nil, fmt.Errorf("storage %s: %w", s.key, err)
	}
	return t, nil
}

// torchArchive holds what persistent_load needs.
type torchArchive struct {
	f        io.ReaderAt
	size     int64
	prefix   string
	name     string
	entries  map[string]*zip.File
	order    binary.ByteOrder
	storages map[string]*storage
}

func (a *torchArchive) persistentLoad(pid interface{}) (interface{}, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() < 5 || t.Len() > 6 {
		return nil, fmt.Errorf("persistent id %v is not ('storage', type, key, location, numel)", pid)
	}
	if tag, _ := t.Get(0).(string); tag != "storage" {
		return nil, fmt.Errorf("persistent id of kind %v is not supported (only 'storage')", t.Get(0))
	}
	typ, ok := t.Get(1).(*storageType)
	if !ok {
		return nil, fmt.Errorf("persistent id storage type %v is not a torch storage class", t.Get(1))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, fmt.Errorf("storage key %v is not a string", t.Get(2))
	}
	numel, ok := toInt64(t.Get(4))
	if !ok || numel < 0 {
		return nil, fmt.Errorf("storage %s: numel %v is not a non-negative integer", key, t.Get(4))
	}
	if t.Len() == 6 && t.Get(5) != nil {
		return nil, fmt.Errorf("storage %s: storage views (legacy format) are not supported", key)
	}
	if s, ok := a.storages[key]; ok {
		if s.dtype != typ.dtype || s.numel != numel {
			return nil, fmt.Errorf("storage %s is referenced as %s[%d] and as %s[%d]", key, s.dtype, s.numel, typ.dtype, numel)
		}
		return s, nil
	}
	entryName := a.prefix + "/data/" + key
	zf, ok := a.entries[entryName]
	if !ok {
		return nil, fmt.Errorf("storage %s: archive has no entry %s", key, entryName)
	}
	b, err := a.entryBlob(zf)
	if err != nil {
		return nil, err
	}
	es := int64(typ.dtype.Size())
	if numel > b.size/es {
		return nil, fmt.Errorf("storage %s: %d elements of %s need %d bytes, entry %s has %d", key, numel, typ.dtype, numel*es, entryName, b.size)
	}
	s := &storage{key: key, dtype: typ.dtype, numel: numel, data: b}
	a.storages[key] = s
	return s, nil
}

// entryBlob locates an entry's data in the file.
func (a *torchArchive) entryBlob(zf *zip.File) (*blob, error) {
	name := a.name + ":" + zf.Name
	if zf.UncompressedSize64 > 1<<62 {
		return nil, fmt.Errorf("entry %s: size %d is too large", zf.Name, zf.UncompressedSize64)
	}
	size := int64(zf.UncompressedSize64)
	switch zf.Method {
	case zip.Store:
		if zf.CompressedSize64 != zf.UncompressedSize64 {
			return nil, fmt.Errorf("entry %s: stored with compressed size %d != size %d", zf.Name, zf.CompressedSize64, zf.UncompressedSize64)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", zf.Name, err)
		}
		if off < 0 || off > a.size || size > a.size-off {
			return nil, fmt.Errorf("entry %s: data [%d, %d+%d) lies outside the %d-byte file (truncated?)", zf.Name, off, off, size, a.size)
		}
		return &blob{f: a.f, off: off, size: size, order: a.order, name: name}, nil
	case zip.Deflate:
		if zf.CompressedSize64 > uint64(a.size) {
			return nil, fmt.Errorf("entry %s: compressed size %d exceeds the file (truncated?)", zf.Name, zf.CompressedSize64)
		}
		return &blob{f: a.f, zf: zf, size: size, order: a.order, name: name}, nil
	}
	return nil, fmt.Errorf("entry %s: unsupported zip compression method %d", zf.Name, zf.Method)
}

// readEntry reads a small entry whole, refusing more than limit bytes.
func readEntry(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry %s: %d bytes exceeds the %d-byte limit", zf.Name, zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", zf.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", zf.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("entry %s exceeds the %d-byte limit", zf.Name, limit)
	}
	return b, nil
}

func (s *StateDict) loadTorchZip(f io.ReaderAt, size int64, name string) error {
	zr, err := zip.NewReader(f, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("torch zip: %w", err)
	}
	if len(zr.File) == 0 {
		return errors.New("torch zip: empty archive")
	}
	// The reader takes the archive's top directory from its first entry,
	// as torch's PyTorchStreamReader does (it is the saved file's stem).
	first := zr.File[0].Name
	slash := strings.IndexByte(first, '/')
	if slash <= 0 {
		return fmt.Errorf("torch zip: first entry %q is not inside a directory; not a torch.save archive", first)
	}
	a := &torchArchive{
		f: f, size: size, prefix: first[:slash], name: name,
		entries:  make(map[string]*zip.File, len(zr.File)),
		order:    binary.LittleEndian,
		storages: map[string]*storage{},
	}
	for _, zf := range zr.File {
		a.entries[zf.Name] = zf
	}
	if _, ok := a.entries[a.prefix+"/constants.pkl"]; ok {
		return errors.New("torch zip: a TorchScript archive (torch.jit.save); save the model's state_dict() with torch.save instead")
	}
	pkl, ok := a.entries[a.prefix+"/data.pkl"]
	if !ok {
		return fmt.Errorf("torch zip: no %s/data.pkl; not a torch.save archive", a.prefix)
	}
	if bo, ok := a.entries[a.prefix+"/byteorder"]; ok {
		b, err := readEntry(bo, 16)
		if err != nil {
			return fmt.Errorf("torch zip: %w", err)
		}
		switch strings.TrimSpace(string(b)) {
		case "little":
		case "big":
			a.order = binary.BigEndian
		default:
			return fmt.Errorf("torch zip: byteorder record %q is neither little nor big", b)
		}
	}
	p, err := readEntry(pkl, maxPickleBytes)
	if err != nil {
		return fmt.Errorf("torch zip: %w", err)
	}
	obj, err := unpickle(p, a)
	if err != nil {
		return fmt.Errorf("torch zip: %s: %w", pkl.Name, err)
	}
	return s.addStateDict(obj)
}

func unpickle(p []byte, a *torchArchive) (obj interface{}, err error) {
	if err := scanPickle(p); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(p))
	u.FindClass = findClass
	u.PersistentLoad = a.persistentLoad
	u.GetExtension = func(code int) (interface{}, error) {
		return nil, fmt.Errorf("pickle extension code %d is not allowed", code)
	}
	u.NextBuffer = func() (interface{}, error) {
		return nil, errors.New("out-of-band pickle buffers are not allowed")
	}
	return u.Load()
}

// dictEntries lists a pickled dict's items in insertion order, with
// Python's semantics for a repeated key (first position, last value).
func dictEntries(v interface{}) ([]types.DictEntry, bool) {
	var raw []types.DictEntry
	switch d := v.(type) {
	case *types.Dict:
		raw = *d
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			raw = append(raw, types.DictEntry{Key: oe.Key, Value: oe.Value})
		}
		return raw, true
	default:
		return nil, false
	}
	out := make([]types.DictEntry, 0, len(raw))
	pos := map[string]int{}
	for _, e := range raw {
		if k, ok := e.Key.(string); ok {
			if i, dup := pos[k]; dup {
				out[i].Value = e.Value
				continue
			}
			pos[k] = len(out)
		}
		out = append(out, e)
	}
	return out, true
}

// addStateDict takes the unpickled object: a dict of name → tensor, or a
// dict whose "state_dict" (or else "model") entry is one.
func (s *StateDict) addStateDict(obj interface{}) error {
	entries, ok := dictEntries(obj)
	if !ok {
		return fmt.Errorf("torch zip: the pickle holds a %T, not a state dict", obj)
	}
	for _, wrapper := range []string{"state_dict", "model"} {
		for _, e := range entries {
			if k, _ := e.Key.(string); k == wrapper {
				if inner, ok := dictEntries(e.Value); ok {
					return s.addTensors(inner, wrapper+".")
				}
			}
		}
	}
	return s.addTensors(entries, "")
}

func (s *StateDict) addTensors(entries []types.DictEntry, where string) error {
	for _, e := range entries {
		k, ok := e.Key.(string)
		if !ok {
			return fmt.Errorf("torch zip: state dict key %v is a %T, not a string", e.Key, e.Key)
		}
		t, ok := e.Value.(*tensor)
		if !ok {
			return fmt.Errorf("torch zip: state dict entry %s%s is a %T, not a tensor", where, k, e.Value)
		}
		if err := s.add(k, t); err != nil {
			return fmt.Errorf("torch zip: %w", err)
		}
	}
	return nil
}
