package text

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// The byte-level BPE of CLIP (open_clip SimpleTokenizer.bpe) and the three
// vocabulary formats it is read from.

const (
	// openCLIPMergeEnd is the upper slice bound open_clip applies to the
	// lines of bpe_simple_vocab_16e6.txt.gz: merges[1:49152-256-2+1].
	openCLIPMergeEnd = 49152 - 256 - 2 + 1
	// MaxSyntheticMerges is the largest merge count an open_clip-format
	// vocabulary can carry (lines 1..48894 of the file).
	MaxSyntheticMerges = openCLIPMergeEnd - 1

	wordEnd = "</w>"
	// Names of the special tokens. OpenAI CLIP and HF tokenizer.json use
	// these; open_clip names them <start_of_text>/<end_of_text> (see
	// TOKENIZER.md, "Special tokens").
	sotName      = "<|startoftext|>"
	eotName      = "<|endoftext|>"
	sotNameAlt   = "<start_of_text>"
	eotNameAlt   = "<end_of_text>"
	maxVocabSize = 1 << 24
)

// bytesToUnicode is open_clip's bytes_to_unicode: the printable bytes map to
// themselves, the others to U+0100 onwards. order lists the bytes in the
// dict's insertion order, which is the order of the first 256 vocabulary
// entries.
func bytesToUnicode() (table [256]rune, order [256]byte) {
	n := 0
	var seen [256]bool
	add := func(lo, hi int) {
		for b := lo; b <= hi; b++ {
			table[b] = rune(b)
			order[n] = byte(b)
			seen[b] = true
			n++
		}
	}
	add('!', '~')
	add(0xA1, 0xAC)
	add(0xAE, 0xFF)
	extra := 0
	for b := 0; b < 256; b++ {
		if !seen[b] {
			table[b] = rune(256 + extra)
			order[n] = byte(b)
			extra++
			n++
		}
	}
	return table, order
}

type mergeInfo struct {
	rank int32 // position in the merge list (lower merges first)
	id   int32 // vocabulary id of the merged symbol
}

// bpeVocab is an immutable vocabulary: symbol ids, merge ranks, specials.
type bpeVocab struct {
	byteID    [256]int32 // id of the symbol for byte b inside a word
	byteEndID [256]int32 // id of the symbol for byte b ending a word ("…</w>")
	merges    map[uint64]mergeInfo
	sot, eot  int32
	sotText   string // the special token strings the pre-tokenizer recognises
	eotText   string
	size      int
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// newBPEVocab builds a vocabulary from a token->id map and the merge list in
// rank order. A merge whose parts are not both in the vocabulary can never
// apply and is ignored; one whose result is missing is an error (open_clip's
// own format cannot produce either).
func newBPEVocab(encoder map[string]int32, merges [][]string) (*bpeVocab, error) {
	v := &bpeVocab{merges: make(map[uint64]mergeInfo, len(merges))}
	table, _ := bytesToUnicode()
	for b := 0; b < 256; b++ {
		c := string(table[b])
		id, ok := encoder[c]
		if !ok {
			return nil, fmt.Errorf("preprocess: vocabulary lacks the byte symbol %q", c)
		}
		v.byteID[b] = id
		id, ok = encoder[c+wordEnd]
		if !ok {
			return nil, fmt.Errorf("preprocess: vocabulary lacks the byte symbol %q", c+wordEnd)
		}
		v.byteEndID[b] = id
	}
	for rank, m := range merges {
		if len(m) != 2 {
			continue // open_clip keeps such lines in the vocabulary, but no pair can match them
		}
		a, okA := encoder[m[0]]
		b, okB := encoder[m[1]]
		if !okA || !okB {
			continue // no word can ever hold a symbol outside the vocabulary
		}
		id, okM := encoder[m[0]+m[1]]
		if !okM {
			return nil, fmt.Errorf("preprocess: merge %d (%q %q) produces a token missing from the vocabulary", rank, m[0], m[1])
		}
		v.merges[pairKey(a, b)] = mergeInfo{rank: int32(rank), id: id} // later duplicates win, as in dict(zip(merges, range))
	}
	// The vocabulary's names of the special tokens give their ids; the
	// text that stands for them in a prompt is open_clip's names whatever
	// the file's (open_clip's pattern starts <start_of_text>|<end_of_text>,
	// so a prompt holding "<|startoftext|>" is ordinary text): the same
	// prompt gives the same ids from every vocabulary format.
	var sotKey, eotKey string
	switch {
	case hasKeys(encoder, sotName, eotName):
		sotKey, eotKey = sotName, eotName
	case hasKeys(encoder, sotNameAlt, eotNameAlt):
		sotKey, eotKey = sotNameAlt, eotNameAlt
	default:
		return nil, errors.New("preprocess: vocabulary has no <|startoftext|>/<|endoftext|> tokens")
	}
	v.sot, v.eot = encoder[sotKey], encoder[eotKey]
	v.sotText, v.eotText = sotNameAlt, eotNameAlt
	v.size = len(encoder)
	return v, nil
}

func hasKeys(m map[string]int32, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// parseOpenCLIPBPE reads bpe_simple_vocab_16e6.txt.gz content the way
// open_clip's SimpleTokenizer.__init__ does: decode as UTF-8, split on
// '\n', take lines[1:48895], split each on whitespace; the vocabulary is the
// 256 byte symbols, the same with "</w>", the concatenated merges, then the
// two special tokens (dict semantics: a repeated string keeps its last id).
func parseOpenCLIPBPE(gz []byte) (*bpeVocab, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("preprocess: BPE vocabulary is not gzip: %w", err)
	}
	// The real file is 1.3 MB uncompressed; allow generous headroom.
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("preprocess: reading BPE vocabulary: %w", err)
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("preprocess: BPE vocabulary is not valid UTF-8")
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 1 {
		return nil, errors.New("preprocess: empty BPE vocabulary")
	}
	end := min(len(lines), openCLIPMergeEnd)
	var mergeLines []string
	if end > 1 {
		mergeLines = lines[1:end]
	}
	table, order := bytesToUnicode()
	vocab := make([]string, 0, 512+len(mergeLines)+2)
	for _, b := range order {
		vocab = append(vocab, string(table[b]))
	}
	for _, b := range order {
		vocab = append(vocab, string(table[b])+wordEnd)
	}
	merges := make([][]string, 0, len(mergeLines))
	for _, line := range mergeLines {
		parts := pySplit(line)
		merges = append(merges, parts)
		vocab = append(vocab, strings.Join(parts, ""))
	}
	vocab = append(vocab, sotName, eotName)
	encoder := make(map[string]int32, len(vocab))
	for i, tok := range vocab {
		encoder[tok] = int32(i)
	}
	return newBPEVocab(encoder, merges)
}

// pySplit is Python's str.split() with no arguments.
func pySplit(s string) []string {
	var out []string
	start := -1
	for i, r := range s {
		if pyIsSpace(r) {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// parseHFTokenizerJSON reads a Hugging Face tokenizer.json with a BPE model
// (model.vocab, model.merges as "a b" strings or [a, b] pairs).
func parseHFTokenizerJSON(data []byte) (*bpeVocab, error) {
	var doc struct {
		Model struct {
			Type            string            `json:"type"`
			Vocab           map[string]int32  `json:"vocab"`
			Merges          []json.RawMessage `json:"merges"`
			EndOfWordSuffix *string           `json:"end_of_word_suffix"`
		} `json:"model"`
		AddedTokens []struct {
			ID      int32  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("preprocess: tokenizer.json: %w", err)
	}
	if doc.Model.Type != "" && doc.Model.Type != "BPE" {
		return nil, fmt.Errorf("preprocess: tokenizer.json model type %q is not BPE", doc.Model.Type)
	}
	if doc.Model.EndOfWordSuffix != nil && *doc.Model.EndOfWordSuffix != wordEnd {
		return nil, fmt.Errorf("preprocess: tokenizer.json end_of_word_suffix %q is not %q", *doc.Model.EndOfWordSuffix, wordEnd)
	}
	if len(doc.Model.Vocab) == 0 {
		return nil, errors.New("preprocess: tokenizer.json has no model.vocab")
	}
	encoder := doc.Model.Vocab
	for _, t := range doc.AddedTokens {
		if _, ok := encoder[t.Content]; !ok {
			encoder[t.Content] = t.ID
		}
	}
	merges := make([][]string, 0, len(doc.Model.Merges))
	for i, raw := range doc.Model.Merges {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			merges = append(merges, strings.SplitN(s, " ", 2))
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("preprocess: tokenizer.json merge %d is neither \"a b\" nor [a, b]", i)
		}
		merges = append(merges, pair)
	}
	return checkedVocab(encoder, merges)
}

// parseVocabMerges reads a vocab.json (token -> id) and merges.txt (one
// "a b" pair a line, an optional "#version" first line).
func parseVocabMerges(vocabJSON, mergesTxt []byte) (*bpeVocab, error) {
	var encoder map[string]int32
	if err := json.Unmarshal(vocabJSON, &encoder); err != nil {
		return nil, fmt.Errorf("preprocess: vocab.json: %w", err)
	}
	var merges [][]string
	sc := bufio.NewScanner(bytes.NewReader(mergesTxt))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	first := true
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if first && strings.HasPrefix(line, "#version") {
			first = false
			continue
		}
		first = false
		if line == "" {
			continue
		}
		parts := strings.Split(line, " ")
		if len(parts) != 2 {
			return nil, fmt.Errorf("preprocess: merges.txt line %q is not a pair", line)
		}
		merges = append(merges, parts)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("preprocess: merges.txt: %w", err)
	}
	return checkedVocab(encoder, merges)
}

func checkedVocab(encoder map[string]int32, merges [][]string) (*bpeVocab, error) {
	if len(encoder) > maxVocabSize {
		return nil, fmt.Errorf("preprocess: vocabulary of %d tokens is too large", len(encoder))
	}
	for tok, id := range encoder {
		if id < 0 || int(id) >= maxVocabSize {
			return nil, fmt.Errorf("preprocess: token %q has invalid id %d", tok, id)
		}
	}
	return newBPEVocab(encoder, merges)
}

// ---------------------------------------------------------------- BPE

// bpeHeapThreshold is the word length (in bytes) from which bpe uses the
// O(n log n) heap algorithm instead of the direct O(n²) transcription of
// open_clip's loop; both give identical results.
const bpeHeapThreshold = 48

// encodeWord appends the BPE ids of one pre-token (its UTF-8 bytes) to dst.
func (v *bpeVocab) encodeWord(word string, dst []int32) []int32 {
	n := len(word)
	if n == 0 {
		return dst
	}
	if n == 1 {
		return append(dst, v.byteEndID[word[0]])
	}
	start := len(dst)
	for i := 0; i < n-1; i++ {
		dst = append(dst, v.byteID[word[i]])
	}
	dst = append(dst, v.byteEndID[word[n-1]])
	var merged []int32
	if n >= bpeHeapThreshold {
		merged = v.bpeHeap(dst[start:])
	} else {
		merged = v.bpeSimple(dst[start:])
	}
	return dst[:start+len(merged)]
}

// bpeSimple is open_clip's SimpleTokenizer.bpe on symbol ids, in place:
// repeatedly take the adjacent pair with the lowest merge rank and merge all
// of its occurrences left to right.
func (v *bpeVocab) bpeSimple(sym []int32) []int32 {
	for len(sym) > 1 {
		best, bestRank := -1, int32(0)
		var bestID int32
		for i := 0; i+1 < len(sym); i++ {
			if m, ok := v.merges[pairKey(sym[i], sym[i+1])]; ok && (best < 0 || m.rank < bestRank) {
				best, bestRank, bestID = i, m.rank, m.id
			}
		}
		if best < 0 {
			break
		}
		a, b := sym[best], sym[best+1]
		w := best
		for j := best; j < len(sym); {
			if j+1 < len(sym) && sym[j] == a && sym[j+1] == b {
				sym[w] = bestID
				j += 2
			} else {
				sym[w] = sym[j]
				j++
			}
			w++
		}
		sym = sym[:w]
	}
	return sym
}

type bpeCand struct {
	rank int32
	pos  int32 // index of the left node
	a, b int32 // the pair it was pushed for
	id   int32
}

type bpeCandHeap []bpeCand

func (h bpeCandHeap) Len() int { return len(h) }
func (h bpeCandHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h bpeCandHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *bpeCandHeap) Push(x any)   { *h = append(*h, x.(bpeCand)) }
func (h *bpeCandHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// bpeHeap computes the same result as bpeSimple in O(n log n): symbols form
// a linked list, candidate pairs sit in a heap ordered by (rank, position).
// All occurrences of one rank are merged left to right before the pairs they
// create are added, as open_clip's loop merges every occurrence of the
// chosen pair before it looks for the next one.
func (v *bpeVocab) bpeHeap(sym []int32) []int32 {
	n := len(sym)
	next := make([]int32, n)
	prev := make([]int32, n)
	alive := make([]bool, n)
	for i := range n {
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
		alive[i] = true
	}
	next[n-1] = -1
	h := make(bpeCandHeap, 0, n)
	try := func(dst *bpeCandHeap, pos int32) {
		r := next[pos]
		if r < 0 {
			return
		}
		if m, ok := v.merges[pairKey(sym[pos], sym[r])]; ok {
			*dst = append(*dst, bpeCand{rank: m.rank, pos: pos, a: sym[pos], b: sym[r], id: m.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		try(&h, int32(i))
	}
	heap.Init(&h)
	var pending bpeCandHeap
	for h.Len() > 0 {
		rank := h[0].rank
		pending = pending[:0]
		for h.Len() > 0 && h[0].rank == rank {
			c := heap.Pop(&h).(bpeCand)
			p := c.pos
			if !alive[p] || sym[p] != c.a || next[p] < 0 || sym[next[p]] != c.b {
				continue // stale: one of the two symbols has changed
			}
			r := next[p]
			sym[p] = c.id
			alive[r] = false
			next[p] = next[r]
			if next[r] >= 0 {
				prev[next[r]] = p
			}
			if prev[p] >= 0 {
				try(&pending, prev[p])
			}
			try(&pending, p)
		}
		for _, c := range pending {
			heap.Push(&h, c)
		}
	}
	w := 0
	for i := int32(0); i >= 0; i = next[i] {
		sym[w] = sym[i]
		w++
	}
	return sym[:w]
}

// ---------------------------------------------------------------- synthetic vocabulary

// syntheticCorpus holds common English and prompt words, most frequent
// first; SyntheticVocab learns its first merges from it.
const syntheticCorpus = `a the of and in on with photo to is an at by for from portrait
painting art digital detailed high quality realistic style light city night landscape
woman man girl boy cat dog red blue green white black yellow golden beautiful old young
small large big sky sun moon water sea river mountain forest tree flower house street
car window room table chair book face eyes hair hand dress fantasy cinematic lighting
illustration concept trending artstation sharp focus render unreal engine octane hd
highly intricate elegant smooth background foreground colorful dark bright soft warm
cold snow rain fire smoke cloud clouds sunset sunrise morning evening shadow reflection
standing sitting walking running flying holding looking wearing playing riding
astronaut horse space planet star stars galaxy robot castle dragon knight king queen
garden park bridge tower building road beach ocean island lake field grass stone wood
glass metal gold silver paper cake bread fruit apple orange banana coffee tea cup
bottle plate food kitchen bedroom office school station train bus boat ship plane
camera lens bokeh macro wide angle shot close up view top side front back cute happy
sad angry funny scary epic dramatic minimalist vintage modern futuristic ancient
medieval cyberpunk steampunk anime cartoon comic oil watercolor sketch drawing pencil
sculpture statue photograph studio natural volumetric ambient occlusion resolution
masterpiece best award winning professional stunning gorgeous amazing`

// SyntheticVocab returns a valid bpe_simple_vocab_16e6.txt.gz-format file
// (gzip, open_clip layout) with numMerges merges, for demo and test models
// that have no real vocabulary. It is deterministic: the first merges are
// learned by BPE training on a built-in list of common English/prompt
// words (so ordinary prompts tokenize to fewer tokens), the rest pair up
// byte symbols. numMerges is clamped to [0, MaxSyntheticMerges]. A
// tokenizer built from it has <|startoftext|> = 512+numMerges and
// <|endoftext|> = 513+numMerges.
func SyntheticVocab(numMerges int) []byte {
	numMerges = max(0, min(numMerges, MaxSyntheticMerges))
	table, order := bytesToUnicode()
	sym := func(b byte) string { return string(table[b]) }
	m := synthMerges{used: map[synthPair]bool{}, produced: map[string]bool{}}
	m.learn(syntheticWords(sym), numMerges)
	m.fill(order[:], sym, numMerges)

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	// No trailing newline: open_clip would read an empty last line as an
	// extra (empty) vocabulary entry and shift the special token ids.
	io.WriteString(zw, "\"bpe_simple_vocab_synthetic.txt#version: 0.2")
	for _, l := range m.lines {
		io.WriteString(zw, "\n"+l)
	}
	zw.Close()
	return buf.Bytes()
}

// synthWord is a corpus word as its current symbols, and its weight.
type synthWord struct {
	syms   []string
	weight int
}

// synthPair is a pair of adjacent symbols, a merge candidate.
type synthPair struct{ a, b string }

// syntheticWords splits the built-in corpus into weighted words of byte
// symbols (sym), sorted; earlier corpus words weigh more.
func syntheticWords(sym func(byte) string) []synthWord {
	fields := strings.Fields(syntheticCorpus)
	weights := map[string]int{}
	for i, f := range fields {
		weights[f] += len(fields) - i
	}
	keys := make([]string, 0, len(weights))
	for k := range weights {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	words := make([]synthWord, 0, len(keys))
	for _, k := range keys {
		s := make([]string, len(k))
		for i := 0; i < len(k); i++ {
			s[i] = sym(k[i])
		}
		s[len(s)-1] += wordEnd
		words = append(words, synthWord{syms: s, weight: weights[k]})
	}
	return words
}

// synthMerges collects the merge lines of a synthetic vocabulary.
type synthMerges struct {
	lines    []string
	used     map[synthPair]bool
	produced map[string]bool // merged strings (so filler merges stay distinct)
}

// learn adds merges by BPE training on words until there are numMerges or
// no pair is left: each time the heaviest pair (ties: the smallest), merged
// in every word.
func (m *synthMerges) learn(words []synthWord, numMerges int) {
	for len(m.lines) < numMerges {
		counts := map[synthPair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				counts[synthPair{w.syms[i], w.syms[i+1]}] += w.weight
			}
		}
		var best synthPair
		bestN := 0
		for p, c := range counts {
			if c > bestN || (c == bestN && (p.a < best.a || (p.a == best.a && p.b < best.b))) {
				best, bestN = p, c
			}
		}
		if bestN == 0 {
			return
		}
		m.lines = append(m.lines, best.a+" "+best.b)
		m.used[best] = true
		m.produced[best.a+best.b] = true
		for wi := range words {
			s := words[wi].syms
			out := s[:0]
			for i := 0; i < len(s); {
				if i+1 < len(s) && s[i] == best.a && s[i+1] == best.b {
					out = append(out, best.a+best.b)
					i += 2
				} else {
					out = append(out, s[i])
					i++
				}
			}
			words[wi].syms = out
		}
	}
}

// fill tops the merges up to numMerges with pairs of byte symbols (letters
// and digits first, word-final pairs first), each making a new string.
func (m *synthMerges) fill(order []byte, sym func(byte) string, numMerges int) {
	if len(m.lines) >= numMerges {
		return
	}
	var letters, others []byte
	for _, b := range order {
		if ('a' <= b && b <= 'z') || ('0' <= b && b <= '9') {
			letters = append(letters, b)
		} else {
			others = append(others, b)
		}
	}
	all := append(append([]byte{}, letters...), others...)
	for _, suffix := range []string{wordEnd, ""} {
		for _, x := range all {
			for _, y := range all {
				if len(m.lines) >= numMerges {
					return
				}
				p := synthPair{sym(x), sym(y) + suffix}
				if m.used[p] || m.produced[p.a+p.b] {
					continue
				}
				m.used[p] = true
				m.produced[p.a+p.b] = true
				m.lines = append(m.lines, p.a+" "+p.b)
			}
		}
	}
}
