package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
)

// NamedTensor is a tensor to write. Data holds the values row-major as
// float32; the writers convert them to DType (round-to-nearest-even for F16
// and BF16, as torch does; integer types need integral values).
type NamedTensor struct {
	Name  string
	DType DType
	Shape []int64
	Data  []float32
}

func checkTensors(tensors []NamedTensor) error {
	seen := map[string]bool{}
	for _, t := range tensors {
		if t.Name == "" {
			return errors.New("checkpoint: tensor with an empty name")
		}
		if seen[t.Name] {
			return fmt.Errorf("checkpoint: tensor %q given twice", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Valid() {
			return fmt.Errorf("checkpoint: tensor %q: unsupported dtype %q", t.Name, t.DType)
		}
		n, err := numelOf(t.Shape, int64(t.DType.Size()))
		if err != nil {
			return fmt.Errorf("checkpoint: tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != n {
			return fmt.Errorf("checkpoint: tensor %q: shape %v needs %d values, got %d", t.Name, t.Shape, n, len(t.Data))
		}
	}
	return nil
}

// writeData streams t's values converted to its dtype, in bounded chunks.
func writeData(w io.Writer, t NamedTensor) error {
	es := t.DType.Size()
	per := readChunk / es
	buf := make([]byte, min(per, len(t.Data))*es)
	for i := 0; i < len(t.Data); i += per {
		j := min(i+per, len(t.Data))
		b := buf[:(j-i)*es]
		if err := encode(b, t.Data[i:j], t.DType); err != nil {
			return fmt.Errorf("checkpoint: tensor %q: %w", t.Name, err)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// WriteSafetensors writes the tensors as a safetensors file: header keys in
// the order given, data packed in that order, header padded with spaces to
// a multiple of 8 bytes, and __metadata__ {"format": "pt"} as transformers
// expects.
func WriteSafetensors(w io.Writer, tensors []NamedTensor) error {
	if err := checkTensors(tensors); err != nil {
		return err
	}
	var h bytes.Buffer
	h.WriteString(`{"__metadata__":{"format":"pt"}`)
	off := int64(0)
	for _, t := range tensors {
		name, _ := json.Marshal(t.Name)
		shape := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = strconv.FormatInt(d, 10)
		}
		size := int64(len(t.Data)) * int64(t.DType.Size())
		fmt.Fprintf(&h, `,%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}`, name, t.DType, strings.Join(shape, ","), off, off+size)
		off += size
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(h.Len()))
	if _, err := w.Write(lb[:]); err != nil {
		return err
	}
	if _, err := w.Write(h.Bytes()); err != nil {
		return err
	}
	for _, t := range tensors {
		if err := writeData(w, t); err != nil {
			return err
		}
	}
	return nil
}

var torchStorageNames = map[DType]string{
	F32: "FloatStorage", F64: "DoubleStorage", F16: "HalfStorage", BF16: "BFloat16Storage",
	I64: "LongStorage", I32: "IntStorage", I16: "ShortStorage", I8: "CharStorage",
	U8: "ByteStorage", Bool: "BoolStorage",
}

// WriteFile creates the file at path and fills it with write (WriteSafetensors,
// WriteTorchZip or WriteTorchZipWrapped bound to their tensors). The file is
// closed either way; the first error is returned.
func WriteFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteTorchZip writes the tensors as torch.save(OrderedDict) does: a zip
// whose entries sit in the directory stem ("archive" when empty) —
// data.pkl (pickle protocol 2, one storage per tensor, contiguous),
// byteorder ("little"), data/0, data/1, ... stored uncompressed with their
// data aligned to 64 bytes, and version ("3"). torch.load reads it.
func WriteTorchZip(w io.Writer, stem string, tensors []NamedTensor) error {
	return writeTorchZip(w, stem, tensors, torchPickle)
}

// writeTorchZip is WriteTorchZip with data.pkl built by pickle.
func writeTorchZip(w io.Writer, stem string, tensors []NamedTensor, pickle func([]NamedTensor) []byte) error {
	if stem == "" {
		stem = "archive"
	}
	if strings.ContainsAny(stem, "/\\") || stem == "." || stem == ".." {
		return fmt.Errorf("checkpoint: archive stem %q must be a plain name", stem)
	}
	if err := checkTensors(tensors); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, ok := torchStorageNames[t.DType]; !ok {
			return fmt.Errorf("checkpoint: tensor %q: torch has no storage class for %s", t.Name, t.DType)
		}
	}
	cw := &countWriter{w: w}
	zw := zip.NewWriter(cw)
	record := func(name string, size int64, crc uint32, write func(io.Writer) error) error {
		if err := zw.Flush(); err != nil {
			return err
		}
		full := stem + "/" + name
		// Pad the local header's extra field (id "FB", filled with 'Z', as
		// torch's writer does) so the entry's data starts on a 64-byte boundary.
		pad := (64 - (cw.n+30+int64(len(full))+4)%64) % 64
		extra := append([]byte{'F', 'B', byte(pad), byte(pad >> 8)}, bytes.Repeat([]byte{'Z'}, int(pad))...)
		fw, err := zw.CreateRaw(&zip.FileHeader{
			Name: full, Method: zip.Store, CRC32: crc,
			CompressedSize64: uint64(size), UncompressedSize64: uint64(size),
			Extra: extra,
		})
		if err != nil {
			return err
		}
		return write(fw)
	}
	small := func(name string, b []byte) error {
		return record(name, int64(len(b)), crc32.ChecksumIEEE(b), func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		})
	}
	if err := small("data.pkl", pickle(tensors)); err != nil {
		return err
	}
	if err := small("byteorder", []byte("little")); err != nil {
		return err
	}
	for i, t := range tensors {
		h := crc32.NewIEEE()
		if err := writeData(h, t); err != nil { // first pass: checksum
			return err
		}
		size := int64(len(t.Data)) * int64(t.DType.Size())
		if err := record("data/"+strconv.Itoa(i), size, h.Sum32(), func(w io.Writer) error { return writeData(w, t) }); err != nil {
			return err
		}
	}
	if err := small("version", []byte("3\n")); err != nil {
		return err
	}
	return zw.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// torchPickle builds data.pkl for WriteTorchZip: an OrderedDict of
// _rebuild_tensor_v2(storage, 0, shape, contiguous stride, False, OrderedDict()).
func torchPickle(tensors []NamedTensor) []byte {
	var p pickleBuf
	p.WriteString("\x80\x02")
	p.global("collections", "OrderedDict")
	p.WriteString(")R(")
	for i, t := range tensors {
		p.str(t.Name)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("((")
		p.str("storage")
		p.global("torch", torchStorageNames[t.DType])
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(int64(len(t.Data)))
		p.WriteString("tQ") // TUPLE, BINPERSID
		p.int(0)
		stride := make([]int64, len(t.Shape))
		acc := int64(1)
		for d := len(t.Shape) - 1; d >= 0; d-- {
			stride[d] = acc
			acc *= t.Shape[d]
		}
		p.tuple(t.Shape)
		p.tuple(stride)
		p.WriteByte(0x89) // False: requires_grad
		p.global("collections", "OrderedDict")
		p.WriteString(")RtR") // backward_hooks = OrderedDict(); close args; call
	}
	p.WriteString("u.") // SETITEMS, STOP
	return p.Bytes()
}

type pickleBuf struct{ bytes.Buffer }

func (p *pickleBuf) global(module, name string) {
	p.WriteByte('c')
	p.WriteString(module + "\n" + name + "\n")
}

func (p *pickleBuf) str(s string) {
	p.WriteByte('X')
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.Write(n[:])
	p.WriteString(s)
}

func (p *pickleBuf) int(v int64) {
	switch {
	case v >= 0 && v < 1<<8:
		p.WriteByte('K')
		p.WriteByte(byte(v))
	case v >= 0 && v < 1<<16:
		p.WriteByte('M')
		p.WriteByte(byte(v))
		p.WriteByte(byte(v >> 8))
	case v >= -1<<31 && v < 1<<31:
		p.WriteByte('J')
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(int32(v)))
		p.Write(b[:])
	default: // LONG1: minimal two's-complement little-endian
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		n := 8
		for n > 1 && ((b[n-1] == 0 && b[n-2]&0x80 == 0) || (b[n-1] == 0xff && b[n-2]&0x80 != 0)) {
			n--
		}
		p.WriteByte(0x8a)
		p.WriteByte(byte(n))
		p.Write(b[:n])
	}
}

func (p *pickleBuf) tuple(vs []int64) {
	if len(vs) > 3 {
		p.WriteByte('(')
	}
	for _, v := range vs {
		p.int(v)
	}
	switch len(vs) {
	case 0:
		p.WriteByte(')')
	case 1:
		p.WriteByte(0x85)
	case 2:
		p.WriteByte(0x86)
	case 3:
		p.WriteByte(0x87)
	default:
		p.WriteByte('t')
	}
}
