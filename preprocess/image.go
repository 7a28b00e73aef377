package preprocess

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/x448/float16"
)

// ImageOptions configures the image pipeline. ShortestEdge, CropSize, Mean and Std come
// from the model directory (preprocessor config), never from constants in code.
type ImageOptions struct {
	ShortestEdge int        // resize target of the shortest edge (224)
	CropSize     int        // square center crop (224)
	Mean, Std    [3]float32 // per-channel normalisation, RGB order
	MaxBytes     int64      // 0 = DefaultMaxBytes
	MaxPixels    int64      // 0 = DefaultMaxPixels
}

// RGB is a decoded image: packed, row-major, 3 bytes per pixel (HWC, no padding), the
// array np.asarray(Image.convert("RGB")) would hold.
type RGB struct {
	W, H int
	Pix  []uint8
}

// ImagePipeline computes CLIPImageProcessor's output (transformers 4.27, Pillow 9.4) for
// one set of options. It is safe for concurrent use; per-call buffers come from pools.
type ImagePipeline struct{ pipeline[*pixbuf] }

// NewImagePipeline validates o and precomputes the normalisation tables.
func NewImagePipeline(o ImageOptions) (*ImagePipeline, error) {
	p, err := newPipeline(o, normalizeValue, decodePixels, pixelsOfRGB, cropCLIP)
	if err != nil {
		return nil, err
	}
	return &ImagePipeline{p}, nil
}

// pipeline is what ImagePipeline and TorchvisionPipeline share: the options, the limits,
// the normalisation table and the four entry points. S is how a pipeline holds decoded
// pixels between the decoder and the crop (*pixbuf, *pilImage); the three functions are
// where the two pipelines differ.
type pipeline[S interface{ release() }] struct {
	opt ImageOptions
	lim limits
	lut [3][256]float32 // normalised value of each uint8 per channel
	// hlut is lut rounded to binary16 (to nearest-even, as onnxruntime's
	// Cast): the half-precision tensors are written through it directly.
	hlut   [3][256]float16.Float16
	decode func(data []byte, lim limits) (S, error)
	ofRGB  func(img *RGB, lim limits) (S, error)
	crop   func(o ImageOptions, im S, out []byte) error // the CropSize² RGB crop into out
}

// newPipeline validates o and precomputes the normalisation table with norm.
func newPipeline[S interface{ release() }](o ImageOptions, norm func(v uint8, mean, std float32) float32,
	decode func([]byte, limits) (S, error), ofRGB func(*RGB, limits) (S, error),
	crop func(ImageOptions, S, []byte) error) (pipeline[S], error) {
	if err := o.validate(); err != nil {
		return pipeline[S]{}, err
	}
	p := pipeline[S]{opt: o, lim: o.limits(), lut: normTable(o, norm), decode: decode, ofRGB: ofRGB, crop: crop}
	p.hlut = halfTable(&p.lut)
	return p, nil
}

// Options returns the options the pipeline was built with.
func (p *pipeline[S]) Options() ImageOptions { return p.opt }

// TensorLen is the number of float32 values Tensor writes: 3 × CropSize × CropSize.
func (p *pipeline[S]) TensorLen() int { return 3 * p.opt.CropSize * p.opt.CropSize }

// Crop decodes data and returns the CropSize × CropSize uint8 RGB crop that the pipeline
// normalises (resize + center crop, before rescale).
func (p *pipeline[S]) Crop(data []byte) (*RGB, error) {
	im, err := p.decode(data, p.lim)
	if err != nil {
		return nil, err
	}
	defer im.release()
	return p.cropRGB(im)
}

// CropRGB is Crop for already decoded pixels (e.g. a raw tensor input; Pillow mode "RGB").
func (p *pipeline[S]) CropRGB(img *RGB) (*RGB, error) {
	im, err := p.ofRGB(img, p.lim)
	if err != nil {
		return nil, err
	}
	return p.cropRGB(im)
}

func (p *pipeline[S]) cropRGB(im S) (*RGB, error) {
	cs := p.opt.CropSize
	out := &RGB{W: cs, H: cs, Pix: make([]uint8, cs*cs*3)}
	if err := p.crop(p.opt, im, out.Pix); err != nil {
		return nil, err
	}
	return out, nil
}

// Tensor decodes data and writes the normalised CHW float32 tensor (3 × CropSize ×
// CropSize values, the model's pixel_values[0]) into dst.
func (p *pipeline[S]) Tensor(data []byte, dst []float32) error {
	return tensorOf(p, p.decoded(data), dst, &p.lut)
}

// TensorRGB is Tensor for already decoded pixels.
func (p *pipeline[S]) TensorRGB(img *RGB, dst []float32) error {
	return tensorOf(p, p.ofRGBFunc(img), dst, &p.lut)
}

// TensorHalf is Tensor writing binary16 values (for --fp16 graphs that take
// float16 pixel_values): each is Tensor's float32 value rounded to nearest-even, as
// a Cast to float16 rounds it, written in the same single pass over the crop (a table
// lookup per value, no float32 buffer). dst holds TensorLen values.
func (p *pipeline[S]) TensorHalf(data []byte, dst []float16.Float16) error {
	return tensorOf(p, p.decoded(data), dst, &p.hlut)
}

// TensorRGBHalf is TensorRGB writing binary16 values, as TensorHalf.
func (p *pipeline[S]) TensorRGBHalf(img *RGB, dst []float16.Float16) error {
	return tensorOf(p, p.ofRGBFunc(img), dst, &p.hlut)
}

func (p *pipeline[S]) decoded(data []byte) func() (S, error) {
	return func() (S, error) { return p.decode(data, p.lim) }
}

func (p *pipeline[S]) ofRGBFunc(img *RGB) func() (S, error) {
	return func() (S, error) { return p.ofRGB(img, p.lim) }
}

// tensorOf writes the tensor of the pixels open gives into dst through lut
// (float32 values, or binary16 through the rounded table).
func tensorOf[S interface{ release() }, T float32 | float16.Float16](p *pipeline[S], open func() (S, error), dst []T, lut *[3][256]T) error {
	if err := checkTensorBuf(dst, p.TensorLen()); err != nil {
		return err
	}
	im, err := open()
	if err != nil {
		return err
	}
	defer im.release() // frees only what the decoder pooled, never the caller's RGB
	cs := p.opt.CropSize
	sc := getScratch()
	defer putScratch(sc)
	crop := grow(&sc.crop, cs*cs*3)
	if err := p.crop(p.opt, im, crop); err != nil {
		return err
	}
	writePlanes(dst, crop, lut)
	return nil
}

// checkRGB refuses an RGB image that is nil, over the limits or shorter than W×H×3.
func checkRGB(img *RGB, lim limits) error {
	if img == nil {
		return errors.New("preprocess: nil image")
	}
	if err := lim.checkDims("RGB", img.W, img.H); err != nil {
		return err
	}
	if len(img.Pix) < img.W*img.H*3 {
		return fmt.Errorf("%w: RGB buffer has %d bytes for %dx%d", ErrUndecodable, len(img.Pix), img.W, img.H)
	}
	return nil
}

// validate checks the sizes and the normalisation of o (both pipelines).
func (o ImageOptions) validate() error {
	if o.ShortestEdge <= 0 || o.CropSize <= 0 {
		return fmt.Errorf("preprocess: ShortestEdge (%d) and CropSize (%d) must be positive", o.ShortestEdge, o.CropSize)
	}
	if o.ShortestEdge > 1<<15 || o.CropSize > 1<<15 {
		return fmt.Errorf("preprocess: ShortestEdge (%d) / CropSize (%d) unreasonably large", o.ShortestEdge, o.CropSize)
	}
	for c := 0; c < 3; c++ {
		if o.Std[c] == 0 || math.IsNaN(float64(o.Std[c])) || math.IsNaN(float64(o.Mean[c])) {
			return fmt.Errorf("preprocess: invalid mean/std %v/%v", o.Mean, o.Std)
		}
	}
	return nil
}

// normTable is the normalised value of each uint8 per channel, computed by norm.
func normTable(o ImageOptions, norm func(v uint8, mean, std float32) float32) (t [3][256]float32) {
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			t[c][v] = norm(uint8(v), o.Mean[c], o.Std[c])
		}
	}
	return t
}

// halfTable is t rounded to binary16, to nearest-even (float16.Fromfloat32).
func halfTable(t *[3][256]float32) (h [3][256]float16.Float16) {
	for c := range t {
		for v, x := range t[c] {
			h[c][v] = float16.Fromfloat32(x)
		}
	}
	return h
}

// checkTensorBuf refuses a tensor buffer shorter than the n values a pipeline writes.
func checkTensorBuf[T float32 | float16.Float16](dst []T, n int) error {
	if len(dst) < n {
		return fmt.Errorf("preprocess: tensor buffer has %d values, need %d", len(dst), n)
	}
	return nil
}

// writePlanes normalises an RGB crop (HWC bytes) through lut into the three CHW planes
// at the start of dst: float32 values, or binary16 ones through the rounded table.
func writePlanes[T float32 | float16.Float16](dst []T, crop []byte, lut *[3][256]T) {
	plane := len(crop) / 3
	r, g, b := dst[0:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	lr, lg, lb := &lut[0], &lut[1], &lut[2]
	for i := range r {
		px := crop[i*3 : i*3+3 : i*3+3]
		r[i] = lr[px[0]]
		g[i] = lg[px[1]]
		b[i] = lb[px[2]]
	}
}

// normalizeValue is transformers 4.27's rescale + normalize for one value:
//
//	rescale:   (uint8_array * (1/255)).astype(np.float32)   numpy promotes to float64 first
//	normalize: (x - np.array(mean, dtype=float32)) / np.array(std, dtype=float32)  in float32
//
// Go evaluates float32 arithmetic in float32, so the result is bit-identical.
func normalizeValue(v uint8, mean, std float32) float32 {
	x := float32(float64(v) * (1.0 / 255))
	d := x - mean
	return d / std
}

// DecodeRGB decodes data and converts it to RGB exactly as Pillow 9.4's
// Image.open(...).convert("RGB") does (see IMAGES.md). Only MaxBytes and MaxPixels of lim
// are used.
func DecodeRGB(data []byte, lim ImageOptions) (*RGB, error) {
	pb, err := decodePixels(data, lim.limits())
	if err != nil {
		return nil, err
	}
	defer pb.release()
	return pb.toRGB(), nil
}

// DecodeRGBPooled is DecodeRGB with the pixels in a pooled buffer, for a caller that is
// done with them soon (the scoring service, once an image's rows are made): release hands
// the buffer back, and the RGB must not be used after it (call it once). Where the decoder
// already holds packed RGB (RGB PNGs, JPEGs) the RGB is its buffer, without a copy; else a
// pooled copy. Same pixels as DecodeRGB.
func DecodeRGBPooled(data []byte, lim ImageOptions) (rgb *RGB, release func(), err error) {
	pb, err := decodePixels(data, lim.limits())
	if err != nil {
		return nil, nil, err
	}
	if pb.ps == 3 && pb.stride == pb.w*3 {
		return &RGB{W: pb.w, H: pb.h, Pix: pb.pix[:pb.w*pb.h*3]}, pb.release, nil
	}
	buf := getBuf(pb.w * pb.h * 3)
	rgb = pb.toRGBIn(*buf)
	pb.release()
	return rgb, func() { putBuf(buf) }, nil
}

func pixelsOfRGB(img *RGB, lim limits) (*pixbuf, error) {
	if err := checkRGB(img, lim); err != nil {
		return nil, err
	}
	return &pixbuf{w: img.W, h: img.H, ps: 3, stride: img.W * 3, pix: img.Pix}, nil
}

// resizedSize is transformers 4.27 get_resize_output_image_size(default_to_square=False)
// for an int size: the short edge becomes size, the long edge
// int(size * long / short) (Python true division, then truncation).
func resizedSize(w, h, size int) (int, int, error) {
	short, long := h, w
	if w <= h {
		short, long = w, h
	}
	nl := float64(size) * float64(long) / float64(short) // size*long is exact: both < 2^31
	if nl >= maxResizedEdge {
		return 0, 0, fmt.Errorf("%w: a %dx%d image resized to a shortest edge of %d has a long edge of %.0f pixels",
			ErrTooLarge, w, h, size, nl)
	}
	newLong := int(nl)
	if w <= h {
		return size, newLong, nil
	}
	return newLong, size, nil
}

// cropSpan maps a resized dimension r onto a crop of size c the way transformers 4.27
// center_crop does: if r >= c the crop starts at (r - c) // 2; otherwise the image is
// zero-padded and placed at (c - r) // 2. off is such that crop index d shows resized
// index d + off; [lo, hi) is the part of the resized range that is visible.
func cropSpan(r, c int) (off, lo, hi int) {
	if r >= c {
		off = (r - c) / 2
		return off, off, off + c
	}
	return -((c - r) / 2), 0, r
}

type scratch struct {
	tmp  []byte
	tmp2 []byte
	acc  []int32
	crop []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }
func putScratch(s *scratch) {
	// Don't keep buffers of freak sizes alive in the pool.
	if cap(s.tmp) > 16<<20 {
		s.tmp = nil
	}
	if cap(s.tmp2) > 16<<20 {
		s.tmp2 = nil
	}
	scratchPool.Put(s)
}

func grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

// cropCLIP computes CLIPImageProcessor's CropSize² RGB crop of pb into out (len
// CropSize²×3).
func cropCLIP(o ImageOptions, pb *pixbuf, out []byte) error {
	cs := o.CropSize
	W, H, err := resizedSize(pb.w, pb.h, o.ShortestEdge)
	if err != nil {
		return err
	}
	xoff, x0, x1 := cropSpan(W, cs)
	yoff, y0, y1 := cropSpan(H, cs)
	nx, ny := x1-x0, y1-y0
	nch := 3
	if pb.ps == 1 {
		nch = 1
	}
	o1, o2 := pb.offsets()

	sc := getScratch()
	defer putScratch(sc)

	// Vertical geometry: which source rows feed output rows [y0, y1).
	var vc *coeffs
	sy0, sy1 := y0, y1
	if H != pb.h {
		vc = getCoeffs(pb.h, H, y0, ny)
		sy0, sy1 = vc.inputSpan()
	}
	rows := sy1 - sy0

	// Horizontal pass (or column copy) over source rows [sy0, sy1) into tmp.
	rowLen := nx * nch
	tmp := grow(&sc.tmp, rows*rowLen)
	src := pb.pix[sy0*pb.stride:]
	if W != pb.w {
		hc := getCoeffs(pb.w, W, x0, nx)
		hpass(tmp, src, pb.stride, pb.ps, o1, o2, rows, hc)
	} else {
		copyColumns(tmp, src, pb.stride, pb.ps, o1, o2, rows, x0, nx)
	}

	// Vertical pass into res (ny rows of rowLen).
	res := tmp
	if vc != nil {
		res = grow(&sc.tmp2, ny*rowLen)
		if cap(sc.acc) < rowLen {
			sc.acc = make([]int32, rowLen)
		}
		vpass(res, tmp, rowLen, sy0, vc, sc.acc)
	}

	// Place into the crop: zero padding where transformers pads, gray expanded to RGB.
	if nx != cs || ny != cs {
		clear(out)
	}
	dx, dy := x0-xoff, y0-yoff
	for r := 0; r < ny; r++ {
		o := out[((dy+r)*cs+dx)*3 : ((dy+r)*cs+dx+nx)*3]
		s := res[r*rowLen : (r+1)*rowLen]
		if nch == 3 {
			copy(o, s)
			continue
		}
		for i, v := range s {
			q := o[i*3 : i*3+3 : i*3+3]
			q[0], q[1], q[2] = v, v, v
		}
	}
	return nil
}

// copyColumns copies columns [x0, x0+n) of rows source rows into packed RGB (or gray) rows.
func copyColumns(dst, src []byte, stride, ps, o1, o2, rows, x0, n int) {
	if ps == 1 {
		for r := 0; r < rows; r++ {
			copy(dst[r*n:(r+1)*n], src[r*stride+x0:r*stride+x0+n])
		}
		return
	}
	for r := 0; r < rows; r++ {
		d := dst[r*n*3 : (r+1)*n*3]
		s := src[r*stride+x0*ps:]
		if ps == 3 {
			copy(d, s[:n*3])
			continue
		}
		for i := 0; i < n; i++ {
			p := s[i*ps:]
			d[i*3], d[i*3+1], d[i*3+2] = p[0], p[o1], p[o2]
		}
	}
}
