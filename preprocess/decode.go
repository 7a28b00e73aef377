package preprocess

import (
	"bytes"
	"fmt"
	"image"
	"io"
	"sync"
)

// pixbuf is a decoded image in the layout its decoder produced, read without per-pixel
// interface calls. ps is the pixel size in bytes:
//
//	1: one gray byte (Pillow "L" / "1" / clipped "I"), expanded to RGB at the very end
//	3: packed R, G, B
//	4: R, G, B, X (alpha or padding, ignored: convert("RGB") drops alpha)
//	8: 16-bit big-endian R, G, B, A; only the high bytes (offsets 0, 2, 4) are used,
//	   which is what Pillow 9.4's "RGB;16B" / "RGBA;16B" / "LA;16B" unpackers keep.
type pixbuf struct {
	w, h   int
	ps     int
	stride int
	pix    []byte
	pooled *[]byte // buffer to hand back to bufPool in release, if any
}

func (p *pixbuf) offsets() (o1, o2 int) {
	switch p.ps {
	case 1:
		return 0, 0
	case 8:
		return 2, 4
	default:
		return 1, 2
	}
}

func (p *pixbuf) release() {
	if p.pooled != nil {
		putBuf(p.pooled)
		p.pooled = nil
		p.pix = nil
	}
}

// toRGB returns a freshly allocated packed RGB copy.
func (p *pixbuf) toRGB() *RGB {
	return p.toRGBIn(make([]uint8, p.w*p.h*3))
}

// toRGBIn writes the packed RGB copy into pix (w·h·3 bytes).
func (p *pixbuf) toRGBIn(pix []uint8) *RGB {
	out := &RGB{W: p.w, H: p.h, Pix: pix[:p.w*p.h*3]}
	o1, o2 := p.offsets()
	for y := 0; y < p.h; y++ {
		s := p.pix[y*p.stride:]
		d := out.Pix[y*p.w*3 : (y+1)*p.w*3]
		switch p.ps {
		case 1:
			for x := 0; x < p.w; x++ {
				v := s[x]
				d[3*x], d[3*x+1], d[3*x+2] = v, v, v
			}
		case 3:
			copy(d, s[:p.w*3])
		default:
			for x := 0; x < p.w; x++ {
				q := s[x*p.ps:]
				d[3*x], d[3*x+1], d[3*x+2] = q[0], q[o1], q[o2]
			}
		}
	}
	return out
}

// Pixel buffers for decoders we drive ourselves (libjpeg, conversions). Buffers above
// maxPooledBuf are left to the garbage collector rather than pinned in the pool.
const maxPooledBuf = 64 << 20

var bufPool sync.Pool

func getBuf(n int) *[]byte {
	if v := bufPool.Get(); v != nil {
		b := v.(*[]byte)
		if cap(*b) >= n {
			*b = (*b)[:n]
			return b
		}
	}
	b := make([]byte, n)
	return &b
}

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// Formats, identified by signature the way Pillow's plugins _accept them.
const (
	fmtUnknown = iota
	fmtPNG
	fmtJPEG
	fmtWebP
	fmtGIF
	fmtBMP
)

func sniff(data []byte) int {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return fmtPNG
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return fmtJPEG
	case len(data) >= 12 && bytes.HasPrefix(data, []byte("RIFF")) && string(data[8:12]) == "WEBP":
		return fmtWebP
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		return fmtGIF
	case bytes.HasPrefix(data, []byte("BM")):
		return fmtBMP
	}
	return fmtUnknown
}

// sniffChecked refuses empty input and input over the byte limit, then identifies the
// format (before anything is parsed).
func sniffChecked(data []byte, lim limits) (int, error) {
	if len(data) == 0 {
		return fmtUnknown, fmt.Errorf("%w: empty input", ErrUndecodable)
	}
	return sniff(data), lim.checkBytes(len(data))
}

// decodePixels checks the limits, then decodes data into its native layout.
func decodePixels(data []byte, lim limits) (*pixbuf, error) {
	format, err := sniffChecked(data, lim)
	if err != nil {
		return nil, err
	}
	switch format {
	case fmtPNG:
		return decodePNG(data, lim)
	case fmtJPEG:
		return decodeJPEG(data, lim)
	case fmtWebP:
		return decodeWebP(data, lim)
	case fmtGIF:
		return decodeGIF(data, lim)
	case fmtBMP:
		return decodeBMP(data, lim)
	}
	return nil, fmt.Errorf("%w: not PNG, JPEG, WebP, GIF or BMP (starts with % x)", ErrUnsupportedFormat, head(data))
}

// stdCodec is one of the image.Decode-style decoders (the standard library's, x/image's)
// and the format name its errors carry.
type stdCodec struct {
	format string
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
	fail   func(error) error // the decoder's error as ErrUnsupportedFormat or ErrUndecodable
}

// decodeChecked reads the header first, so that the limits refuse a huge image before a
// pixel is allocated, then decodes the image and checks it has the size the header said.
func (c stdCodec) decodeChecked(data []byte, lim limits) (image.Image, error) {
	cfg, err := c.config(bytes.NewReader(data))
	if err != nil {
		return nil, c.fail(err)
	}
	if err := lim.checkDims(c.format, cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	img, err := c.decode(bytes.NewReader(data))
	if err != nil {
		return nil, c.fail(err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, fmt.Errorf("%w: %s: decoded bounds %v differ from header %dx%d", ErrUndecodable, c.format, b, cfg.Width, cfg.Height)
	}
	return img, nil
}

// pixbuf is decodeChecked for the image types pixbufOfImage reads.
func (c stdCodec) pixbuf(data []byte, lim limits) (*pixbuf, error) {
	img, err := c.decodeChecked(data, lim)
	if err != nil {
		return nil, err
	}
	return pixbufOfImage(img, false)
}

// codecError wraps a decoder's error: ErrUnsupportedFormat where unsupported says the
// file is of a variant the decoder does not read, else ErrUndecodable.
func codecError(format string, err error, unsupported bool) error {
	if unsupported {
		return fmt.Errorf("%w: %s: %v", ErrUnsupportedFormat, format, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUndecodable, format, err)
}

func head(b []byte) []byte {
	if len(b) > 8 {
		return b[:8]
	}
	return b
}

// cmykToRGBX converts, in place, the 4-byte pixels libjpeg returns for a 4-component JPEG
// the way Pillow 9.4 does: the JPEG plugin always unpacks them as "CMYK;I" (Adobe
// convention, every byte inverted), and convert("RGB") applies cmyk2rgb:
// nk = 255 - K; R = CLIP8(nk - MULDIV255(C, nk)) and likewise for G (M) and B (Y), with
// MULDIV255(a, b) = ((a*b + 128) >> 8 + a*b + 128) >> 8.
func cmykToRGBX(pix []byte) {
	for i := 0; i+3 < len(pix); i += 4 {
		p := pix[i : i+4 : i+4]
		nk := int(p[3]) // 255 - (255 - raw K)
		for c := 0; c < 3; c++ {
			v := 255 - int(p[c])
			t := v*nk + 128
			m := ((t >> 8) + t) >> 8
			r := nk - m
			if r < 0 {
				r = 0
			} else if r > 255 {
				r = 255
			}
			p[c] = byte(r)
		}
	}
}
