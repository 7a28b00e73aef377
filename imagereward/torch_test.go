package imagereward_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/icthp/icthp/imagereward"
	"github.com/icthp/icthp/internal/orttest"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
)

// A small ImageReward that PyTorch saved (torch.save of a state dict in the
// original layout) and scored with a torch transcription of vit.py, med.py
// and ImageReward.score, from the image files through torchvision and the
// tokenizer transcription (testdata/gen_torch_reference.py): converted and
// scored here from the same files and prompts, the ids are the same and the
// scores agree with PyTorch's float32 to 1e-5, plain and fused.
func TestMatchesPyTorch(t *testing.T) {
	orttest.Need(t)
	dir := filepath.Join("testdata", "torch")
	var ref struct {
		Images []string `json:"images"`
		Cases  []struct {
			Prompt string    `json:"prompt"`
			IDs    []int64   `json:"ids"`
			Scores []float64 `json:"scores"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	images := readImages(t, ref.Images...)
	for _, fused := range []bool{false, true} {
		out := t.TempDir()
		if _, err := blip.ConvertFiles(filepath.Join(dir, "ImageReward.pt"), filepath.Join(dir, "med_config.json"),
			filepath.Join(dir, "vision_config.json"), filepath.Join(dir, "vocab.txt"), out, "", blip.BuildOptions{Fused: fused}); err != nil {
			t.Fatal(err)
		}
		s, err := imagereward.Open(out, models.SessionOptions{}, imagereward.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		worst := 0.0
		for _, c := range ref.Cases {
			ids, _, err := s.Tokenizer().Encode(c.Prompt)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, c.IDs) {
				t.Errorf("%q: ids %v, PyTorch's %v", c.Prompt, ids, c.IDs)
			}
			scores, errs, err := score(context.Background(), s, c.Prompt, images)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range c.Scores {
				if errs[i] != nil {
					t.Fatalf("%s: %v", ref.Images[i], errs[i])
				}
				worst = math.Max(worst, math.Abs(scores[i]-want))
			}
		}
		t.Logf("fused=%v: max |icthp − PyTorch| = %.3g over %d prompts × %d images", fused, worst, len(ref.Cases), len(images))
		if worst > 1e-5 {
			t.Errorf("fused=%v: scores differ from PyTorch's by %g", fused, worst)
		}
	}
}
