package text

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// A Go port of ftfy.fix_text (ftfy 6.x, default TextFixerConfig) as the CLIP
// tokenizer's basic_clean calls it. Every fixer of the default configuration
// is implemented, mojibake repair (fix_encoding) included; see TOKENIZER.md
// for the few bounded-work limits where this port can stop earlier than
// ftfy on adversarial input.

const (
	// ftfyMaxDecodeLength is TextFixerConfig.max_decode_length: fix_text
	// splits lines longer than this many code points.
	ftfyMaxDecodeLength = 1_000_000
	// ftfyMaxRounds caps fix_and_explain's "repeat until nothing changes"
	// loop. Each round undoes at least one level of nesting (e.g. one
	// "&amp;" of "&amp;amp;amp;..."); ordinary text needs 1-3 rounds. ftfy
	// has no cap (and is quadratic on such input).
	ftfyMaxRounds = 32
	// ftfyMaxEncodingSteps caps fix_encoding's loop the same way (each step
	// undoes one layer of mojibake).
	ftfyMaxEncodingSteps = 32
	// ftfyMaxInconsistentDepth caps the recursion of decode_inconsistent_utf8
	// (fix_encoding on a strictly shorter substring).
	ftfyMaxInconsistentDepth = 8
)

// ftfyFixText is ftfy.fix_text(text) with the default configuration.
func ftfyFixText(text string) string {
	unescape := true // unescape_html="auto"
	var out strings.Builder
	pos := 0
	for pos < len(text) {
		end := strings.IndexByte(text[pos:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end = pos + end + 1
		}
		if end-pos > ftfyMaxDecodeLength { // bytes >= code points
			k, n := pos, 0
			for k < end && n < ftfyMaxDecodeLength {
				_, size := utf8.DecodeRuneInString(text[k:])
				k += size
				n++
			}
			end = k
		}
		seg := text[pos:end]
		// Once a segment contains '<', "auto" turns HTML unescaping off for
		// it and every later segment (fix_text replaces its config).
		if unescape && strings.IndexByte(seg, '<') >= 0 {
			unescape = false
		}
		if pos == 0 && end == len(text) {
			return ftfyFixSegment(seg, unescape)
		}
		out.WriteString(ftfyFixSegment(seg, unescape))
		pos = end
	}
	return out.String()
}

// ftfyFixSegment is ftfy.fix_and_explain on one segment.
func ftfyFixSegment(text string, unescape bool) string {
	for round := 0; round < ftfyMaxRounds; round++ {
		orig := text
		if unescape {
			text = ftfyUnescapeHTML(text)
		}
		text = ftfyFixEncoding(text, 0)
		// fix_c1_controls, fix_latin_ligatures, fix_character_width,
		// uncurl_quotes, in that order, as one character mapping.
		text = ftfyMapChars(text)
		text = ftfyFixLineBreaks(text)
		// fix_surrogates: a Go string decoded by decodeUTF8Replace (or
		// produced by the fixers above) never holds surrogate code points,
		// so this fixer has nothing to do.
		text = ftfyRemoveTerminalEscapes(text)
		text = ftfyRemoveControlChars(text)
		text = norm.NFC.String(text)
		if text == orig {
			break
		}
	}
	return text
}

// ---------------------------------------------------------------- unescape_html

// ftfyUnescapeHTML is ftfy.fixes.unescape_html: HTML_ENTITY_RE
// (&#?[0-9A-Za-z]{1,24};) matches are replaced when they name an html5
// entity ending in ';' (or one of ftfy's all-caps variants), or, for
// numeric ones, by html.unescape's result unless that still holds a ';'.
func ftfyUnescapeHTML(s string) string {
	return replaceMatches(s, '&', func(m string) (int, string, bool) {
		n := matchFtfyEntity(m)
		if n == 0 {
			return 0, "", false
		}
		m = m[:n]
		name := m[1:]
		if v, found := pyHTML5Entities[name]; found {
			return n, v, true
		} else if v, found := ftfyUpperEntities[name]; found {
			return n, v, true
		} else if strings.HasPrefix(m, "&#") {
			if u := pyHTMLUnescape(m); strings.IndexByte(u, ';') < 0 {
				return n, u, true
			}
		}
		return n, "", false
	})
}

// replaceMatches replaces the matches, left to right and not overlapping, of a pattern
// whose matches start with the byte lead. At each lead byte, match(rest of s) gives the
// length of the match there (0: none) and, when ok, its replacement (else the match
// stays as it is). s itself comes back when nothing was replaced.
func replaceMatches(s string, lead byte, match func(string) (n int, repl string, ok bool)) string {
	i := strings.IndexByte(s, lead)
	if i < 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for i < len(s) {
		n, repl, ok := match(s[i:])
		if n > 0 && ok {
			if b.Cap() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(repl)
			last = i + n
		}
		i += max(n, 1)
		j := strings.IndexByte(s[i:], lead)
		if j < 0 {
			break
		}
		i += j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isASCIIAlnum(c byte) bool {
	return isASCIIDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

// matchFtfyEntity returns the length of a HTML_ENTITY_RE match at the start
// of s (which begins with '&'), or 0.
func matchFtfyEntity(s string) int {
	j := 1
	if j < len(s) && s[j] == '#' {
		j++
	}
	k := j
	for k < len(s) && isASCIIAlnum(s[k]) && k-j < 25 {
		k++
	}
	if k-j < 1 || k-j > 24 || k >= len(s) || s[k] != ';' {
		return 0
	}
	return k + 1
}

// ---------------------------------------------------------------- character maps

// c1ToWindows1252 is fix_c1_controls: U+0080..U+009F decoded as
// sloppy-windows-1252 (the five undefined bytes stay as they are).
func c1ToWindows1252(r rune) rune {
	return ftfyTables().charmaps[ftfySloppy1252][r]
}

func isC1(r rune) bool { return r >= 0x80 && r <= 0x9f }

// ftfyMapChars applies fix_c1_controls, fix_latin_ligatures,
// fix_character_width and uncurl_quotes in sequence. All four are
// per-character maps whose outputs the later ones map further, so the
// composition is done character by character.
func ftfyMapChars(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r >= utf8.RuneSelf && ftfyCharNeedsMap(r) })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if isC1(r) {
			r = c1ToWindows1252(r)
		}
		if lig, ok := ftfyLigatures[r]; ok {
			for _, lr := range lig {
				writeWidthQuote(&b, lr)
			}
			continue
		}
		writeWidthQuote(&b, r)
	}
	return b.String()
}

func ftfyCharNeedsMap(r rune) bool {
	if isC1(r) || isCurlyQuote(r) {
		return true
	}
	if r == 0x3000 || (r >= 0xFF01 && r <= 0xFFEF) {
		_, ok := ftfyWidthMap[r]
		return ok
	}
	_, ok := ftfyLigatures[r]
	return ok
}

func isCurlyQuote(r rune) bool { return r == 0x02BC || (r >= 0x2018 && r <= 0x201F) }

func uncurl(r rune) rune {
	switch {
	case r >= 0x201C && r <= 0x201F:
		return '"'
	case r == 0x02BC || (r >= 0x2018 && r <= 0x201B):
		return '\''
	}
	return r
}

func writeWidthQuote(b *strings.Builder, r rune) {
	if r == 0x3000 || (r >= 0xFF01 && r <= 0xFFEF) {
		if w, ok := ftfyWidthMap[r]; ok {
			for _, wr := range w {
				b.WriteRune(uncurl(wr))
			}
			return
		}
	}
	b.WriteRune(uncurl(r))
}

// ftfyFixLineBreaks is fix_line_breaks: CRLF, CR, U+2028, U+2029 and U+0085
// become LF.
func ftfyFixLineBreaks(s string) string {
	if strings.IndexByte(s, '\r') < 0 && !strings.Contains(s, "\u2028") &&
		!strings.Contains(s, "\u2029") && !strings.Contains(s, "\u0085") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.ReplaceAll(s, "\u2028", "\n")
	s = strings.ReplaceAll(s, "\u2029", "\n")
	return strings.ReplaceAll(s, "\u0085", "\n")
}

// ftfyRemoveTerminalEscapes is remove_terminal_escapes: ANSI_RE =
// \033\[((?:\d|;)*)([a-zA-Z]) (\d being any Unicode decimal digit) removed.
func ftfyRemoveTerminalEscapes(s string) string {
	return replaceMatches(s, 0x1b, func(m string) (int, string, bool) { return matchANSI(m), "", true })
}

func matchANSI(s string) int {
	if len(s) < 3 || s[0] != 0x1b || s[1] != '[' {
		return 0
	}
	j := 2
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if r == ';' || unicode.IsDigit(r) {
			j += size
			continue
		}
		break
	}
	if j < len(s) && (('a' <= s[j] && s[j] <= 'z') || ('A' <= s[j] && s[j] <= 'Z')) {
		return j + 1
	}
	return 0
}

func isFtfyControl(r rune) bool {
	switch {
	case r < 0x20:
		return r <= 0x08 || r == 0x0b || r >= 0x0e
	case r == 0x7f, r >= 0x206a && r <= 0x206f, r == 0xfeff, r >= 0xfff9 && r <= 0xfffc:
		return true
	}
	return false
}

// ftfyRemoveControlChars is remove_control_chars: U+0000..U+0008, U+000B,
// U+000E..U+001F, U+007F, U+206A..U+206F, U+FEFF and U+FFF9..U+FFFC are
// deleted.
func ftfyRemoveControlChars(s string) string {
	i := strings.IndexFunc(s, isFtfyControl)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if !isFtfyControl(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// ---------------------------------------------------------------- fix_encoding

const (
	ftfyLatin1     = 0 // index of "latin-1" in ftfyCharmapNames
	ftfySloppy1252 = 1 // index of "sloppy-windows-1252"
)

type ftfyData struct {
	badness    *regexp.Regexp
	detector   *regexp.Regexp
	charmaps   [len(ftfyCharmapNames)][256]rune // the characters of each encoding's bytes
	encoders   [len(ftfyCharmapNames)]map[rune]byte
	strict1252 [256]rune // Python's windows-1252 codec; -1 marks the undefined bytes
}

var ftfyTables = sync.OnceValue(func() *ftfyData {
	d := &ftfyData{
		badness:  regexp.MustCompile(ftfyBadnessPattern),
		detector: regexp.MustCompile(ftfyUTF8DetectorPattern),
	}
	for i := range d.charmaps {
		d.charmaps[i] = expandCharmap(ftfyCharmapSUB[i], ftfyCharmapHigh[i])
		m := make(map[rune]byte, 256)
		for b, r := range d.charmaps[i] {
			m[r] = byte(b)
		}
		d.encoders[i] = m
	}
	d.strict1252 = d.charmaps[ftfySloppy1252]
	d.strict1252[0x1a] = 0x1a
	for i := 0; i < len(windows1252Undefined); i++ {
		d.strict1252[windows1252Undefined[i]] = -1
	}
	return d
})

// expandCharmap spells out one encoding of the generated tables: ASCII below 0x80 but
// for 0x1a, which decodes to sub, and the 128 characters of high from 0x80 on.
func expandCharmap(sub rune, high string) (t [256]rune) {
	for b := 0; b < 0x80; b++ {
		t[b] = rune(b)
	}
	t[0x1a] = sub
	b := 0x80
	for _, r := range high {
		t[b] = r
		b++
	}
	return t
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// ftfyIsBad is ftfy.badness.is_bad.
func ftfyIsBad(s string) bool { return ftfyTables().badness.MatchString(s) }

// ftfyFixEncoding is ftfy.fix_encoding: one-step fixes until nothing
// changes.
func ftfyFixEncoding(text string, depth int) string {
	if isASCII(text) {
		return text
	}
	for step := 0; step < ftfyMaxEncodingSteps; step++ {
		fixed := ftfyFixEncodingOneStep(text, depth)
		if fixed == text {
			break
		}
		text = fixed
	}
	return text
}

// ftfyEncode is text.encode(charmap) (strict); ok is false when some
// character is not in the charmap.
func ftfyEncode(text string, enc int) ([]byte, bool) {
	m := ftfyTables().encoders[enc]
	out := make([]byte, 0, len(text))
	for _, r := range text {
		b, ok := m[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// ftfyFixEncodingOneStep is ftfy._fix_encoding_one_step_and_explain.
func ftfyFixEncodingOneStep(text string, depth int) string {
	if len(text) == 0 || isASCII(text) || !ftfyIsBad(text) {
		return text
	}
	var possible [len(ftfyCharmapNames)]bool
	for enc := range ftfyCharmapNames {
		encoded, ok := ftfyEncode(text, enc)
		if !ok {
			continue
		}
		possible[enc] = true
		name := ftfyCharmapNames[enc]
		if name != "macroman" && hasAlteredUTF8(encoded) {
			encoded = restoreByteA0(encoded)
		}
		if strings.HasPrefix(name, "sloppy") {
			encoded = replaceLossySequences(encoded)
		}
		// utf-8 and utf-8-variants agree on input without 0xED / 0xC0.
		if fixed, ok := decodeUTF8Variants(encoded); ok {
			return fixed
		}
	}
	if hasUTF8Detector(text) {
		if fixed := decodeInconsistentUTF8(text, depth); fixed != text {
			return fixed
		}
	}
	// ftfy then tests `"windows-1252" in possible_1byte_encodings`, which is
	// never true (the list holds "sloppy-windows-1252"), so text that fits
	// Latin-1 is re-decoded as strict windows-1252 when that succeeds.
	if possible[ftfyLatin1] {
		if fixed, ok := latin1ToWindows1252(text); ok && fixed != text {
			return fixed
		}
	}
	if strings.ContainsFunc(text, isC1) {
		var b strings.Builder
		for _, r := range text {
			if isC1(r) {
				r = c1ToWindows1252(r)
			}
			b.WriteRune(r)
		}
		return b.String()
	}
	return text
}

func latin1ToWindows1252(text string) (string, bool) {
	strict := &ftfyTables().strict1252
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range text {
		if r > 0xff {
			return "", false
		}
		w := strict[r]
		if w < 0 {
			return "", false
		}
		b.WriteRune(w)
	}
	return b.String(), true
}

func isCont(c byte) bool { return c >= 0x80 && c <= 0xbf }

// ALTERED_UTF8_RE's continuation class [\x80-\x84\x86-\x9f\xa1-\xbf].
func isAlteredCont(c byte) bool {
	return (c >= 0x80 && c <= 0x84) || (c >= 0x86 && c <= 0x9f) || (c >= 0xa1 && c <= 0xbf)
}

// matchAlteredUTF8 returns the length of an ALTERED_UTF8_RE match at b[i:],
// or 0. The alternatives, in order:
//
//	[\xc2\xc3\xc5\xce\xd0\xd9][ ]
//	[\xe2\xe3][ ][cont']
//	[\xe0-\xe3][cont'][ ]
//	[\xf0][ ][\x80-\xbf][\x80-\xbf]
//	[\xf0][\x80-\xbf][ ][\x80-\xbf]
//	[\xf0][\x80-\xbf][\x80-\xbf][ ]
func matchAlteredUTF8(b []byte, i int) int {
	at := func(k int) int {
		if i+k < len(b) {
			return int(b[i+k])
		}
		return -1
	}
	c := b[i]
	switch c {
	case 0xc2, 0xc3, 0xc5, 0xce, 0xd0, 0xd9:
		if at(1) == ' ' {
			return 2
		}
	}
	if (c == 0xe2 || c == 0xe3) && at(1) == ' ' && at(2) >= 0 && isAlteredCont(byte(at(2))) {
		return 3
	}
	if c >= 0xe0 && c <= 0xe3 && at(1) >= 0 && isAlteredCont(byte(at(1))) && at(2) == ' ' {
		return 3
	}
	if c == 0xf0 && at(3) >= 0 {
		x, y, z := byte(at(1)), byte(at(2)), byte(at(3))
		if (x == ' ' && isCont(y) && isCont(z)) || (isCont(x) && y == ' ' && isCont(z)) ||
			(isCont(x) && isCont(y) && z == ' ') {
			return 4
		}
	}
	return 0
}

func hasAlteredUTF8(b []byte) bool {
	for i := range b {
		if b[i] >= 0xc2 && matchAlteredUTF8(b, i) > 0 {
			return true
		}
	}
	return false
}

// restoreByteA0 is ftfy.fixes.restore_byte_a0: A_GRAVE_WORD_RE
// (\xc3 (?! |quele|quela|quilo|s )) becomes "\xc3\xa0 ", then every
// ALTERED_UTF8_RE match has its spaces turned into 0xA0.
func restoreByteA0(b []byte) []byte {
	out := make([]byte, 0, len(b)+4)
	for i := 0; i < len(b); i++ {
		if b[i] == 0xc3 && i+1 < len(b) && b[i+1] == ' ' {
			rest := b[i+2:]
			neg := false
			for _, w := range []string{" ", "quele", "quela", "quilo", "s "} {
				if len(rest) >= len(w) && string(rest[:len(w)]) == w {
					neg = true
					break
				}
			}
			if !neg {
				out = append(out, 0xc3, 0xa0, ' ')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	b = out
	out = make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if n := matchAlteredUTF8(b, i); n > 0 {
			for _, c := range b[i : i+n] {
				if c == ' ' {
					c = 0xa0
				}
				out = append(out, c)
			}
			i += n
			continue
		}
		out = append(out, b[i])
		i++
	}
	return out
}

// matchLossy returns the length of a LOSSY_UTF8_RE match at b[i:], or 0.
func matchLossy(b []byte, i int) int {
	n := len(b) - i
	at := func(k int) byte { return b[i+k] }
	sub := func(c byte) bool { return c == 0x1a }
	subQ := func(c byte) bool { return c == 0x1a || c == '?' }
	subC := func(c byte) bool { return c == 0x1a || isCont(c) }
	c := at(0)
	// [\xc2-\xdf][\x1a]
	if c >= 0xc2 && c <= 0xdf && n >= 2 && sub(at(1)) {
		return 2
	}
	// [\xc2-\xc3][?]
	if (c == 0xc2 || c == 0xc3) && n >= 2 && at(1) == '?' {
		return 2
	}
	if c == 0xed && n >= 6 {
		// \xed[\xa0-\xaf][\x1a?]\xed[\xb0-\xbf][\x1a?\x80-\xbf]
		if at(1) >= 0xa0 && at(1) <= 0xaf && subQ(at(2)) && at(3) == 0xed &&
			at(4) >= 0xb0 && at(4) <= 0xbf && (subQ(at(5)) || isCont(at(5))) {
			return 6
		}
		// \xed[\xa0-\xaf][\x1a?\x80-\xbf]\xed[\xb0-\xbf][\x1a?]
		if at(1) >= 0xa0 && at(1) <= 0xaf && (subQ(at(2)) || isCont(at(2))) && at(3) == 0xed &&
			at(4) >= 0xb0 && at(4) <= 0xbf && subQ(at(5)) {
			return 6
		}
	}
	if c >= 0xe0 && c <= 0xef && n >= 3 {
		// [\xe0-\xef][\x1a?][\x1a\x80-\xbf]
		if subQ(at(1)) && subC(at(2)) {
			return 3
		}
		// [\xe0-\xef][\x1a\x80-\xbf][\x1a?]
		if subC(at(1)) && subQ(at(2)) {
			return 3
		}
	}
	if c >= 0xf0 && c <= 0xf4 && n >= 4 {
		if subQ(at(1)) && subC(at(2)) && subC(at(3)) {
			return 4
		}
		if subC(at(1)) && subQ(at(2)) && subC(at(3)) {
			return 4
		}
		if subC(at(1)) && subC(at(2)) && subQ(at(3)) {
			return 4
		}
	}
	if sub(c) {
		return 1
	}
	return 0
}

// replaceLossySequences is ftfy.fixes.replace_lossy_sequences: every
// LOSSY_UTF8_RE match becomes the UTF-8 encoding of U+FFFD.
func replaceLossySequences(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		n := matchLossy(b, i)
		if n == 0 {
			i++
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(b)+8)
		}
		out = append(out, b[last:i]...)
		out = append(out, 0xef, 0xbf, 0xbd)
		i += n
		last = i
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// decodeUTF8Variants is a strict decode with ftfy's "utf-8-variants" codec:
// UTF-8, plus Java's C0 80 for U+0000 and CESU-8 surrogate pairs for
// supplementary characters. Anything else ill-formed fails.
func decodeUTF8Variants(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return string(b), true
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == 0xc0:
			if i+1 < len(b) && b[i+1] == 0x80 {
				sb.WriteByte(0)
				i += 2
				continue
			}
			return "", false
		case c == 0xed && i+1 < len(b) && b[i+1] >= 0xa0:
			// CESU8_RE; its "|$" alternatives let a final "\n" stand in for
			// the last byte (Python's $ matches before a trailing newline).
			rest := len(b) - i
			if rest >= 6 && b[i+1] <= 0xaf && isCont(b[i+2]) && b[i+3] == 0xed &&
				b[i+4] >= 0xb0 && b[i+4] <= 0xbf && (isCont(b[i+5]) || (rest == 6 && b[i+5] == '\n')) {
				cp := rune(b[i+1]&0x0f)<<16 + rune(b[i+2]&0x3f)<<10 +
					rune(b[i+4]&0x0f)<<6 + rune(b[i+5]&0x3f) + 0x10000
				sb.WriteRune(cp)
				i += 6
				continue
			}
			return "", false
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return "", false
		}
		sb.Write(b[i : i+size])
		i += size
	}
	return sb.String(), true
}

// utf8DetectorMatches calls f for every UTF8_DETECTOR_RE match in s (the
// lookbehind (?<![utf8_continuation_strict]) applied at each start), left to
// right, non-overlapping.
func utf8DetectorMatches(s string, f func(start, end int) bool) {
	re := ftfyTables().detector
	pos := 0
	for pos < len(s) {
		loc := re.FindStringIndex(s[pos:])
		if loc == nil {
			return
		}
		start, end := pos+loc[0], pos+loc[1]
		if start > 0 {
			prev, _ := utf8.DecodeLastRuneInString(s[:start])
			if inRanges(prev, ftfyUTF8StrictCont) {
				_, size := utf8.DecodeRuneInString(s[start:])
				pos = start + size
				continue
			}
		}
		if !f(start, end) {
			return
		}
		pos = end
	}
}

func hasUTF8Detector(s string) bool {
	found := false
	utf8DetectorMatches(s, func(int, int) bool { found = true; return false })
	return found
}

// decodeInconsistentUTF8 is ftfy.fixes.decode_inconsistent_utf8.
func decodeInconsistentUTF8(text string, depth int) string {
	var b strings.Builder
	last := 0
	utf8DetectorMatches(text, func(start, end int) bool {
		sub := text[start:end]
		if len(sub) < len(text) && depth < ftfyMaxInconsistentDepth && ftfyIsBad(sub) {
			if fixed := ftfyFixEncoding(sub, depth+1); fixed != sub {
				b.WriteString(text[last:start])
				b.WriteString(fixed)
				last = end
			}
		}
		return true
	})
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}
