package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// DType names an element type the way safetensors does.
type DType string

// Element types understood by the readers. F32, F16, BF16 and F64 are the
// float types checkpoints carry; the integer and bool types show up as
// buffers (position_ids, attention masks).
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	U16  DType = "U16"
	U32  DType = "U32"
	U64  DType = "U64"
	Bool DType = "BOOL"
)

// Size returns the size of one element in bytes, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Valid reports whether the type is one this package reads.
func (d DType) Valid() bool { return d.Size() != 0 }

// decode converts n elements of type d from src (little- or big-endian as
// order says) into dst[:n].
func decode(dst []float32, src []byte, d DType, order binary.ByteOrder) {
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(order.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = HalfToFloat32(order.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(order.Uint16(src[2*i:])) << 16)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(order.Uint64(src[8*i:])))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(order.Uint64(src[8*i:])))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(order.Uint64(src[8*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(order.Uint32(src[4*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(order.Uint32(src[4*i:]))
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(order.Uint16(src[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = float32(order.Uint16(src[2*i:]))
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	case U8:
		for i := range dst {
			dst[i] = float32(src[i])
		}
	case Bool:
		for i := range dst {
			if src[i] != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	default:
		panic("checkpoint: decode of unknown dtype " + string(d))
	}
}

// encode writes the values of src converted to d into dst (little-endian).
// Integer and bool types require integral values in range.
func encode(dst []byte, src []float32, d DType) error {
	le := binary.LittleEndian
	switch d {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToHalf(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBFloat16(v))
		}
	case F64:
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	case I64, U64, I32, U32, I16, U16, I8, U8:
		return encodeInt(dst, src, d)
	case Bool:
		for i, v := range src {
			if v != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	default:
		return fmt.Errorf("unsupported dtype %q", d)
	}
	return nil
}

// encodeInt is encode for the integer dtypes: every value must be integral
// and in the type's range.
func encodeInt(dst []byte, src []float32, d DType) error {
	c, ok := intCodecOf(d)
	if !ok {
		return nil
	}
	for i, v := range src {
		f := float64(v)
		if f != math.Trunc(f) || f < c.lo || f > c.hi {
			return fmt.Errorf("value %v does not fit %s", v, d)
		}
		c.put(dst[c.size*i:], v)
	}
	return nil
}

// intCodec is how an integer dtype stores a value: its range, its size in
// bytes and the little-endian write of an integral float32 in range.
type intCodec struct {
	lo, hi float64
	size   int
	put    func(b []byte, v float32)
}

func intCodecOf(d DType) (intCodec, bool) {
	le := binary.LittleEndian
	switch d {
	case I64:
		return intCodec{-(1 << 63), (1 << 63) - 1, 8, func(b []byte, v float32) { le.PutUint64(b, uint64(int64(v))) }}, true
	case U64:
		return intCodec{0, (1 << 64) - 1, 8, func(b []byte, v float32) { le.PutUint64(b, uint64(v)) }}, true
	case I32:
		return intCodec{math.MinInt32, math.MaxInt32, 4, func(b []byte, v float32) { le.PutUint32(b, uint32(int32(v))) }}, true
	case U32:
		return intCodec{0, math.MaxUint32, 4, func(b []byte, v float32) { le.PutUint32(b, uint32(v)) }}, true
	case I16:
		return intCodec{math.MinInt16, math.MaxInt16, 2, func(b []byte, v float32) { le.PutUint16(b, uint16(int16(v))) }}, true
	case U16:
		return intCodec{0, math.MaxUint16, 2, func(b []byte, v float32) { le.PutUint16(b, uint16(v)) }}, true
	case I8:
		return intCodec{math.MinInt8, math.MaxInt8, 1, func(b []byte, v float32) { b[0] = byte(int8(v)) }}, true
	case U8:
		return intCodec{0, math.MaxUint8, 1, func(b []byte, v float32) { b[0] = byte(v) }}, true
	}
	return intCodec{}, false
}

// HalfToFloat32 converts IEEE 754 binary16 bits to float32, exactly (subnormals,
// signed zeros, infinities; a NaN stays a NaN, quiet, with its payload).
func HalfToFloat32(h uint16) float32 { return float16.Frombits(h).Float32() }

// Float32ToHalf converts to IEEE 754 binary16 with round-to-nearest-even, as torch's
// Tensor.half() does: overflow gives ±inf, tiny values become subnormals or ±0, NaN
// becomes the canonical quiet NaN 0x7e00 with its sign (as torch; x448/float16 would keep
// the payload).
func Float32ToHalf(f float32) uint16 {
	if f != f {
		return uint16(math.Float32bits(f)>>16)&0x8000 | 0x7e00
	}
	return float16.Fromfloat32(f).Bits()
}

// Float32ToBFloat16 converts to bfloat16 with round-to-nearest-even, as
// torch does; every NaN becomes torch's canonical 0x7fc0.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return 0x7fc0
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
