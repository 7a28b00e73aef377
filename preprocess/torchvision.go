package preprocess

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"math"

	"golang.org/x/image/webp"
)

// TorchvisionPipeline is the image preprocessing of ImageReward (and of the
// original CLIP code): torchvision 0.14 transforms on a PIL image as
// Image.open returns it, on Pillow 9.4:
//
//	Compose([Resize(n, BICUBIC), CenterCrop(n), convert("RGB"), ToTensor(), Normalize(mean, std)])
//
// It differs from ImagePipeline (CLIPImageProcessor) in three ways that change
// bytes:
//
//   - The resize runs on the image in its own Pillow mode, before any RGB
//     conversion, so Pillow's mode rules apply: "P" (palette) and "1" images
//     are resized NEAREST whatever filter is asked for; "RGBA" and "LA" are
//     premultiplied ("RGBa"/"La"), resized, and un-premultiplied (with
//     truncating integer division) before convert("RGB") drops the alpha;
//     "CMYK" JPEGs are resized in CMYK; 16-bit grayscale PNGs (mode "I") are
//     resized in 32-bit with float weights and clipped to 0..255 only at the
//     conversion. A GIF or BMP whose palette is the gray ramp opens as "L"
//     ("1" for a black-and-white BMP) and is resized as such.
//   - The crop offset is int(round((size − n) / 2)), Python's round (half to
//     even), where CLIPImageProcessor floors. The resize makes the shortest
//     edge n, so the crop never pads.
//   - ToTensor divides by 255 in float32 (torch), CLIPImageProcessor
//     multiplies by 1/255 in float64 (numpy) before narrowing.
//
// The resize target and crop size are ImageOptions.ShortestEdge and
// CropSize; the decoders and limits are ImagePipeline's.
type TorchvisionPipeline struct{ pipeline[*pilImage] }

// NewTorchvisionPipeline validates o and precomputes the normalisation
// tables.
func NewTorchvisionPipeline(o ImageOptions) (*TorchvisionPipeline, error) {
	p, err := newPipeline(o, torchNormalize, decodePIL, pilOfRGB, cropTorchvision)
	if err == nil && o.CropSize > o.ShortestEdge {
		// torchvision would pad; ImageReward never asks for it.
		err = fmt.Errorf("preprocess: torchvision pipeline: CropSize %d larger than the resize target %d is not supported", o.CropSize, o.ShortestEdge)
	}
	if err != nil {
		return nil, err
	}
	return &TorchvisionPipeline{p}, nil
}

// torchNormalize is ToTensor (byte tensor .to(float32).div(255)) then
// Normalize (sub_(mean).div_(std)), all in float32.
func torchNormalize(v uint8, mean, std float32) float32 {
	x := float32(v) / float32(255)
	d := x - mean
	return d / std
}

// pilKind is how a Pillow mode behaves in resize and convert("RGB").
type pilKind int

const (
	kindPlain   pilKind = iota // "L", "RGB": resampled as they are
	kindNearest                // "P", "1": resized NEAREST (pix holds the expanded colours)
	kindAlpha                  // "RGBA", "LA": premultiplied around the resize, alpha dropped after
	kindCMYK                   // "CMYK": resampled in CMYK, cmyk2rgb after the crop
	kindInt32                  // "I": resampled in int32 (i32), clipped to 0..255 after
)

// pilImage is a decoded image as Pillow holds it in memory: packed, nch
// bytes per pixel (1 gray, 3 RGB, 4 RGBA or CMYK), or int32 gray for "I".
type pilImage struct {
	w, h   int
	kind   pilKind
	nch    int
	pix    []byte
	i32    []int32
	pooled *[]byte
}

func (im *pilImage) release() {
	if im.pooled != nil {
		putBuf(im.pooled)
		im.pooled = nil
	}
}

func pilOfRGB(img *RGB, lim limits) (*pilImage, error) {
	if err := checkRGB(img, lim); err != nil {
		return nil, err
	}
	return &pilImage{w: img.W, h: img.H, kind: kindPlain, nch: 3, pix: img.Pix}, nil
}

// decodePIL decodes data into the Pillow mode Image.open gives it.
func decodePIL(data []byte, lim limits) (*pilImage, error) {
	format, err := sniffChecked(data, lim)
	if err != nil {
		return nil, err
	}
	if format == fmtJPEG {
		return decodeJPEGPIL(data, lim)
	} else if format == fmtWebP {
		return decodeWebPPIL(data, lim)
	}
	kind, alpha, int32Gray, err := pilModeOf(format, data)
	if err != nil {
		return nil, err
	}
	pb, err := decodePixels(data, lim)
	if err != nil {
		return nil, err
	}
	defer pb.release()
	if int32Gray {
		return decodePNGInt32(data, pb.w, pb.h)
	}
	return pilOfPixbuf(pb, kind, alpha), nil
}

// pilModeOf is how Image.open's mode for a PNG, GIF or BMP file behaves (the other
// formats are decoded apart): its kind, whether it keeps alpha, and whether it is a
// 16-bit gray "I".
func pilModeOf(format int, data []byte) (kind pilKind, alpha, int32Gray bool, err error) {
	kind = kindPlain
	switch format {
	case fmtPNG:
		hd, err := pngIHDR(data)
		if err != nil {
			return kind, false, false, err
		}
		switch hd.ctype {
		case pngGray:
			switch hd.depth {
			case 1:
				kind = kindNearest
			case 16:
				int32Gray = true
			}
		case pngPalette:
			kind = kindNearest
		case pngGrayAlpha, pngRGBA:
			kind, alpha = kindAlpha, true
		}
	case fmtGIF:
		g, err := parseGIFFirst(data)
		if err != nil {
			return kind, false, false, err
		}
		if gifNeedsPalette(g.pal) {
			kind = kindNearest
		}
	case fmtBMP:
		switch bmpMode(data) {
		case "P", "1":
			kind = kindNearest
		case "RGBA":
			kind, alpha = kindAlpha, true
		}
	}
	return kind, alpha, int32Gray, nil
}

// pilOfPixbuf packs a decoded pixbuf into nch channels: 1 for gray, 4 when
// the mode has alpha, else 3.
func pilOfPixbuf(pb *pixbuf, kind pilKind, alpha bool) *pilImage {
	nch := 3
	switch {
	case pb.ps == 1:
		nch = 1
	case alpha && (pb.ps == 4 || pb.ps == 8):
		nch = 4
	default:
		if kind == kindAlpha {
			kind = kindPlain
		}
	}
	buf := getBuf(pb.w * pb.h * nch)
	out := *buf
	o1, o2 := pb.offsets()
	o3 := 3
	if pb.ps == 8 {
		o3 = 6
	}
	for y := 0; y < pb.h; y++ {
		s := pb.pix[y*pb.stride:]
		d := out[y*pb.w*nch : (y+1)*pb.w*nch]
		switch {
		case nch == 1:
			copy(d, s[:pb.w])
		case nch == 3 && pb.ps == 3:
			copy(d, s[:pb.w*3])
		default:
			for x := 0; x < pb.w; x++ {
				q := s[x*pb.ps:]
				d[x*nch], d[x*nch+1], d[x*nch+2] = q[0], q[o1], q[o2]
				if nch == 4 {
					d[x*4+3] = q[o3]
				}
			}
		}
	}
	return &pilImage{w: pb.w, h: pb.h, kind: kind, nch: nch, pix: out, pooled: buf}
}

// gifNeedsPalette is GifImagePlugin._is_palette_needed: a colour table whose
// entry i is (i, i, i) throughout makes the frame mode "L".
func gifNeedsPalette(p []byte) bool {
	for i := 0; i+2 < len(p); i += 3 {
		v := byte(i / 3)
		if p[i] != v || p[i+1] != v || p[i+2] != v {
			return true
		}
	}
	return false
}

// bmpMode is the mode BmpImagePlugin gives an uncompressed BMP: "P" for a
// palette, unless the palette is gray ("1" for two colours black and white,
// "L" for the ramp 0, 1, 2, ...); "RGBA" for 32 bits with an alpha mask;
// else "RGB". Headers it cannot read give "RGB" (the decoder then reports
// the problem).
func bmpMode(b []byte) string {
	if len(b) < 54 {
		return "RGB"
	}
	info := int(binary.LittleEndian.Uint32(b[14:18]))
	bpp := int(binary.LittleEndian.Uint16(b[28:30]))
	switch {
	case bpp == 32:
		// BITMAPV4/V5 headers with BI_BITFIELDS and an alpha mask: "BGRA".
		if info > 40 && len(b) >= 70 && binary.LittleEndian.Uint32(b[30:34]) == 3 && binary.LittleEndian.Uint32(b[66:70]) != 0 {
			return "RGBA"
		}
		return "RGB"
	case bpp > 8:
		return "RGB"
	}
	colors := int(binary.LittleEndian.Uint32(b[46:50]))
	if colors == 0 {
		colors = 1 << bpp
	}
	pal := 14 + info
	if info < 40 || colors > 256 || len(b) < pal+4*colors {
		return "P"
	}
	for i := 0; i < colors; i++ {
		v := i
		if colors == 2 {
			v = i * 255
		}
		e := b[pal+4*i : pal+4*i+3]
		if int(e[0]) != v || int(e[1]) != v || int(e[2]) != v {
			return "P"
		}
	}
	if colors == 2 {
		return "1"
	}
	return "L"
}

// decodePNGInt32 reads a 16-bit grayscale PNG as Pillow's mode "I" (the
// 16-bit values, unclipped). decodePixels has already accepted the file.
func decodePNGInt32(data []byte, w, h int) (*pilImage, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		if fixed, ok := pngFixLateCRCs(data); ok {
			img, err = png.Decode(bytes.NewReader(fixed))
		}
	}
	if err != nil {
		return nil, pngError(err)
	}
	out := make([]int32, w*h)
	switch m := img.(type) {
	case *image.Gray16:
		for y := 0; y < h; y++ {
			s := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				out[y*w+x] = int32(s[2*x])<<8 | int32(s[2*x+1])
			}
		}
	case *image.NRGBA64: // with tRNS; R = G = B = the value
		for y := 0; y < h; y++ {
			s := m.Pix[y*m.Stride:]
			for x := 0; x < w; x++ {
				out[y*w+x] = int32(s[8*x])<<8 | int32(s[8*x+1])
			}
		}
	default:
		return nil, fmt.Errorf("%w: PNG: unexpected 16-bit gray decoding %T", ErrUnsupportedFormat, img)
	}
	return &pilImage{w: w, h: h, kind: kindInt32, nch: 1, i32: out}, nil
}

// decodeWebPPIL keeps the alpha channel the CLIP path drops: Pillow opens a
// WebP with alpha as "RGBA".
func decodeWebPPIL(data []byte, lim limits) (*pilImage, error) {
	pb, err := decodePixels(data, lim)
	if err != nil {
		return nil, err
	}
	defer pb.release()
	img, err := webp.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, webpError(err)
	}
	a, ok := img.(*image.NYCbCrA)
	if !ok {
		// Lossless (NRGBA, alpha kept in the pixbuf) or opaque lossy.
		return pilOfPixbuf(pb, kindAlpha, pb.ps == 4), nil
	}
	im := pilOfPixbuf(pb, kindPlain, false)
	defer im.release()
	buf := getBuf(im.w * im.h * 4)
	out := *buf
	for y := 0; y < im.h; y++ {
		arow := a.A[y*a.AStride:]
		for x := 0; x < im.w; x++ {
			s := im.pix[(y*im.w+x)*3:]
			d := out[(y*im.w+x)*4:]
			d[0], d[1], d[2], d[3] = s[0], s[1], s[2], arow[x]
		}
	}
	return &pilImage{w: im.w, h: im.h, kind: kindAlpha, nch: 4, pix: out, pooled: buf}, nil
}

// torchCropOffset is CenterCrop's int(round((size − crop) / 2.0)): Python's
// round, half to even.
func torchCropOffset(size, crop int) int {
	d := size - crop
	if d%2 == 0 {
		return d / 2
	}
	h := d / 2 // (d − 1)/2 for d > 0: the value is h + 0.5
	if h%2 == 0 {
		return h
	}
	return h + 1
}

// cropTorchvision resizes (Resize(ShortestEdge)), center-crops and converts to
// RGB into out (CropSize²·3 bytes).
func cropTorchvision(o ImageOptions, im *pilImage, out []byte) error {
	cs := o.CropSize
	W, H, err := resizedSize(im.w, im.h, o.ShortestEdge)
	if err != nil {
		return err
	}
	x0, y0 := torchCropOffset(W, cs), torchCropOffset(H, cs)
	if im.kind == kindInt32 {
		region := resampleInt32(im, W, H, x0, cs, y0, cs)
		for i, v := range region {
			out[3*i], out[3*i+1], out[3*i+2] = clipInt8(v), clipInt8(v), clipInt8(v)
		}
		return nil
	}
	src, nch := im.pix, im.nch
	if im.kind == kindAlpha {
		src = premultiply(src)
	}
	var region []byte
	switch {
	case W == im.w && H == im.h:
		// Resize returns the image itself: no resampling, no premultiplication
		// round trip.
		src, region = im.pix, make([]byte, cs*cs*nch)
		for r := 0; r < cs; r++ {
			copy(region[r*cs*nch:(r+1)*cs*nch], src[((y0+r)*im.w+x0)*nch:])
		}
	case im.kind == kindNearest:
		region = resizeNearest(src, im.w, im.h, nch, W, H, x0, cs, y0, cs)
	default:
		region = resampleBicubic(src, im.w, im.h, nch, W, H, x0, cs, y0, cs)
	}
	if im.kind == kindAlpha && !(W == im.w && H == im.h) {
		unpremultiply(region)
	}
	for i := 0; i < cs*cs; i++ {
		d := out[3*i : 3*i+3 : 3*i+3]
		switch {
		case nch == 1:
			v := region[i]
			d[0], d[1], d[2] = v, v, v
		case im.kind == kindCMYK:
			cmyk2rgb(d, region[4*i:4*i+4])
		default:
			copy(d, region[i*nch:i*nch+3])
		}
	}
	return nil
}

func clipInt8(v int32) byte {
	if v <= 0 {
		return 0
	}
	if v >= 255 {
		return 255
	}
	return byte(v)
}

// muldiv255 is Pillow's MULDIV255: a·b/255 rounded, in integers.
func muldiv255(a, b int) int {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

// premultiply is convert("RGBa") (rgbA2rgba): each colour times alpha/255.
func premultiply(pix []byte) []byte {
	out := make([]byte, len(pix))
	for i := 0; i+3 < len(pix); i += 4 {
		a := int(pix[i+3])
		out[i] = byte(muldiv255(int(pix[i]), a))
		out[i+1] = byte(muldiv255(int(pix[i+1]), a))
		out[i+2] = byte(muldiv255(int(pix[i+2]), a))
		out[i+3] = pix[i+3]
	}
	return out
}

// unpremultiply is convert("RGBA") from "RGBa" (rgba2rgbA), in place:
// colours times 255/alpha with truncating division, clipped; alpha 0 and
// 255 leave them as they are.
func unpremultiply(pix []byte) {
	for i := 0; i+3 < len(pix); i += 4 {
		a := int(pix[i+3])
		if a == 0 || a == 255 {
			continue
		}
		for c := 0; c < 3; c++ {
			v := 255 * int(pix[i+c]) / a
			if v > 255 {
				v = 255
			}
			pix[i+c] = byte(v)
		}
	}
}

// cmyk2rgb is Pillow's CMYK → RGB conversion on its in-memory CMYK values.
func cmyk2rgb(d, p []byte) {
	nk := 255 - int(p[3])
	for c := 0; c < 3; c++ {
		v := nk - muldiv255(int(p[c]), nk)
		if v < 0 {
			v = 0
		}
		d[c] = byte(v)
	}
}

// resizeNearest is Pillow's NEAREST resize (ImagingScaleAffine) of a packed
// image w×h×nch to W×H, returning the region [x0, x0+nx) × [y0, y0+ny). The
// source position of output x is COORD(xo) with xo = scale/2 advanced by
// scale = w/W per pixel, accumulated in float64 as the C loop does.
func resizeNearest(src []byte, w, h, nch, W, H, x0, nx, y0, ny int) []byte {
	xs := nearestTable(w, W, x0, nx)
	ys := nearestTable(h, H, y0, ny)
	out := make([]byte, nx*ny*nch)
	for r, yi := range ys {
		row := src[yi*w*nch:]
		d := out[r*nx*nch:]
		for c, xi := range xs {
			copy(d[c*nch:c*nch+nch], row[xi*nch:xi*nch+nch])
		}
	}
	return out
}

func nearestTable(in, out, first, n int) []int {
	a := float64(in) / float64(out)
	xo := 0.0 + float64(a*0.5)
	tab := make([]int, n)
	for x := 0; x < first+n; x++ {
		if x >= first {
			xi := -1
			if xo >= 0 {
				xi = int(xo)
			}
			tab[x-first] = min(max(xi, 0), in-1)
		}
		xo += a
	}
	return tab
}

// resampleBicubic is Pillow's 8-bit BICUBIC resize of a packed w×h×nch
// image to W×H, returning the region [x0, x0+nx) × [y0, y0+ny): the same
// fixed-point passes as ImagePipeline (resample.go), for 1, 3 or 4
// channels.
func resampleBicubic(src []byte, w, h, nch, W, H, x0, nx, y0, ny int) []byte {
	var vc *coeffs
	sy0, sy1 := y0, y0+ny
	if H != h {
		vc = getCoeffs(h, H, y0, ny)
		sy0, sy1 = vc.inputSpan()
	}
	rows := sy1 - sy0
	rowLen := nx * nch
	tmp := make([]byte, rows*rowLen)
	if W != w {
		hc := getCoeffs(w, W, x0, nx)
		hpassN(tmp, src[sy0*w*nch:], w*nch, nch, rows, hc)
	} else {
		for r := 0; r < rows; r++ {
			copy(tmp[r*rowLen:(r+1)*rowLen], src[((sy0+r)*w+x0)*nch:])
		}
	}
	if vc == nil {
		return tmp
	}
	res := make([]byte, ny*rowLen)
	vpass(res, tmp, rowLen, sy0, vc, make([]int32, rowLen))
	return res
}

// hpassN is the horizontal fixed-point pass over packed pixels of nch
// channels, every channel treated alike (Pillow resamples all four bands of
// RGBa and CMYK).
func hpassN(dst, src []byte, stride, nch, rows int, c *coeffs) {
	if nch == 1 || nch == 3 {
		// The same sums as hpass's gray and packed-RGB layouts, which
		// have vector code (resample_amd64.go).
		hpass(dst, src, stride, nch, 1, 2, rows, c)
		return
	}
	ks := c.ksize
	var ss [4]int32
	for r := 0; r < rows; r++ {
		srow := src[r*stride:]
		drow := dst[r*c.n*nch : (r+1)*c.n*nch]
		for i := 0; i < c.n; i++ {
			xmin, cnt := int(c.xmin[i]), int(c.cnt[i])
			k := c.k[i*ks : i*ks+cnt]
			for ch := 0; ch < nch; ch++ {
				ss[ch] = roundingHalf
			}
			s := srow[xmin*nch : (xmin+cnt)*nch]
			for x, kv := range k {
				p := s[x*nch : x*nch+nch]
				for ch, v := range p {
					ss[ch] += int32(v) * kv
				}
			}
			for ch := 0; ch < nch; ch++ {
				drow[i*nch+ch] = clip8(ss[ch])
			}
		}
	}
}

// floatCoeffs are precompute_coeffs' normalised double weights (before the
// fixed-point conversion), which Pillow uses for 32-bit images.
type floatCoeffs struct {
	ksize int
	xmin  []int
	cnt   []int
	k     []float64
}

// computeFloatCoeffs repeats computeCoeffs' double arithmetic, operation
// for operation, without the fixed-point step.
func computeFloatCoeffs(inSize, outSize, start, n int) *floatCoeffs {
	scale := float64(float32(inSize)) / float64(outSize)
	filterscale := max(scale, 1.0)
	support := bicubicSupport * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := &floatCoeffs{ksize: ksize, xmin: make([]int, n), cnt: make([]int, n), k: make([]float64, n*ksize)}
	ss := 1.0 / filterscale
	for i := 0; i < n; i++ {
		center := float64((float64(start+i) + 0.5) * scale)
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		xmax = min(xmax, ksize)
		k := c.k[i*ksize : (i+1)*ksize]
		ww := 0.0
		for x := 0; x < xmax; x++ {
			v := bicubicFilter(float64((float64(x+xmin) - center + 0.5) * ss))
			k[x] = v
			ww += v
		}
		if ww != 0 {
			for x := 0; x < xmax; x++ {
				k[x] /= ww
			}
		}
		c.xmin[i], c.cnt[i] = xmin, xmax
	}
	return c
}

// roundUp is Resample.c's ROUND_UP for 32-bit results: (int)(f ± 0.5F).
func roundUp(f float64) int32 {
	if f >= 0 {
		return int32(f + 0.5)
	}
	return int32(f - 0.5)
}

func (c *floatCoeffs) span() (int, int) {
	lo, hi := c.xmin[0], c.xmin[0]+c.cnt[0]
	for i := range c.xmin {
		lo, hi = min(lo, c.xmin[i]), max(hi, c.xmin[i]+c.cnt[i])
	}
	return lo, hi
}

// resampleInt32 is Pillow's BICUBIC resize of an "I" image (double
// weights, each pass rounded to int32), for the region [x0, x0+nx) ×
// [y0, y0+ny) of the W×H result.
func resampleInt32(im *pilImage, W, H, x0, nx, y0, ny int) []int32 {
	w, h := im.w, im.h
	sy0, sy1 := y0, y0+ny
	var vc *floatCoeffs
	if H != h {
		vc = computeFloatCoeffs(h, H, y0, ny)
		sy0, sy1 = vc.span()
	}
	rows := sy1 - sy0
	tmp := make([]int32, rows*nx)
	if W != w {
		hc := computeFloatCoeffs(w, W, x0, nx)
		for r := 0; r < rows; r++ {
			srow := im.i32[(sy0+r)*w:]
			for i := 0; i < nx; i++ {
				k := hc.k[i*hc.ksize : i*hc.ksize+hc.cnt[i]]
				ss := 0.0
				for x, kv := range k {
					ss += float64(float64(srow[hc.xmin[i]+x]) * kv)
				}
				tmp[r*nx+i] = roundUp(ss)
			}
		}
	} else {
		for r := 0; r < rows; r++ {
			copy(tmp[r*nx:(r+1)*nx], im.i32[(sy0+r)*w+x0:])
		}
	}
	if vc == nil {
		return tmp
	}
	out := make([]int32, ny*nx)
	for i := 0; i < ny; i++ {
		k := vc.k[i*vc.ksize : i*vc.ksize+vc.cnt[i]]
		for j := 0; j < nx; j++ {
			ss := 0.0
			for y, kv := range k {
				ss += float64(float64(tmp[(vc.xmin[i]-sy0+y)*nx+j]) * kv)
			}
			out[i*nx+j] = roundUp(ss)
		}
	}
	return out
}
