package text

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// WordPiece is the bert-base-uncased tokenizer as ImageReward runs it: the
// slow Hugging Face BertTokenizer of transformers 4.27 (do_lower_case,
// tokenize_chinese_chars, strip_accents unset, so accents are stripped),
// with BLIP's two added special tokens [DEC] (bos_token) and [ENC]
// (additional_special_tokens), called as
//
//	tokenizer(prompt, padding="max_length", truncation=True, max_length=35)
//
// so every prompt becomes [CLS] up to 33 tokens [SEP], padded with [PAD]
// (id 0) to the context length, with an attention mask of 1 on the tokens
// and 0 on the padding. The steps, in the order the original takes them
// (PreTrainedTokenizer.tokenize, BertTokenizer._tokenize, BasicTokenizer,
// WordpieceTokenizer):
//
//  1. Every character outside a special-token literal is lower-cased on its
//     own (the original lower-cases with re.sub over "(.+?)", one character
//     per match, so Σ always becomes σ, never the final ς).
//  2. The text is split at the special-token literals [PAD] [UNK] [CLS]
//     [SEP] [MASK] [DEC] [ENC] (case-sensitive: "[cls]" is ordinary text);
//     each literal is one token.
//  3. Each other piece is cleaned (NUL, U+FFFD and characters of category C*
//     other than \t \n \r are dropped; those three and category Zs become a
//     space), CJK ideographs get spaces around them, the piece is split at
//     Python's whitespace, each word lower-cased again, NFD-normalised with
//     its nonspacing marks (Mn) removed, and split before and after every
//     punctuation character (ASCII symbols and category P*).
//  4. Each word longer than 100 characters is [UNK]; others are split
//     greedily into the longest vocabulary entries, continuations prefixed
//     "##"; a word that cannot be split is [UNK].
//
// A WordPiece is immutable and safe for concurrent use.
type WordPiece struct {
	vocab    map[string]int32
	specials []string // literals split out in step 2
	special  map[string]int32
	unk      int32
	cls, sep int32
	pad      int32
	ctxLen   int
	maxInput int
}

// The literals of BertTokenizer's special tokens and the two BLIP adds.
const (
	wpUNK  = "[UNK]"
	wpSEP  = "[SEP]"
	wpPAD  = "[PAD]"
	wpCLS  = "[CLS]"
	wpMASK = "[MASK]"
	wpDEC  = "[DEC]"
	wpENC  = "[ENC]"
)

// ImageRewardContextLength is the max_length ImageReward tokenizes with.
const ImageRewardContextLength = 35

// wpMaxWordChars is WordpieceTokenizer's max_input_chars_per_word.
const wpMaxWordChars = 100

// WordPieceOption configures a WordPiece at construction.
type WordPieceOption func(*WordPiece)

// WithWordPieceContextLength sets the padded length (default 35; at least 2,
// room for [CLS] and [SEP]).
func WithWordPieceContextLength(n int) WordPieceOption {
	return func(w *WordPiece) { w.ctxLen = n }
}

// WithWordPieceMaxInputBytes sets the longest prompt, in bytes, Encode
// accepts (default 64 KiB); longer ones fail with ErrPromptTooLong.
func WithWordPieceMaxInputBytes(n int) WordPieceOption {
	return func(w *WordPiece) { w.maxInput = n }
}

// NewWordPiece builds the tokenizer from the content of a BERT vocab.txt:
// one token per line, the line number being the id, as transformers'
// load_vocab reads it (universal newlines; a token repeated later takes the
// later id). [DEC] and [ENC] get the next free ids (30522 and 30523 for
// bert-base-uncased) unless the vocabulary already has them.
func NewWordPiece(vocabTxt []byte, opts ...WordPieceOption) (*WordPiece, error) {
	if !utf8.Valid(vocabTxt) {
		return nil, errors.New("preprocess: WordPiece vocabulary is not UTF-8")
	}
	s := strings.ReplaceAll(string(vocabTxt), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.SplitAfter(s, "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	w := &WordPiece{vocab: make(map[string]int32, len(lines)+2), ctxLen: ImageRewardContextLength, maxInput: DefaultMaxInputBytes}
	size := int32(0)
	for i, l := range lines {
		w.vocab[strings.TrimSuffix(l, "\n")] = int32(i)
		size = int32(i + 1)
	}
	for _, o := range opts {
		o(w)
	}
	if w.ctxLen < 2 {
		return nil, fmt.Errorf("preprocess: WordPiece context length %d < 2", w.ctxLen)
	}
	if w.maxInput < 0 {
		return nil, fmt.Errorf("preprocess: negative max input length %d", w.maxInput)
	}
	for _, tok := range []string{wpUNK, wpSEP, wpPAD, wpCLS, wpMASK} {
		if _, ok := w.vocab[tok]; !ok {
			return nil, fmt.Errorf("preprocess: WordPiece vocabulary has no %s token", tok)
		}
	}
	// add_special_tokens: a token not in the vocabulary gets id len(tokenizer).
	for _, tok := range []string{wpDEC, wpENC} {
		if _, ok := w.vocab[tok]; !ok {
			w.vocab[tok] = size
			size++
		}
	}
	w.specials = []string{wpUNK, wpSEP, wpPAD, wpCLS, wpMASK, wpDEC, wpENC}
	w.special = map[string]int32{}
	for _, tok := range w.specials {
		w.special[tok] = w.vocab[tok]
	}
	w.unk, w.cls, w.sep, w.pad = w.vocab[wpUNK], w.vocab[wpCLS], w.vocab[wpSEP], w.vocab[wpPAD]
	return w, nil
}

// LoadWordPiece reads a vocab.txt file.
func LoadWordPiece(path string, opts ...WordPieceOption) (*WordPiece, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("preprocess: WordPiece vocabulary: %w", err)
	}
	w, err := NewWordPiece(data, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return w, nil
}

// ContextLength is the length of every encoded prompt (35 by default).
func (w *WordPiece) ContextLength() int { return w.ctxLen }

// VocabSize is the number of ids, [DEC] and [ENC] included.
func (w *WordPiece) VocabSize() int {
	m := int32(-1)
	for _, id := range w.vocab {
		m = max(m, id)
	}
	return int(m) + 1
}

// ID returns a token's id and whether the vocabulary has it.
func (w *WordPiece) ID(token string) (int32, bool) {
	id, ok := w.vocab[token]
	return id, ok
}

// Tokens returns tokenizer.tokenize(text): the tokens before ids, special
// tokens and truncation.
func (w *WordPiece) Tokens(text string) ([]string, error) {
	if err := w.check(text); err != nil {
		return nil, err
	}
	var out []string
	w.walk(text, func(tok string, _ int32) bool { out = append(out, tok); return true })
	return out, nil
}

func (w *WordPiece) check(text string) error {
	if len(text) > w.maxInput {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrPromptTooLong, len(text), w.maxInput)
	}
	return nil
}

// Encode returns input_ids and attention_mask, each ContextLength long.
func (w *WordPiece) Encode(text string) (ids, mask []int64, err error) {
	ids, mask = make([]int64, w.ctxLen), make([]int64, w.ctxLen)
	if err := w.EncodeInto(text, ids, mask); err != nil {
		return nil, nil, err
	}
	return ids, mask, nil
}

// EncodeBatch encodes each text into consecutive rows of ids and mask (each
// len(texts)·ContextLength long).
func (w *WordPiece) EncodeBatch(texts []string, ids, mask []int64) error {
	L := w.ctxLen
	if len(ids) < len(texts)*L || len(mask) < len(texts)*L {
		return fmt.Errorf("preprocess: buffers of %d and %d ids for %d texts of %d", len(ids), len(mask), len(texts), L)
	}
	for i, t := range texts {
		if err := w.EncodeInto(t, ids[i*L:(i+1)*L], mask[i*L:(i+1)*L]); err != nil {
			return err
		}
	}
	return nil
}

// EncodeInto writes one text's ids and mask into buffers of ContextLength.
func (w *WordPiece) EncodeInto(text string, ids, mask []int64) error {
	L := w.ctxLen
	if len(ids) < L || len(mask) < L {
		return fmt.Errorf("preprocess: buffers of %d and %d ids, need %d", len(ids), len(mask), L)
	}
	if err := w.check(text); err != nil {
		return err
	}
	ids, mask = ids[:L], mask[:L]
	for i := range ids {
		ids[i], mask[i] = int64(w.pad), 0
	}
	ids[0], mask[0] = int64(w.cls), 1
	n := 1
	// Truncation keeps the first L−2 tokens (longest_first on one sequence).
	w.walk(text, func(_ string, id int32) bool {
		if n == L-1 {
			return false
		}
		ids[n], mask[n] = int64(id), 1
		n++
		return true
	})
	ids[n], mask[n] = int64(w.sep), 1
	return nil
}

// walk yields each token of text with its id, in order, until yield returns
// false.
func (w *WordPiece) walk(text string, yield func(tok string, id int32) bool) {
	for len(text) > 0 {
		at, lit := w.nextSpecial(text)
		if at < 0 {
			w.walkPlain(text, yield)
			return
		}
		if at > 0 && !w.walkPlain(text[:at], yield) {
			return
		}
		if !yield(lit, w.special[lit]) {
			return
		}
		text = text[at+len(lit):]
	}
}

// nextSpecial finds the first special-token literal in s (none is a prefix
// of another, so the first match at a position is the only one).
func (w *WordPiece) nextSpecial(s string) (int, string) {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], '[')
		if i < 0 {
			return -1, ""
		}
		i += off
		for _, lit := range w.specials {
			if strings.HasPrefix(s[i:], lit) {
				return i, lit
			}
		}
		off = i + 1
	}
}

// walkPlain tokenizes text without special literals (steps 1, 3, 4).
func (w *WordPiece) walkPlain(text string, yield func(string, int32) bool) bool {
	var b strings.Builder
	for _, r := range text {
		// Step 1 (per-character lower) and BasicTokenizer._clean_text and
		// _tokenize_chinese_chars.
		switch {
		case r == 0 || r == utf8.RuneError || wpIsControl(r):
			continue
		case wpIsWhitespace(r):
			b.WriteByte(' ')
		case wpIsCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			pyLowerRune(&b, r)
		}
	}
	for _, word := range wpSplit(b.String()) {
		// The second lower-casing (BasicTokenizer) is the identity on text
		// the first has lower-cased character by character.
		word = stripAccents(word)
		for _, piece := range splitPunct(word) {
			if !w.wordPieces(piece, yield) {
				return false
			}
		}
	}
	return true
}

// wordPieces is WordpieceTokenizer.tokenize for one word.
func (w *WordPiece) wordPieces(word string, yield func(string, int32) bool) bool {
	if utf8.RuneCountInString(word) > wpMaxWordChars {
		return yield(wpUNK, w.unk)
	}
	// Offsets of the runes, so that substrings are cut at rune boundaries.
	var starts []int
	for i := range word {
		starts = append(starts, i)
	}
	starts = append(starts, len(word))
	type piece struct {
		tok string
		id  int32
	}
	var pieces []piece
	for s := 0; s < len(starts)-1; {
		found := false
		for e := len(starts) - 1; e > s; e-- {
			sub := word[starts[s]:starts[e]]
			if s > 0 {
				sub = "##" + sub
			}
			if id, ok := w.vocab[sub]; ok {
				pieces = append(pieces, piece{sub, id})
				s, found = e, true
				break
			}
		}
		if !found {
			return yield(wpUNK, w.unk)
		}
	}
	for _, p := range pieces {
		if !yield(p.tok, p.id) {
			return false
		}
	}
	return true
}

// pyLowerRune writes Python's str.lower() of one character: the simple
// lower-case mapping, except U+0130 (İ), whose full mapping is i + U+0307.
func pyLowerRune(b *strings.Builder, r rune) {
	if r == 'İ' {
		b.WriteString("i\u0307")
		return
	}
	b.WriteRune(unicode.ToLower(r))
}

// wpIsWhitespace is BERT's _is_whitespace: space, \t, \n, \r or category Zs.
func wpIsWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

// wpIsControl is BERT's _is_control: a category starting with C (Cc, Cf,
// Cs, Co and Cn, the unassigned code points), except \t, \n and \r.
func wpIsControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if unicode.Is(unicode.C, r) {
		return true
	}
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// wpIsPunct is BERT's _is_punctuation: the ASCII non-alphanumeric symbols
// and category P*.
func wpIsPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}

// wpIsCJK is BERT's _is_chinese_char: the CJK Unified Ideographs blocks.
func wpIsCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// wpIsSpace is Python's str.isspace for one character (what str.split()
// splits at).
func wpIsSpace(r rune) bool {
	switch {
	case r >= '\t' && r <= '\r', r >= 0x1C && r <= 0x1F, r == ' ', r == 0x85, r == 0xA0, r == 0x1680,
		r >= 0x2000 && r <= 0x200A, r == 0x2028, r == 0x2029, r == 0x202F, r == 0x205F, r == 0x3000:
		return true
	}
	return false
}

// wpSplit is Python's str.split() with no argument.
func wpSplit(s string) []string { return strings.FieldsFunc(s, wpIsSpace) }

// stripAccents is BasicTokenizer._run_strip_accents: NFD, then every
// character of category Mn removed.
func stripAccents(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// splitPunct is BasicTokenizer._run_split_on_punc: every punctuation
// character is a word of its own.
func splitPunct(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if wpIsPunct(r) {
			if i > start {
				out = append(out, s[start:i])
			}
			n := utf8.RuneLen(r)
			out = append(out, s[i:i+n])
			start = i + n
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
