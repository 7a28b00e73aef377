package preprocess

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/image/bmp"
)

// decodeBMP decodes with golang.org/x/image/bmp, which reads uncompressed 1/2/4/8-bit
// paletted, 24-bit and 32-bit (BI_RGB, or BI_BITFIELDS with the standard masks) files.
// Pillow 9.4 maps those to "P" (palette RGB), "RGB" ("BGR") and "RGB"/"RGBA" ("BGRX" /
// "BGRA"); convert("RGB") then gives the stored B, G, R bytes, which is also what the
// decoder leaves in place. RLE-compressed, 16-bit and other BMP variants Pillow reads are
// refused as ErrUnsupportedFormat.
func decodeBMP(data []byte, lim limits) (*pixbuf, error) {
	cfg, err := bmp.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, bmpError(err)
	}
	if err := lim.checkDims("BMP", cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, err := bmp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, bmpError(err)
	}
	return pixbufOfImage(img, false)
}

func bmpError(err error) error {
	if errors.Is(err, bmp.ErrUnsupported) {
		return fmt.Errorf("%w: BMP: %v", ErrUnsupportedFormat, err)
	}
	return fmt.Errorf("%w: BMP: %v", ErrUndecodable, err)
}
