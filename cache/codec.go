package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/x448/float16"
)

// Value is one cached result: a vector (an embedding, ImageReward's image
// tokens), the model's own scalars (HP: the head's logit) and, for image
// entries, the source image's width and height, so that a process with a
// lower pixel limit still refuses the image. Each is its own typed field of
// the encoding: nothing is told apart by position.
type Value struct {
	Vec     []float32
	Scalars []float64
	// Width and Height of the source image; zero for text entries (and for
	// an image whose header the pipeline could not read).
	Width, Height uint32
}

func (v Value) clone() Value {
	c := Value{Vec: make([]float32, len(v.Vec)), Width: v.Width, Height: v.Height}
	copy(c.Vec, v.Vec)
	if len(v.Scalars) > 0 {
		c.Scalars = append([]float64(nil), v.Scalars...)
	}
	return c
}

// Value encoding in Redis (little endian):
//
//	0   "ICH"      magic
//	3   1          format version
//	4   dtype      1 = float32, 2 = float16
//	5   nscalars   float64 scalars before the vector (0..maxScalars)
//	6   0 0        reserved
//	8   dim        uint32, number of vector elements
//	12  crc        CRC-32C of the key, bytes 0..11 and bytes 16..end
//	16  width      uint32, the source image's width (0 for text)
//	20  height     uint32, the source image's height (0 for text)
//	24  scalars    nscalars × float64
//	..  vector     dim × 4 or dim × 2 bytes
//
// The key takes part in the checksum, so an entry copied under another key
// reads as corrupt rather than as another image's embedding.
const (
	headerSize    = 24
	formatVersion = 2
	dtypeF32      = 1
	dtypeF16      = 2
	maxScalars    = 8
	maxDim        = 1 << 20
)

var magic = [3]byte{'I', 'C', 'H'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a stored entry that cannot be read back: truncated,
// wrong magic or version, bad sizes or a checksum mismatch.
var ErrCorrupt = errors.New("cache: corrupt entry")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// encodedLen is the size of an encoded value.
func encodedLen(v Value, f16 bool) int {
	w := 4
	if f16 {
		w = 2
	}
	return headerSize + 8*len(v.Scalars) + w*len(v.Vec)
}

// encode writes v for key; f16 stores the vector as IEEE half floats
// (rounded to nearest even), halving its size.
func encode(key string, v Value, f16 bool) ([]byte, error) {
	if len(v.Scalars) > maxScalars || len(v.Vec) > maxDim {
		return nil, fmt.Errorf("cache: value too large (%d scalars, %d elements)", len(v.Scalars), len(v.Vec))
	}
	b := make([]byte, encodedLen(v, f16))
	copy(b, magic[:])
	b[3] = formatVersion
	b[4] = dtypeF32
	if f16 {
		b[4] = dtypeF16
	}
	b[5] = byte(len(v.Scalars))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(v.Vec)))
	binary.LittleEndian.PutUint32(b[16:], v.Width)
	binary.LittleEndian.PutUint32(b[20:], v.Height)
	p := b[headerSize:]
	for _, s := range v.Scalars {
		binary.LittleEndian.PutUint64(p, math.Float64bits(s))
		p = p[8:]
	}
	for _, x := range v.Vec {
		if f16 {
			binary.LittleEndian.PutUint16(p, float16.Fromfloat32(x).Bits()) // nearest, ties to even
			p = p[2:]
		} else {
			binary.LittleEndian.PutUint32(p, math.Float32bits(x))
			p = p[4:]
		}
	}
	binary.LittleEndian.PutUint32(b[12:], checksum(key, b))
	return b, nil
}

func checksum(key string, b []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte(key))
	c = crc32.Update(c, castagnoli, b[:12])
	return crc32.Update(c, castagnoli, b[16:])
}

// decode reads an entry stored under key; any damage is ErrCorrupt.
func decode(key string, b []byte) (Value, error) {
	if len(b) < headerSize {
		return Value{}, corrupt("%d bytes, shorter than the header", len(b))
	}
	if [3]byte(b[:3]) != magic {
		return Value{}, corrupt("bad magic %q", b[:3])
	}
	if b[3] != formatVersion {
		return Value{}, corrupt("format version %d", b[3])
	}
	var w int
	switch b[4] {
	case dtypeF32:
		w = 4
	case dtypeF16:
		w = 2
	default:
		return Value{}, corrupt("unknown dtype %d", b[4])
	}
	ns := int(b[5])
	dim := binary.LittleEndian.Uint32(b[8:])
	if ns > maxScalars || dim > maxDim || b[6] != 0 || b[7] != 0 {
		return Value{}, corrupt("bad header (%d scalars, dim %d)", ns, dim)
	}
	if want := headerSize + 8*ns + w*int(dim); len(b) != want {
		return Value{}, corrupt("%d bytes, the header says %d", len(b), want)
	}
	if got, want := checksum(key, b), binary.LittleEndian.Uint32(b[12:]); got != want {
		return Value{}, corrupt("checksum %08x, stored %08x", got, want)
	}
	v := Value{Vec: make([]float32, dim), Width: binary.LittleEndian.Uint32(b[16:]), Height: binary.LittleEndian.Uint32(b[20:])}
	p := b[headerSize:]
	if ns > 0 {
		v.Scalars = make([]float64, ns)
		for i := range v.Scalars {
			v.Scalars[i] = math.Float64frombits(binary.LittleEndian.Uint64(p))
			p = p[8:]
		}
	}
	for i := range v.Vec {
		if w == 2 {
			v.Vec[i] = float16.Frombits(binary.LittleEndian.Uint16(p)).Float32() // exact
			p = p[2:]
		} else {
			v.Vec[i] = math.Float32frombits(binary.LittleEndian.Uint32(p))
			p = p[4:]
		}
	}
	return v, nil
}
