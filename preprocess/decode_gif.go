package preprocess

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/gif"
)

// gifFirst is what Pillow 9.4's GifImagePlugin knows about the first frame before it
// decodes it: the logical screen, the frame rectangle, the frame's colour table (local, or
// else global) and the transparency index of its graphic control extension.
type gifFirst struct {
	sw, sh         int
	fx, fy, fw, fh int
	pal            []byte // RGB triplets
	trans          int    // -1 if none
}

// parseGIFFirst walks the blocks up to the first image descriptor.
func parseGIFFirst(data []byte) (gifFirst, error) {
	g := gifFirst{trans: -1}
	bad := func(what string) (gifFirst, error) {
		return gifFirst{}, fmt.Errorf("%w: GIF: %s", ErrUndecodable, what)
	}
	if len(data) < 13 {
		return bad("truncated header")
	}
	g.sw = int(binary.LittleEndian.Uint16(data[6:8]))
	g.sh = int(binary.LittleEndian.Uint16(data[8:10]))
	flags := data[10]
	p := 13
	var global []byte
	if flags&0x80 != 0 {
		n := 3 << ((flags & 7) + 1)
		if len(data) < p+n {
			return bad("truncated colour table")
		}
		global = data[p : p+n]
		p += n
	}
	for {
		if p >= len(data) {
			return bad("no image")
		}
		switch data[p] {
		case 0x21: // extension
			if p+1 >= len(data) {
				return bad("truncated extension")
			}
			label := data[p+1]
			p += 2
			first := true
			for {
				if p >= len(data) {
					return bad("truncated extension")
				}
				n := int(data[p])
				p++
				if n == 0 {
					break
				}
				if p+n > len(data) {
					return bad("truncated extension")
				}
				if label == 0xf9 && first && n >= 4 {
					if data[p]&1 != 0 {
						g.trans = int(data[p+3])
					} else {
						g.trans = -1
					}
				}
				first = false
				p += n
			}
		case 0x2c: // image descriptor
			if p+10 > len(data) {
				return bad("truncated image descriptor")
			}
			d := data[p+1 : p+10]
			g.fx = int(binary.LittleEndian.Uint16(d[0:2]))
			g.fy = int(binary.LittleEndian.Uint16(d[2:4]))
			g.fw = int(binary.LittleEndian.Uint16(d[4:6]))
			g.fh = int(binary.LittleEndian.Uint16(d[6:8]))
			g.pal = global
			if lf := d[8]; lf&0x80 != 0 {
				n := 3 << ((lf & 7) + 1)
				if p+10+n > len(data) {
					return bad("truncated colour table")
				}
				g.pal = data[p+10 : p+10+n]
			}
			return g, nil
		case 0x3b:
			return bad("no image")
		default:
			return bad(fmt.Sprintf("unknown block 0x%02x", data[p]))
		}
	}
}

// decodeGIF returns the first frame the way Pillow 9.4 shows it: mode "P" (or "L" when
// the palette is the identity gray ramp, which converts to the same RGB) on the logical
// screen, enlarged if the frame extends past it, the area outside the frame filled with
// the transparency index if there is one and index 0 otherwise, then p2rgb through the
// frame's colour table; transparency does not change RGB. The LZW data is decoded by
// image/gif (first frame only).
func decodeGIF(data []byte, lim limits) (*pixbuf, error) {
	g, err := parseGIFFirst(data)
	if err != nil {
		return nil, err
	}
	w, h := max(g.sw, g.fx+g.fw), max(g.sh, g.fy+g.fh)
	if err := lim.checkDims("GIF", w, h); err != nil {
		return nil, err
	}
	if g.pal == nil {
		return nil, fmt.Errorf("%w: GIF: no colour table", ErrUnsupportedFormat)
	}
	img, err := gif.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: GIF: %v", ErrUndecodable, err)
	}
	m, ok := img.(*image.Paletted)
	if !ok {
		return nil, fmt.Errorf("%w: GIF: unexpected decoded image type %T", ErrUnsupportedFormat, img)
	}
	var lut [256][3]byte
	for i := 0; i < 256 && 3*i+2 < len(g.pal); i++ {
		lut[i] = [3]byte{g.pal[3*i], g.pal[3*i+1], g.pal[3*i+2]}
	}
	fill := 0
	if g.trans >= 0 {
		fill = g.trans
	}
	buf := getBuf(w * h * 3)
	out := *buf
	bg := lut[fill]
	for i := 0; i < w*h; i++ {
		out[3*i], out[3*i+1], out[3*i+2] = bg[0], bg[1], bg[2]
	}
	b := m.Bounds().Intersect(image.Rect(0, 0, w, h))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		s := m.Pix[m.PixOffset(b.Min.X, y):m.PixOffset(b.Max.X, y)]
		d := out[(y*w+b.Min.X)*3:]
		for x, idx := range s {
			e := &lut[idx]
			d[3*x], d[3*x+1], d[3*x+2] = e[0], e[1], e[2]
		}
	}
	return &pixbuf{w: w, h: h, ps: 3, stride: w * 3, pix: out, pooled: buf}, nil
}
