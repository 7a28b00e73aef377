package text

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The real BERT vocabulary is not committed; tests read it from shared/
// beside the repository.
var realBertVocabPath = filepath.Join("..", "..", "..", "shared", "vocab", "bert-base-uncased-vocab.txt")

func needRealWordPiece(t testing.TB) *WordPiece {
	t.Helper()
	if _, err := os.Stat(realBertVocabPath); err != nil {
		t.Skipf("real bert-base-uncased vocabulary not found at %s (shared/vocab beside the repository): %v", realBertVocabPath, err)
	}
	w, err := LoadWordPiece(realBertVocabPath)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type wpCase struct {
	Text   string   `json:"text"`
	Note   string   `json:"note"`
	Tokens []string `json:"tokens"`
	IDs    []int64  `json:"ids"`
	Mask   []int64  `json:"mask"`
}

// Every case of testdata/wordpiece/reference.json (ids from a Python
// transcription of transformers 4.27's slow BertTokenizer with BLIP's added
// tokens, gen_reference.py) gives the same tokens, ids and mask.
func TestWordPieceMatchesReference(t *testing.T) {
	w := needRealWordPiece(t)
	data, err := os.ReadFile(filepath.Join("testdata", "wordpiece", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		ContextLength int      `json:"context_length"`
		DEC           int32    `json:"dec"`
		ENC           int32    `json:"enc"`
		Cases         []wpCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 30 {
		t.Fatalf("reference has %d cases", len(ref.Cases))
	}
	if w.ContextLength() != ref.ContextLength {
		t.Errorf("context length %d, reference %d", w.ContextLength(), ref.ContextLength)
	}
	if id, _ := w.ID("[DEC]"); id != ref.DEC {
		t.Errorf("[DEC] = %d, reference %d", id, ref.DEC)
	}
	if id, _ := w.ID("[ENC]"); id != ref.ENC {
		t.Errorf("[ENC] = %d, reference %d", id, ref.ENC)
	}
	for _, c := range ref.Cases {
		toks, err := w.Tokens(c.Text)
		if err != nil {
			t.Errorf("%s: %v", c.Note, err)
			continue
		}
		if !slices.Equal(toks, c.Tokens) && !(len(toks) == 0 && len(c.Tokens) == 0) {
			t.Errorf("%s (%q):\n tokens %q\n want   %q", c.Note, c.Text, toks, c.Tokens)
		}
		ids, mask, err := w.Encode(c.Text)
		if err != nil {
			t.Errorf("%s: %v", c.Note, err)
			continue
		}
		if !slices.Equal(ids, c.IDs) || !slices.Equal(mask, c.Mask) {
			t.Errorf("%s (%q):\n ids  %v\n want %v\n mask %v\n want %v", c.Note, c.Text, ids, c.IDs, mask, c.Mask)
		}
	}
}

// A small hand-made vocabulary: ids by line, greedy longest match with ##,
// [DEC]/[ENC] after the last line, truncation and padding at other lengths.
func TestWordPieceSmallVocab(t *testing.T) {
	vocab := "[PAD]\r\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\n,\n##a\naff\n"
	w, err := NewWordPiece([]byte(vocab), WithWordPieceContextLength(6))
	if err != nil {
		t.Fatal(err)
	}
	if w.VocabSize() != 14 {
		t.Errorf("vocab size %d, want 12 lines + [DEC] + [ENC]", w.VocabSize())
	}
	for _, c := range []struct {
		text string
		ids  []int64
		mask []int64
	}{
		{"unaffable", []int64{2, 5, 6, 7, 3, 0}, []int64{1, 1, 1, 1, 1, 0}},
		{"Hello, UNAFFABLE", []int64{2, 8, 9, 5, 6, 3}, []int64{1, 1, 1, 1, 1, 1}}, // cut after 4 tokens: ##able dropped
		{"affa xyz", []int64{2, 11, 10, 1, 3, 0}, []int64{1, 1, 1, 1, 1, 0}},
		{"[DEC][ENC] hello hello hello", []int64{2, 12, 13, 8, 8, 3}, []int64{1, 1, 1, 1, 1, 1}},
		{"", []int64{2, 3, 0, 0, 0, 0}, []int64{1, 1, 0, 0, 0, 0}},
	} {
		ids, mask, err := w.Encode(c.text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, c.ids) || !slices.Equal(mask, c.mask) {
			t.Errorf("%q: ids %v mask %v, want %v %v", c.text, ids, mask, c.ids, c.mask)
		}
	}

	// Batch rows equal single encodings.
	texts := []string{"hello", "unaffable", "xyz"}
	ids, mask := make([]int64, 3*6), make([]int64, 3*6)
	if err := w.EncodeBatch(texts, ids, mask); err != nil {
		t.Fatal(err)
	}
	for i, tx := range texts {
		a, m, _ := w.Encode(tx)
		if !slices.Equal(ids[i*6:(i+1)*6], a) || !slices.Equal(mask[i*6:(i+1)*6], m) {
			t.Errorf("batch row %d differs", i)
		}
	}
}

func TestWordPieceErrors(t *testing.T) {
	if _, err := NewWordPiece([]byte("[PAD]\n[UNK]\n[CLS]\n")); err == nil || !strings.Contains(err.Error(), "[SEP]") {
		t.Errorf("vocabulary without [SEP]: %v", err)
	}
	if _, err := NewWordPiece([]byte{0xff, '\n'}); err == nil {
		t.Error("non-UTF-8 vocabulary accepted")
	}
	base := []byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
	if _, err := NewWordPiece(base, WithWordPieceContextLength(1)); err == nil {
		t.Error("context length 1 accepted")
	}
	w, err := NewWordPiece(base, WithWordPieceMaxInputBytes(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Encode(strings.Repeat("a", 11)); !errors.Is(err, ErrPromptTooLong) {
		t.Errorf("11 bytes over a limit of 10: %v", err)
	}
	if err := w.EncodeBatch([]string{"a", "b"}, make([]int64, 35), make([]int64, 70)); err == nil {
		t.Error("short buffer accepted")
	}
	if _, err := LoadWordPiece(filepath.Join(t.TempDir(), "none.txt")); err == nil {
		t.Error("missing file accepted")
	}
}

// Any input encodes without panicking to [CLS] … [SEP] and padding.
func FuzzWordPiece(f *testing.F) {
	for _, s := range []string{"a photo", "[CLS][SEP]", "İΣ我", "\x00\xff\u2028", strings.Repeat("ab", 80)} {
		f.Add(s)
	}
	w, err := NewWordPiece([]byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\n##b\nb\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, mask, err := w.Encode(s)
		if err != nil {
			if errors.Is(err, ErrPromptTooLong) {
				return
			}
			t.Fatal(err)
		}
		n := 0
		for n < len(mask) && mask[n] == 1 {
			n++
		}
		if ids[0] != 2 || ids[n-1] != 3 || n < 2 {
			t.Fatalf("%q: ids %v", s, ids)
		}
		for i := n; i < len(ids); i++ {
			if mask[i] != 0 || ids[i] != 0 {
				t.Fatalf("%q: padding %v %v", s, ids, mask)
			}
		}
	})
}
