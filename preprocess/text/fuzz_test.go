package text

import (
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The tokenizer fuzz target. scripts/test.sh runs it for 15 s in CI; its seeds also run
// as plain tests in `go test`.

// fuzzTokenizers returns tokenizers over the real vocabulary when it is present (else a
// synthetic one): with the default caches, with no caches, and with a 200-token context.
var fuzzTokenizers = sync.OnceValues(func() ([3]*Tokenizer, error) {
	var ts [3]*Tokenizer
	gz, err := os.ReadFile(realVocabPath)
	if err != nil {
		gz = SyntheticVocab(20000)
	}
	for i, opts := range [][]TokenizerOption{
		nil,
		{WithPromptCacheSize(0), WithWordCacheSize(0)},
		{WithContextLength(200), WithPromptCacheSize(0)},
	} {
		if ts[i], err = NewTokenizerFromBPE(gz, opts...); err != nil {
			return ts, err
		}
	}
	return ts, nil
})

// FuzzTokenize: any bytes (invalid UTF-8, empty, control characters, entity soup, special
// token names) encode without error up to the length limit, to ids that start with
// <start_of_text>, end in <end_of_text> followed only by padding, stay in the vocabulary,
// do not depend on the caches, equal the first 76 tokens of a longer context plus
// <end_of_text> when cut, and equal the ids of the text with its invalid UTF-8 replaced
// by U+FFFD first.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"", " ", "a photo of a cat", "A  PHOTO\tof\u00a0a\u3000CAT", "&amp;amp;lt;b&gt;", "&#x1F600; &#0; &#xD800;",
		"caf\xc3\xa9 \xff\xfe invalid \xed\xa0\x80 surrogate \xf4\x90\x80\x80", "<|startoftext|><|endoftext|>", "<start_of_text><end_of_text>",
		"\u201cquoted\u201d \ufb01sh \uff21\uff22", "ſtraße İstanbul ΣΑΣ", "don't won't it's 'S 'LL",
		strings.Repeat("word ", 100), strings.Repeat("a", 500), "\x1b[31mred\x1b[0m", "Ã©tÃ© mojibake",
		"123 4567 ½ ١٢٣", "\u0345\u0345 x", "\r\n\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029",
	} {
		f.Add(s)
	}
	ts, err := fuzzTokenizers()
	if err != nil {
		f.Fatal(err)
	}
	tok, nocache, long := ts[0], ts[1], ts[2]
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := tok.Encode(text)
		if len(text) > tok.MaxInputBytes() {
			if !errors.Is(err, ErrPromptTooLong) {
				t.Fatalf("%d-byte prompt: %v, want ErrPromptTooLong", len(text), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		checkIDs(t, tok, ids)
		again, _ := tok.Encode(text) // from the prompt cache now
		fresh, err := nocache.Encode(text)
		if err != nil || !slices.Equal(ids, again) || !slices.Equal(ids, fresh) {
			t.Fatalf("cache changes the ids:\n%v\n%v\n%v (err %v)", ids, again, fresh, err)
		}
		batch := make([]int64, 2*77)
		if err := tok.EncodeBatch([]string{text, "x"}, batch); err != nil || !slices.Equal(batch[:77], ids) {
			t.Fatalf("EncodeBatch row 0 differs from Encode (err %v)", err)
		}
		l, err := long.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, long, l)
		if k := lastIndex(l, long.EOT()); k < 199 { // not cut at 200: cutting at 77 is derivable
			var want []int64
			if k < 77 {
				want = l[:77]
			} else {
				want = append(slices.Clone(l[:76]), tok.EOT())
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("77-token ids are not the 200-token ids cut:\n%v\n%v", ids, l)
			}
		}
		if fixed := decodeUTF8Replace(text); fixed != text && len(fixed) <= tok.MaxInputBytes() {
			if r, _ := tok.Encode(fixed); !slices.Equal(r, ids) {
				t.Fatalf("invalid UTF-8 is not read as U+FFFD")
			}
		}
		if c := CleanPrompt(text); !utf8.ValidString(c) || strings.TrimFunc(c, pyIsSpace) != c {
			t.Fatalf("CleanPrompt(%q) = %q: invalid UTF-8 or untrimmed", text, c)
		}
	})
}

func lastIndex(ids []int64, v int64) int {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == v {
			return i
		}
	}
	return -1
}

// checkIDs checks the shape every encoding has: <start_of_text>, ids in the vocabulary,
// a closing <end_of_text> after which only padding (0) follows.
func checkIDs(t *testing.T, tok *Tokenizer, ids []int64) {
	t.Helper()
	if len(ids) != tok.ContextLength() {
		t.Fatalf("%d ids, want %d", len(ids), tok.ContextLength())
	}
	if ids[0] != tok.SOT() {
		t.Fatalf("ids[0] = %d, want <start_of_text> %d", ids[0], tok.SOT())
	}
	k := lastIndex(ids, tok.EOT())
	if k < 1 {
		t.Fatalf("no <end_of_text> in %v", ids)
	}
	for i, id := range ids {
		if id < 0 || id >= int64(tok.VocabSize()) {
			t.Fatalf("ids[%d] = %d outside the vocabulary (%d)", i, id, tok.VocabSize())
		}
		if i > k && id != 0 {
			t.Fatalf("ids[%d] = %d after the closing <end_of_text>, want padding 0", i, id)
		}
	}
}
