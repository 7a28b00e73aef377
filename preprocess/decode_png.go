package preprocess

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
)

// PNG colour types (IHDR byte 25).
const (
	pngGray      = 0
	pngRGB       = 2
	pngPalette   = 3
	pngGrayAlpha = 4
	pngRGBA      = 6
)

type pngHeader struct {
	w, h         int
	depth, ctype byte
}

// pngIHDR reads the IHDR chunk, which the PNG signature must be followed by.
func pngIHDR(data []byte) (pngHeader, error) {
	if len(data) < 8+8+13 {
		return pngHeader{}, fmt.Errorf("%w: PNG: truncated header", ErrUndecodable)
	}
	c := data[8:]
	if binary.BigEndian.Uint32(c[0:4]) != 13 || string(c[4:8]) != "IHDR" {
		return pngHeader{}, fmt.Errorf("%w: PNG: first chunk is not IHDR", ErrUndecodable)
	}
	w, h := binary.BigEndian.Uint32(c[8:12]), binary.BigEndian.Uint32(c[12:16])
	if w > 1<<31-1 || h > 1<<31-1 {
		return pngHeader{}, fmt.Errorf("%w: PNG: header declares %dx%d", ErrUndecodable, w, h)
	}
	return pngHeader{w: int(w), h: int(h), depth: c[16], ctype: c[17]}, nil
}

// decodePNG decodes with the standard library and maps its image types onto Pillow 9.4's
// PNG modes (PngImagePlugin._MODES) followed by convert("RGB"):
//
//	gray 1/2/4/8 bit      "1"/"L;2"/"L;4"/"L"  → L, values scaled ×255/×85/×17   (ps 1)
//	gray 16 bit           "I;16B" → I          → RGB = clip(v, 0, 255) per i2rgb  (ps 1)
//	RGB 8 bit             "RGB"                                                  (ps 4)
//	RGB 16 bit            "RGB;16B"            → high byte of each sample        (ps 8)
//	palette 1/2/4/8 bit   "P"                  → palette RGB (tRNS ignored)      (ps 3)
//	gray+alpha 8 bit      "LA"                 → L replicated, alpha dropped     (ps 4)
//	gray+alpha 16 bit     "LA;16B" → RGBA      → high byte, alpha dropped        (ps 8)
//	RGBA 8 / 16 bit       "RGBA" / "RGBA;16B"  → (high byte), alpha dropped      (ps 4/8)
//
// A tRNS chunk never changes the RGB values (convert("RGB") ignores "transparency"). No
// gamma, iCCP, sRGB or eXIf processing, like Pillow.
func decodePNG(data []byte, lim limits) (*pixbuf, error) {
	hd, err := pngIHDR(data)
	if err != nil {
		return nil, err
	}
	if err := lim.checkDims("PNG", hd.w, hd.h); err != nil {
		return nil, err
	}
	if pb, ok := pngFast(data, hd); ok {
		return pb, nil
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil && err.Error() == "png: invalid format: invalid checksum" {
		// Pillow verifies the CRC of the chunks before the image data only; the
		// standard decoder verifies all of them. Retry with the CRCs of IDAT and of
		// every later chunk recomputed.
		if fixed, ok := pngFixLateCRCs(data); ok {
			data = fixed
			img, err = png.Decode(bytes.NewReader(data))
		}
	}
	if err != nil && errors.Is(err, io.ErrUnexpectedEOF) {
		// Pillow stops reading after the image data and tolerates a file that ends
		// without its IEND chunk; the standard decoder insists on IEND. Retry with one
		// appended (only helps when the data ends on a chunk boundary).
		fixed := make([]byte, 0, len(data)+12)
		fixed = append(append(fixed, data...), 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82)
		if img2, err2 := png.Decode(bytes.NewReader(fixed)); err2 == nil {
			img, err = img2, nil
		}
	}
	if err != nil {
		return nil, pngError(err)
	}
	b := img.Bounds()
	if b.Dx() != hd.w || b.Dy() != hd.h || b.Min != (image.Point{}) {
		return nil, fmt.Errorf("%w: PNG: decoded bounds %v differ from header %dx%d", ErrUndecodable, b, hd.w, hd.h)
	}
	return pixbufOfImage(img, hd.depth == 16 && hd.ctype == pngGray)
}

// pngFixLateCRCs returns a copy of data whose chunks from the first IDAT on carry
// correct CRCs.
func pngFixLateCRCs(data []byte) ([]byte, bool) {
	out := append([]byte(nil), data...)
	seenIDAT, changed := false, false
	for p := 8; p+12 <= len(out); {
		n := int(binary.BigEndian.Uint32(out[p:]))
		if n < 0 || n > len(out)-p-12 {
			break
		}
		typ := out[p+4 : p+8]
		if string(typ) == "IDAT" {
			seenIDAT = true
		}
		if seenIDAT {
			sum := crc32.ChecksumIEEE(out[p+4 : p+8+n])
			if binary.BigEndian.Uint32(out[p+8+n:]) != sum {
				binary.BigEndian.PutUint32(out[p+8+n:], sum)
				changed = true
			}
		}
		p += 12 + n
	}
	return out, changed
}

func pngError(err error) error {
	var ue png.UnsupportedError
	return codecError("PNG", err, errors.As(err, &ue))
}

// pixbufOfImage wraps the pixel memory of the concrete image types the standard decoders
// return (no per-pixel interface calls). gray16 marks a 16-bit grayscale source (Pillow
// mode "I"), whose RGB is the value clipped to 255 rather than its high byte.
func pixbufOfImage(img image.Image, gray16 bool) (*pixbuf, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m := img.(type) {
	case *image.Gray:
		return &pixbuf{w: w, h: h, ps: 1, stride: m.Stride, pix: m.Pix}, nil
	case *image.RGBA:
		// Only produced for opaque data (alpha 255), so not premultiplied in effect.
		return &pixbuf{w: w, h: h, ps: 4, stride: m.Stride, pix: m.Pix}, nil
	case *image.NRGBA:
		return &pixbuf{w: w, h: h, ps: 4, stride: m.Stride, pix: m.Pix}, nil
	case *image.RGBA64:
		return &pixbuf{w: w, h: h, ps: 8, stride: m.Stride, pix: m.Pix}, nil
	case *image.NRGBA64:
		if gray16 { // 16-bit gray with tRNS: R = G = B = the 16-bit value
			return clipGray16(m.Pix, m.Stride, 8, w, h), nil
		}
		return &pixbuf{w: w, h: h, ps: 8, stride: m.Stride, pix: m.Pix}, nil
	case *image.Gray16:
		return clipGray16(m.Pix, m.Stride, 2, w, h), nil
	case *image.Paletted:
		return expandPalette(m.Pix, m.Stride, m.Palette, w, h), nil
	}
	return nil, fmt.Errorf("%w: unexpected decoded image type %T", ErrUnsupportedFormat, img)
}

// clipGray16 is Pillow's I;16B unpacking followed by i2rgb: values above 255 become 255.
func clipGray16(pix []byte, stride, ps, w, h int) *pixbuf {
	buf := getBuf(w * h)
	out := *buf
	for y := 0; y < h; y++ {
		s := pix[y*stride:]
		d := out[y*w : (y+1)*w]
		for x := range d {
			v := int(s[x*ps])<<8 | int(s[x*ps+1])
			if v > 255 {
				v = 255
			}
			d[x] = byte(v)
		}
	}
	return &pixbuf{w: w, h: h, ps: 1, stride: w, pix: out, pooled: buf}
}

// expandPalette is p2rgb: every index is replaced by its palette entry's R, G, B; the
// alpha of tRNS entries is ignored. Indices past the end of the palette read as black.
func expandPalette(pix []byte, stride int, pal color.Palette, w, h int) *pixbuf {
	var lut [256][3]byte
	for i, c := range pal {
		if i >= 256 {
			break
		}
		switch v := c.(type) {
		case color.RGBA:
			lut[i] = [3]byte{v.R, v.G, v.B}
		case color.NRGBA:
			lut[i] = [3]byte{v.R, v.G, v.B}
		default:
			r, g, b, a := c.RGBA()
			if a != 0 { // un-premultiply (not reached for the decoders used here)
				r, g, b = r*0xffff/a, g*0xffff/a, b*0xffff/a
			}
			lut[i] = [3]byte{byte(r >> 8), byte(g >> 8), byte(b >> 8)}
		}
	}
	buf := getBuf(w * h * 3)
	out := *buf
	for y := 0; y < h; y++ {
		s := pix[y*stride : y*stride+w]
		d := out[y*w*3 : (y+1)*w*3]
		for x, idx := range s {
			e := &lut[idx]
			d[3*x], d[3*x+1], d[3*x+2] = e[0], e[1], e[2]
		}
	}
	return &pixbuf{w: w, h: h, ps: 3, stride: w * 3, pix: out, pooled: buf}
}
