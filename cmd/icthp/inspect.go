package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/ortlib"
)

func init() {
	register(command{
		name: "models",
		args: "inspect [--json] [--ort-lib PATH] DIR | " + compareArgs,
		summary: "say what a model directory holds: kind, version, sizes, preprocessing, graphs with their inputs and outputs; " +
			"or how far apart two models of one kind are on images (embedding cosine, score |Δ|, rank agreement)",
		run: runModels,
	})
}

type graphInfo struct {
	File    string   `json:"file"`
	Bytes   int64    `json:"bytes"`
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
}

func runModels(ctx context.Context, a *app, args []string) error {
	if len(args) > 0 && args[0] == "compare" {
		return runCompare(ctx, a, args[1:])
	}
	if len(args) == 0 || args[0] != "inspect" {
		return usagef("want `models inspect DIR` or `models compare A B IMAGE...`")
	}
	if err := checkCommandLine(args); err != nil {
		return err
	}
	fs := newFlags(a, "models inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	lib := fs.String("ort-lib", "", "libonnxruntime.so to load")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one model directory")
	}
	dir := pos[0]
	man, err := models.ReadManifest(dir)
	if err != nil {
		return err
	}
	if _, err := ortlib.Init(*lib); err != nil {
		return err
	}
	graphs := map[string]graphInfo{}
	for name, g := range man.Graphs {
		gi := graphInfo{File: g.File}
		for _, f := range []string{g.File, g.Data} {
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil && f != "" {
				gi.Bytes += st.Size()
			}
		}
		ins, outs, err := ort.GetInputOutputInfo(filepath.Join(dir, g.File))
		if err != nil {
			return fmt.Errorf("graph %s: %w", name, err)
		}
		for _, i := range ins {
			gi.Inputs = append(gi.Inputs, describe(i))
		}
		for _, o := range outs {
			gi.Outputs = append(gi.Outputs, describe(o))
		}
		graphs[name] = gi
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(map[string]any{"dir": dir, "manifest": man, "graphs": graphs})
	}
	w := a.stdout
	fmt.Fprintf(w, "%s\n  kind       %s\n  name       %s\n  version    %s\n  embedding  %d\n  precision  %s (fused kernels: %v)\n",
		dir, man.Kind, man.Name, man.Version, man.EmbeddingDim, man.Precision, man.Fused)
	if im := man.Image; im != nil {
		fmt.Fprintf(w, "  image      %s pipeline, shortest edge %d, crop %d, mean %v, std %v\n", im.Pipeline, im.ShortestEdge, im.CropSize, im.Mean, im.Std)
	}
	if f := man.Formula; f != nil {
		fmt.Fprintf(w, "  formula    %s [%s]\n", f.Describe(), f.Source)
	}
	if t := man.Text; t != nil {
		syn := ""
		if t.Synthetic {
			syn = " (synthetic)"
		}
		fmt.Fprintf(w, "  text       %s, vocabulary %s%s, context %d\n", t.Tokenizer, t.Vocab, syn, t.ContextLength)
	}
	for _, n := range slices.Sorted(maps.Keys(graphs)) {
		g := graphs[n]
		fmt.Fprintf(w, "  graph %-6s %s (%.1f MB)\n      in:  %s\n      out: %s\n", n, g.File, float64(g.Bytes)/1e6,
			strings.Join(g.Inputs, ", "), strings.Join(g.Outputs, ", "))
	}
	for _, n := range man.Notes {
		fmt.Fprintf(w, "  note       %s\n", n)
	}
	return nil
}

func describe(i ort.InputOutputInfo) string {
	dims := make([]string, len(i.Dimensions))
	for k, d := range i.Dimensions {
		if d < 0 {
			dims[k] = "batch"
		} else {
			dims[k] = fmt.Sprint(d)
		}
	}
	return fmt.Sprintf("%s %s[%s]", i.Name, dataType(i.DataType), strings.Join(dims, ","))
}

// dataType names an element type as numpy does (float32, int64, float16).
func dataType(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "float32"
	case ort.TensorElementDataTypeDouble:
		return "float64"
	}
	return strings.ToLower(strings.TrimPrefix(t.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_"))
}
