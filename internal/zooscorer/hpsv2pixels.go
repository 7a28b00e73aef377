package zooscorer

import (
	"errors"
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// PipelineHPSv2 names HPSv2's own eval transform in model.json.
const PipelineHPSv2 = "hpsv2"

// HPSv2Pixels is HPSv2's eval transform (hpsv2/src/open_clip/transform.py,
// image_transform(is_train=False), HPSv2's vendored open_clip), which
// differs from OpenAI CLIP's: the image is converted to RGB and turned into
// a float tensor (ToTensor: v / 255) before it is resized, so the resize
// runs on floats and its output is neither rounded nor clamped:
//
//	Compose([_convert_to_rgb_or_rgba, ToTensor(), Resize(n, BICUBIC), CenterCrop(n), Normalize(mean, std)])
//
// Resize on a tensor is torch.nn.functional.interpolate(mode="bicubic",
// antialias=True), torchvision's default for tensors since 0.17 (HPSv2 does
// not pin torchvision). The antialiased kernel (ATen
// native/cpu/UpSampleKernel.cpp, _compute_weights_aa and
// interpolate_aa_single_dim) is Pillow's: the Keys cubic with a = −0.5,
// support 2·scale when downscaling, weights normalised per output pixel,
// width pass then height pass, here in float32 as torch computes float
// tensors. Held to torch 1.13's own transform (testdata/hpsv2torch) within
// 3.3e-6 after Normalize: torch 1.13's filter evaluates the |x| < 1 branch in
// double (`(a + 2.0) * x`, weights 1 ulp apart) and its AVX2 kernel fuses
// the tap accumulation; with both mirrored it matched bit for bit. The float
// cubic kept here is current ATen's cubic_convolution1/2 on scalar_t, what
// the torch ≥ 2.2 under torchvision ≥ 0.17 runs.
//
// An RGBA image, which HPSv2 keeps as 4 channels and its 3-channel conv1
// then rejects, has its alpha dropped (preprocess.DecodeRGB). Sizes come
// from the manifest (ShortestEdge, CropSize, mean, std).
type HPSv2Pixels struct{ o preprocess.ImageOptions }

// NewHPSv2Pixels checks the options.
func NewHPSv2Pixels(o preprocess.ImageOptions) (*HPSv2Pixels, error) {
	if o.ShortestEdge <= 0 || o.CropSize <= 0 || o.CropSize > o.ShortestEdge || o.ShortestEdge > 1<<15 {
		return nil, fmt.Errorf("hpsv2 pixels: shortest edge %d, crop %d not supported", o.ShortestEdge, o.CropSize)
	}
	for c := 0; c < 3; c++ {
		if o.Std[c] == 0 {
			return nil, errors.New("hpsv2 pixels: zero std")
		}
	}
	return &HPSv2Pixels{o: o}, nil
}

type hpsv2Key struct{ o preprocess.ImageOptions }

// TensorLen implements scorer.Preprocessor.
func (p *HPSv2Pixels) TensorLen() int { return 3 * p.o.CropSize * p.o.CropSize }

// Key implements scorer.Preprocessor.
func (p *HPSv2Pixels) Key() any { return hpsv2Key{p.o} }

// NeedsRGB implements scorer.Preprocessor: it reads the shared decode.
func (p *HPSv2Pixels) NeedsRGB() bool { return true }

// Tensor implements scorer.Preprocessor.
func (p *HPSv2Pixels) Tensor(src scorer.Source, dst []float32) error {
	return hpsv2Tensor(p, src, dst, func(v float32) float32 { return v })
}

// TensorHalf implements scorer.Preprocessor: Tensor's values, each rounded
// to nearest-even as it is written.
func (p *HPSv2Pixels) TensorHalf(src scorer.Source, dst []float16.Float16) error {
	return hpsv2Tensor(p, src, dst, float16.Fromfloat32)
}

// hpsv2Tensor writes the normalised crop into dst, each value through put.
func hpsv2Tensor[T float32 | float16.Float16](p *HPSv2Pixels, src scorer.Source, dst []T, put func(float32) T) error {
	img := src.RGB
	if img == nil {
		var err error
		if img, err = preprocess.DecodeRGB(src.Data, p.o); err != nil {
			return err
		}
	}
	if len(dst) != p.TensorLen() {
		return fmt.Errorf("hpsv2 pixels: dst has %d values, want %d", len(dst), p.TensorLen())
	}
	crop, err := p.ResizeCrop(img)
	if err != nil {
		return err
	}
	n := p.o.CropSize * p.o.CropSize
	for c := 0; c < 3; c++ {
		mean, std := p.o.Mean[c], p.o.Std[c]
		for i, v := range crop[c*n : (c+1)*n] {
			dst[c*n+i] = put((v - mean) / std) // Normalize: sub_(mean).div_(std)
		}
	}
	return nil
}

// ResizeCrop returns the CHW float32 crop before Normalize: ToTensor,
// Resize (antialiased bicubic on floats) and CenterCrop.
func (p *HPSv2Pixels) ResizeCrop(img *preprocess.RGB) ([]float32, error) {
	if img == nil || img.W <= 0 || img.H <= 0 || len(img.Pix) != img.W*img.H*3 {
		return nil, errors.New("hpsv2 pixels: empty or inconsistent image")
	}
	W, H, err := resizedSize(img.W, img.H, p.o.ShortestEdge)
	if err != nil {
		return nil, err
	}
	cs := p.o.CropSize
	x0, y0 := cropOffset(W, cs), cropOffset(H, cs)
	xw := aaWeights(img.W, W, x0, cs)
	yw := aaWeights(img.H, H, y0, cs)
	out := make([]float32, 3*cs*cs)
	row := make([]float32, img.W)
	tmp := make([]float32, img.H*cs) // width pass of one channel: [H][cs]
	for c := 0; c < 3; c++ {
		for y := 0; y < img.H; y++ {
			for x := 0; x < img.W; x++ {
				row[x] = float32(img.Pix[(y*img.W+x)*3+c]) / 255 // ToTensor: byte tensor .float().div(255)
			}
			for i := 0; i < cs; i++ {
				tmp[y*cs+i] = xw.apply(i, func(k int) float32 { return row[k] })
			}
		}
		for j := 0; j < cs; j++ {
			for i := 0; i < cs; i++ {
				out[(c*cs+j)*cs+i] = yw.apply(j, func(k int) float32 { return tmp[k*cs+i] })
			}
		}
	}
	return out, nil
}

// resizedSize is torchvision's _compute_resized_output_size for an int
// size: the shortest edge becomes size, the long one int(size·long/short).
func resizedSize(w, h, size int) (int, int, error) {
	short, long := h, w
	if w <= h {
		short, long = w, h
	}
	nl := float64(size) * float64(long) / float64(short)
	if nl >= 1<<20 {
		return 0, 0, fmt.Errorf("%w: a %dx%d image resized to a shortest edge of %d is too long", preprocess.ErrTooLarge, w, h, size)
	}
	if w <= h {
		return size, int(nl), nil
	}
	return int(nl), size, nil
}

// cropOffset is torchvision's center_crop offset int(round((size − crop)
// / 2)), Python's round (half to even).
func cropOffset(size, crop int) int {
	return int(math.RoundToEven(float64(size-crop) / 2))
}

// aaTaps are the antialiased bicubic taps of the outputs [first,
// first+n) of a resize from in to out pixels.
type aaTaps struct {
	xmin  []int
	w     [][]float32
	first int
}

// aaWeights transcribes ATen's _compute_weights_aa for float tensors
// (interp_size 4, the bicubic aa_filter with a = −0.5).
func aaWeights(in, out, first, n int) *aaTaps {
	scale := float32(in) / float32(out) // area_pixel_compute_scale, align_corners=False
	support := float32(2)
	invscale := float32(1)
	if scale >= 1 {
		support = 2 * scale
		invscale = float32(1.0 / float64(scale))
	}
	t := &aaTaps{first: first, xmin: make([]int, n), w: make([][]float32, n)}
	for k := 0; k < n; k++ {
		i := first + k
		center := float32(float64(scale) * (float64(i) + 0.5))
		xmin := max(int(float64(center-support)+0.5), 0)
		xsize := min(int(float64(center+support)+0.5), in) - xmin
		w := make([]float32, xsize)
		var total float32
		for j := range w {
			w[j] = cubicAA(float32((float64(float32(j+xmin)-center) + 0.5) * float64(invscale)))
			total += w[j]
		}
		if total != 0 {
			for j := range w {
				w[j] /= total
			}
		}
		t.xmin[k], t.w[k] = xmin, w
	}
	return t
}

// apply is interpolate_aa_single_dim: Σ src(xmin+j)·w[j], accumulated in
// float32 in tap order.
func (t *aaTaps) apply(k int, src func(int) float32) float32 {
	w, x0 := t.w[k], t.xmin[k]
	if len(w) == 0 {
		return 0
	}
	out := src(x0) * w[0]
	for j := 1; j < len(w); j++ {
		out += src(x0+j) * w[j]
	}
	return out
}

// cubicAA is ATen's bicubic aa_filter (Keys, a = −0.5), in float32.
func cubicAA(x float32) float32 {
	const a = float32(-0.5)
	if x < 0 {
		x = -x
	}
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return ((a*x-5*a)*x+8*a)*x - 4*a
	}
	return 0
}

var _ scorer.Preprocessor = (*HPSv2Pixels)(nil)
