package convert

import (
	"fmt"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/openclip"
)

// ZooKinds are the `convert random --kind` values of the reward zoo.
var ZooKinds = []string{models.FormulaPickScore, models.FormulaCLIPScore, models.FormulaCLIPScore100, models.FormulaHPSv2, models.FormulaAesthetic}

// ZooPreset is the real architecture of a zoo model and its activation:
// PickScore_v1 and HPSv2 are LAION ViT-H-14 (GELU); CLIPScore's usual
// checkpoint is openai/clip-vit-base-patch32 and the aesthetic predictor's
// openai/clip-vit-large-patch14 (both QuickGELU).
func ZooPreset(kind string) (clip.Preset, clip.Activation, error) {
	switch kind {
	case models.FormulaPickScore, models.FormulaHPSv2:
		return clip.PresetViTH14, clip.GELU, nil
	case models.FormulaCLIPScore, models.FormulaCLIPScore100:
		return clip.PresetViTB32, clip.QuickGELU, nil
	case models.FormulaAesthetic:
		return clip.PresetViTL14, clip.QuickGELU, nil
	}
	return "", "", fmt.Errorf("unknown zoo kind %q (want one of %v)", kind, ZooKinds)
}

// ZooRandomOptions are the inputs of `icthp convert random --kind K` for a
// zoo kind.
type ZooRandomOptions struct {
	Kind      string
	Preset    clip.Preset // "" means the kind's real architecture (ZooPreset)
	Seed      uint64
	Vocab     []byte
	VocabName string
	Synthetic bool
	Out       string
	Build     clip.BuildOptions
}

// RandomZoo writes a zoo model directory with seeded random weights of the
// kind's architecture (or of Preset, with the kind's activation). HPSv2's
// weights are generated under open_clip's names and read through
// openclip.Weights, the path a real HPS_v2_compressed.pt takes.
func RandomZoo(o ZooRandomOptions) (*models.Manifest, error) {
	real, act, err := ZooPreset(o.Kind)
	if err != nil {
		return nil, err
	}
	if o.Preset == "" {
		o.Preset = real
	}
	c, err := clip.PresetConfig(o.Preset)
	if err != nil {
		return nil, err
	}
	c.Vision.HiddenAct, c.Text.HiddenAct = act, act
	desc := map[string]any{"random": map[string]any{"preset": o.Preset, "seed": o.Seed, "kind": o.Kind, "hidden_act": act}}
	notes := []string{"random weights: scores are meaningless; for tests, demos and benchmarks"}
	name := fmt.Sprintf("random-%s-%s", o.Kind, o.Preset)
	img := &models.ImageSpec{Pipeline: PipelineTorchvision, ShortestEdge: c.Vision.ImageSize, CropSize: c.Vision.ImageSize,
		Mean: models.CLIPMean, Std: models.CLIPStd}
	if o.Kind == models.FormulaAesthetic {
		w := clip.NewRandom(&c, o.Seed, true)
		return writeAesthetic(&c, w, w, img, o.Out, name, o.Build, desc, notes, nil)
	}
	if o.VocabName == "" {
		o.VocabName = "bpe_synthetic.txt.gz"
	}
	d := dualOut{vocabName: o.VocabName, vocabData: o.Vocab, synthetic: o.Synthetic, out: o.Out, name: name,
		formula: o.Kind, build: o.Build, desc: desc, notes: notes}
	var w clip.Weights
	switch o.Kind {
	case models.FormulaHPSv2:
		ow, err := openclip.NewWeights(openclip.NewRandom(&c, o.Seed))
		if err != nil {
			return nil, err
		}
		w = ow
	default:
		r := clip.NewRandom(&c, o.Seed, false)
		v, err := r.Float32("logit_scale")
		if err != nil {
			return nil, err
		}
		d.logitScale = float64(v[0])
		w = r
	}
	switch o.Kind {
	case models.FormulaPickScore, models.FormulaCLIPScore100:
		d.pipeline = PipelineCLIP
	}
	return writeDual(&c, w, d)
}
