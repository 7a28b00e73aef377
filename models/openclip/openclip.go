// Package openclip reads open_clip checkpoints (the format of HPSv2's
// HPS_v2*_compressed.pt and of open_clip's own training runs) by mapping
// their tensor names onto transformers' CLIPModel names, so that the CLIP
// graph builder (models/clip) writes their graphs unchanged.
//
// The mapping follows open_clip's model.py and transformer.py (as vendored in
// HPSv2, hpsv2/src/open_clip/): VisionTransformer.forward is conv1 (no bias)
// → cat(class_embedding, patches) + positional_embedding → ln_pre →
// resblocks → ln_post on token 0 → "pooled @ proj"; CLIP.encode_text is
// token_embedding + positional_embedding → resblocks under a causal mask →
// ln_final → x[arange, text.argmax(-1)] @ text_projection. A resblock is
// x + attn(ln_1(x)), then x + mlp.c_proj(act(mlp.c_fc(ln_2(x)))), where attn is
// torch's nn.MultiheadAttention: in_proj_weight [3w, w] holds q, k and v
// row blocks in that order, in_proj_bias likewise. These are exactly the
// equations of transformers' CLIP (internal/clipref), so only names, the
// q/k/v split and the transposition of the two "x @ proj" matrices differ.
package openclip

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/icthp/icthp/models/build"
	"github.com/icthp/icthp/models/clip"
)

// Tensors is a state dict under open_clip's names (a checkpoint.StateDict,
// or Random).
type Tensors interface {
	clip.Weights
	Keys() []string
}

// ErrUnsupported means the checkpoint uses an open_clip feature this builder
// does not implement (attentional pooling, LayerScale, timm or Hugging Face
// towers, patch-norm, ...).
var ErrUnsupported = errors.New("openclip: unsupported architecture")

// Weights serves transformers' CLIPModel names from an open_clip state dict.
// It implements clip.Weights.
type Weights struct {
	src    clip.Weights
	prefix string // "module." for checkpoints saved from DistributedDataParallel
}

var _ clip.Weights = (*Weights)(nil)

// modulePrefix is what torch's DistributedDataParallel puts in front of every
// key; open_clip's own loader (load_checkpoint) strips it.
const modulePrefix = "module."

// NewWeights wraps an open_clip state dict. Keys under "module." are read
// without the prefix. Keys the mapping does not know are an error naming
// them, as open_clip's strict load_state_dict would be; a few known
// non-parameter buffers are ignored.
func NewWeights(t Tensors) (*Weights, error) {
	w := &Weights{src: t}
	keys := t.Keys()
	if len(keys) > 0 && allPrefixed(keys, modulePrefix) {
		w.prefix = modulePrefix
	}
	var unknown, unsupported []string
	for _, k := range keys {
		k = strings.TrimPrefix(k, w.prefix)
		switch {
		case ignoredBuffer(k):
		case unsupportedKey(k):
			unsupported = append(unsupported, k)
		case !knownKey(k):
			unknown = append(unknown, k)
		}
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("%w: keys %s", ErrUnsupported, summarise(unsupported))
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("openclip: unexpected keys (not an open_clip ViT CLIP state dict?): %s", summarise(unknown))
	}
	if _, ok := w.src.Shape(w.prefix + "visual.conv1.weight"); !ok {
		return nil, errors.New("openclip: no visual.conv1.weight: not an open_clip ViT checkpoint")
	}
	return w, nil
}

func allPrefixed(keys []string, p string) bool {
	for _, k := range keys {
		if !strings.HasPrefix(k, p) {
			return false
		}
	}
	return true
}

func summarise(keys []string) string {
	if len(keys) <= 6 {
		return strings.Join(keys, ", ")
	}
	return strings.Join(keys[:6], ", ") + fmt.Sprintf(" and %d more", len(keys)-6)
}

// ignoredBuffer: the causal mask was saved as a persistent buffer by early
// open_clip versions; it is recomputed by the graph.
func ignoredBuffer(k string) bool { return k == "attn_mask" || strings.HasSuffix(k, ".attn_mask") }

// unsupportedKey names parameters of open_clip variants whose computation
// differs from plain CLIP: their presence must stop the conversion rather
// than be silently dropped.
func unsupportedKey(k string) bool {
	for _, s := range []string{"attn_pool", ".ls_1.", ".ls_2.", "ln_attn", "patchnorm_pre_ln", "visual.trunk.", "visual.head.",
		"text.transformer.", "text.proj", "ln_inner", "attn.ln", "attn.logit_scale", "text_decoder", "visual.attnpool"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

var (
	topKeys   = []string{"positional_embedding", "text_projection", "logit_scale", "token_embedding.weight", "ln_final.weight", "ln_final.bias"}
	visKeys   = []string{"visual.class_embedding", "visual.positional_embedding", "visual.conv1.weight", "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias", "visual.proj"}
	blockKeys = []string{"ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
		"ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}
)

func knownKey(k string) bool {
	if slices.Contains(topKeys, k) || slices.Contains(visKeys, k) {
		return true
	}
	for _, p := range []string{"visual.transformer.resblocks.", "transformer.resblocks."} {
		if rest, ok := strings.CutPrefix(k, p); ok {
			i := strings.IndexByte(rest, '.')
			if i <= 0 {
				return false
			}
			if _, err := strconv.Atoi(rest[:i]); err != nil {
				return false
			}
			return slices.Contains(blockKeys, rest[i+1:])
		}
	}
	return false
}

// access is how one transformers tensor is read from open_clip's.
type access struct {
	name  string // open_clip key, without the module prefix
	part  int    // 0, 1, 2: q, k or v row block of in_proj; -1: whole tensor
	trans bool   // [in, out] "x @ proj" matrix read as a torch Linear weight [out, in]
}

// hfLayer maps the part of a transformers layer key after
// "encoder.layers.N." onto open_clip's block key.
var hfLayer = map[string]access{
	"self_attn.q_proj.weight": {"attn.in_proj_weight", 0, false}, "self_attn.q_proj.bias": {"attn.in_proj_bias", 0, false},
	"self_attn.k_proj.weight": {"attn.in_proj_weight", 1, false}, "self_attn.k_proj.bias": {"attn.in_proj_bias", 1, false},
	"self_attn.v_proj.weight": {"attn.in_proj_weight", 2, false}, "self_attn.v_proj.bias": {"attn.in_proj_bias", 2, false},
	"self_attn.out_proj.weight": {"attn.out_proj.weight", -1, false}, "self_attn.out_proj.bias": {"attn.out_proj.bias", -1, false},
	"layer_norm1.weight": {"ln_1.weight", -1, false}, "layer_norm1.bias": {"ln_1.bias", -1, false},
	"layer_norm2.weight": {"ln_2.weight", -1, false}, "layer_norm2.bias": {"ln_2.bias", -1, false},
	"mlp.fc1.weight": {"mlp.c_fc.weight", -1, false}, "mlp.fc1.bias": {"mlp.c_fc.bias", -1, false},
	"mlp.fc2.weight": {"mlp.c_proj.weight", -1, false}, "mlp.fc2.bias": {"mlp.c_proj.bias", -1, false},
}

// hfTop maps the keys outside the layers.
var hfTop = map[string]access{
	"vision_model.embeddings.class_embedding":           {"visual.class_embedding", -1, false},
	"vision_model.embeddings.patch_embedding.weight":    {"visual.conv1.weight", -1, false},
	"vision_model.embeddings.position_embedding.weight": {"visual.positional_embedding", -1, false},
	"vision_model.pre_layrnorm.weight":                  {"visual.ln_pre.weight", -1, false},
	"vision_model.pre_layrnorm.bias":                    {"visual.ln_pre.bias", -1, false},
	"vision_model.post_layernorm.weight":                {"visual.ln_post.weight", -1, false},
	"vision_model.post_layernorm.bias":                  {"visual.ln_post.bias", -1, false},
	"visual_projection.weight":                          {"visual.proj", -1, true},
	"text_model.embeddings.token_embedding.weight":      {"token_embedding.weight", -1, false},
	"text_model.embeddings.position_embedding.weight":   {"positional_embedding", -1, false},
	"text_model.final_layer_norm.weight":                {"ln_final.weight", -1, false},
	"text_model.final_layer_norm.bias":                  {"ln_final.bias", -1, false},
	"text_projection.weight":                            {"text_projection", -1, true},
	"logit_scale":                                       {"logit_scale", -1, false},
}

// Map returns how the transformers key name is read from open_clip's state
// dict, and false for a name with no counterpart.
func mapName(name string) (access, bool) {
	if a, ok := hfTop[name]; ok {
		return a, true
	}
	for _, t := range []struct{ hf, oc string }{{"vision_model.encoder.layers.", "visual.transformer.resblocks."}, {"text_model.encoder.layers.", "transformer.resblocks."}} {
		rest, ok := strings.CutPrefix(name, t.hf)
		if !ok {
			continue
		}
		i := strings.IndexByte(rest, '.')
		if i <= 0 {
			return access{}, false
		}
		a, ok := hfLayer[rest[i+1:]]
		if !ok {
			return access{}, false
		}
		a.name = t.oc + rest[:i] + "." + a.name
		return a, true
	}
	return access{}, false
}

// OpenCLIPName is the open_clip key a transformers CLIPModel key is read
// from, and for q/k/v the row block (0, 1, 2) of it; "" when there is none.
func OpenCLIPName(hf string) (string, int) {
	a, ok := mapName(hf)
	if !ok {
		return "", -1
	}
	return a.name, a.part
}

// Shape implements clip.Weights.
func (w *Weights) Shape(name string) ([]int64, bool) {
	a, ok := mapName(name)
	if !ok {
		return nil, false
	}
	s, ok := w.src.Shape(w.prefix + a.name)
	if !ok {
		return nil, false
	}
	s = slices.Clone(s)
	switch {
	case a.part >= 0:
		if len(s) == 0 || s[0]%3 != 0 {
			return nil, false
		}
		s[0] /= 3
	case a.trans:
		if len(s) != 2 {
			return nil, false
		}
		s[0], s[1] = s[1], s[0]
	}
	return s, true
}

// Float32 implements clip.Weights.
func (w *Weights) Float32(name string) ([]float32, error) {
	a, ok := mapName(name)
	if !ok {
		return nil, fmt.Errorf("openclip: no open_clip counterpart for %s", name)
	}
	s, ok := w.src.Shape(w.prefix + a.name)
	if !ok {
		return nil, fmt.Errorf("openclip: checkpoint lacks %s (for %s)", a.name, name)
	}
	v, err := w.src.Float32(w.prefix + a.name)
	if err != nil {
		return nil, err
	}
	switch {
	case a.part >= 0:
		if len(s) == 0 || s[0]%3 != 0 {
			return nil, fmt.Errorf("openclip: %s has shape %v, not 3 stacked blocks", a.name, s)
		}
		n := len(v) / 3 // rows [part·w, (part+1)·w) of [3w, ...], row-major
		return v[a.part*n : (a.part+1)*n], nil
	case a.trans:
		if len(s) != 2 {
			return nil, fmt.Errorf("openclip: %s has shape %v, want 2-D", a.name, s)
		}
		return build.Transpose(v, int(s[0]), int(s[1])), nil
	}
	return v, nil
}
