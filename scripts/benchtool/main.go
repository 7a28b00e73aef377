// Command benchtool is the Go half of the benchmarks in BENCHMARKS.md: it
// writes seeded random checkpoints in Hugging Face layout (so that PyTorch
// and icthp load the same weights), runs a model directory's vision graph on
// a raw tensor (for the parity check), and times it. scripts/bench.sh and
// scripts/bench_torch.py drive it; it is not part of the icthp binary.
//
//	benchtool hf --preset P [--seed N] --out DIR
//	    DIR/backbone/{config.json,pytorch_model.bin}: the vision tower and
//	    projection of a CLIPModel (what `icthp convert hp --backbone` reads),
//	    DIR/head.bin: the HP head, DIR/arch.json: the exact architecture.
//	benchtool encode --model DIR --in FILE --n N --out FILE
//	    FILE: N×3×S×S float32 little-endian pixels; out: N×D image_embeds
//	    then N hp_logit (for an hp model), float32 little-endian.
//	benchtool time --model DIR --batch N [--runs R] [--threads T] [--provider P] [--text]
//	    one warm-up run, then R timed runs of the vision graph at batch N;
//	    prints one JSON object with the seconds of each run and the best and
//	    median images/s (--text: one line). An --fp16 model whose graph takes
//	    float16 pixels is fed halves made before the runs (EncodeImagesHalf).
//	benchtool pixels --preset P [--batch N] [--runs R] [--provider P]
//	    an --fp16 HP graph of seeded random weights in both forms, float16
//	    pixel_values and the older float32 one cast inside: whether they give
//	    the same bits on the same (rounded) pixels, and each one's images/s;
//	    one JSON object {"step": "pixels", ...}.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/x448/float16"

	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool hf|encode|time|pixels [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "hf":
		err = writeHF(os.Args[2:])
	case "encode":
		err = encode(os.Args[2:])
	case "time":
		err = timeRuns(os.Args[2:])
	case "pixels":
		err = comparePixels(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want hf, encode, time or pixels", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// arch is what bench_torch.py needs to build the same tower (config.json
// as hub files have it is deliberately stale; see internal/testmodels).
type arch struct {
	Preset        string  `json:"preset"`
	Seed          uint64  `json:"seed"`
	ImageSize     int     `json:"image_size"`
	PatchSize     int     `json:"patch_size"`
	Hidden        int     `json:"hidden_size"`
	Layers        int     `json:"num_layers"`
	Heads         int     `json:"num_heads"`
	Intermediate  int     `json:"intermediate_size"`
	Act           string  `json:"hidden_act"`
	LayerNormEps  float64 `json:"layer_norm_eps"`
	ProjectionDim int     `json:"projection_dim"`
}

func writeHF(args []string) error {
	fs := flag.NewFlagSet("hf", flag.ContinueOnError)
	preset := fs.String("preset", "vit-b-32", "tiny, vit-b-32, vit-l-14 or vit-h-14")
	seed := fs.Uint64("seed", 1, "weights seed")
	out := fs.String("out", "", "output folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	c, err := clip.PresetConfig(clip.Preset(*preset))
	if err != nil {
		return err
	}
	w := clip.NewRandom(&c, *seed, true)
	if err := testmodels.WriteFolder(filepath.Join(*out, "backbone"), c, w, testmodels.Names(c.VisionParams()), testmodels.Torch, "F32"); err != nil {
		return err
	}
	if err := testmodels.WriteHead(filepath.Join(*out, "head.bin"), c, w); err != nil {
		return err
	}
	v := c.Vision
	a := arch{Preset: *preset, Seed: *seed, ImageSize: v.ImageSize, PatchSize: v.PatchSize, Hidden: v.HiddenSize,
		Layers: v.NumLayers, Heads: v.NumHeads, Intermediate: v.IntermediateSize, Act: string(v.HiddenAct),
		LayerNormEps: v.LayerNormEps, ProjectionDim: c.ProjectionDim}
	b, _ := json.MarshalIndent(a, "", "  ")
	return os.WriteFile(filepath.Join(*out, "arch.json"), b, 0o644)
}

// open opens a model directory on provider ("cpu", "cuda[:N]",
// "tensorrt[:N]"); onnxruntime comes from $ICTHP_ORT_LIB when set.
func open(dir string, threads int, provider string) (*models.Model, error) {
	p, dev, err := models.ParseProvider(provider)
	if err != nil {
		return nil, err
	}
	return models.Open(dir, models.SessionOptions{Provider: p, DeviceID: dev, IntraOpThreads: threads,
		LibraryPath: os.Getenv("ICTHP_ORT_LIB")})
}

func encode(args []string) error {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	dir := fs.String("model", "", "model directory")
	in := fs.String("in", "", "pixels, float32 little-endian NCHW")
	n := fs.Int("n", 1, "images in the file")
	out := fs.String("out", "", "output file")
	threads := fs.Int("threads", 0, "onnxruntime intra-op threads (0: one per core)")
	provider := fs.String("provider", "cpu", "cpu, cuda[:N] or tensorrt[:N]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	if len(raw)%(4**n) != 0 {
		return fmt.Errorf("%s: %d bytes is not %d float32 images", *in, len(raw), *n)
	}
	px := make([]float32, len(raw)/4)
	for i := range px {
		px[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	m, err := open(*dir, *threads, *provider)
	if err != nil {
		return err
	}
	defer m.Close()
	outs, err := m.EncodeImages(context.Background(), px, *n)
	if err != nil {
		return err
	}
	// Outputs in the manifest's order; write image_embeds first.
	names := m.Manifest.Graphs["vision"].Outputs
	var buf []byte
	for _, want := range []string{clip.OutputImage, clip.OutputHPLogi} {
		for i, name := range names {
			if name != want {
				continue
			}
			for _, v := range outs[i] {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
	}
	return os.WriteFile(*out, buf, 0o644)
}

func timeRuns(args []string) error {
	fs := flag.NewFlagSet("time", flag.ContinueOnError)
	dir := fs.String("model", "", "model directory")
	batch := fs.Int("batch", 1, "images per run")
	runs := fs.Int("runs", 5, "timed runs")
	text := fs.Bool("text", false, "print one line for people instead of JSON")
	provider := fs.String("provider", "cpu", "cpu, cuda[:N] or tensorrt[:N]")
	threads := fs.Int("threads", 0, "onnxruntime intra-op threads (0: one per core)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *batch < 1 || *runs < 1 {
		return errors.New("--batch and --runs must be positive")
	}
	m, err := open(*dir, *threads, *provider)
	if err != nil {
		return err
	}
	defer m.Close()
	s := m.Manifest.Image.CropSize
	px := make([]float32, *batch*3*s*s)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range px {
		px[i] = float32(rng.NormFloat64())
	}
	ctx := context.Background()
	encode := func() error { _, err := m.EncodeImages(ctx, px, *batch); return err }
	if m.HalfPixels() {
		h := make([]float16.Float16, len(px))
		models.HalfFromFloat32(h, px)
		encode = func() error { _, err := m.EncodeImagesHalf(ctx, h, *batch); return err }
	}
	if err := encode(); err != nil { // warm-up
		return err
	}
	// Wall-clock seconds, and the CPU seconds the process spent (every
	// thread, user + system): on a shared machine the first depends on what
	// else runs, the second much less.
	secs, cpu := make([]float64, *runs), make([]float64, *runs)
	for i := range secs {
		start, c0 := time.Now(), cpuSeconds()
		if err := encode(); err != nil {
			return err
		}
		secs[i], cpu[i] = time.Since(start).Seconds(), cpuSeconds()-c0
	}
	sorted := slices.Clone(secs)
	slices.Sort(sorted)
	best, median := float64(*batch)/sorted[0], float64(*batch)/sorted[len(sorted)/2]
	cpuPerImage := slices.Min(cpu) / float64(*batch)
	if *text {
		_, err := fmt.Printf("%-22s %-4s %-7s batch %3d: %9.2f images/s best, %9.2f median of %d runs; %8.1f ms CPU/image\n",
			m.Manifest.Name, *provider, m.Manifest.Precision, *batch, best, median, len(secs), 1e3*cpuPerImage)
		return err
	}
	return writeJSON(os.Stdout, map[string]any{
		"engine": "icthp (onnxruntime)", "model": m.Manifest.Name, "fused": m.Manifest.Fused,
		"precision": m.Manifest.Precision, "pixels": pixelType(m), "provider": *provider,
		"batch": *batch, "threads": *threads, "cores": runtime.NumCPU(), "seconds": secs,
		"best_images_per_s": best, "median_images_per_s": median,
		"cpu_seconds": cpu, "cpu_seconds_per_image": cpuPerImage,
	})
}

// cpuSeconds is the CPU time this process has used, user + system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
