package text

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// ErrPromptTooLong is returned (wrapped) by Encode and EncodeBatch for a
// prompt longer than the tokenizer's maximum input length in bytes.
var ErrPromptTooLong = errors.New("preprocess: prompt too long")

const (
	// DefaultContextLength is CLIP's text context length.
	DefaultContextLength = 77
	// DefaultMaxInputBytes is the default limit on a prompt's length.
	DefaultMaxInputBytes = 64 << 10
	// DefaultPromptCacheSize is the default number of prompts whose ids are
	// cached.
	DefaultPromptCacheSize = 1024
	// DefaultWordCacheSize is the default number of pre-tokens whose BPE
	// result is cached.
	DefaultWordCacheSize = 16384

	maxCachedPromptBytes = 4096
	maxCachedWordBytes   = 64
)

// Tokenizer is the CLIP byte-level BPE tokenizer of open_clip's
// SimpleTokenizer (see TOKENIZER.md). Its vocabulary is immutable and its
// caches are locked, so one Tokenizer may be used from many goroutines.
type Tokenizer struct {
	vocab    *bpeVocab
	ctxLen   atomic.Int64
	maxInput int
	prompts  *lruCache[[]int64] // raw prompt -> ids (len = context length when stored)
	words    *lruCache[[]int32] // pre-token -> BPE ids
}

type tokenizerConfig struct {
	contextLength   int
	maxInputBytes   int
	promptCacheSize int
	wordCacheSize   int
}

// TokenizerOption configures a Tokenizer at construction.
type TokenizerOption func(*tokenizerConfig)

// WithContextLength sets the context length (default 77; at least 1).
func WithContextLength(n int) TokenizerOption {
	return func(c *tokenizerConfig) { c.contextLength = n }
}

// WithMaxInputBytes sets the longest prompt, in bytes, Encode accepts
// (default 64 KiB); longer ones fail with ErrPromptTooLong.
func WithMaxInputBytes(n int) TokenizerOption {
	return func(c *tokenizerConfig) { c.maxInputBytes = n }
}

// WithPromptCacheSize sets how many prompts' ids are kept (default 1024;
// 0 disables the cache). Prompts over 4 KiB are never cached.
func WithPromptCacheSize(n int) TokenizerOption {
	return func(c *tokenizerConfig) { c.promptCacheSize = n }
}

// WithWordCacheSize sets how many pre-tokens' BPE results are kept
// (default 16384; 0 disables the cache).
func WithWordCacheSize(n int) TokenizerOption {
	return func(c *tokenizerConfig) { c.wordCacheSize = n }
}

func newTokenizer(v *bpeVocab, opts []TokenizerOption) (*Tokenizer, error) {
	cfg := tokenizerConfig{
		contextLength:   DefaultContextLength,
		maxInputBytes:   DefaultMaxInputBytes,
		promptCacheSize: DefaultPromptCacheSize,
		wordCacheSize:   DefaultWordCacheSize,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.contextLength < 1 {
		return nil, fmt.Errorf("preprocess: context length %d < 1", cfg.contextLength)
	}
	if cfg.maxInputBytes < 0 {
		return nil, fmt.Errorf("preprocess: negative max input length %d", cfg.maxInputBytes)
	}
	t := &Tokenizer{
		vocab:    v,
		maxInput: cfg.maxInputBytes,
		prompts:  newLRUCache[[]int64](cfg.promptCacheSize),
		words:    newLRUCache[[]int32](cfg.wordCacheSize),
	}
	t.ctxLen.Store(int64(cfg.contextLength))
	return t, nil
}

// NewTokenizerFromBPE builds a tokenizer from the content of an open_clip /
// OpenAI bpe_simple_vocab_16e6.txt.gz file.
func NewTokenizerFromBPE(gz []byte, opts ...TokenizerOption) (*Tokenizer, error) {
	v, err := parseOpenCLIPBPE(gz)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, opts)
}

// NewTokenizerFromHFJSON builds a tokenizer from the content of a Hugging
// Face tokenizer.json (CLIPTokenizerFast layout: a BPE model with "</w>"
// word ends). Only its vocabulary and merges are used; the text is cleaned
// and split as open_clip does.
func NewTokenizerFromHFJSON(data []byte, opts ...TokenizerOption) (*Tokenizer, error) {
	v, err := parseHFTokenizerJSON(data)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, opts)
}

// NewTokenizerFromVocabMerges builds a tokenizer from the contents of a
// vocab.json (token -> id) and a merges.txt.
func NewTokenizerFromVocabMerges(vocabJSON, mergesTxt []byte, opts ...TokenizerOption) (*Tokenizer, error) {
	v, err := parseVocabMerges(vocabJSON, mergesTxt)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, opts)
}

// LoadTokenizer reads a vocabulary from path: an open_clip .txt.gz file, a
// HF tokenizer.json, a vocab.json (with merges.txt beside it) or a
// merges.txt (with vocab.json beside it). For a directory it looks, in this
// order, for bpe_simple_vocab_16e6.txt.gz, tokenizer.json, and vocab.json +
// merges.txt.
func LoadTokenizer(path string, opts ...TokenizerOption) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("preprocess: tokenizer vocabulary: %w", err)
	}
	if st.IsDir() {
		for _, name := range []string{"bpe_simple_vocab_16e6.txt.gz", "tokenizer.json", "vocab.json"} {
			p := filepath.Join(path, name)
			if _, err := os.Stat(p); err == nil {
				return LoadTokenizer(p, opts...)
			}
		}
		return nil, fmt.Errorf("preprocess: no tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz, tokenizer.json or vocab.json + merges.txt) in %s", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("preprocess: tokenizer vocabulary: %w", err)
	}
	base := filepath.Base(path)
	var t *Tokenizer
	switch {
	case strings.HasSuffix(base, ".gz") || (len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b):
		t, err = NewTokenizerFromBPE(data, opts...)
	case base == "merges.txt":
		vj, rerr := os.ReadFile(filepath.Join(filepath.Dir(path), "vocab.json"))
		if rerr != nil {
			return nil, fmt.Errorf("preprocess: %s needs vocab.json beside it: %w", path, rerr)
		}
		t, err = NewTokenizerFromVocabMerges(vj, data, opts...)
	default:
		var probe map[string]json.RawMessage
		if jerr := json.Unmarshal(data, &probe); jerr != nil {
			return nil, fmt.Errorf("preprocess: %s is neither a .txt.gz BPE file nor JSON: %w", path, jerr)
		}
		// A tokenizer.json has a "model" object; a vocab.json maps tokens to ids, and
		// CLIP's real vocabulary has a token "model" (id 4591).
		if m, ok := probe["model"]; ok && len(bytes.TrimSpace(m)) > 0 && bytes.TrimSpace(m)[0] == '{' {
			t, err = NewTokenizerFromHFJSON(data, opts...)
			break
		}
		mt, rerr := os.ReadFile(filepath.Join(filepath.Dir(path), "merges.txt"))
		if rerr != nil {
			return nil, fmt.Errorf("preprocess: %s needs merges.txt beside it: %w", path, rerr)
		}
		t, err = NewTokenizerFromVocabMerges(data, mt, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return t, nil
}

// ContextLength is the length of every encoded prompt (77 by default).
func (t *Tokenizer) ContextLength() int { return int(t.ctxLen.Load()) }

// SetContextLength changes the context length for later calls; it is safe
// to call concurrently with Encode (each call uses one value throughout).
// It panics if n < 1. WithContextLength sets it at construction.
func (t *Tokenizer) SetContextLength(n int) {
	if n < 1 {
		panic(fmt.Sprintf("preprocess: context length %d < 1", n))
	}
	t.ctxLen.Store(int64(n))
}

// SOT is the id of <start_of_text> (<|startoftext|>) in the vocabulary.
func (t *Tokenizer) SOT() int64 { return int64(t.vocab.sot) }

// EOT is the id of <end_of_text> (<|endoftext|>) in the vocabulary.
func (t *Tokenizer) EOT() int64 { return int64(t.vocab.eot) }

// VocabSize is the number of entries in the vocabulary.
func (t *Tokenizer) VocabSize() int { return t.vocab.size }

// MaxInputBytes is the longest prompt (in bytes) Encode accepts.
func (t *Tokenizer) MaxInputBytes() int { return t.maxInput }

// Encode returns the ids of text as open_clip's tokenizer(text)[0] does:
// <start_of_text>, the BPE ids of the cleaned text, <end_of_text>, padded
// with 0 to the context length; a text with more than ContextLength()-2
// tokens is cut and ends in <end_of_text>. Invalid UTF-8 is read as Python's
// decode("utf-8", errors="replace") would (U+FFFD per maximal ill-formed
// subpart). A prompt over MaxInputBytes fails with ErrPromptTooLong.
func (t *Tokenizer) Encode(text string) ([]int64, error) {
	out := make([]int64, t.ContextLength())
	if err := t.encodeInto(text, out); err != nil {
		return nil, err
	}
	return out, nil
}

// EncodeBatch encodes texts into dst, row i at dst[i*n:(i+1)*n] with
// n = ContextLength(); len(dst) must be len(texts)*n.
func (t *Tokenizer) EncodeBatch(texts []string, dst []int64) error {
	n := t.ContextLength()
	if len(dst) != len(texts)*n {
		return fmt.Errorf("preprocess: EncodeBatch: dst has %d ids, want %d×%d", len(dst), len(texts), n)
	}
	for i, text := range texts {
		if err := t.encodeInto(text, dst[i*n:(i+1)*n]); err != nil {
			return fmt.Errorf("preprocess: prompt %d: %w", i, err)
		}
	}
	return nil
}

func (t *Tokenizer) encodeInto(text string, dst []int64) error {
	if len(text) > t.maxInput {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrPromptTooLong, len(text), t.maxInput)
	}
	ctx := len(dst)
	cacheable := len(text) <= maxCachedPromptBytes
	if cacheable {
		if ids, ok := t.prompts.get(text); ok && len(ids) == ctx {
			copy(dst, ids)
			return nil
		}
	}
	clear(dst)
	if ctx == 1 {
		// [sot, ..., eot][:1] with its last id replaced by eot.
		dst[0] = int64(t.vocab.eot)
	} else {
		dst[0] = int64(t.vocab.sot)
		n := t.encodeBody(CleanPrompt(text), dst[1:ctx-1])
		dst[1+n] = int64(t.vocab.eot)
	}
	if cacheable && t.prompts != nil {
		t.prompts.put(text, append([]int64(nil), dst...))
	}
	return nil
}

// encodeBody writes the first len(dst) BPE ids of the cleaned text into dst
// and returns how many it wrote; it stops splitting as soon as dst is full.
func (t *Tokenizer) encodeBody(clean string, dst []int64) int {
	n := 0
	if len(dst) == 0 {
		return 0
	}
	var buf []int32
	v := t.vocab
	preTokenize(clean, v.sotText, v.eotText, func(tok string) bool {
		var ids []int32
		switch tok {
		case v.sotText:
			buf = append(buf[:0], v.sot)
			ids = buf
		case v.eotText:
			buf = append(buf[:0], v.eot)
			ids = buf
		default:
			ids = t.wordIDs(tok, &buf)
		}
		for _, id := range ids {
			if n == len(dst) {
				return false
			}
			dst[n] = int64(id)
			n++
		}
		return n < len(dst)
	})
	return n
}

// wordIDs returns the BPE ids of one pre-token, from the word cache when
// possible. The result is only valid until the next call with the same buf.
func (t *Tokenizer) wordIDs(tok string, buf *[]int32) []int32 {
	cacheable := len(tok) <= maxCachedWordBytes
	if cacheable {
		if ids, ok := t.words.get(tok); ok {
			return ids
		}
	}
	*buf = t.vocab.encodeWord(tok, (*buf)[:0])
	if cacheable && t.words != nil {
		t.words.put(tok, append([]int32(nil), *buf...))
	}
	return *buf
}

// ---------------------------------------------------------------- pre-tokenizer

// preTokenize calls emit with each match of open_clip's token pattern
//
//	<sot>|<eot>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// (regex module, IGNORECASE) in s, left to right, until emit returns false.
// s is already lower-cased; under IGNORECASE the only other character that
// then matches a literal letter of the pattern is U+017F 'ſ' (for 's'), and
// U+0345 (a case variant of a letter) matches neither [\p{L}] nor the
// negated class, so it is skipped like whitespace.
func preTokenize(s, sot, eot string, emit func(tok string) bool) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '<' {
			if n := matchFoldS(s[i:], sot); n > 0 {
				if !emit(s[i : i+n]) {
					return
				}
				i += n
				continue
			}
			if n := matchFoldS(s[i:], eot); n > 0 {
				if !emit(s[i : i+n]) {
					return
				}
				i += n
				continue
			}
		}
		if c == '\'' {
			if n := matchContraction(s[i:]); n > 0 {
				if !emit(s[i : i+n]) {
					return
				}
				i += n
				continue
			}
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		var j int
		switch {
		case isRxLetter(r):
			j = runEnd(s, i+size, isRxLetter)
		case isRxNumber(r):
			j = i + size
		case isRxSymbol(r):
			j = runEnd(s, i+size, isRxSymbol)
		default: // whitespace, U+0345: no alternative matches here
			i += size
			continue
		}
		if !emit(s[i:j]) {
			return
		}
		i = j
	}
}

// runEnd is where the run of characters of one class (in) that goes on at s[j:] ends.
func runEnd(s string, j int, in func(rune) bool) int {
	for j < len(s) {
		r, size := rune(s[j]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[j:])
		}
		if !in(r) {
			break
		}
		j += size
	}
	return j
}

// matchFoldS matches the ASCII literal lit at the start of s, letting 's'
// in lit match 'ſ' (U+017F) too; it returns the matched length or 0.
func matchFoldS(s, lit string) int {
	j := 0
	for k := 0; k < len(lit); k++ {
		if j < len(s) && s[j] == lit[k] {
			j++
			continue
		}
		if lit[k] == 's' && strings.HasPrefix(s[j:], "ſ") {
			j += len("ſ")
			continue
		}
		return 0
	}
	return j
}

var contractions = [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

func matchContraction(s string) int {
	for _, c := range contractions {
		if n := matchFoldS(s, c); n > 0 {
			return n
		}
	}
	return 0
}

func isRxLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
	}
	return inRanges(r, rxLetter)
}

func isRxNumber(r rune) bool {
	if r < utf8.RuneSelf {
		return '0' <= r && r <= '9'
	}
	return inRanges(r, rxNumber)
}

func isRxSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || ('\t' <= r && r <= '\r')
	}
	return inRanges(r, rxSpace)
}

func isRxSymbol(r rune) bool {
	if r < utf8.RuneSelf {
		return !isRxLetter(r) && !isRxNumber(r) && !isRxSpace(r)
	}
	return r != 0x345 && !isRxSpace(r) && !inRanges(r, rxLetter) && !inRanges(r, rxNumber)
}
