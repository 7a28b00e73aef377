package main

// ImageReward on the command line, in process: a tiny checkpoint in the
// original layout → `icthp convert imagereward` → `icthp tokenize` and
// `icthp score --imagereward` (alone, beside HP, beside ICT and HP), every score compared
// with internal/blipref (a float64 transcription of ImageReward.score) on
// the very weights written into the checkpoint, fed the torchvision
// tensors and WordPiece ids.

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/internal/testmodels"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/models/clip"
)

const bertVocab = repoRoot + "/../shared/vocab/bert-base-uncased-vocab.txt"

func TestImageRewardCommands(t *testing.T) {
	needORT(t)
	if _, err := os.Stat(bertVocab); err != nil {
		t.Skipf("real bert-base-uncased vocabulary not found at %s (shared/vocab beside the repository): %v", bertVocab, err)
	}
	c, err := blip.PresetConfig(blip.PresetTiny)
	if err != nil {
		t.Fatal(err)
	}
	w := blipref.RandomWeights(&c, 11)
	d := t.TempDir()
	ckpt, med, vis := writeOriginalFiles(t, d, &c, w)
	dir := filepath.Join(d, "ir")
	out := mustRun(t, "convert", "imagereward", "--checkpoint", ckpt, "--med-config", med, "--vision-config", vis, "--vocab", bertVocab, "--out", dir)
	if !strings.Contains(out, "kind imagereward") {
		t.Errorf("convert printed %q", out)
	}

	// Without the vision config the checkpoint's ViT is not ViT-L/16: refused.
	if _, errOut, code := icthp(t, "convert", "imagereward", "--checkpoint", ckpt, "--med-config", med, "--vocab", bertVocab, "--out", filepath.Join(d, "x")); code != 1 || !strings.Contains(errOut, "vision config") {
		t.Errorf("ViT-L/16 default on a tiny checkpoint: exit %d, %q", code, errOut)
	}
	checkImageRewardUsageErrors(t, d, ckpt, med, vis, dir)

	checkWordPieceTokenize(t, dir)

	// score: the float64 reference on the same tensors and ids.
	const prompt = "an astronaut riding a horse, 4k"
	src := repoRoot + "/preprocess/testdata/torchvision/src/"
	imgs := []string{src + "rgba8_300x200.png", src + "gray_310x230.gif", src + "rgb8_229x300.png"}
	want := irReference(t, &c, w, prompt, imgs)
	hpDir := filepath.Join(d, "hp")
	if _, _, _, err := testmodels.RandomDir(hpDir, models.KindHP, 3, nil, clip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	ictDir := filepath.Join(d, "ict")
	if _, _, _, err := testmodels.RandomDir(ictDir, models.KindCLIP, 5, nil, clip.BuildOptions{Fused: true}); err != nil {
		t.Fatal(err)
	}
	for _, others := range [][]string{nil, {"--hp", hpDir}, {"--ict", ictDir, "--hp", hpDir}} {
		withHP, withICT := len(others) > 0, len(others) > 2
		args := append([]string{"score", "--imagereward", dir, "--prompt", prompt, "--batch-size", "2"}, others...)
		got := parseLines(t, mustRun(t, append(args, imgs...)...))
		if len(got) != len(imgs) {
			t.Fatalf("%d lines for %d images", len(got), len(imgs))
		}
		for i, l := range got {
			if l.Image != imgs[i] || l.ImageReward == nil || (l.ICT != nil) != withICT || (l.HP != nil) != withHP {
				t.Errorf("line %d: %+v", i, l)
				continue
			}
			if d := math.Abs(*l.ImageReward - want[i]); d > 1e-5 {
				t.Errorf("%s: imagereward %g, float64 reference %g (|Δ| %g)", imgs[i], *l.ImageReward, want[i], d)
			}
		}
	}

	checkFP16ImageReward(t, d, []string{"--checkpoint", ckpt, "--med-config", med, "--vision-config", vis, "--vocab", bertVocab}, dir, prompt, imgs, want)

	// The command's image limits reach ImageReward's own decoding.
	stdout, errOut, code := icthp(t, "score", "--imagereward", dir, "--prompt", prompt, "--max-image-pixels", "1000", imgs[0])
	if l := parseLines(t, stdout); code != 1 || len(l) != 1 || !strings.Contains(l[0].Error, "too large") {
		t.Errorf("--max-image-pixels 1000: exit %d, %q, stderr %q", code, stdout, errOut)
	}

	// convert random: --preset imagereward-tiny and --kind imagereward --preset tiny are one model.
	a := mustRun(t, "convert", "random", "--preset", "imagereward-tiny", "--seed", "4", "--out", filepath.Join(d, "r1"))
	b := mustRun(t, "convert", "random", "--kind", "imagereward", "--preset", "tiny", "--seed", "4", "--out", filepath.Join(d, "r2"))
	if version(a) == "" || version(a) != version(b) {
		t.Errorf("random conversions: %q / %q", a, b)
	}
}

func version(convertOut string) string {
	_, v, _ := strings.Cut(convertOut, "version ")
	v, _, _ = strings.Cut(v, ",")
	return v
}

// TestConvertRandomImageRewardVocab: `convert random --kind imagereward
// --tokenizer FILE` writes the vocabulary it is given: a word placed on
// line 2001 of an otherwise synthetic vocab.txt tokenizes to id 2000, as
// one piece, and model.json no longer says synthetic.
func TestConvertRandomImageRewardVocab(t *testing.T) {
	d := t.TempDir()
	lines := strings.Split(strings.TrimSuffix(string(blip.SyntheticVocab()), "\n"), "\n")
	lines[2000] = "zebrafish"
	vocab := []byte(strings.Join(lines, "\n") + "\n")
	vf := filepath.Join(d, "vocab.txt")
	if err := os.WriteFile(vf, vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(d, "ir")
	mustRun(t, "convert", "random", "--kind", "imagereward", "--preset", "tiny", "--tokenizer", vf, "--out", out)
	got, err := os.ReadFile(filepath.Join(out, "vocab.txt"))
	if err != nil || !bytes.Equal(got, vocab) {
		t.Fatalf("the directory's vocab.txt is not the one given (%v)", err)
	}
	if m := mustManifest(t, out); m.Text == nil || m.Text.Synthetic {
		t.Errorf("model.json text %+v, want a non-synthetic vocabulary", m.Text)
	}
	ids := mustRun(t, "tokenize", "--model", out, "zebrafish")
	if !strings.HasPrefix(ids, "[101,2000,102,0") {
		t.Errorf("tokenize zebrafish: %s, want [101,2000,102,0,...] ([CLS] zebrafish [SEP])", ids)
	}
	big := filepath.Join(d, "big.txt")
	if err := os.WriteFile(big, []byte(strings.Repeat("x\n", 30600)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := icthp(t, "convert", "random", "--kind", "imagereward", "--preset", "tiny", "--tokenizer", big, "--out", filepath.Join(d, "big")); code != 1 || !strings.Contains(errOut, "vocabulary") {
		t.Errorf("a vocabulary over the embedding: exit %d, %q; want 1 naming the vocabulary", code, errOut)
	}
}

// writeOriginalFiles writes an ImageReward checkpoint of c's sizes with
// weights w in the original layout, with its med and vision configs, to d.
func writeOriginalFiles(t *testing.T, d string, c *blip.Config, w blipref.MapWeights) (ckpt, med, vis string) {
	t.Helper()
	ckpt, med, vis = filepath.Join(d, "ImageReward.pt"), filepath.Join(d, "med_config.json"), filepath.Join(d, "vision.json")
	if err := blipref.WriteCheckpoint(ckpt, c, w); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(med, blipref.MedConfigJSON(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vis, blipref.VisionConfigJSON(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return ckpt, med, vis
}

// checkWordPieceTokenize: tokenize --model prints 35 ids, those of the
// Python transcription of the tokenizer.
func checkWordPieceTokenize(t *testing.T, dir string) {
	t.Helper()
	var ref struct {
		Cases []struct {
			Text string  `json:"text"`
			IDs  []int64 `json:"ids"`
		} `json:"cases"`
	}
	readJSON(t, repoRoot+"/preprocess/text/testdata/wordpiece/reference.json", &ref)
	texts := []string{ref.Cases[4].Text, ref.Cases[8].Text, ref.Cases[18].Text}
	lines := strings.Split(strings.TrimSpace(mustRun(t, append([]string{"tokenize", "--model", dir}, texts...)...)), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("tokenize printed %d lines for %d texts", len(lines), len(texts))
	}
	for i, l := range lines {
		var ids []int64
		if err := json.Unmarshal([]byte(l), &ids); err != nil {
			t.Fatal(err)
		}
		if want := ref.Cases[[]int{4, 8, 18}[i]].IDs; len(ids) != 35 || !slices.Equal(ids, want) {
			t.Errorf("tokenize %q: %v, want %v", texts[i], ids, want)
		}
	}
}

// irReference is the float64 ImageReward score of each image file with
// prompt, on the torchvision tensors and WordPiece ids the model gets.
func irReference(t *testing.T, c *blip.Config, w blipref.MapWeights, prompt string, imgs []string) []float64 {
	t.Helper()
	files := make([][]byte, len(imgs))
	for i, p := range imgs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = data
	}
	good, want, err := blipref.FileScores(c, w, bertVocab, prompt, files)
	if err != nil || len(good) != len(imgs) {
		t.Fatalf("reference: %d of %d images (%v)", len(good), len(imgs), err)
	}
	return want
}

// checkFP16ImageReward converts the checkpoint of src (the convert
// imagereward flags) with --fp16 next to the float32 model in dir, and
// scores imgs within half precision of want (the float64 reference).
func checkFP16ImageReward(t *testing.T, d string, src []string, dir, prompt string, imgs []string, want []float64) {
	t.Helper()
	// --fp16: the same checkpoint in half precision (weights float16,
	// inputs and outputs as before) scores within half precision of the
	// float64 reference: 5e-3, five times float16's spacing at 1 (see
	// models/blip's TestFP16GraphsNearFloat64Reference).
	halfDir := filepath.Join(d, "ir16")
	out := mustRun(t, append(append([]string{"convert", "imagereward"}, src...), "--fp16", "--out", halfDir)...)
	if m := mustManifest(t, halfDir); !strings.Contains(out, "float16") || m.Precision != models.PrecisionFloat16 || m.Version == mustManifest(t, dir).Version {
		t.Errorf("convert --fp16 printed %q, manifest precision %q version %q (float %q)", out, m.Precision, m.Version, mustManifest(t, dir).Version)
	}
	got := parseLines(t, mustRun(t, append([]string{"score", "--imagereward", halfDir, "--prompt", prompt, "--batch-size", "2"}, imgs...)...))
	if len(got) != len(imgs) {
		t.Fatalf("fp16: %d lines for %d images", len(got), len(imgs))
	}
	worst := 0.0
	for i, l := range got {
		if l.ImageReward == nil {
			t.Errorf("fp16 line %d: %+v", i, l)
			continue
		}
		worst = math.Max(worst, math.Abs(*l.ImageReward-want[i]))
	}
	t.Logf("fp16 imagereward: max |Δ| %.3g from the float64 reference", worst)
	if worst > 5e-3 {
		t.Errorf("fp16 imagereward scores %.3g from the float64 reference, want ≤ 5e-3", worst)
	}
	out = mustRun(t, "convert", "random", "--kind", "imagereward", "--preset", "tiny", "--fp16", "--out", filepath.Join(d, "r16"))
	if m := mustManifest(t, filepath.Join(d, "r16")); !strings.Contains(out, "float16") || m.Precision != models.PrecisionFloat16 {
		t.Errorf("convert random --kind imagereward --fp16 printed %q, precision %q", out, m.Precision)
	}
}

// checkImageRewardUsageErrors: a missing --checkpoint, --int8 with --fp16,
// an unknown preset and a missing image are usage errors (exit 2).
func checkImageRewardUsageErrors(t *testing.T, d, ckpt, med, vis, dir string) {
	t.Helper()
	for _, args := range [][]string{
		{"convert", "imagereward", "--med-config", med, "--vocab", bertVocab, "--out", filepath.Join(d, "y")},
		{"convert", "imagereward", "--checkpoint", ckpt, "--med-config", med, "--vision-config", vis, "--vocab", bertVocab, "--int8", "--fp16", "--out", filepath.Join(d, "y")},
		{"convert", "random", "--kind", "imagereward", "--preset", "tiny", "--int8", "--fp16", "--out", filepath.Join(d, "y")},
		{"convert", "random", "--preset", "imagereward-huge", "--out", filepath.Join(d, "y")},
		{"score", "--imagereward", dir, filepath.Join(d, "none.png")},
	} {
		if _, _, code := icthp(t, args...); code != 2 {
			t.Errorf("icthp %v: exit %d, want 2", args, code)
		}
	}
}
