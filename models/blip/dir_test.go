package blip_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/icthp/icthp/internal/blipref"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/models/blip"
	"github.com/icthp/icthp/preprocess/text"
)

// The synthetic vocabulary has bert-base-uncased's special ids and
// tokenizes any ASCII prompt without [UNK].
func TestSyntheticVocab(t *testing.T) {
	v := blip.SyntheticVocab()
	tok, err := text.NewWordPiece(v)
	if err != nil {
		t.Fatal(err)
	}
	for tokName, want := range map[string]int32{"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, "[DEC]": 30522, "[ENC]": 30523} {
		if id, ok := tok.ID(tokName); !ok || id != want {
			t.Errorf("%s = %d, want %d", tokName, id, want)
		}
	}
	if n := strings.Count(string(v), "\n"); n != 30522 {
		t.Errorf("%d lines, want 30522", n)
	}
	ids, _, err := tok.Encode("An astronaut riding a horse on Mars, 4k! (trending)")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids, 100) {
		t.Errorf("[UNK] in %v", ids)
	}
}

// WriteDir writes a loadable directory whose manifest describes it, the same
// bytes give the same version, and a vocabulary with more ids than the
// embedding is refused.
func TestWriteDir(t *testing.T) {
	c := tinyConfig(t)
	w := blipref.RandomWeights(&c, 4)
	o := blip.DirOptions{Med: c.Text, Vision: c.Vision, Vocab: blip.SyntheticVocab(), Build: blip.BuildOptions{Fused: true}}
	var versions []string
	for i := 0; i < 2; i++ {
		o.Out = t.TempDir()
		man, err := blip.WriteDir(w, o)
		if err != nil {
			t.Fatal(err)
		}
		back, err := models.ReadManifest(o.Out)
		if err != nil {
			t.Fatal(err)
		}
		if back.Kind != models.KindImageReward || back.Version != man.Version || back.Text.Vocab != blip.VocabFile ||
			back.Graphs["text"].Inputs[2] != blip.InputImageTokens || back.EmbeddingDim != c.Vision.Width {
			t.Errorf("manifest %+v", back)
		}
		if _, err := os.Stat(filepath.Join(o.Out, blip.VocabFile)); err != nil {
			t.Error(err)
		}
		versions = append(versions, man.Version)
	}
	if versions[0] != versions[1] {
		t.Errorf("same weights, versions %v", versions)
	}
	small := o
	small.Med.VocabSize = 30000
	small.Out = t.TempDir()
	if _, err := blip.WriteDir(w, small); err == nil || !strings.Contains(err.Error(), "vocab_size") {
		t.Errorf("vocabulary larger than the embedding: %v", err)
	}
	bad := o
	bad.Vocab = []byte("just\nwords\n")
	if _, err := blip.WriteDir(w, bad); err == nil || !strings.Contains(err.Error(), "[UNK]") {
		t.Errorf("vocabulary without special tokens: %v", err)
	}
	if _, err := blip.ConvertFiles(filepath.Join(t.TempDir(), "none.pt"), "/nonexistent/med.json", "", "", t.TempDir(), "", blip.BuildOptions{}); err == nil {
		t.Error("missing files accepted")
	}
}
