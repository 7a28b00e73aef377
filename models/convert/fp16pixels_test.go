package convert_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/x448/float16"

	"github.com/icthp/icthp/hp"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/clip"
	"github.com/icthp/icthp/models/convert"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
)

// randomHP writes a tiny HP directory of seed 5 with build options b.
func randomHP(t *testing.T, b clip.BuildOptions) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := convert.Random(convert.RandomOptions{Preset: clip.PresetTiny, Kind: models.KindHP, Seed: 5, Out: dir, Build: b}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --fp16 directories record that their image graph takes float16 pixels
// (pixel_type, manifest format 2); those written before (float32 pixels,
// cast inside: FP32Pixels builds them) and the float32 ones stay format 1
// without the field. The versions (hashes of the weights) are equal: the
// same weights, the same numbers on a GPU.
func TestFP16PixelTypeInManifest(t *testing.T) {
	cases := []struct {
		name        string
		build       clip.BuildOptions
		format      int
		pixels      string
		graphIsHalf bool
	}{
		{"fp16", clip.BuildOptions{FP16: true, Fused: true}, 2, models.PrecisionFloat16, true},
		{"fp16 float32 pixels", clip.BuildOptions{FP16: true, Fused: true, FP32Pixels: true}, 1, "", false},
		{"float32", clip.BuildOptions{Fused: true}, 1, "", false},
	}
	versions := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := randomHP(t, c.build)
			m, err := models.ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Format != c.format || m.PixelType != c.pixels {
				t.Errorf("format %d, pixel_type %q; want %d, %q", m.Format, m.PixelType, c.format, c.pixels)
			}
			versions[c.name] = m.Version
			needORT(t)
			md, err := models.Open(dir, models.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer md.Close()
			if md.HalfPixels() != c.graphIsHalf || md.Session("vision").HalfInput() != c.graphIsHalf {
				t.Errorf("HalfPixels %v, graph input half %v; want %v", md.HalfPixels(), md.Session("vision").HalfInput(), c.graphIsHalf)
			}
		})
	}
	if versions["fp16"] != versions["fp16 float32 pixels"] {
		t.Errorf("the two fp16 forms have versions %s and %s: the same weights should give one", versions["fp16"], versions["fp16 float32 pixels"])
	}
}

// A manifest that disagrees with its graph, a pixel_type in a format-1
// manifest and an unknown pixel_type are refused when the model opens,
// naming the problem.
func TestFP16PixelTypeRefused(t *testing.T) {
	needORT(t)
	oldDir := randomHP(t, clip.BuildOptions{FP16: true, FP32Pixels: true})
	newDir := randomHP(t, clip.BuildOptions{FP16: true})
	edit := func(dir string, f func(*models.Manifest)) string {
		m, err := models.ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		if err := models.WriteManifest(dir, m); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cases := []struct{ name, dir, want string }{
		{"float16 manifest over a float32 graph", edit(oldDir, func(m *models.Manifest) { m.Format, m.PixelType = 2, models.PrecisionFloat16 }),
			"pixel_type is float16, the vision graph's pixel_values is float32"},
		{"float32 manifest over a float16 graph", edit(newDir, func(m *models.Manifest) { m.PixelType = "" }),
			"pixel_type is float32, the vision graph's pixel_values is float16"},
	}
	for _, c := range cases {
		_, err := models.Open(c.dir, models.SessionOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	for name, f := range map[string]func(*models.Manifest){
		"manifest format 1 has no pixel_type": func(m *models.Manifest) { m.Format, m.PixelType = 1, models.PrecisionFloat16 },
		`pixel_type "bfloat16"`:               func(m *models.Manifest) { m.Format, m.PixelType = 2, "bfloat16" },
	} {
		dir := edit(randomHP(t, clip.BuildOptions{FP16: true}), f)
		if _, err := models.ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "pixel_type") {
			t.Errorf("%s: error %v, want one naming pixel_type", name, err)
		}
	}
}

// Both fp16 forms score images through HP's scorer (what the service
// runs: float32 rows from the CLIP pipeline, rounded for the new graph by
// the session). The new graph gives the same bits from those rows as from
// the half rows the host writes directly (TensorRGBHalf + EncodeImagesHalf).
// The old form still scores, within the CPU-only difference explained in
// models/clip's TestHalfPixelGraphEqualsCastInside.
func TestFP16FormsScoreImages(t *testing.T) {
	needORT(t)
	var imgs []*preprocess.RGB
	for _, f := range []string{"apple.jpg", "sunset.png", "checkers.webp"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "demo", f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := preprocess.DecodeRGB(data, preprocess.ImageOptions{})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	logits := map[string][]float64{}
	for _, form := range []struct {
		name  string
		build clip.BuildOptions
	}{{"new", clip.BuildOptions{FP16: true, Fused: true}}, {"old", clip.BuildOptions{FP16: true, Fused: true, FP32Pixels: true}}} {
		dir := randomHP(t, form.build)
		sc, closer, err := hp.Entry.Open(dir, scorer.OpenOptions{})
		if err != nil {
			t.Fatalf("%s form: %v", form.name, err)
		}
		defer closer.Close()
		prep := sc.Image().Preprocess()
		rows := make([]float32, len(imgs)*prep.TensorLen())
		for i, img := range imgs {
			if err := prep.Tensor(scorer.Source{RGB: img}, rows[i*prep.TensorLen():(i+1)*prep.TensorLen()]); err != nil {
				t.Fatal(err)
			}
		}
		feats, err := sc.Image().Encode(context.Background(), rows, len(imgs))
		if err != nil {
			t.Fatalf("%s form: %v", form.name, err)
		}
		for _, f := range feats {
			logits[form.name] = append(logits[form.name], f.Scalars[0])
		}
		if form.name == "new" {
			checkHalfRows(t, dir, imgs, feats)
		}
	}
	for i := range logits["new"] {
		if d := math.Abs(logits["new"][i] - logits["old"][i]); d > 5e-3 {
			t.Errorf("image %d: hp_logit %v (float16 pixels) and %v (float32 pixels): |Δ| %.3g > 5e-3", i, logits["new"][i], logits["old"][i], d)
		}
	}
}

// checkHalfRows encodes imgs through the direct half path of the model in
// dir and holds its hp_logit to the bits of feats.
func checkHalfRows(t *testing.T, dir string, imgs []*preprocess.RGB, feats []scorer.Features) {
	t.Helper()
	md, err := models.Open(dir, models.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	img := md.Manifest.Image
	p, err := preprocess.NewImagePipeline(preprocess.ImageOptions{ShortestEdge: img.ShortestEdge, CropSize: img.CropSize, Mean: img.Mean, Std: img.Std})
	if err != nil {
		t.Fatal(err)
	}
	half := make([]float16.Float16, len(imgs)*p.TensorLen())
	for i, im := range imgs {
		if err := p.TensorRGBHalf(im, half[i*p.TensorLen():(i+1)*p.TensorLen()]); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := md.EncodeImagesHalf(context.Background(), half, len(imgs))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range feats {
		if got := float64(outs[0][i]); got != f.Scalars[0] {
			t.Errorf("image %d: hp_logit %v from host halves, %v from float32 rows", i, got, f.Scalars[0])
		}
	}
}
