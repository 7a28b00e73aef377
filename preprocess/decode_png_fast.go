package preprocess

import (
	"encoding/binary"
	"hash/crc32"
)

// pngFast decodes the common, well-formed PNG directly into the pixel layout the resampler
// reads (8-bit gray, RGB, RGBA or palette; not interlaced), without image/png's per-pixel
// conversion to image.RGBA and its 4 bytes/pixel allocation: the inflated, unfiltered
// rows are the pixels (packed over their filter bytes as they are unfiltered).
//
// It only answers for files on which every decoder agrees: all chunk CRCs valid, the
// chunk order and sizes image/png requires (IHDR first, PLTE and tRNS where it allows
// them, consecutive IDATs, IEND), a zlib stream that holds exactly the image and ends
// with a valid checksum, known filter types. Anything else returns
// ok = false and decodePNG takes the image/png path, whose handling of damaged files is
// the one checked against Pillow (late CRC errors, missing IEND, truncation). PNG is
// lossless, so for such files the pixels are the same bytes either way (the fixture and
// fuzz tests compare both paths).
func pngFast(data []byte, hd pngHeader) (*pixbuf, bool) {
	if hd.depth != 8 || len(data) < 33 || data[28] != 0 || data[27] != 0 || data[26] != 0 {
		return nil, false // other depths, interlaced, or non-standard compression/filter method
	}
	var bpp int
	switch hd.ctype {
	case pngGray, pngPalette:
		bpp = 1
	case pngRGB:
		bpp = 3
	case pngRGBA:
		bpp = 4
	default: // gray+alpha: rare; image/png handles it
		return nil, false
	}
	plte, idat, ok := pngChunks(data, hd.ctype)
	if !ok {
		return nil, false
	}
	w, h := hd.w, hd.h
	stride := 1 + w*bpp
	buf := getBuf(h * stride)
	if !pngInflate(*buf, idat) || !pngUnfilter(*buf, stride, bpp, h) {
		putBuf(buf)
		return nil, false
	}
	if hd.ctype != pngPalette {
		return &pixbuf{w: w, h: h, ps: bpp, stride: w * bpp, pix: (*buf)[:h*w*bpp], pooled: buf}, true
	}
	out := pngPaletteToRGB(*buf, w, h, plte)
	putBuf(buf)
	return &pixbuf{w: w, h: h, ps: 3, stride: w * 3, pix: *out, pooled: out}, true
}

// pngChunks walks the chunks after the signature, checking each CRC and the
// chunk order and sizes image/png enforces (its parseChunk stages), so that
// the fast path never accepts a file image/png refuses. It returns the
// palette (nil if none) and the IDAT bodies in order.
func pngChunks(data []byte, ctype byte) (plte []byte, idat [][]byte, ok bool) {
	const (
		stIHDR = iota + 1
		stPLTE
		stTRNS
		stIDAT
		stIEND
	)
	stage, prevIDAT := 0, false
	for p := 8; p < len(data) && stage != stIEND; {
		if len(data)-p < 12 {
			return nil, nil, false
		}
		n := int(binary.BigEndian.Uint32(data[p:]))
		if n < 0 || n > len(data)-p-12 {
			return nil, nil, false
		}
		typ := string(data[p+4 : p+8])
		body := data[p+8 : p+8+n]
		if crc32.ChecksumIEEE(data[p+4:p+8+n]) != binary.BigEndian.Uint32(data[p+8+n:]) {
			return nil, nil, false
		}
		isIDAT := false
		switch typ {
		case "IHDR":
			if stage != 0 {
				return nil, nil, false
			}
			stage = stIHDR
		case "PLTE":
			if stage != stIHDR || n%3 != 0 || n == 0 || n > 768 || (ctype != pngPalette && ctype != pngRGB && ctype != pngRGBA) {
				return nil, nil, false
			}
			plte, stage = body, stPLTE
		case "tRNS":
			allowed := false
			switch ctype {
			case pngPalette:
				allowed = stage == stPLTE && n <= 256
			case pngRGB:
				allowed = (stage == stIHDR || stage == stPLTE) && n == 6
			case pngGray:
				allowed = stage == stIHDR && n == 2
			}
			if !allowed {
				return nil, nil, false
			}
			stage = stTRNS
		case "IDAT":
			if stage < stIHDR || (stage == stIHDR && ctype == pngPalette) || (stage == stIDAT && !prevIDAT) {
				return nil, nil, false
			}
			idat, stage, isIDAT = append(idat, body), stIDAT, true
		case "IEND":
			if stage != stIDAT {
				return nil, nil, false
			}
			stage = stIEND
		default:
			if stage == 0 || typ[0]&0x20 == 0 { // before IHDR, or an unknown critical chunk
				return nil, nil, false
			}
		}
		prevIDAT = isIDAT
		p += 12 + n
	}
	if stage != stIEND || (ctype == pngPalette && plte == nil) {
		return nil, nil, false
	}
	return plte, idat, true
}

// pngPaletteToRGB expands the unfiltered, packed palette rows (w bytes each)
// to packed RGB in a pooled buffer; indices past the palette read as black,
// as in expandPalette.
func pngPaletteToRGB(rows []byte, w, h int, plte []byte) *[]byte {
	var lut [256][3]byte
	for i := 0; i < len(plte)/3; i++ {
		lut[i] = [3]byte{plte[3*i], plte[3*i+1], plte[3*i+2]}
	}
	out := getBuf(w * h * 3)
	for y := 0; y < h; y++ {
		s := rows[y*w : (y+1)*w]
		d := (*out)[y*w*3 : (y+1)*w*3]
		for x, idx := range s {
			e := &lut[idx]
			q := d[3*x : 3*x+3 : 3*x+3]
			q[0], q[1], q[2] = e[0], e[1], e[2]
		}
	}
	return out
}

// pngUnfilter reverses the per-row filters (PNG spec §9) of buf's h rows of stride bytes,
// each a filter type byte followed by the filtered bytes, and packs the pixels at buf's
// start, stride-1 bytes a row: each row moves down as soon as the row below it is
// unfiltered (until then it is the row above), while it is still in cache. Packed rows
// are what the callers want (an RGB image shares the buffer, without a copy), and moving
// a row down never reaches a row not yet moved.
func pngUnfilter(buf []byte, stride, bpp, h int) bool {
	n := stride - 1
	packed := 0     // rows [0, packed) are in their packed place
	var prev []byte // the previous unfiltered row (without its filter byte); nil for row 0
	for y := 0; y < h; y++ {
		row := buf[y*stride : (y+1)*stride]
		ft, cur := row[0], row[1:]
		switch ft {
		case 0:
		case 1: // Sub
			unSub(cur, bpp)
		case 2: // Up
			if prev != nil {
				addBytes(cur, prev)
			}
		case 3: // Average
			if prev == nil {
				for i := bpp; i < len(cur); i++ {
					cur[i] += cur[i-bpp] >> 1
				}
			} else {
				unAvg(cur, prev, bpp)
			}
		case 4: // Paeth
			switch {
			case prev == nil: // the predictor is then the left byte: Sub
				unSub(cur, bpp)
			case useSIMD:
				y += paethRun(buf, stride, bpp, y, h) - 1
				cur = buf[y*stride+1 : (y+1)*stride]
			default:
				paeth(cur, prev, bpp)
			}
		default:
			return false
		}
		prev = cur
		for ; packed < y; packed++ {
			copy(buf[packed*n:(packed+1)*n], buf[packed*stride+1:(packed+1)*stride])
		}
	}
	for ; packed < h; packed++ {
		copy(buf[packed*n:(packed+1)*n], buf[packed*stride+1:(packed+1)*stride])
	}
	return true
}

// unSub undoes the Sub filter: each byte plus the one bpp before it, already unfiltered.
// For RGB the three running sums stay in registers; the byte loop read each back from the
// byte it had just stored (store-to-load forwarding on every byte: about 3× as long).
func unSub(cur []byte, bpp int) {
	if bpp != 3 {
		for i := bpp; i < len(cur); i++ {
			cur[i] += cur[i-bpp]
		}
		return
	}
	var r, g, b byte
	i := 0
	for ; i+3 <= len(cur); i += 3 {
		p := cur[i : i+3 : i+3]
		r, g, b = r+p[0], g+p[1], b+p[2]
		p[0], p[1], p[2] = r, g, b
	}
	for i = max(i, 3); i < len(cur); i++ { // not a whole pixel (never in an RGB row)
		cur[i] += cur[i-3]
	}
}

// unAvg undoes the Average filter below the first row: each byte plus the mean of the
// unfiltered one bpp before it and the one above. For RGB the left bytes stay in registers,
// as in unSub.
func unAvg(cur, prev []byte, bpp int) {
	prev = prev[:len(cur)]
	if bpp != 3 || len(cur)%3 != 0 {
		for i := 0; i < bpp && i < len(cur); i++ {
			cur[i] += prev[i] >> 1
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += uint8((int(cur[i-bpp]) + int(prev[i])) >> 1)
		}
		return
	}
	var r, g, b uint
	for i := 0; i+3 <= len(cur); i += 3 {
		p, q := cur[i:i+3:i+3], prev[i:i+3:i+3]
		r = uint(p[0] + uint8((r+uint(q[0]))>>1))
		g = uint(p[1] + uint8((g+uint(q[1]))>>1))
		b = uint(p[2] + uint8((b+uint(q[2]))>>1))
		p[0], p[1], p[2] = byte(r), byte(g), byte(b)
	}
}

// addBytes adds src to dst byte by byte, modulo 256: the Up filter undone. Up rows are
// nearly half of Pillow's rows. With AVX2, 32 bytes a step (addBytesSIMD; eight
// times the speed of the eight-byte loop below on a 1024² RGB row); the rest, eight bytes
// at a time: the low seven bits of each byte are added apart (their carry stops in the
// top bit), the top bits by exclusive or (5× the byte loop's speed).
func addBytes(dst, src []byte) {
	addBytesWith(useSIMD, dst, src)
}

func addBytesWith(simd bool, dst, src []byte) {
	const low7, top = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	src = src[:len(dst)]
	if simd {
		k := addBytesSIMD(dst, src)
		dst, src = dst[k:], src[k:]
	}
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		a, b := binary.LittleEndian.Uint64(dst[i:]), binary.LittleEndian.Uint64(src[i:])
		binary.LittleEndian.PutUint64(dst[i:], (a&low7+b&low7)^(a^b)&top)
	}
	for i := n; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// paeth undoes the Paeth filter of a row below the first (prev: the row above, as long).
// Rows of 3- and 4-byte pixels go to the vector code where the CPU allows it (useSIMD),
// all their pixels but the last, which it cannot read 4 bytes past.
func paeth(cur, prev []byte, bpp int) {
	paethWith(useSIMD, cur, prev, bpp)
}

func paethWith(simd bool, cur, prev []byte, bpp int) {
	prev = prev[:len(cur)]
	from := 0
	if simd && (bpp == 3 || bpp == 4) && len(cur) >= 2*bpp && len(cur)%bpp == 0 {
		from = len(cur) - bpp
		paethSIMD(cur, prev, from/bpp, bpp)
	}
	paethGo(cur[:len(cur):len(cur)], prev, bpp, from)
}

// paethRun undoes the Paeth filter of row y (y ≥ 1) and of as many of the next three
// rows as are Paeth rows too, four or two at once where it can, and says how many.
func paethRun(buf []byte, stride, bpp, y, h int) int {
	run := 1
	for run < 4 && y+run < h && buf[(y+run)*stride] == 4 {
		run++
	}
	row := func(k int) []byte { return buf[(y+k)*stride+1 : (y+k+1)*stride] }
	switch run {
	case 4:
		paethQuad(true, buf, stride, bpp, y)
	case 2, 3:
		run = 2
		paethPair(true, row(0), row(1), row(-1), bpp)
	default:
		paeth(row(0), row(-1), bpp)
	}
	return run
}

// paethQuad undoes the Paeth filter of rows y to y+3 of buf (y ≥ 1; rows of stride bytes,
// filter byte first). With the vector code the four go through one kernel, each row two
// pixels behind the one above: Go decodes the first pixels of each (8, 6, 4 and 2) and
// the last ones.
func paethQuad(simd bool, buf []byte, stride, bpp, y int) {
	const from = 8
	row := func(k int) []byte { return buf[(y+k)*stride+1 : (y+k+1)*stride] }
	n := stride - 1
	if !simd || (bpp != 3 && bpp != 4) || n%bpp != 0 || n/bpp < from+2 {
		for k := range 4 {
			paethWith(simd, row(k), row(k-1), bpp)
		}
		return
	}
	for k := range 4 {
		m := (from - 2*k) * bpp
		paethGo(row(k)[:m:m], row(k - 1)[:m], bpp, 0)
	}
	last := n/bpp - 2 // row 0's last pixel in the kernel: it reads 4 bytes at each
	paeth4SIMD(buf[(y-1)*stride+1:(y+4)*stride], stride, from, last-from+1, bpp)
	for k := range 4 {
		paethGo(row(k), row(k-1), bpp, (last+1-2*k)*bpp)
	}
}

// paethPair undoes the Paeth filter of two consecutive rows, r1 below r0 and prev above
// r0. With the vector code the two go through one kernel, r1 a pixel behind r0: a row's
// bytes are a chain of dependent steps, and two rows make two chains a step can run side
// by side (Pillow filters whole stretches of smooth images with Paeth).
func paethPair(simd bool, r0, r1, prev []byte, bpp int) {
	n := len(r0)
	r1, prev = r1[:n:n], prev[:n]
	r0 = r0[:n:n]
	if !simd || (bpp != 3 && bpp != 4) || n%bpp != 0 || n < 3*bpp {
		paethWith(simd, r0, prev, bpp)
		paethWith(simd, r1, r0, bpp)
		return
	}
	k := n/bpp - 2
	paethGo(r0[:bpp], prev[:bpp], bpp, 0)
	paeth2SIMD(r0, r1, prev, k, bpp)
	paethGo(r0, prev, bpp, (k+1)*bpp)
	paethGo(r1, r0, bpp, k*bpp)
}

// paethGo undoes the Paeth filter from byte from on, one channel at a time, so that the
// left (a) and upper-left (c) bytes of the channel stay in registers; abs is branch-free.
// (The three channels of RGB interleaved in one loop ran no faster: Go spilled them.)
func paethGo(cur, prev []byte, bpp, from int) {
	ch := from
	for ; ch+1 < from+bpp && ch+1 < len(cur) && len(cur)%bpp == 0; ch += 2 {
		a0, c0, a1, c1 := 0, 0, 0, 0
		if ch >= bpp {
			a0, c0 = int(cur[ch-bpp]), int(prev[ch-bpp])
			a1, c1 = int(cur[ch+1-bpp]), int(prev[ch+1-bpp])
		}
		for j := ch; j+1 < len(cur); j += bpp {
			p, q := cur[j:j+2:j+2], prev[j:j+2:j+2]
			b0, b1 := int(q[0]), int(q[1])
			pa0, pb0 := b0-c0, a0-c0
			pa1, pb1 := b1-c1, a1-c1
			pc0, pc1 := iabs(pa0+pb0), iabs(pa1+pb1)
			pa0, pb0, pa1, pb1 = iabs(pa0), iabs(pb0), iabs(pa1), iabs(pb1)
			r0, r1 := c0, c1
			if pb0 <= pc0 {
				r0 = b0
			}
			if pb1 <= pc1 {
				r1 = b1
			}
			if pa0 <= min(pb0, pc0) {
				r0 = a0
			}
			if pa1 <= min(pb1, pc1) {
				r1 = a1
			}
			a0, a1 = (r0+int(p[0]))&0xff, (r1+int(p[1]))&0xff
			p[0], p[1] = uint8(a0), uint8(a1)
			c0, c1 = b0, b1
		}
	}
	for ; ch < from+bpp && ch < len(cur); ch++ {
		a, c := 0, 0
		if ch >= bpp {
			a, c = int(cur[ch-bpp]), int(prev[ch-bpp])
		}
		for j := ch; j < len(cur); j += bpp {
			b := int(prev[j])
			pa := b - c // |p - a| with p = a + b - c
			pb := a - c // |p - b|
			pc := iabs(pa + pb)
			pa, pb = iabs(pa), iabs(pb)
			r := c
			if pb <= pc {
				r = b
			}
			if pa <= min(pb, pc) {
				r = a
			}
			a = (r + int(cur[j])) & 0xff
			cur[j] = uint8(a)
			c = b
		}
	}
}

func iabs(x int) int {
	m := x >> 63
	return (x ^ m) - m
}
