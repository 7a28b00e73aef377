package text

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testdata/tokenizer/reference.json holds 2755 texts with the ids open_clip's algorithm
// gives them (gen_reference.py, real ftfy and regex), including ftfy's own test cases,
// invalid UTF-8 as bytes, short contexts and prompts naming special tokens.
type localRefCase struct {
	BytesHex         string  `json:"bytes_hex"`
	Ftfy             *string `json:"ftfy"`
	ContextLength    int     `json:"context_length"`
	IDsOpenCLIPNames []int64 `json:"ids_open_clip_names"`
	Text             *string `json:"text"`
	Clean            *string `json:"clean"`
	IDs              []int64 `json:"ids"`
	Note             string  `json:"note"`
}

func readLocalRefCases(t *testing.T) []localRefCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []localRefCase }
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) < 1000 {
		t.Fatalf("reference.json has only %d cases", len(f.Cases))
	}
	return f.Cases
}

func (c *localRefCase) input(t *testing.T) string {
	if c.BytesHex != "" {
		b, err := hex.DecodeString(c.BytesHex)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if c.Text == nil {
		t.Fatalf("case %q has neither text nor bytes_hex", c.Note)
	}
	return *c.Text
}

// openCLIPIDs are the ids open_clip gives the case's text: its special-token
// names (<start_of_text>, <end_of_text>) are the ones its pattern matches in
// a prompt, where the OpenAI names the reference's ids use differ.
func (c localRefCase) openCLIPIDs() []int64 {
	if c.IDsOpenCLIPNames != nil {
		return c.IDsOpenCLIPNames
	}
	return c.IDs
}

func padded(ids []int64, n int) []int64 {
	out := make([]int64, n)
	copy(out, ids)
	return out
}

// TestTokenizeLocalReference checks cleaning (ftfy, then the whole clean) and ids for
// every case of testdata/tokenizer/reference.json against the real vocabulary.
func TestTokenizeLocalReference(t *testing.T) {
	gz := needRealVocab(t)
	byCtx := map[int]*Tokenizer{}
	tokFor := func(n int) *Tokenizer {
		if byCtx[n] == nil {
			tok, err := NewTokenizerFromBPE(gz, WithContextLength(n))
			if err != nil {
				t.Fatal(err)
			}
			byCtx[n] = tok
		}
		return byCtx[n]
	}
	bad := 0
	for i, c := range readLocalRefCases(t) {
		in := c.input(t)
		ctx := 77
		if c.ContextLength > 0 {
			ctx = c.ContextLength
		}
		if c.Ftfy != nil {
			if got := ftfyFixText(decodeUTF8Replace(in)); got != *c.Ftfy {
				t.Errorf("case %d (%s): ftfy.fix_text(%q) = %q, want %q", i, c.Note, in, got, *c.Ftfy)
				bad++
			}
		}
		if c.Clean != nil {
			if got := CleanPrompt(in); got != *c.Clean {
				t.Errorf("case %d (%s): CleanPrompt(%q) = %q, want %q", i, c.Note, in, got, *c.Clean)
				bad++
			}
		}
		got, err := tokFor(ctx).Encode(in)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if want := padded(c.openCLIPIDs(), ctx); !slices.Equal(got, want) {
			t.Errorf("case %d (%s): Encode(%q)\n got %v\nwant %v", i, c.Note, in, trimPad(got), c.IDs)
			bad++
		}
		if bad > 20 {
			t.Fatal("too many differences")
		}
	}
}

func needRealVocab(t testing.TB) []byte {
	t.Helper()
	gz, err := os.ReadFile(realVocabPath)
	if err != nil {
		t.Skipf("real CLIP vocabulary not found at %s (shared/vocab beside the repository): %v", realVocabPath, err)
	}
	return gz
}

// hfLayout derives, from a bpe_simple_vocab_16e6.txt.gz, the files Hugging Face ships for
// CLIPTokenizer / CLIPTokenizerFast (openai/clip-vit-*, laion/CLIP-ViT-H-14-*): vocab.json
// (the 256 byte symbols in bytes_to_unicode order, the same with "</w>", every merge
// concatenated, then the special tokens), merges.txt ("#version: 0.2" and the 48894 merge
// lines) and tokenizer.json (a BPE model with those, end_of_word_suffix "</w>" and the
// special tokens as added_tokens). sot/eot name the special tokens (OpenAI's names, or
// open_clip's); pairs writes tokenizer.json merges as [a, b] arrays (tokenizers >= 0.20)
// instead of "a b" strings.
func hfLayout(t *testing.T, gz []byte, sot, eot string, pairs bool) (vocabJSON, mergesTxt, tokenizerJSON []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	lines = lines[1:min(len(lines), 49152-256-2+1)]
	table, order := bytesToUnicode()
	var vocab []string
	for _, b := range order {
		vocab = append(vocab, string(table[b]))
	}
	for _, b := range order {
		vocab = append(vocab, string(table[b])+"</w>")
	}
	var merges []string
	var mergePairs [][2]string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("merge line %q", l)
		}
		merges = append(merges, f[0]+" "+f[1])
		mergePairs = append(mergePairs, [2]string{f[0], f[1]})
		vocab = append(vocab, f[0]+f[1])
	}
	vocab = append(vocab, sot, eot)
	enc := map[string]int{}
	for i, v := range vocab {
		enc[v] = i
	}
	if vocabJSON, err = json.Marshal(enc); err != nil {
		t.Fatal(err)
	}
	mergesTxt = []byte("#version: 0.2\n" + strings.Join(merges, "\n") + "\n")
	var m any = merges
	if pairs {
		m = mergePairs
	}
	doc := map[string]any{
		"version":    "1.0",
		"truncation": nil,
		"padding":    nil,
		"added_tokens": []map[string]any{
			{"id": enc[sot], "content": sot, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true},
			{"id": enc[eot], "content": eot, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true},
		},
		"normalizer":    map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFC"}, map[string]any{"type": "Lowercase"}}},
		"pre_tokenizer": map[string]any{"type": "Sequence"},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": eot, "continuing_subword_prefix": "",
			"end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false,
			"vocab": enc, "merges": m,
		},
	}
	if tokenizerJSON, err = json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	return vocabJSON, mergesTxt, tokenizerJSON
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestVocabularyFormats: the open_clip .txt.gz, HF tokenizer.json (both merge notations)
// and vocab.json + merges.txt, loaded from directories and from file paths, give the
// reference ids for every reference text, the ids open_clip itself gives
// (ids_open_clip_names where the OpenAI names differ), however the file names
// the special tokens.
func TestVocabularyFormats(t *testing.T) {
	gz := needRealVocab(t)
	root := t.TempDir()
	vj, mt, tj := hfLayout(t, gz, "<|startoftext|>", "<|endoftext|>", false)
	_, _, tjPairs := hfLayout(t, gz, "<|startoftext|>", "<|endoftext|>", true)
	vjOC, mtOC, tjOC := hfLayout(t, gz, "<start_of_text>", "<end_of_text>", false)
	dirs := map[string]string{
		"bpe_gz":           writeFiles(t, filepath.Join(root, "gz"), map[string][]byte{"bpe_simple_vocab_16e6.txt.gz": gz}),
		"tokenizer_json":   writeFiles(t, filepath.Join(root, "tj"), map[string][]byte{"tokenizer.json": tj}),
		"tokenizer_pairs":  writeFiles(t, filepath.Join(root, "tjp"), map[string][]byte{"tokenizer.json": tjPairs}),
		"vocab_merges":     writeFiles(t, filepath.Join(root, "vm"), map[string][]byte{"vocab.json": vj, "merges.txt": mt}),
		"oc_tokenizer":     writeFiles(t, filepath.Join(root, "octj"), map[string][]byte{"tokenizer.json": tjOC}),
		"oc_vocab_merges":  writeFiles(t, filepath.Join(root, "ocvm"), map[string][]byte{"vocab.json": vjOC, "merges.txt": mtOC}),
		"file:merges.txt":  filepath.Join(root, "vm", "merges.txt"),
		"file:vocab.json":  filepath.Join(root, "vm", "vocab.json"),
		"file:tokenizer":   filepath.Join(root, "tj", "tokenizer.json"),
		"file:bpe.txt.gz":  filepath.Join(root, "gz", "bpe_simple_vocab_16e6.txt.gz"),
		"oc_file:vocab.js": filepath.Join(root, "ocvm", "vocab.json"),
	}
	cases := readLocalRefCases(t)
	for name, path := range dirs {
		t.Run(name, func(t *testing.T) {
			tok, err := LoadTokenizer(path)
			if err != nil {
				t.Fatal(err)
			}
			if tok.SOT() != 49406 || tok.EOT() != 49407 || tok.VocabSize() != 49408 {
				t.Fatalf("sot %d eot %d size %d", tok.SOT(), tok.EOT(), tok.VocabSize())
			}
			cs := cases
			if strings.Contains(name, "file:") { // the same files as a directory case
				cs = cs[:100]
			}
			bad := 0
			for _, c := range cs {
				if c.ContextLength > 0 {
					continue
				}
				want := c.openCLIPIDs() // whatever the file's names for the special tokens
				in := c.input(t)
				got, err := tok.Encode(in)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, padded(want, 77)) {
					t.Errorf("Encode(%q)\n got %v\nwant %v", in, trimPad(got), want)
					if bad++; bad > 10 {
						t.Fatal("too many differences")
					}
				}
			}
		})
	}
}

// TestTokenizeCases is a table of hand-derived cases for each cleaning step and for the
// framing of the ids. Each gives the cleaned text (derived by hand; the non-ftfy steps
// checked against CPython 3.11's html.unescape, str.split and str.lower) and an
// equivalent plain prompt whose ids must be the same, or the ids themselves (the ids of
// the common words come from the shared reference: a 320, photo 1125, of 539, cat 2368).
func TestTokenizeCases(t *testing.T) {
	tok := needRealTokenizer(t)
	for _, c := range tokenizeCases() {
		t.Run(c.name, func(t *testing.T) { c.check(t, tok) })
	}
}

// tokenizeCase is one row of TestTokenizeCases.
type tokenizeCase struct {
	name, text string
	clean      string  // CleanPrompt(text)
	same       string  // a prompt with the same ids ("" = none)
	ids        []int64 // unpadded ids (nil = not checked)
}

func tokenizeCases() []tokenizeCase {
	const sot, eot = 49406, 49407
	words := func(n int) string { return strings.TrimSpace(strings.Repeat("a ", n)) }
	as := func(n int) []int64 { // <sot> a×n <eot>
		ids := []int64{sot}
		for i := 0; i < n; i++ {
			ids = append(ids, 320)
		}
		return append(ids, eot)
	}
	return []tokenizeCase{
		{"plain", "a photo of a cat", "a photo of a cat", "", []int64{sot, 320, 1125, 539, 320, 2368, eot}},
		{"upper ascii", "A PHOTO OF A CAT", "a photo of a cat", "a photo of a cat", nil},
		{"empty", "", "", "", []int64{sot, eot}},
		{"only whitespace", " \t\r\n\f\u00a0\u3000 ", "", "", []int64{sot, eot}},
		// ftfy
		{"curly double quotes", "\u201ca photo\u201d", "\"a photo\"", "\"a photo\"", nil},
		{"curly single quotes", "it\u2019s a \u2018cat\u2019", "it's a 'cat'", "it's a 'cat'", nil},
		{"ligatures", "\ufb01sh \ufb02ower", "fish flower", "fish flower", nil},
		{"full-width forms", "\uff21 \uff30\uff28\uff2f\uff34\uff2f", "a photo", "a photo", nil},
		{"NFC", "cafe\u0301", "caf\u00e9", "caf\u00e9", nil},
		{"mojibake", "Caf\u00c3\u00a9", "caf\u00e9", "caf\u00e9", nil},
		{"ftfy unescapes entities until stable", "cat &amp;amp;amp; dog", "cat & dog", "cat & dog", nil},
		// HTML: with a '<' in the text ftfy leaves entities alone; open_clip unescapes twice.
		{"html twice", "<b> &amp;amp;amp; &lt;3 &amp;gt; </b>", "<b> &amp; <3 > </b>", "", nil},
		{"html legacy entities", "<p>&copy &amp &#65</p>", "<p>\u00a9 & a</p>", "", nil},
		// whitespace as Python: every str.isspace run is one space
		{"unicode whitespace", "a\u00a0b\u2003c\u3000d\u1680e\u202ff\u205fg\u2009h", "a b c d e f g h", "a b c d e f g h", nil},
		{"zero-width space is not whitespace", "a\u200bb", "a\u200bb", "", nil},
		{"tabs and newlines", "\ta\n\nphoto\r\nof  a\tcat ", "a photo of a cat", "a photo of a cat", nil},
		// str.lower
		{"dotted capital I", "\u0130STANBUL", "i\u0307stanbul", "", nil},
		{"final sigma", "\u039f\u0394\u039f\u03a3. \u03a3\u0391\u03a3", "\u03bf\u03b4\u03bf\u03c2. \u03c3\u03b1\u03c2", "", nil},
		{"capital sharp s", "\u1e9e", "\u00df", "", nil},
		{"roman numeral", "\u216b", "\u217b", "", nil},
		// framing: padding with 0, truncation keeping <end_of_text> at position 76
		{"75 words fill the context", words(75), words(75), "", as(75)},
		{"76 words are cut", words(76), words(76), "", append(as(75)[:76], eot)},
		{"300 words are cut", words(300), words(300), "", append(as(75)[:76], eot)},
		// open_clip's pattern starts <start_of_text>|<end_of_text> (IGNORECASE, on
		// the lower-cased text): those names are the special ids mid-prompt, also
		// glued to words or after HTML unescaping; OpenAI's names are plain text,
		// split as symbols and letters ("<|", "endoftext", "|>").
		{"open_clip special token text", "a <start_of_text> cat", "a <start_of_text> cat", "", []int64{sot, 320, sot, 2368, eot}},
		{"open_clip special tokens glued", "a photo<end_of_text>of a cat", "a photo<end_of_text>of a cat", "", []int64{sot, 320, 1125, eot, 539, 320, 2368, eot}},
		{"open_clip special token upper case", "A <START_OF_TEXT> CAT", "a <start_of_text> cat", "", []int64{sot, 320, sot, 2368, eot}},
		{"open_clip special token escaped", "a&lt;end_of_text&gt;cat", "a<end_of_text>cat", "", []int64{sot, 320, eot, 2368, eot}},
		{"OpenAI special token text is plain", "a <|endoftext|> cat", "a <|endoftext|> cat", "a <| endoftext |> cat", nil},
		{"a broken special token is plain", "a <end_of_text cat", "a <end_of_text cat", "a < end _ of _ text cat", nil},
		{"invalid utf-8 reads as U+FFFD", "a\xffcat", "a\ufffdcat", "a\ufffdcat", nil},
	}
}

func (c tokenizeCase) check(t *testing.T, tok *Tokenizer) {
	if got := CleanPrompt(c.text); got != c.clean {
		t.Errorf("CleanPrompt(%q) = %q, want %q", c.text, got, c.clean)
	}
	ids, err := tok.Encode(c.text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 77 {
		t.Fatalf("%d ids", len(ids))
	}
	if c.ids != nil && !slices.Equal(ids, padded(c.ids, 77)) {
		t.Errorf("ids\n got %v\nwant %v", ids, c.ids)
	}
	if c.same != "" {
		want, _ := tok.Encode(c.same)
		if !slices.Equal(ids, want) {
			t.Errorf("Encode(%q) = %v, Encode(%q) = %v", c.text, trimPad(ids), c.same, trimPad(want))
		}
	}
}

// TestTokenizeLimits: the documented behaviour at the edges.
func TestTokenizeLimits(t *testing.T) {
	tok, err := NewTokenizerFromBPE(SyntheticVocab(500), WithMaxInputBytes(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Encode(strings.Repeat("a", 1001)); !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("1001-byte prompt: %v, want ErrPromptTooLong", err)
	}
	if _, err := tok.Encode(strings.Repeat("a", 1000)); err != nil {
		t.Fatalf("1000-byte prompt: %v", err)
	}
	dst := make([]int64, 3*77)
	err = tok.EncodeBatch([]string{"ok", strings.Repeat("b", 2000), "ok"}, dst)
	if !errors.Is(err, ErrPromptTooLong) || !strings.Contains(err.Error(), "prompt 1") {
		t.Fatalf("EncodeBatch with a long prompt: %v", err)
	}
	if err := tok.EncodeBatch([]string{"x"}, make([]int64, 76)); err == nil {
		t.Fatal("EncodeBatch accepted a dst of the wrong size")
	}
	// The largest default prompt, one 64 KiB word and 64 KiB of words, encodes (BPE of a
	// huge word is O(n log n)), cut to the context.
	big, err := NewTokenizerFromBPE(SyntheticVocab(2000))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{strings.Repeat("photograph", DefaultMaxInputBytes/10), strings.Repeat("cat ", DefaultMaxInputBytes/4)} {
		ids, err := big.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, big, ids)
		if ids[76] != big.EOT() {
			t.Fatalf("a %d-byte prompt does not fill the context: %v", len(s), ids)
		}
	}
	if _, err := big.Encode(strings.Repeat("x", DefaultMaxInputBytes+1)); !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("default limit: %v", err)
	}
	for _, bad := range []TokenizerOption{WithContextLength(0), WithMaxInputBytes(-1)} {
		if _, err := NewTokenizerFromBPE(SyntheticVocab(10), bad); err == nil {
			t.Error("invalid option accepted")
		}
	}
}

// TestBPEHeapMatchesLoop: the O(n log n) merge (words of 48 bytes and more) gives what
// the direct transcription of open_clip's bpe loop gives, on random words of the letters
// and symbols the merges use.
func TestBPEHeapMatchesLoop(t *testing.T) {
	gz, err := os.ReadFile(realVocabPath)
	if err != nil {
		gz = SyntheticVocab(20000)
	}
	v, err := parseOpenCLIPBPE(gz)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alpha := "aeioustrnlhcdmpgbwyfkvxzjq'!.-éü"
	for i := 0; i < 3000; i++ {
		n := 2 + rng.IntN(120)
		var b strings.Builder
		for b.Len() < n {
			if rng.IntN(4) == 0 { // a common chunk, so that long merges apply
				b.WriteString([]string{"photo", "graph", "ing", "tion", "the", "art", "station"}[rng.IntN(7)])
			} else {
				b.WriteByte(alpha[rng.IntN(len(alpha))])
			}
		}
		w := b.String()
		sym := func() []int32 {
			s := make([]int32, 0, len(w))
			for j := 0; j < len(w)-1; j++ {
				s = append(s, v.byteID[w[j]])
			}
			return append(s, v.byteEndID[w[len(w)-1]])
		}
		a, h := v.bpeSimple(sym()), v.bpeHeap(sym())
		if !slices.Equal(a, h) {
			t.Fatalf("word %q: loop %v, heap %v", w, a, h)
		}
	}
}

// TestTokenizerCaches: the prompt cache is bounded, least-recently-used, keyed by the raw
// prompt, and never hands out ids of another context length.
func TestTokenizerCaches(t *testing.T) {
	tok := needRealTokenizer(t)
	fresh, err := NewTokenizerFromBPE(needRealVocab(t), WithPromptCacheSize(3), WithWordCacheSize(8))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		p := strings.Repeat("photo of a cat ", i%7) + string(rune('a'+i%26))
		got, err := fresh.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tok.Encode(p)
		if !slices.Equal(got, want) {
			t.Fatalf("%q: small caches give %v, want %v", p, got, want)
		}
		if n := fresh.prompts.len(); n > 3 {
			t.Fatalf("prompt cache holds %d > 3 entries", n)
		}
		if n := fresh.words.len(); n > 8 {
			t.Fatalf("word cache holds %d > 8 entries", n)
		}
	}
	// The cached 77-id answer is not used for another context length.
	c, err := NewTokenizerFromBPE(needRealVocab(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Encode("a photo of a cat"); err != nil {
		t.Fatal(err)
	}
	c.SetContextLength(5)
	if got, _ := c.Encode("a photo of a cat"); !slices.Equal(got, []int64{49406, 320, 1125, 539, 49407}) {
		t.Fatalf("after SetContextLength(5): %v", got)
	}
	// Returned slices are the caller's: changing one does not change the cache.
	c.SetContextLength(77)
	a, _ := c.Encode("a cat")
	a[1] = 12345
	if b, _ := c.Encode("a cat"); b[1] != 320 {
		t.Fatalf("cache entry changed through a returned slice: %v", b)
	}
}

func TestLRUCache(t *testing.T) {
	c := newLRUCache[int](2)
	c.put("a", 1)
	c.put("b", 2)
	if v, ok := c.get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put("c", 3) // evicts b
	if _, ok := c.get("b"); ok {
		t.Fatal("b should have been evicted")
	}
	for k, want := range map[string]int{"a": 1, "c": 3} {
		if v, ok := c.get(k); !ok || v != want {
			t.Fatalf("%s = %d, %v", k, v, ok)
		}
	}
	c.put("a", 10)
	if v, _ := c.get("a"); v != 10 || c.len() != 2 {
		t.Fatalf("update: a = %d, len %d", v, c.len())
	}
	var none *lruCache[int] = newLRUCache[int](0)
	none.put("x", 1)
	if _, ok := none.get("x"); ok || none.len() != 0 {
		t.Fatal("a zero-size cache stores entries")
	}
}

// TestEncodeBatch: rows equal Encode, concurrently from many goroutines too.
func TestEncodeBatch(t *testing.T) {
	tok := needRealTokenizer(t)
	texts := []string{"a photo of a cat", "", "an astronaut riding a horse", strings.Repeat("x y ", 80), "caf\u00e9 &amp; \u201cbar\u201d"}
	want := make([]int64, 0, len(texts)*77)
	for _, s := range texts {
		ids, _ := tok.Encode(s)
		want = append(want, ids...)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			dst := make([]int64, len(texts)*77)
			for i := 0; i < 20; i++ {
				if err := tok.EncodeBatch(texts, dst); err != nil {
					errs <- err
					return
				}
				if !slices.Equal(dst, want) {
					errs <- errors.New("EncodeBatch rows differ from Encode")
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	dir := t.TempDir()
	bad := map[string][]byte{
		"empty/.keep":                          nil,
		"garbage/bpe_simple_vocab_16e6.txt.gz": []byte("not gzip"),
		"wordpiece/tokenizer.json":             []byte(`{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`),
		"nomerges/vocab.json":                  []byte(`{"a": 0}`),
		"notjson/tokenizer.json":               []byte(`{{{`),
		"minimal/bpe_simple_vocab_16e6.txt.gz": func() []byte {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write([]byte("#version: 0.2")) // no merges, no trailing newline
			zw.Close()
			return b.Bytes()
		}(),
	}
	for name, data := range bad {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"empty", "garbage", "wordpiece", "nomerges", "notjson", "does-not-exist"} {
		if _, err := LoadTokenizer(filepath.Join(dir, sub)); err == nil {
			t.Errorf("LoadTokenizer(%s) succeeded", sub)
		}
	}
	// A minimal open_clip file (no merges) is a valid vocabulary of 514 tokens.
	tok, err := LoadTokenizer(filepath.Join(dir, "minimal"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 514 || tok.SOT() != 512 || tok.EOT() != 513 {
		t.Fatalf("size %d sot %d eot %d", tok.VocabSize(), tok.SOT(), tok.EOT())
	}
}
