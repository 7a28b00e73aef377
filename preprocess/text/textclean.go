package text

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// This file holds the Python-compatible text primitives the CLIP tokenizer's
// cleaning step is made of: UTF-8 decoding with errors="replace",
// html.unescape, str.isspace / str.strip / str.split, and str.lower().
// Each follows CPython (3.11) exactly; the tables they use are generated from
// CPython by testdata/tokenizer/gen_tables.py (see textclean_tables.go).

// CleanPrompt returns the text the CLIP tokenizer actually splits into
// tokens: open_clip's lower(whitespace_clean(basic_clean(text))), i.e.
// ftfy.fix_text, html.unescape applied twice, strip, runs of whitespace
// collapsed to one space, and Python's str.lower(). Invalid UTF-8 in text is
// first replaced with U+FFFD as Python's bytes.decode("utf-8",
// errors="replace") does. Prompts that clean to the same string tokenize to
// the same ids, so the result is a good cache key.
//
// CleanPrompt has no length limit of its own; it runs in time linear in
// len(text). Tokenizer.Encode rejects over-long prompts before cleaning.
func CleanPrompt(text string) string {
	if s, ok := cleanASCIIFast(text); ok {
		return s
	}
	text = decodeUTF8Replace(text)
	text = ftfyFixText(text)
	text = pyHTMLUnescape(pyHTMLUnescape(text))
	text = pyWhitespaceClean(text) // includes basic_clean's strip
	return pyLower(text)
}

// cleanASCIIFast handles the common case of printable ASCII prompts (plus
// tab, LF, FF and CR) without '&' or ESC: ftfy, html.unescape and NFC leave
// such text unchanged, so cleaning is whitespace collapsing and ASCII
// lowercasing.
func cleanASCIIFast(text string) (string, bool) {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= 0x20 && c < 0x7f && c != '&' {
			continue
		}
		if c == '\t' || c == '\n' || c == '\f' || c == '\r' {
			continue
		}
		return "", false
	}
	var b strings.Builder
	b.Grow(len(text))
	pendingSpace := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' {
			pendingSpace = b.Len() > 0
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// ---------------------------------------------------------------- UTF-8

// decodeUTF8Replace returns s with every ill-formed UTF-8 sequence replaced
// by U+FFFD the way CPython's decoder does with errors="replace": each
// maximal subpart of an ill-formed subsequence (the longest prefix of a
// well-formed sequence, or one byte) becomes one U+FFFD. Go's own decoding
// (range over a string, strings.ToValidUTF8) differs: the former yields one
// U+FFFD per byte, the latter one per run.
func decodeUTF8Replace(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	i := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r != utf8.RuneError || size > 1 {
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		b.WriteRune(utf8.RuneError)
		i += maximalSubpart(s[i:])
	}
	return b.String()
}

// maximalSubpart returns the length (>= 1) of the maximal subpart of the
// ill-formed sequence at the start of s (Unicode §3.9, table 3-7).
func maximalSubpart(s string) int {
	c := s[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(s); k++ {
		b := s[n]
		if b < lo || b > hi {
			break
		}
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}

// ---------------------------------------------------------------- tables

type runeRange struct{ lo, hi rune }

func inRanges(r rune, rs []runeRange) bool {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].hi >= r })
	return i < len(rs) && rs[i].lo <= r
}

// ---------------------------------------------------------------- whitespace

// pyIsSpace reports Python's str.isspace() for one character: Go's
// unicode.IsSpace set plus U+001C..U+001F.
func pyIsSpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || (r >= '\t' && r <= '\r') || (r >= 0x1c && r <= 0x1f)
	}
	return inRanges(r, pySpace)
}

// pyWhitespaceClean is str.strip() followed by open_clip's whitespace_clean:
// " ".join(text.split()) — every run of str.isspace() characters becomes
// one space and leading/trailing runs are removed.
func pyWhitespaceClean(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pending := false
	for _, r := range s {
		if pyIsSpace(r) {
			pending = b.Len() > 0
			continue
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ---------------------------------------------------------------- lower

// pyLower is Python's str.lower(): the full (SpecialCasing) lowercase
// mapping of every character, with U+03A3 GREEK CAPITAL LETTER SIGMA
// becoming final sigma U+03C2 in CPython's Final_Sigma context. Go's
// strings.ToLower differs on U+0130 (one code point instead of "i̇") and on
// final sigma.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return asciiLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range rs {
		switch {
		case r < utf8.RuneSelf:
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
		case r == 0x3A3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3C2)
			} else {
				b.WriteRune(0x3C3)
			}
		default:
			if l, ok := pyLowerSingle[r]; ok {
				b.WriteRune(l)
			} else if m, ok := pyLowerMulti[r]; ok {
				b.WriteString(m)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// finalSigma is CPython's handle_capital_sigma: the sigma at rs[i] is final
// when preceded by a cased letter (skipping case-ignorable characters) and
// not followed by one (skipping case-ignorable characters).
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && inRanges(rs[j], pySigmaIgnorable) {
		j--
	}
	if j < 0 || !inRanges(rs[j], pySigmaCased) {
		return false
	}
	j = i + 1
	for j < len(rs) && inRanges(rs[j], pySigmaIgnorable) {
		j++
	}
	return j == len(rs) || !inRanges(rs[j], pySigmaCased)
}

// ---------------------------------------------------------------- html.unescape

// pyHTMLUnescape is Python's html.unescape (Lib/html/__init__.py): every
// match of
//
//	&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
//
// is replaced by _replace_charref. Differences from Go's html.UnescapeString
// that this reproduces: numeric references to C0/C1 controls, U+000B,
// noncharacters and U+FDD0..U+FDEF become "" (not the code point); &#13;
// stays "\r"; names may contain any character except tab, LF, FF, space,
// '<', '&', '#', ';' (up to 32 code points) and fall back to the longest
// legacy (no ';') entity that prefixes them; &#<huge>; becomes U+FFFD.
//
// One divergence is left: CPython >= 3.11 raises ValueError for a decimal
// reference of more than 4300 digits (int() string conversion limit); here
// it is treated like any other out-of-range reference (U+FFFD).
func pyHTMLUnescape(s string) string {
	amp := strings.IndexByte(s, '&')
	if amp < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:amp])
	i := amp
	for i < len(s) {
		if s[i] != '&' {
			j := strings.IndexByte(s[i:], '&')
			if j < 0 {
				b.WriteString(s[i:])
				break
			}
			b.WriteString(s[i : i+j])
			i += j
			continue
		}
		n, repl, ok := matchCharref(s[i+1:])
		if !ok {
			b.WriteByte('&')
			i++
			continue
		}
		b.WriteString(repl)
		i += 1 + n
	}
	return b.String()
}

// matchNumericCharref matches the digits (of base) that start at s[from:] and an
// optional ';': the length of s up to there and the replacement text.
func matchNumericCharref(s string, from, base int, isDigit func(byte) bool) (n int, repl string, ok bool) {
	j := from
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == from {
		return 0, "", false
	}
	num := parseCharrefNum(s[from:j], base)
	if j < len(s) && s[j] == ';' {
		j++
	}
	return j, numericCharref(num), true
}

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHexDigit(c byte) bool {
	return isASCIIDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// matchCharref matches the _charref group at the start of s (just after
// '&') and returns its length in bytes and the replacement text.
func matchCharref(s string) (n int, repl string, ok bool) {
	if len(s) == 0 {
		return 0, "", false
	}
	if s[0] == '#' {
		if n, repl, ok := matchNumericCharref(s, 1, 10, isASCIIDigit); ok { // #[0-9]+;?
			return n, repl, ok
		}
		if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') { // #[xX][0-9a-fA-F]+;?
			return matchNumericCharref(s, 2, 16, isHexDigit)
		}
		return 0, "", false // the named alternative cannot start with '#'
	}
	// [^\t\n\f <&#;]{1,32};?
	j, count := 0, 0
	for j < len(s) && count < 32 {
		r, size := utf8.DecodeRuneInString(s[j:])
		if r == '\t' || r == '\n' || r == '\f' || r == ' ' || r == '<' || r == '&' || r == '#' || r == ';' {
			break
		}
		j += size
		count++
	}
	if count == 0 {
		return 0, "", false
	}
	if j < len(s) && s[j] == ';' {
		j++
	}
	name := s[:j]
	if v, ok := pyHTML5Entities[name]; ok {
		return j, v, true
	}
	// Longest prefix of at least 2 code points (and shorter than name) that
	// is an entity; only names without ';' can match, and those are short.
	offs := make([]int, 0, pyHTML5MaxLegacyLen+1)
	for k := range name {
		if len(offs) > pyHTML5MaxLegacyLen {
			break
		}
		offs = append(offs, k)
	}
	nRunes := utf8.RuneCountInString(name)
	for x := min(nRunes-1, pyHTML5MaxLegacyLen); x >= 2; x-- {
		end := len(name)
		if x < len(offs) {
			end = offs[x]
		}
		if v, ok := pyHTML5Entities[name[:end]]; ok {
			return j, v + name[end:], true
		}
	}
	return j, "&" + name, true
}

// parseCharrefNum parses an ASCII digit string, saturating at a value above
// U+10FFFF (all such values are treated alike).
func parseCharrefNum(digits string, base int) int {
	const limit = 0x110000
	v := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d int
		switch {
		case isASCIIDigit(c):
			d = int(c - '0')
		case 'a' <= c && c <= 'f':
			d = int(c-'a') + 10
		default:
			d = int(c-'A') + 10
		}
		v = v*base + d
		if v > limit {
			v = limit
		}
	}
	return v
}

// pyInvalidCharrefs is html._invalid_charrefs.
var pyInvalidCharrefs = map[int]string{
	0x00: "\ufffd", 0x0d: "\r", 0x80: "\u20ac", 0x81: "\u0081", 0x82: "\u201a",
	0x83: "\u0192", 0x84: "\u201e", 0x85: "\u2026", 0x86: "\u2020", 0x87: "\u2021",
	0x88: "\u02c6", 0x89: "\u2030", 0x8a: "\u0160", 0x8b: "\u2039", 0x8c: "\u0152",
	0x8d: "\u008d", 0x8e: "\u017d", 0x8f: "\u008f", 0x90: "\u0090", 0x91: "\u2018",
	0x92: "\u2019", 0x93: "\u201c", 0x94: "\u201d", 0x95: "\u2022", 0x96: "\u2013",
	0x97: "\u2014", 0x98: "\u02dc", 0x99: "\u2122", 0x9a: "\u0161", 0x9b: "\u203a",
	0x9c: "\u0153", 0x9d: "\u009d", 0x9e: "\u017e", 0x9f: "\u0178",
}

func numericCharref(num int) string {
	if v, ok := pyInvalidCharrefs[num]; ok {
		return v
	}
	if (num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF {
		return "\ufffd"
	}
	if pyInvalidCodepoint(num) {
		return ""
	}
	return string(rune(num))
}

// pyInvalidCodepoint is membership in html._invalid_codepoints.
func pyInvalidCodepoint(n int) bool {
	switch {
	case n >= 0x1 && n <= 0x8, n == 0xb, n >= 0xe && n <= 0x1f, n >= 0x7f && n <= 0x9f:
		return true
	case n >= 0xfdd0 && n <= 0xfdef:
		return true
	case n&0xfffe == 0xfffe && n <= 0x10ffff:
		return true
	}
	return false
}
