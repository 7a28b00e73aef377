package clipref

import (
	"fmt"

	"github.com/icthp/icthp/models/clip"
)

// FromOpenCLIP translates an open_clip CLIP state dict (ViT image tower,
// built-in text tower; keys as open_clip's model.py / transformer.py name
// them) into the transformers names the reference reads, written from
// open_clip's forward passes and independently of models/openclip:
//
//   - nn.MultiheadAttention's in_proj_weight [3w, w] is q·, k·, v· stacked by
//     rows (F.multi_head_attention_forward chunks the projection in that
//     order), so q_proj.weight[o][i] = in_proj_weight[o][i],
//     k_proj.weight[o][i] = in_proj_weight[w+o][i], v_proj... [2w+o][i];
//     in_proj_bias likewise.
//   - visual.proj [width, embed] and text_projection [width, embed] are used
//     as "x @ proj", so the equivalent Linear weight [embed, width] is
//     W[o][i] = proj[i][o].
//   - everything else is a renaming: conv1 → patch_embedding,
//     positional_embedding → position_embedding, ln_pre → pre_layrnorm,
//     ln_post → post_layernorm, ln_1/ln_2 → layer_norm1/2,
//     mlp.c_fc/c_proj → mlp.fc1/fc2, ln_final → final_layer_norm.
//
// prefix is prepended to every open_clip key ("module." for checkpoints
// saved from DistributedDataParallel, else "").
func FromOpenCLIP(oc clip.Weights, cfg *clip.Config, prefix string) (MapWeights, error) {
	m := MapWeights{}
	get := func(name string, shape ...int) ([]float64, error) { return tensor(oc, prefix+name, shape...) }
	put := func(name string, shape []int, v []float64) {
		s := make([]int64, len(shape))
		for i, d := range shape {
			s[i] = int64(d)
		}
		data := make([]float32, len(v))
		for i, x := range v {
			data[i] = float32(x)
		}
		m[name] = Tensor{Shape: s, Data: data}
	}
	copyAs := func(hf, ocName string, shape ...int) error {
		v, err := get(ocName, shape...)
		if err != nil {
			return err
		}
		put(hf, shape, v)
		return nil
	}
	projAs := func(hf, ocName string, width, embed int) error {
		p, err := get(ocName, width, embed)
		if err != nil {
			return err
		}
		w := make([]float64, embed*width)
		for o := 0; o < embed; o++ {
			for i := 0; i < width; i++ {
				w[o*width+i] = p[i*embed+o]
			}
		}
		put(hf, []int{embed, width}, w)
		return nil
	}
	v, t, e := &cfg.Vision, &cfg.Text, cfg.ProjectionDim
	vw, tw := v.HiddenSize, t.HiddenSize
	steps := []func() error{
		func() error { return copyAs("vision_model.embeddings.class_embedding", "visual.class_embedding", vw) },
		func() error {
			return copyAs("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight", vw, channels(v), v.PatchSize, v.PatchSize)
		},
		func() error {
			return copyAs("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding", cfg.NumPatches()+1, vw)
		},
		func() error { return copyAs("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight", vw) },
		func() error { return copyAs("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias", vw) },
		func() error { return copyAs("vision_model.post_layernorm.weight", "visual.ln_post.weight", vw) },
		func() error { return copyAs("vision_model.post_layernorm.bias", "visual.ln_post.bias", vw) },
		func() error { return projAs("visual_projection.weight", "visual.proj", vw, e) },
		func() error {
			return copyAs("text_model.embeddings.token_embedding.weight", "token_embedding.weight", t.VocabSize, tw)
		},
		func() error {
			return copyAs("text_model.embeddings.position_embedding.weight", "positional_embedding", t.MaxPositions, tw)
		},
		func() error { return copyAs("text_model.final_layer_norm.weight", "ln_final.weight", tw) },
		func() error { return copyAs("text_model.final_layer_norm.bias", "ln_final.bias", tw) },
		func() error { return projAs("text_projection.weight", "text_projection", tw, e) },
		func() error { return openCLIPBlocks(get, put, "visual.transformer.resblocks.", "vision_model", v) },
		func() error { return openCLIPBlocks(get, put, "transformer.resblocks.", "text_model", t) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// openCLIPBlocks translates the residual attention blocks of one tower.
func openCLIPBlocks(get func(string, ...int) ([]float64, error), put func(string, []int, []float64), ocPrefix, hfPrefix string, t *clip.TowerConfig) error {
	w, mw := t.HiddenSize, t.IntermediateSize
	for l := 0; l < t.NumLayers; l++ {
		oc := fmt.Sprintf("%s%d.", ocPrefix, l)
		hf := fmt.Sprintf("%s.encoder.layers.%d.", hfPrefix, l)
		inW, err := get(oc+"attn.in_proj_weight", 3*w, w)
		if err != nil {
			return err
		}
		inB, err := get(oc+"attn.in_proj_bias", 3*w)
		if err != nil {
			return err
		}
		for j, name := range []string{"q_proj", "k_proj", "v_proj"} {
			wt := make([]float64, w*w)
			for o := 0; o < w; o++ {
				for i := 0; i < w; i++ {
					wt[o*w+i] = inW[(j*w+o)*w+i]
				}
			}
			put(hf+"self_attn."+name+".weight", []int{w, w}, wt)
			put(hf+"self_attn."+name+".bias", []int{w}, inB[j*w:(j+1)*w])
		}
		for _, r := range []struct {
			hf, oc string
			shape  []int
		}{
			{"self_attn.out_proj.weight", "attn.out_proj.weight", []int{w, w}}, {"self_attn.out_proj.bias", "attn.out_proj.bias", []int{w}},
			{"layer_norm1.weight", "ln_1.weight", []int{w}}, {"layer_norm1.bias", "ln_1.bias", []int{w}},
			{"layer_norm2.weight", "ln_2.weight", []int{w}}, {"layer_norm2.bias", "ln_2.bias", []int{w}},
			{"mlp.fc1.weight", "mlp.c_fc.weight", []int{mw, w}}, {"mlp.fc1.bias", "mlp.c_fc.bias", []int{mw}},
			{"mlp.fc2.weight", "mlp.c_proj.weight", []int{w, mw}}, {"mlp.fc2.bias", "mlp.c_proj.bias", []int{w}},
		} {
			x, err := get(oc+r.oc, r.shape...)
			if err != nil {
				return err
			}
			put(hf+r.hf, r.shape, x)
		}
	}
	return nil
}

// AestheticScore is the LAION aesthetic predictor v2
// (improved-aesthetic-predictor, simple_inference.py): the MLP
// layers.0/2/4/6/7 (Linear layers, the dropouts identity at inference, no
// activations: the ReLUs are commented out in the original) applied to the
// L2-normalised image embedding (its normalized(): x / ‖x‖₂, with a zero
// norm treated as 1). No sigmoid: the score is the MLP's output.
func AestheticScore(head clip.Weights, emb []float64) (float64, error) {
	return HPLogit(head, Normalize(emb))
}
