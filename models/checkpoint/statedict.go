// Package checkpoint reads tensors from Hugging Face checkpoints
// (safetensors, PyTorch zip-pickle, and sharded variants of both) lazily:
// opening a checkpoint parses only its header or pickle, and a tensor's bytes
// are read from the file (os.File.ReadAt at the tensor's offset) only when
// Float32 asks for them. Converting a multi-gigabyte model therefore holds at
// most the tensors the caller keeps, plus one bounded read buffer.
//
// PyTorch pickles are interpreted by gopickle's virtual machine with a
// whitelist of globals (tensor rebuild functions, storage classes,
// collections.OrderedDict): nothing in a pickle is executed, and any other
// global is an error. See README.md for the formats and what is rejected.
package checkpoint

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"unsafe"
)

// readChunk is the size of the buffer used to convert non-float32 tensors.
const readChunk = 1 << 20

// blob is a byte range of a file: a safetensors data section, or one torch
// storage (a zip entry).
type blob struct {
	f     io.ReaderAt
	off   int64     // absolute offset of the blob's first byte (stored data)
	size  int64     // bytes
	zf    *zip.File // non-nil for a compressed zip entry: read by decompressing
	order binary.ByteOrder
	name  string // for messages
}

func (b *blob) readAt(p []byte, off int64) error {
	if off < 0 || off > b.size || int64(len(p)) > b.size-off {
		return fmt.Errorf("checkpoint: %s: read of %d bytes at %d is outside its %d bytes", b.name, len(p), off, b.size)
	}
	if b.zf == nil {
		n, err := b.f.ReadAt(p, b.off+off)
		if n == len(p) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("checkpoint: %s: %w", b.name, err)
	}
	rc, err := b.zf.Open()
	if err != nil {
		return fmt.Errorf("checkpoint: %s: %w", b.name, err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return fmt.Errorf("checkpoint: %s: decompressing: %w", b.name, err)
	}
	if _, err := io.ReadFull(rc, p); err != nil {
		return fmt.Errorf("checkpoint: %s: decompressing: %w", b.name, err)
	}
	return nil
}

// tensor is one entry's metadata; its values stay in the file.
type tensor struct {
	dtype  DType
	shape  []int64
	stride []int64 // element strides; nil when contiguous row-major
	offset int64   // element offset into data
	numel  int64
	data   *blob
}

// StateDict is an opened checkpoint: tensor metadata in memory, values on
// disk. All methods are safe for concurrent use; Close waits for reads in
// flight.
type StateDict struct {
	path    string
	keys    []string
	tensors map[string]*tensor
	files   []io.Closer

	mu     sync.RWMutex
	closed bool
}

// Path returns the file (or index file) the state dict was opened from.
func (s *StateDict) Path() string { return s.path }

// Len returns the number of tensors.
func (s *StateDict) Len() int { return len(s.keys) }

// Keys returns the tensor names in file order: a torch pickle's dict order,
// a safetensors header's order, shard by shard for sharded checkpoints.
func (s *StateDict) Keys() []string { return append([]string(nil), s.keys...) }

// Has reports whether the checkpoint has a tensor of that name.
func (s *StateDict) Has(name string) bool { _, ok := s.tensors[name]; return ok }

// Shape returns the tensor's shape ([] for a scalar), and false when the name is absent.
func (s *StateDict) Shape(name string) ([]int64, bool) {
	t, ok := s.tensors[name]
	if !ok {
		return nil, false
	}
	return append([]int64{}, t.shape...), true
}

// DType returns the tensor's element type as stored.
func (s *StateDict) DType(name string) (DType, bool) {
	t, ok := s.tensors[name]
	if !ok {
		return "", false
	}
	return t.dtype, true
}

// Bytes returns the tensor's size as stored (elements × element size), for
// memory planning: Float32 allocates 4 bytes per element on top of a
// bounded buffer.
func (s *StateDict) Bytes(name string) (int64, bool) {
	t, ok := s.tensors[name]
	if !ok {
		return 0, false
	}
	return t.numel * int64(t.dtype.Size()), true
}

// Float32 reads the tensor from disk and returns its values converted to
// float32, row-major (F16 and BF16 exactly, F64 rounded to nearest,
// integers and bools as numbers). Each call reads the file again; nothing
// is cached.
func (s *StateDict) Float32(name string) ([]float32, error) {
	t, ok := s.tensors[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint: %s has no tensor %q", s.path, name)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("checkpoint: %s is closed", s.path)
	}
	out := make([]float32, t.numel)
	if err := t.read(out); err != nil {
		return nil, fmt.Errorf("%w (tensor %q)", err, name)
	}
	return out, nil
}

// Close closes the files. Reads after Close fail; metadata stays readable.
func (s *StateDict) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, f := range s.files {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func (t *tensor) read(out []float32) error {
	if t.numel == 0 {
		return nil
	}
	es := int64(t.dtype.Size())
	if t.stride == nil {
		if t.dtype == F32 && t.data.order == binary.LittleEndian && hostLittleEndian {
			// Read straight into the result: no second copy.
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*4)
			return t.data.readAt(raw, t.offset*4)
		}
		per := int64(readChunk) / es
		if per > t.numel {
			per = t.numel
		}
		buf := make([]byte, per*es)
		for done := int64(0); done < t.numel; done += per {
			n := min(per, t.numel-done)
			b := buf[:n*es]
			if err := t.data.readAt(b, (t.offset+done)*es); err != nil {
				return err
			}
			decode(out[done:done+n], b, t.dtype, t.data.order)
		}
		return nil
	}
	// Strided view: read the span of storage it covers, then gather.
	last := int64(0)
	for d, n := range t.shape {
		last += (n - 1) * t.stride[d]
	}
	buf := make([]byte, (last+1)*es)
	if err := t.data.readAt(buf, t.offset*es); err != nil {
		return err
	}
	nd := len(t.shape)
	idx := make([]int64, nd)
	inner := t.shape[nd-1]
	innerStride := t.stride[nd-1]
	pos := int64(0) // element offset into buf of idx
	for o := int64(0); o < t.numel; o += inner {
		if innerStride == 1 {
			decode(out[o:o+inner], buf[pos*es:(pos+inner)*es], t.dtype, t.data.order)
		} else {
			for k := int64(0); k < inner; k++ {
				p := (pos + k*innerStride) * es
				decode(out[o+k:o+k+1], buf[p:p+es], t.dtype, t.data.order)
			}
		}
		// advance the outer index (odometer over dims 0..nd-2)
		for d := nd - 2; d >= 0; d-- {
			idx[d]++
			pos += t.stride[d]
			if idx[d] < t.shape[d] {
				break
			}
			pos -= idx[d] * t.stride[d]
			idx[d] = 0
		}
	}
	return nil
}

// numelOf returns the product of the dims, or an error for a negative dim or
// a product that does not fit comfortably in int64 bytes.
func numelOf(shape []int64, es int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > (1<<62)/es/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// setLayout checks a tensor view against its storage (numel elements
// available after element 0) and records whether it is contiguous.
func (t *tensor) setLayout(stride []int64, storageNumel int64) error {
	if len(stride) != len(t.shape) {
		return fmt.Errorf("stride %v does not match shape %v", stride, t.shape)
	}
	if t.offset < 0 {
		return fmt.Errorf("negative storage offset %d", t.offset)
	}
	if t.numel == 0 {
		t.stride = nil
		return nil
	}
	last := t.offset
	for d, n := range t.shape {
		if stride[d] < 0 {
			return fmt.Errorf("negative stride %v", stride)
		}
		if stride[d] > 0 && n-1 > (1<<62-last)/stride[d] {
			return fmt.Errorf("stride %v with shape %v overflows", stride, t.shape)
		}
		last += (n - 1) * stride[d]
	}
	if last >= storageNumel {
		return fmt.Errorf("view (offset %d, shape %v, stride %v) reaches element %d of a storage of %d", t.offset, t.shape, stride, last, storageNumel)
	}
	contiguous := true
	want := int64(1)
	for d := len(t.shape) - 1; d >= 0; d-- {
		if t.shape[d] != 1 && stride[d] != want {
			contiguous = false
		}
		want *= t.shape[d]
	}
	if contiguous {
		t.stride = nil
	} else {
		t.stride = append([]int64(nil), stride...)
	}
	return nil
}

// Open opens a checkpoint file, telling the format by its first bytes: a
// zip is a PyTorch zip-pickle (torch.save since 1.6), a JSON object is a
// sharded index (model.safetensors.index.json or
// pytorch_model.bin.index.json, resolved against the index's directory),
// anything else must be safetensors. A directory is opened with OpenFolder.
func Open(path string) (*StateDict, error) {
	return openFile(path, true)
}

// openFile opens one checkpoint file; shards (allowIndex false) must be
// data files, not further indexes or folders.
func openFile(path string, allowIndex bool) (*StateDict, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if st.IsDir() {
		if !allowIndex {
			return nil, fmt.Errorf("checkpoint: shard %s is a directory", path)
		}
		s, _, err := OpenFolder(path)
		return s, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	size := st.Size()
	var head [16]byte
	n, _ := f.ReadAt(head[:], 0)
	h := head[:n]
	kind, err := sniff(h, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	if kind == kindIndex {
		f.Close()
		if !allowIndex {
			return nil, fmt.Errorf("checkpoint: shard %s is an index, not a data file", path)
		}
		return openIndex(path)
	}
	s, err := openReaderAt(f, size, kind, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.files = []io.Closer{f}
	return s, nil
}

// openReaderAt parses a safetensors or torch zip held by r (the fuzz
// targets use it on in-memory bytes).
func openReaderAt(r io.ReaderAt, size int64, kind fileKind, path string) (*StateDict, error) {
	s := &StateDict{path: path, tensors: map[string]*tensor{}}
	var err error
	switch kind {
	case kindZip:
		err = s.loadTorchZip(r, size, filepath.Base(path))
	case kindSafetensors:
		err = s.loadSafetensors(r, size, filepath.Base(path))
	default:
		err = errors.New("not a data file")
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return s, nil
}

type fileKind int

const (
	kindSafetensors fileKind = iota
	kindZip
	kindIndex
)

func sniff(h []byte, size int64) (fileKind, error) {
	if len(h) >= 4 && h[0] == 'P' && h[1] == 'K' && (h[2] == 3 && h[3] == 4 || h[2] == 5 && h[3] == 6) {
		return kindZip, nil
	}
	if len(h) >= 9 {
		n := binary.LittleEndian.Uint64(h)
		if h[8] == '{' && n >= 2 && n <= uint64(size-8) {
			return kindSafetensors, nil
		}
	}
	i := 0
	for i < len(h) && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r') {
		i++
	}
	if i < len(h) && h[i] == '{' {
		return kindIndex, nil
	}
	if len(h) >= 2 && h[0] == 0x80 && h[1] <= 5 {
		return 0, errors.New("a legacy (pre-1.6, non-zip) torch.save file; re-save it with torch >= 1.6 " +
			"(torch.save(torch.load(path), path) writes the zip format)")
	}
	if len(h) < 8 {
		return 0, fmt.Errorf("file of %d bytes is too short to be a checkpoint", size)
	}
	n := binary.LittleEndian.Uint64(h)
	if n > uint64(size-8) {
		return 0, fmt.Errorf("not a zip, and as safetensors its header length %d exceeds the file size %d", n, size)
	}
	return 0, errors.New("unrecognised format: neither a torch zip, safetensors (header must start with '{'), nor an index JSON")
}

// add registers a tensor; names must be unique.
func (s *StateDict) add(name string, t *tensor) error {
	if _, dup := s.tensors[name]; dup {
		return fmt.Errorf("duplicate tensor name %q", name)
	}
	s.tensors[name] = t
	s.keys = append(s.keys, name)
	return nil
}
