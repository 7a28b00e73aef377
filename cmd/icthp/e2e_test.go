package main

// End to end on the command line, in process: Hugging Face checkpoint
// folders (both file formats, with and without --base) → `icthp convert` →
// `icthp score` → JSON lines, every ict, hp and hp_logit compared with an
// independent float64 computation of SPEC §1:
//
//   - pixels: Pillow 9.4's 224×224 uint8 crops (PNGs made by Pillow, or
//     icthp's crop accepted only when its sha256 equals Pillow's), scaled and
//     normalised here in float64;
//   - tokens: open_clip's ids from preprocess/text/testdata/tokenizer;
//   - model: internal/clipref (a float64 transcription of transformers'
//     CLIP) on the very weights written into the checkpoint folders.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/icthp/icthp/internal/clipref"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/checkpoint"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/ortlib"
	"github.com/icthp/icthp/preprocess"
)

const (
	repoRoot   = "../.."
	realVocab  = repoRoot + "/../shared/vocab/bpe_simple_vocab_16e6.txt.gz"
	imagesDir  = repoRoot + "/preprocess/testdata/images"
	tokenRef   = repoRoot + "/preprocess/text/testdata/tokenizer/reference.json"
	parityTol  = 1e-4
	cropSize   = 224
	contextLen = 77
)

// SPEC §1's normalisation constants, written out here rather than taken
// from the code under test.
var (
	specMean = [3]float64{0.48145466, 0.4578275, 0.40821073}
	specStd  = [3]float64{0.26862954, 0.26130258, 0.27577711}
)

// icthp runs one command line in process.
func icthp(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, args)
	return o.String(), e.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := icthp(t, args...)
	if code != 0 {
		t.Fatalf("icthp %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func needORT(t testing.TB) { t.Helper(); orttest.Need(t) }

// ---------------------------------------------------------------------------
// Reference pixels

// refImage is one image of the test set and Pillow's crop of it.
type refImage struct {
	path string
	crop []uint8 // 224×224×3, HWC
}

type pillowCase struct {
	Name       string `json:"name"`
	Src        string `json:"src"`
	Want       string `json:"want"`
	WantSHA256 string `json:"want_sha256"`
	Crop       int    `json:"crop"`
	Edge       int    `json:"shortest_edge"`
}

// The preprocess fixtures the test scores: PNG, 16-bit gray, GIF, WebP with
// alpha, BMP with alpha (Pillow's crop committed as a PNG), a palette PNG and
// JPEGs, one of them with an EXIF rotation that must not be applied (Pillow's
// crop known by its sha256). JPEGs are Pillow-exact because this binary is
// built with cgo (onnxruntime needs it), which gives preprocess libjpeg-turbo.
var fixtureNames = []string{"png_rgb8_37x53", "png_l16", "gif_gray", "webp_lossless_alpha", "bmp_rgba32",
	"png_p8", "jpeg_base_420", "jpeg_exif_orient6"}

// refImages returns the test images with their Pillow crops.
func refImages(t *testing.T) []refImage {
	t.Helper()
	var man struct{ Cases []pillowCase }
	readJSON(t, filepath.Join(imagesDir, "manifest.json"), &man)
	byName := map[string]pillowCase{}
	for _, c := range man.Cases {
		byName[c.Name] = c
	}
	pipe, err := preprocess.NewImagePipeline(preprocess.ImageOptions{ShortestEdge: cropSize, CropSize: cropSize,
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{1, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	var out []refImage
	for _, n := range fixtureNames {
		c, ok := byName[n]
		if !ok || c.Crop != cropSize || c.Edge != cropSize {
			t.Fatalf("fixture %s missing from %s/manifest.json or not 224/224", n, imagesDir)
		}
		path := filepath.Join(imagesDir, "src", c.Src)
		var crop []uint8
		if c.Want != "" {
			crop = decodePNGCrop(t, filepath.Join(imagesDir, "want", c.Want))
		} else {
			crop = verifiedCrop(t, pipe, path, c.WantSHA256)
		}
		out = append(out, refImage{path: path, crop: crop})
	}
	var demo struct {
		Cases []struct {
			Image      string `json:"image"`
			CropSHA256 string `json:"crop_sha256"`
		}
	}
	readJSON(t, filepath.Join("testdata", "demo_crops.json"), &demo)
	for _, c := range demo.Cases {
		path := filepath.Join(repoRoot, c.Image)
		out = append(out, refImage{path: path, crop: verifiedCrop(t, pipe, path, c.CropSHA256)})
	}
	if len(out) < 8 {
		t.Fatalf("only %d reference images", len(out))
	}
	return out
}

// decodePNGCrop reads a crop Pillow saved as an RGB PNG, with Go's own PNG
// decoder (not icthp's).
func decodePNGCrop(t *testing.T, path string) []uint8 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	if b.Dx() != cropSize || b.Dy() != cropSize {
		t.Fatalf("%s is %v, want 224×224", path, b)
	}
	crop := make([]uint8, 0, cropSize*cropSize*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			crop = append(crop, c.R, c.G, c.B)
		}
	}
	return crop
}

// verifiedCrop is icthp's crop of a file, accepted as the reference only
// when it is byte for byte Pillow's (same sha256).
func verifiedCrop(t *testing.T, pipe *preprocess.ImagePipeline, path, want string) []uint8 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rgb, err := pipe.Crop(data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rgb.Pix)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("%s: crop sha256 %s, Pillow's %s", path, got, want)
	}
	return rgb.Pix
}

// refPixels is SPEC §1's scaling and normalisation of a crop, in float64,
// laid out NCHW (the float32 rounding at the end is the graph's input type).
func refPixels(crop []uint8) []float32 {
	const n = cropSize * cropSize
	px := make([]float32, 3*n)
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			px[c*n+i] = float32((float64(crop[i*3+c])/255 - specMean[c]) / specStd[c])
		}
	}
	return px
}

// ---------------------------------------------------------------------------
// Reference tokens

// refIDs returns open_clip's ids for text from the tokenizer reference,
// padded with 0 to 77.
func refIDs(t *testing.T, text string) []int64 {
	t.Helper()
	var ref struct {
		Cases []struct {
			Text          *string `json:"text"`
			IDs           []int64 `json:"ids"`
			ContextLength int     `json:"context_length"`
		}
	}
	readJSON(t, tokenRef, &ref)
	for _, c := range ref.Cases {
		if c.Text != nil && *c.Text == text && (c.ContextLength == 0 || c.ContextLength == contextLen) {
			ids := make([]int64, contextLen)
			copy(ids, c.IDs)
			return ids
		}
	}
	t.Fatalf("no reference ids for %q", text)
	return nil
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ---------------------------------------------------------------------------
// Checkpoints and the reference model

// layered is what load_state_dict(strict=False) of a checkpoint over a base
// gives: the names fromBase selects come from base, the rest from fine.
type layered struct {
	fine, base clip.Weights
	fromBase   func(string) bool
}

func (l layered) pick(n string) clip.Weights {
	if l.fromBase(n) {
		return l.base
	}
	return l.fine
}
func (l layered) Shape(n string) ([]int64, bool)      { return l.pick(n).Shape(n) }
func (l layered) Float32(n string) ([]float32, error) { return l.pick(n).Float32(n) }

// refModel is the float64 reference of one converted model.
type refModel struct {
	cfg clip.Config
	w   clip.Weights
	mu  sync.Mutex
	img map[string][]float64 // image features by path
	txt map[string][]float64 // text features by ids
}

func (r *refModel) imageFeatures(t *testing.T, im refImage) []float64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.img[im.path]; ok {
		return f
	}
	f, err := clipref.ImageFeatures(&r.cfg, r.w, refPixels(im.crop), 1)
	if err != nil {
		t.Fatal(err)
	}
	r.img[im.path] = f[0]
	return f[0]
}

func (r *refModel) ict(t *testing.T, ids []int64, im refImage) float64 {
	t.Helper()
	key := fmt.Sprint(ids)
	r.mu.Lock()
	tf, ok := r.txt[key]
	r.mu.Unlock()
	if !ok {
		f, err := clipref.TextFeatures(&r.cfg, r.w, ids, 1)
		if err != nil {
			t.Fatal(err)
		}
		tf = f[0]
		r.mu.Lock()
		r.txt[key] = tf
		r.mu.Unlock()
	}
	return clipref.Cosine(tf, r.imageFeatures(t, im))
}

func (r *refModel) hpLogit(t *testing.T, im refImage) float64 {
	t.Helper()
	l, err := clipref.HPLogit(r.w, r.imageFeatures(t, im))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// e2eModels are the four converted model directories and their references.
type e2eModels struct {
	ictST, ictPT, hpST, hpPT             string // model directories
	refICTST, refICTPT, refHPST, refHPPT *refModel
}

// TestEndToEnd writes the checkpoint folders, converts them with the command
// line once, and runs every end-to-end check on the converted models (each
// a subtest: go test -run 'TestEndToEnd/parity').
func TestEndToEnd(t *testing.T) {
	needORT(t)
	if _, err := os.Stat(realVocab); err != nil {
		t.Skipf("the real CLIP vocabulary is not at %s (the end-to-end parity test needs open_clip's ids): %v", realVocab, err)
	}
	m, err := buildModels(t.TempDir())
	if err != nil {
		t.Fatalf("building the end-to-end models: %v", err)
	}
	for _, c := range []struct {
		name string
		test func(*testing.T, *e2eModels)
	}{
		{"parity", testParity},
		{"versions", testScoreVersions},
		{"bad images", testScoreBadImages},
		{"directory and glob", testScoreDirectoryAndGlob},
		{"image limits", testScoreLimits},
		{"gpu provider", testScoreProvider},
		{"missing model file", testScoreMissingModelFile},
		{"usage errors", testUsageErrors},
		{"models inspect", testModelsInspect},
		{"convert random", testConvertRandom},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, m) })
	}
}

// modelBuilder writes tiny random checkpoints under root and converts them
// with icthp convert; each method makes one of the four end-to-end models.
// The first error sticks (err), and every later step does nothing.
type modelBuilder struct {
	c    clip.Config
	all  []string // every tensor name of a whole CLIPModel
	root string
	err  error
}

func buildModels(root string) (*e2eModels, error) {
	c, err := clip.PresetConfig(clip.PresetTiny)
	if err != nil {
		return nil, err
	}
	b := &modelBuilder{c: c, all: testmodels.Names(c.Params()), root: root}
	m := &e2eModels{}
	b.ictSafetensors(m)
	b.ictTorchOverBase(m)
	b.hpSafetensors(m)
	b.hpTorchOverBase(m)
	if b.err != nil {
		return nil, b.err
	}
	return m, nil
}

func (b *modelBuilder) dir(n string) string { return filepath.Join(b.root, n) }

// only lists the tensor names keep keeps.
func (b *modelBuilder) only(keep func(string) bool) []string {
	var out []string
	for _, n := range b.all {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out
}

func (b *modelBuilder) ref(w clip.Weights) *refModel {
	return &refModel{cfg: b.c, w: testmodels.Cached(w), img: map[string][]float64{}, txt: map[string][]float64{}}
}

// write saves the named tensors of w, as float32, in the folder n.
func (b *modelBuilder) write(n string, w clip.Weights, names []string, f testmodels.Format, extra ...checkpoint.NamedTensor) {
	if b.err == nil {
		b.err = testmodels.WriteFolder(b.dir(n), b.c, w, names, f, "F32", extra...)
	}
}

// head saves w's HP head as a bare torch state dict at path, a file under
// root, and returns its full path.
func (b *modelBuilder) head(path string, w clip.Weights) string {
	full := b.dir(path)
	if b.err == nil {
		b.err = os.MkdirAll(filepath.Dir(full), 0o755)
	}
	if b.err == nil {
		b.err = testmodels.WriteHead(full, b.c, w)
	}
	return full
}

// convert runs `icthp convert KIND ARGS --out OUT`, OUT a folder under root.
func (b *modelBuilder) convert(kind, out string, args ...string) {
	if b.err != nil {
		return
	}
	args = append(append([]string{"convert", kind}, args...), "--out", b.dir(out))
	var o, e bytes.Buffer
	if code := run(context.Background(), &app{stdout: &o, stderr: &e, getenv: func(string) string { return "" }}, args); code != 0 {
		b.err = fmt.Errorf("icthp %s: exit %d: %s", strings.Join(args, " "), code, e.String())
	}
}

// ictSafetensors: ICT, safetensors, a whole CLIPModel (plus the
// position_ids buffer hub files carry), no base.
func (b *modelBuilder) ictSafetensors(m *e2eModels) {
	positionIDs := checkpoint.NamedTensor{Name: "text_model.embeddings.position_ids", DType: "I64", Shape: []int64{1, 77}, Data: make([]float32, 77)}
	ictFine := clip.NewRandom(&b.c, 101, false)
	b.write("hf-ict-st", ictFine, b.all, testmodels.Safetensors, positionIDs)
	b.convert("clip", "ict-st", "--checkpoint", b.dir("hf-ict-st"), "--tokenizer", realVocab)
	m.ictST, m.refICTST = b.dir("ict-st"), b.ref(ictFine)
}

// ictTorchOverBase: ICT, torch zip pickle, the fine-tuned tensors without
// the text tower, laid over a base (itself a torch file) that supplies it.
func (b *modelBuilder) ictTorchOverBase(m *e2eModels) {
	ictFine2, ictBase := clip.NewRandom(&b.c, 102, false), clip.NewRandom(&b.c, 103, false)
	textFromBase := func(n string) bool { return strings.HasPrefix(n, "text_model.") }
	b.write("hf-base", ictBase, b.all, testmodels.Torch)
	b.write("hf-ict-pt", ictFine2, b.only(func(n string) bool { return !textFromBase(n) }), testmodels.Torch)
	b.convert("clip", "ict-pt", "--checkpoint", b.dir("hf-ict-pt"), "--base", b.dir("hf-base"), "--tokenizer", realVocab)
	m.ictPT, m.refICTPT = b.dir("ict-pt"), b.ref(layered{fine: ictFine2, base: ictBase, fromBase: textFromBase})
}

// hpSafetensors: HP, safetensors backbone, the head as a bare torch state
// dict, no base.
func (b *modelBuilder) hpSafetensors(m *e2eModels) {
	hpFine := clip.NewRandom(&b.c, 104, true)
	b.write("hf-hp-st/hp_backbone", hpFine, b.all, testmodels.Safetensors)
	head := b.head("hf-hp-st/hp_scorer/mlp_pytorch_model.bin", hpFine)
	b.convert("hp", "hp-st", "--backbone", b.dir("hf-hp-st/hp_backbone"), "--head", head)
	m.hpST, m.refHPST = b.dir("hp-st"), b.ref(hpFine)
}

// hpTorchOverBase: HP, torch backbone without its post-layernorm and text
// tower, over the base (written by ictTorchOverBase): the base's
// post-layernorm is part of the score.
func (b *modelBuilder) hpTorchOverBase(m *e2eModels) {
	hpFine2 := clip.NewRandom(&b.c, 105, true)
	hpFromBase := func(n string) bool {
		return strings.HasPrefix(n, "text_model.") || strings.HasPrefix(n, "vision_model.post_layernorm.")
	}
	b.write("hf-hp-pt/hp_backbone", hpFine2, b.only(func(n string) bool { return !hpFromBase(n) }), testmodels.Torch)
	head := b.head("hf-hp-pt/mlp_pytorch_model.bin", hpFine2)
	b.convert("hp", "hp-pt", "--backbone", b.dir("hf-hp-pt/hp_backbone"), "--head", head, "--base", b.dir("hf-base"))
	m.hpPT, m.refHPPT = b.dir("hp-pt"), b.ref(layered{fine: hpFine2, base: clip.NewRandom(&b.c, 103, true), fromBase: hpFromBase})
}

// ---------------------------------------------------------------------------
// Output

// outLine is a line of score's JSON output, for every model kind.
type outLine struct {
	Image       string            `json:"image"`
	ICT         *float64          `json:"ict"`
	HP          *float64          `json:"hp"`
	HPLogit     *float64          `json:"hp_logit"`
	ImageReward *float64          `json:"imagereward"`
	Error       string            `json:"error"`
	Models      map[string]string `json:"models"`
}

func parseLines(t *testing.T, out string) []outLine {
	t.Helper()
	var lines []outLine
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var o outLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, o)
	}
	return lines
}

type tracker struct{ worst float64 }

func (w *tracker) check(t *testing.T, what string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s missing", what)
	}
	d := math.Abs(*got - want)
	if d > parityTol || math.IsNaN(*got) {
		t.Errorf("%s = %.9g, float64 reference %.9g (|Δ| = %.3g > %g)", what, *got, want, d, parityTol)
	}
	w.worst = math.Max(w.worst, d)
}

// longPrompt is 10,000 characters that begin with a reference text long
// enough that its first 76 tokens, all the context keeps, come before the
// padding.
func longPrompt(t *testing.T) (string, []int64) {
	t.Helper()
	base := "a very long prompt" + strings.Repeat(" with many repeated words", 30) + " "
	ids := refIDs(t, base) // panics the test if the reference lacks it
	if ids[contextLen-1] != 49407 {
		t.Fatalf("reference ids of the long prompt are not truncated: %v", ids)
	}
	p := base + strings.Repeat("and more ", (10000-len(base))/9)
	p += strings.Repeat("!", 10000-len(p))
	if len(p) != 10000 {
		t.Fatalf("long prompt has %d characters", len(p))
	}
	return p, ids
}

// ---------------------------------------------------------------------------
// Tests

// Every ict, hp and hp_logit that `icthp score` prints for models converted
// from checkpoint folders in both formats, with and without --base, equals
// the float64 computation of SPEC §1 to 1e-4.
func testParity(t *testing.T, m *e2eModels) {
	images := refImages(t)
	paths := make([]string, len(images))
	for i, im := range images {
		paths[i] = im.path
	}
	long, longIDs := longPrompt(t)
	cases := []struct {
		name          string
		ict, hp       string
		refICT, refHP *refModel
		prompt        string
		ids           []int64
		extra         []string
		viaFile       bool // the prompt through --prompt-file
	}{
		{"ict-safetensors+hp-torch-base", m.ictST, m.hpPT, m.refICTST, m.refHPPT, "a photo of a cat", refIDs(t, "a photo of a cat"), nil, false},
		{"ict-torch-base+hp-safetensors", m.ictPT, m.hpST, m.refICTPT, m.refHPST,
			"an astronaut riding a horse on mars, digital art, trending on artstation",
			refIDs(t, "an astronaut riding a horse on mars, digital art, trending on artstation"), []string{"--batch-size", "3"}, false},
		{"empty prompt", m.ictPT, "", m.refICTPT, nil, "", refIDs(t, ""), nil, false},
		{"10000-character prompt", m.ictST, m.hpST, m.refICTST, m.refHPST, long, longIDs, []string{"--batch-size", "4", "--threads", "1"}, false},
		{"10000-character prompt from a file", m.ictPT, "", m.refICTPT, nil, long, longIDs, nil, true},
		{"hp alone, no prompt", "", m.hpPT, nil, m.refHPPT, "", nil, nil, false},
	}
	var worst tracker
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"score"}
			switch {
			case c.ict != "" && c.viaFile:
				f := filepath.Join(t.TempDir(), "prompt.txt")
				if err := os.WriteFile(f, []byte(c.prompt+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--ict", c.ict, "--prompt-file", f)
			case c.ict != "":
				args = append(args, "--ict", c.ict, "--prompt", c.prompt)
			}
			if c.hp != "" {
				args = append(args, "--hp", c.hp)
			}
			args = append(append(append(args, c.extra...), "--versions"), paths...)
			out, errOut, code := icthp(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			lines := parseLines(t, out)
			if len(lines) != len(images) {
				t.Fatalf("%d lines for %d images", len(lines), len(images))
			}
			for i, l := range lines {
				im := images[i]
				if l.Image != im.path || l.Error != "" {
					t.Fatalf("line %d: %+v, want image %s without error", i, l, im.path)
				}
				if c.refICT != nil {
					worst.check(t, im.path+" ict", l.ICT, c.refICT.ict(t, c.ids, im))
					if l.Models["ict"] == "" {
						t.Errorf("no ict version in %v", l.Models)
					}
				} else if l.ICT != nil {
					t.Errorf("%s: ict without an ict model", im.path)
				}
				if c.refHP != nil {
					logit := c.refHP.hpLogit(t, im)
					worst.check(t, im.path+" hp_logit", l.HPLogit, logit)
					worst.check(t, im.path+" hp", l.HP, clipref.Sigmoid(logit))
					if l.Models["hp"] == "" {
						t.Errorf("no hp version in %v", l.Models)
					}
				} else if l.HP != nil || l.HPLogit != nil {
					t.Errorf("%s: hp without an hp model", im.path)
				}
			}
		})
	}
	t.Logf("%d images × %d runs: max |icthp − float64 reference| = %.3g", len(images), len(cases), worst.worst)
}

// The score lines carry the version strings of the model directories.
func testScoreVersions(t *testing.T, m *e2eModels) {
	out := mustRun(t, "score", "--ict", m.ictST, "--hp", m.hpST, "--prompt", "x", "--versions", "../../testdata/demo/sunset.png")
	l := parseLines(t, out)[0]
	for name, dir := range map[string]string{"ict": m.ictST, "hp": m.hpST} {
		man, err := models.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if l.Models[name] != man.Version {
			t.Errorf("%s version %q, manifest %q", name, l.Models[name], man.Version)
		}
	}
	// Without --versions the line is exactly SPEC §3's.
	out = mustRun(t, "score", "--ict", m.ictST, "--hp", m.hpST, "--prompt", "x", "../../testdata/demo/sunset.png")
	var fields map[string]any
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 || fields["image"] == nil || fields["ict"] == nil || fields["hp"] == nil || fields["hp_logit"] == nil {
		t.Errorf("line %s, want image, ict, hp, hp_logit", out)
	}
}

// A bad image among good ones gets an error line in its place, the others
// are scored as they would be alone, and the exit status is 1 with one
// line on stderr.
func testScoreBadImages(t *testing.T, m *e2eModels) {
	tmp := t.TempDir()
	garbage := filepath.Join(tmp, "garbage.png")
	if err := os.WriteFile(garbage, []byte("\x89PNG\r\n\x1a\nthis is not the rest of a PNG"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(tmp, "notes.txt")
	if err := os.WriteFile(text, []byte("not an image at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(tmp, "missing.png")
	good := []string{"../../testdata/demo/sunset.png", "../../testdata/demo/checkers.webp", filepath.Join(imagesDir, "src", "png_rgb8_37x53.png")}
	args := []string{good[0], garbage, good[1], missing, text, good[2]}
	out, errOut, code := icthp(t, append([]string{"score", "--ict", m.ictST, "--hp", m.hpST, "--prompt", "a cat", "--batch-size", "2"}, args...)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut)
	}
	if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "3 of 6 images failed") {
		t.Errorf("stderr %q, want one line saying 3 of 6 images failed", errOut)
	}
	lines := parseLines(t, out)
	if len(lines) != len(args) {
		t.Fatalf("%d lines for %d images:\n%s", len(lines), len(args), out)
	}
	alone := parseLines(t, mustRun(t, append([]string{"score", "--ict", m.ictST, "--hp", m.hpST, "--prompt", "a cat"}, good...)...))
	k := 0
	for i, l := range lines {
		if l.Image != args[i] {
			t.Fatalf("line %d is for %s, want %s", i, l.Image, args[i])
		}
		switch args[i] {
		case garbage, missing, text:
			if l.Error == "" || l.ICT != nil || l.HP != nil || l.HPLogit != nil {
				t.Errorf("bad image %s: %+v", args[i], l)
			}
		default:
			if l.Error != "" || l.ICT == nil || *l.ICT != *alone[k].ICT || *l.HPLogit != *alone[k].HPLogit {
				t.Errorf("good image %s: %+v, alone %+v", args[i], l, alone[k])
			}
			k++
		}
	}
	for _, c := range []struct {
		line outLine
		want string
	}{
		{lines[1], "undecodable"}, {lines[3], "no such file"}, {lines[4], "unsupported"},
	} {
		if !strings.Contains(strings.ToLower(c.line.Error), c.want) {
			t.Errorf("%s: error %q, want it to say %q", c.line.Image, c.line.Error, c.want)
		}
	}
}

// An image over --max-image-bytes or --max-image-pixels gets an error line
// saying so; the others are scored.
func testScoreLimits(t *testing.T, m *e2eModels) {
	sunset, checkers := "../../testdata/demo/sunset.png", "../../testdata/demo/checkers.webp" // 1648 bytes, 320×240; 66 bytes, 256×256
	for _, c := range []struct{ flag, value string }{{"--max-image-bytes", "1000"}, {"--max-image-pixels", "70000"}} {
		out, errOut, code := icthp(t, "score", "--hp", m.hpST, c.flag, c.value, sunset, checkers)
		lines := parseLines(t, out)
		if code != 1 || len(lines) != 2 || !strings.Contains(errOut, "1 of 2") {
			t.Fatalf("%s %s: exit %d, stderr %q, lines %+v", c.flag, c.value, code, errOut, lines)
		}
		if !strings.Contains(lines[0].Error, "too large") || lines[0].HP != nil {
			t.Errorf("%s %s: %+v, want a too-large error", c.flag, c.value, lines[0])
		}
		if lines[1].Error != "" || lines[1].HP == nil {
			t.Errorf("%s %s: small image %+v", c.flag, c.value, lines[1])
		}
	}
}

// Asking for a GPU provider that the onnxruntime library lacks (the CPU
// build `icthp setup` fetches) is one clear line and exit 1, not a crash;
// with a GPU build it scores.
func testScoreProvider(t *testing.T, m *e2eModels) {
	for _, p := range []string{"cuda", "cuda:1", "tensorrt"} {
		out, errOut, code := icthp(t, "score", "--provider", p, "--hp", m.hpST, "../../testdata/demo/sunset.png")
		if code == 0 {
			if l := parseLines(t, out); len(l) != 1 || l[0].HP == nil {
				t.Errorf("--provider %s: exit 0 but output %q", p, out)
			}
			continue
		}
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "execution provider unavailable") {
			t.Errorf("--provider %s: exit %d, stdout %q, stderr %q", p, code, out, errOut)
		}
	}
}

// A directory (recursively, sorted, image files only) and a glob expand to
// their files.
func testScoreDirectoryAndGlob(t *testing.T, m *e2eModels) {
	dir := t.TempDir()
	files := map[string]string{
		"b.png":        "../../testdata/demo/sunset.png",
		"a.webp":       "../../testdata/demo/checkers.webp",
		"sub/c.PNG":    filepath.Join(imagesDir, "src", "png_rgb8_37x53.png"),
		"sub/skip.txt": "testdata/demo_crops.json",
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"directory", []string{dir}, []string{"a.webp", "b.png", "sub/c.PNG"}},
		{"glob", []string{filepath.Join(dir, "*.png")}, []string{"b.png"}},
		{"glob and file", []string{filepath.Join(dir, "sub", "*"), filepath.Join(dir, "a.webp")}, []string{"sub/c.PNG", "sub/skip.txt", "a.webp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, errOut, code := icthp(t, append([]string{"score", "--hp", m.hpST}, c.args...)...)
			lines := parseLines(t, out)
			if len(lines) != len(c.want) {
				t.Fatalf("exit %d, stderr %q, lines %+v", code, errOut, lines)
			}
			for i, w := range c.want {
				if lines[i].Image != filepath.Join(dir, w) {
					t.Errorf("line %d: %s, want %s", i, lines[i].Image, w)
				}
				wantErr := strings.HasSuffix(w, ".txt") // a glob match is scored as given, so it errors
				if (lines[i].Error != "") != wantErr || (!wantErr && lines[i].HP == nil) {
					t.Errorf("line %d: %+v", i, lines[i])
				}
			}
		})
	}
	out, errOut, code := icthp(t, "score", "--hp", m.hpST, filepath.Join(dir, "*.jpeg"))
	if code != 2 || out != "" || !strings.Contains(errOut, "no image files") {
		t.Errorf("glob without matches: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A model directory with a file missing, or no directory at all, fails
// with exit 1 and one clear line naming the problem.
func testScoreMissingModelFile(t *testing.T, m *e2eModels) {
	broken := t.TempDir()
	entries, err := os.ReadDir(m.hpST)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(m.hpST, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(broken, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	brokenData := filepath.Join(t.TempDir(), "hp")
	if err := os.Rename(broken, brokenData); err != nil {
		t.Fatal(err)
	}
	noManifest := t.TempDir()
	for _, c := range []struct {
		name, dir, want string
		remove          string
	}{
		{"weights file", brokenData, "vision.onnx", "vision.onnx.data"},
		{"no model.json", noManifest, "model.json", ""},
		{"no directory", filepath.Join(noManifest, "nope"), "nope", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.remove != "" {
				if err := os.Remove(filepath.Join(c.dir, c.remove)); err != nil {
					t.Fatal(err)
				}
			}
			out, errOut, code := icthp(t, "score", "--hp", c.dir, "../../testdata/demo/sunset.png")
			if code != 1 || out != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "icthp score: ") || !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q, want one line naming %s", errOut, c.want)
			}
		})
	}
}

// Mistakes in the command line exit with 2 and one line on stderr.
func testUsageErrors(t *testing.T, m *e2eModels) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"score"},
		{"score", "--hp", m.hpST},
		{"score", "--ict", m.ictST, "img.png"},
		{"score", "--hp", m.hpST, "--no-such-flag", "img.png"},
		{"score", "--hp", m.hpST, "--batch-size", "0", "img.png"},
		{"score", "--hp", m.hpST, "--batch-size", "many", "img.png"},
		{"score", "--hp", m.hpST, "--provider", "abacus", "img.png"},
		{"score", "--hp", m.hpST, "--provider", "cuda:x", "img.png"},
		{"score", "--hp", m.hpST, "[", "img.png"},
		{"convert"},
		{"convert", "onnx"},
		{"convert", "clip", "--out", "x"},
		{"convert", "clip", "--checkpoint", "x"},
		{"convert", "hp", "--backbone", "x", "--out", "y"},
		{"convert", "random", "--preset", "vit-z", "--out", t.TempDir()},
		{"convert", "random", "--kind", "vae", "--out", t.TempDir()},
		{"models"},
		{"models", "list"},
		{"models", "inspect"},
		{"models", "inspect", "a", "b"},
		{"score", "--hp", m.hpST, "--prompt", "x", "--prompt-file", "f", "img.png"},
		{"score", "--ict", m.ictST, "--prompt", strings.Repeat("a long prompt ", 1200), "img.png"}, // over maxCommandLine
		{"score", "--hp", m.hpST, strings.Repeat("many-images ", 1500)},
	} {
		out, errOut, code := icthp(t, args...)
		if code != 2 {
			t.Errorf("icthp %q: exit %d, want 2 (stderr %q)", args, code, errOut)
			continue
		}
		if len(args) > 0 && strings.Count(errOut, "\n") != 1 {
			t.Errorf("icthp %q: stderr %q, want one line", args, errOut)
		}
		if out != "" {
			t.Errorf("icthp %q: stdout %q", args, out)
		}
	}
}

// `models inspect` says what a directory holds, as text and as JSON.
func testModelsInspect(t *testing.T, m *e2eModels) {
	man, err := models.ReadManifest(m.ictPT)
	if err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "models", "inspect", m.ictPT)
	for _, want := range []string{"kind       clip", man.Version, "bpe_simple_vocab_16e6.txt.gz",
		"pixel_values float32[batch,3,224,224]", "image_embeds float32[batch,32]",
		"input_ids int64[batch,77]", "text_embeds float32[batch,32]", "context 77"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	var j struct {
		Dir      string
		Manifest models.Manifest
		Graphs   map[string]struct {
			File            string
			Bytes           int64
			Inputs, Outputs []string
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, "models", "inspect", "--json", m.hpST)), &j); err != nil {
		t.Fatal(err)
	}
	hpMan, err := models.ReadManifest(m.hpST)
	if err != nil {
		t.Fatal(err)
	}
	g := j.Graphs["vision"]
	if j.Manifest.Kind != models.KindHP || j.Manifest.Version != hpMan.Version || g.Bytes < 1<<20 ||
		strings.Join(g.Outputs, ";") != "hp_logit float32[batch];image_embeds float32[batch,32]" {
		t.Errorf("inspect --json: %+v", j)
	}
	_, errOut, code := icthp(t, "models", "inspect", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "model.json") {
		t.Errorf("inspect of an empty folder: exit %d, stderr %q", code, errOut)
	}
}

// With no model given, `score` makes the tiny demo models in the cache
// folder and says loudly that their scores are meaningless.
func TestDemoMode(t *testing.T) {
	needORT(t)
	t.Setenv(ortlib.EnvCache, t.TempDir())
	out, errOut, code := icthp(t, "score", "--prompt", "a red apple", "../../testdata/demo")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(errOut, "DEMO MODE") || !strings.Contains(errOut, "MEANINGLESS") {
		t.Errorf("stderr does not announce the demo: %q", errOut)
	}
	lines := parseLines(t, out)
	if len(lines) != 3 || lines[0].ICT == nil || lines[0].HP == nil {
		t.Fatalf("demo output %q", out)
	}
	// The second run finds the models made by the first.
	again := parseLines(t, mustRun(t, "score", "--prompt", "a red apple", "../../testdata/demo"))
	if *again[2].ICT != *lines[2].ICT {
		t.Errorf("demo scores changed between runs: %v, %v", *again[2].ICT, *lines[2].ICT)
	}
}

// `convert random`: same seed, same version; another seed or kind, another;
// the line it prints names the directory, kind and version.
func testConvertRandom(t *testing.T, m *e2eModels) {
	root := t.TempDir()
	version := func(args ...string) string {
		out := mustRun(t, append([]string{"convert", "random", "--preset", "tiny"}, args...)...)
		f := strings.Fields(out)
		for i := range f {
			if f[i] == "version" && i+1 < len(f) {
				return strings.TrimSuffix(f[i+1], ",")
			}
		}
		t.Fatalf("no version in %q", out)
		return ""
	}
	a := version("--seed", "7", "--out", filepath.Join(root, "a"))
	b := version("--seed", "7", "--out", filepath.Join(root, "b"))
	c := version("--seed", "8", "--out", filepath.Join(root, "c"))
	h := version("--seed", "7", "--kind", "hp", "--out", filepath.Join(root, "h"))
	if a != b || a == c || !strings.HasPrefix(a, "clip-") || !strings.HasPrefix(h, "hp-") {
		t.Errorf("versions: seed 7 %s and %s, seed 8 %s, hp %s", a, b, c, h)
	}
	for _, d := range []string{"a", "h"} {
		man, err := models.ReadManifest(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"a": a, "h": h}[d]; man.Version != want {
			t.Errorf("%s: manifest version %s, printed %s", d, man.Version, want)
		}
	}
}
