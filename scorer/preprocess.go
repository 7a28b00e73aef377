package scorer

import (
	"github.com/x448/float16"

	"github.com/icthp/icthp/preprocess"
)

// CLIPPreprocess is the Preprocessor of CLIPImageProcessor's pipeline
// (resize, center crop, rescale, normalise) over the shared decoded RGB.
// Models with equal options share one tensor per image.
func CLIPPreprocess(p *preprocess.ImagePipeline) Preprocessor { return clipPrep{p} }

type clipPrep struct{ p *preprocess.ImagePipeline }

type clipKey struct{ o preprocess.ImageOptions }

func (c clipPrep) TensorLen() int { return c.p.TensorLen() }
func (c clipPrep) Key() any       { return clipKey{c.p.Options()} }
func (c clipPrep) NeedsRGB() bool { return true }
func (c clipPrep) Tensor(src Source, dst []float32) error {
	return c.p.TensorRGB(src.RGB, dst)
}
func (c clipPrep) TensorHalf(src Source, dst []float16.Float16) error {
	return c.p.TensorRGBHalf(src.RGB, dst)
}

// TorchvisionPreprocess is the Preprocessor of torchvision's transforms
// over Pillow's decode (BLIP, ImageReward): it decodes encoded files
// itself, in the mode Image.open gives them.
func TorchvisionPreprocess(p *preprocess.TorchvisionPipeline) Preprocessor { return tvPrep{p} }

type tvPrep struct {
	p *preprocess.TorchvisionPipeline
}

type tvKey struct{ o preprocess.ImageOptions }

func (t tvPrep) TensorLen() int { return t.p.TensorLen() }
func (t tvPrep) Key() any       { return tvKey{t.p.Options()} }
func (t tvPrep) NeedsRGB() bool { return false }
func (t tvPrep) Tensor(src Source, dst []float32) error {
	if src.RGB != nil {
		return t.p.TensorRGB(src.RGB, dst)
	}
	return t.p.Tensor(src.Data, dst)
}
func (t tvPrep) TensorHalf(src Source, dst []float16.Float16) error {
	if src.RGB != nil {
		return t.p.TensorRGBHalf(src.RGB, dst)
	}
	return t.p.TensorHalf(src.Data, dst)
}
