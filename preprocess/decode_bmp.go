package preprocess

import (
	"errors"

	"golang.org/x/image/bmp"
)

// decodeBMP decodes with golang.org/x/image/bmp, which reads uncompressed 1/2/4/8-bit
// paletted, 24-bit and 32-bit (BI_RGB, or BI_BITFIELDS with the standard masks) files.
// Pillow 9.4 maps those to "P" (palette RGB), "RGB" ("BGR") and "RGB"/"RGBA" ("BGRX" /
// "BGRA"); convert("RGB") then gives the stored B, G, R bytes, which is also what the
// decoder leaves in place. RLE-compressed, 16-bit and other BMP variants Pillow reads are
// refused as ErrUnsupportedFormat.
func decodeBMP(data []byte, lim limits) (*pixbuf, error) {
	return stdCodec{"BMP", bmp.DecodeConfig, bmp.Decode, bmpError}.pixbuf(data, lim)
}

func bmpError(err error) error { return codecError("BMP", err, errors.Is(err, bmp.ErrUnsupported)) }
