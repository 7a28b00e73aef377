package clip

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/icthp/icthp/models/build"
	og "github.com/icthp/icthp/models/onnxgraph"
)

// FusedKind is one kind of onnxruntime contrib kernel a graph can use in
// place of its decomposition (build.FusedKind).
type FusedKind = build.FusedKind

// The kinds BuildOptions.Fuse takes (build.Fuse*).
const (
	FuseAttention = build.FuseAttention
	FuseMHA       = build.FuseMHA
	FuseSkipLN    = build.FuseSkipLN
	FuseGelu      = build.FuseGelu
)

// FusedKinds lists every kind, in the order ParseFuse documents.
var FusedKinds = []FusedKind{FuseAttention, FuseMHA, FuseSkipLN, FuseGelu}

// ParseFuse reads a comma-separated list of kinds ("attention,gelu");
// "" is none.
func ParseFuse(s string) ([]FusedKind, error) {
	var out []FusedKind
	for _, f := range strings.Split(s, ",") {
		k := FusedKind(strings.ToLower(strings.TrimSpace(f)))
		if k == "" {
			continue
		}
		if !slices.Contains(FusedKinds, k) {
			return nil, fmt.Errorf("%w: fused kind %q: want some of %v", ErrOptions, f, FusedKinds)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	if err := (BuildOptions{Fuse: out}).Check(); err != nil {
		return nil, err
	}
	return out, nil
}

func (b *builder) fuses(k FusedKind) bool { return slices.Contains(b.Opts.Fuse, k) }

// encoderKinds is encoder with the fused kinds of opts.Fuse and plain
// operators for the rest. Every combination computes the same function as
// encoder; with all of attention, skiplayernorm and gelu it is the graph
// encoderFused writes.
func (b *builder) encoderKinds(x, prefix string, t *TowerConfig, seq int, causal bool) string {
	g := b.G
	h, inter := t.HiddenSize, t.IntermediateSize
	bias := func(name string, n int) string {
		return g.Weight(name+".bias", []int64{int64(n)}, b.Read(name+".bias"))
	}
	matmulT := func(x, name string, in, out int) string {
		return b.LayerMatMul(x, name+".weight", in, out, b.ReadT(name+".weight", out, in), "", nil)
	}
	// residual adds delta and its bias to the stream x and returns the
	// LayerNorm ln of the sum (ln "" for none) and the sum.
	residual := func(delta, biasName string, n int, ln string) (string, string) {
		if ln != "" && b.fuses(FuseSkipLN) {
			gamma := g.Weight(ln+".weight", []int64{int64(h)}, b.Read(ln+".weight"))
			beta := g.Weight(ln+".bias", []int64{int64(h)}, b.Read(ln+".bias"))
			outs := g.OpMS("SkipLayerNormalization", []string{delta, x, gamma, beta, bias(biasName, n)}, 4,
				og.AttrFloat("epsilon", float32(t.LayerNormEps)))
			return outs[0], outs[3]
		}
		sum := g.Op("Add", []string{x, g.Op("Add", []string{delta, bias(biasName, n)})})
		if ln == "" {
			return "", sum
		}
		return b.layerNorm(sum, ln, h, t.LayerNormEps), sum
	}
	plain := b.newAttention(t, seq, causal)
	y := b.layerNorm(x, prefix+".encoder.layers.0.layer_norm1", h, t.LayerNormEps)
	for l := 0; l < t.NumLayers; l++ {
		p := prefix + ".encoder.layers." + strconv.Itoa(l) + "."
		a := b.attentionKind(y, p, t, causal, plain)
		y, x = residual(matmulT(a, p+"self_attn.out_proj", h, h), p+"self_attn.out_proj", h, p+"layer_norm2")
		m := matmulT(y, p+"mlp.fc1", h, inter)
		if b.fuses(FuseGelu) {
			m = b.biasActivation(m, bias(p+"mlp.fc1", inter), t.HiddenAct)
		} else {
			m = b.activation(g.Op("Add", []string{m, bias(p+"mlp.fc1", inter)}), t.HiddenAct)
		}
		next := ""
		if l+1 < t.NumLayers {
			next = prefix + ".encoder.layers." + strconv.Itoa(l+1) + ".layer_norm1"
		}
		y, x = residual(matmulT(m, p+"mlp.fc2", inter, h), p+"mlp.fc2", h, next)
	}
	return x
}

// attentionKind is the self-attention of layer p over y in the form the
// options ask for: merged heads [B, S, H] before out_proj.
func (b *builder) attentionKind(y, p string, t *TowerConfig, causal bool, plain *attention) string {
	g := b.G
	h := t.HiddenSize
	ws, bs := b.qkv(p+"self_attn.", h)
	switch {
	case b.fuses(FuseAttention):
		uni := int64(0)
		if causal {
			uni = 1
		}
		wqkv := g.Weight(p+"self_attn.qkv.weight", []int64{int64(h), int64(3 * h)}, ws)
		bqkv := g.Weight(p+"self_attn.qkv.bias", []int64{int64(3 * h)}, bs)
		return g.OpMS("Attention", []string{y, wqkv, bqkv}, 1,
			og.AttrInt("num_heads", int64(t.NumHeads)), og.AttrInt("unidirectional", uni))[0]
	case b.fuses(FuseMHA) && !causal:
		qkv := b.LayerMatMul(y, p+"self_attn.qkv.weight", h, 3*h, ws, p+"self_attn.qkv.bias", bs)
		outs := []string{p + "q", p + "k", p + "v"}
		g.Node("", "Split", []string{qkv, plain.split}, outs, og.AttrInt("axis", 2))
		return g.OpMS("MultiHeadAttention", outs, 1, og.AttrInt("num_heads", int64(t.NumHeads)))[0]
	}
	return plain.apply(p, b.LayerMatMul(y, p+"self_attn.qkv.weight", h, 3*h, ws, p+"self_attn.qkv.bias", bs))
}

// biasActivation is the MLP's bias add and activation as one contrib node.
func (b *builder) biasActivation(m, bias string, act Activation) string {
	g := b.G
	switch act {
	case GELU:
		return g.OpMS("BiasGelu", []string{m, bias}, 1)[0]
	case GELUTanh:
		return g.OpMS("FastGelu", []string{m, bias}, 1)[0]
	}
	return g.OpMS("QuickGelu", []string{g.Op("Add", []string{m, bias})}, 1, og.AttrFloat("alpha", 1.702))[0]
}
