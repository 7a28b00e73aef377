package build

import (
	"fmt"
	"slices"
)

// FusedKind is one kind of onnxruntime contrib kernel a graph can use in
// place of its decomposition into standard operators. Graphs with one kind
// each find which kernel an execution provider cannot run (the CUDA
// provider crashed on the all-fused graph); a provider can then get the
// graph form it runs best.
type FusedKind string

// The kinds Options.Fuse takes.
const (
	// FuseAttention is com.microsoft.Attention: q/k/v projection and
	// attention in one node (what Fused uses).
	FuseAttention FusedKind = "attention"
	// FuseMHA is com.microsoft.MultiHeadAttention after a plain q/k/v
	// projection: attention alone, the node onnxruntime's CUDA provider runs
	// with its flash and memory-efficient kernels in float16. Causal (text)
	// towers keep the plain attention.
	FuseMHA FusedKind = "mha"
	// FuseSkipLN is com.microsoft.SkipLayerNormalization: residual add,
	// bias and the next LayerNorm in one node.
	FuseSkipLN FusedKind = "skiplayernorm"
	// FuseGelu is the MLP's bias and activation in one node: BiasGelu,
	// FastGelu or QuickGelu.
	FuseGelu FusedKind = "gelu"
)

func (o Options) checkFuse() error {
	if len(o.Fuse) == 0 {
		return nil
	}
	if o.Fused || o.Int8 {
		return fmt.Errorf("%w: a list of fused kinds goes without --fused and --int8", ErrOptions)
	}
	if slices.Contains(o.Fuse, FuseAttention) && slices.Contains(o.Fuse, FuseMHA) {
		return fmt.Errorf("%w: attention and mha are two forms of one node (pick one)", ErrOptions)
	}
	return nil
}
