package text

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The real CLIP vocabulary is not committed; CI checks the repository out
// with shared/ beside it (../shared of the repository root).
var realVocabPath = filepath.Join("..", "..", "..", "shared", "vocab", "bpe_simple_vocab_16e6.txt.gz")

var realTokenizer = sync.OnceValues(func() (*Tokenizer, error) {
	return LoadTokenizer(realVocabPath)
})

// needRealTokenizer returns a tokenizer over the real vocabulary or skips.
func needRealTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	if _, err := os.Stat(realVocabPath); err != nil {
		t.Skipf("real CLIP vocabulary not found at %s (shared/vocab beside the repository): %v", realVocabPath, err)
	}
	tok, err := realTokenizer()
	if err != nil {
		t.Fatalf("LoadTokenizer(%s): %v", realVocabPath, err)
	}
	return tok
}

type refCase struct {
	Text  string  `json:"text"`
	Clean *string `json:"clean"`
	IDs   []int64 `json:"ids"`
	Note  string  `json:"note"`
}

type refFile struct {
	Source        string    `json:"source"`
	ContextLength int       `json:"context_length"`
	SOT           int64     `json:"sot"`
	EOT           int64     `json:"eot"`
	Cases         []refCase `json:"cases"`
}

func readRefFile(t *testing.T, path string) *refFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	var f refFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s has no cases", path)
	}
	return &f
}

// TestTokenizeSharedReference checks the ids open_clip's algorithm gives
// for the texts of shared/vocab/tokenizer-reference.json.
func TestTokenizeSharedReference(t *testing.T) {
	tok := needRealTokenizer(t)
	path := filepath.Join("..", "..", "..", "shared", "vocab", "tokenizer-reference.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared reference not found at %s: %v", path, err)
	}
	ref := readRefFile(t, path)
	if tok.SOT() != ref.SOT || tok.EOT() != ref.EOT || tok.ContextLength() != ref.ContextLength {
		t.Fatalf("sot/eot/ctx = %d/%d/%d, reference %d/%d/%d", tok.SOT(), tok.EOT(), tok.ContextLength(), ref.SOT, ref.EOT, ref.ContextLength)
	}
	// The shared reference follows OpenAI CLIP, whose pattern matches
	// <|startoftext|> and <|endoftext|> in a prompt; open_clip's matches
	// <start_of_text> and <end_of_text> instead. For the texts where that
	// differs, the local reference (the same texts) holds open_clip's ids.
	openCLIP := map[string][]int64{}
	for _, c := range readLocalRefCases(t) {
		if c.Text != nil && c.IDsOpenCLIPNames != nil {
			openCLIP[*c.Text] = c.IDsOpenCLIPNames
		}
	}
	for _, c := range ref.Cases {
		got, err := tok.Encode(c.Text)
		if err != nil {
			t.Errorf("Encode(%q): %v", c.Text, err)
			continue
		}
		want := c.IDs
		if oc, ok := openCLIP[c.Text]; ok {
			want = padded(oc, len(c.IDs))
		} else if strings.Contains(c.Text, "<|") {
			t.Errorf("Encode(%q): an OpenAI special-token name with no open_clip ids in the local reference", c.Text)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", c.Text, trimPad(got), trimPad(want))
		}
	}
}

func trimPad(ids []int64) []int64 {
	n := len(ids)
	for n > 0 && ids[n-1] == 0 {
		n--
	}
	return ids[:n]
}
