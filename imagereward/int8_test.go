package imagereward_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// An int8 model directory scored through the Scorer: an image's score is the
// same alone and among others, even with MaxBatch 3 asked, so neither the
// vision nor the text graph ran it in a batch (their activation scales span
// the run, the text graph's over every image's tokens). That the graphs
// compute the int8 reference is models/blip's TestInt8GraphsMatchInt8Reference:
// on real images the float32 graph and the float64 reference flip an
// activation code now and then (see README, int8), so only random inputs
// agree to 1e-4.
func TestInt8ScoresAloneAndAmongOthers(t *testing.T) {
	orttest.Need(t)
	out := t.TempDir()
	man, err := blip.WriteRandomDir(blip.PresetTiny, 4, out, blip.BuildOptions{Fused: true, Int8: true})
	if err != nil {
		t.Fatal(err)
	}
	if man.Precision != models.PrecisionInt8 {
		t.Fatalf("precision %q, want %q", man.Precision, models.PrecisionInt8)
	}
	s, err := imagereward.Open(out, models.SessionOptions{MaxBatch: 3}, imagereward.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const prompt = "a red apple on a wooden table"
	images := readImages(t, "rgb8_227x224.png", "p8_310x215.gif", "webp_alpha_lossy_330x250.webp")
	ctx := context.Background()
	together, errs, err := score(ctx, s, prompt, images)
	if err != nil {
		t.Fatal(err)
	}

	for i := range images {
		if errs[i] != nil {
			t.Fatalf("image %d: %v", i, errs[i])
		}
		alone, _, err := score(ctx, s, prompt, images[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		if alone[0] != together[i] {
			t.Errorf("image %d: %v alone, %v among others", i, alone[0], together[i])
		}
	}
	t.Logf("int8 scores %v (%s)", together, filepath.Base(out))
}
