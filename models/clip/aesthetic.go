package clip

import (
	"github.com/icthp/icthp/models/build"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// OutputAesthetic is the aesthetic graph's score output.
const OutputAesthetic = "aesthetic"

// BuildAesthetic writes the LAION aesthetic predictor v2
// (christophschuhmann/improved-aesthetic-predictor, simple_inference.py):
// the CLIP image features (get_image_features, as OpenAI CLIP's
// encode_image), L2-normalised as its normalized() does, then the MLP
// layers.0 → 2 → 4 → 6 → 7 (768→1024→128→64→16→1; the dropouts are
// identity at inference and the ReLUs are commented out in the original),
// no sigmoid. Outputs aesthetic [batch] and image_embeds [batch, D] (not
// normalised, like the other image graphs). The head's input width must be
// the projection width; its keys are HP's (HeadParams).
func BuildAesthetic(c *Config, backbone, head Weights, opts BuildOptions) (*og.Graph, error) {
	if err := opts.Prepare(build.Part("aesthetic backbone", CheckWeights, backbone, c.VisionParams),
		build.Part("aesthetic head", CheckWeights, head, c.headParams)); err != nil {
		return nil, err
	}
	b := newBuilder("aesthetic", combined{backbone, head}, opts)
	g := b.G
	emb := b.vision(c)
	// normalized(): a / ‖a‖₂ with a zero norm replaced by 1. Max(‖a‖, tiny)
	// gives the same zero vector for a zero embedding and the norm otherwise.
	norm := g.Op("ReduceL2", []string{emb}, og.AttrInts("axes", -1), og.AttrInt("keepdims", 1))
	norm = g.Op("Max", []string{norm, b.scalar(1e-7)})
	x, in := g.Op("Div", []string{emb, norm}), c.ProjectionDim
	for i, k := range headKeys {
		out := int(headWidths[i])
		x = b.linear(x, headPrefix+k, in, out, true)
		in = out
	}
	x = g.Op("Reshape", []string{x, g.ConstInt64("flat", []int64{1}, -1)})
	b.output(x, OutputAesthetic, og.P("batch"))
	b.output(emb, OutputImage, og.P("batch"), og.D(int64(c.ProjectionDim)))
	return g, nil
}
