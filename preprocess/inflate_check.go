//go:build cgo

package preprocess

import "encoding/binary"

// deflateCheck holds what strictCheck needs to walk a DEFLATE stream (RFC 1951): the bit
// reader and the Huffman codes of the current block. It is pooled with the libdeflate
// decompressor (inflate.go), so a walk allocates nothing.
//
// Why it exists: libdeflate 1.14 decodes every stream compress/flate (and zlib, Pillow's
// inflater) decodes, to the same bytes, but it also decodes some streams they refuse:
// a dynamic header declaring more than 286 literal/length or 30 distance codes, code
// length repeats running past the declared count, the reserved symbols 286/287 and
// distance codes 30/31 (reachable in fixed-code blocks), and the unused codeword of a
// one-symbol code or the empty distance code (libdeflate maps them to a symbol). The walk
// applies compress/flate's rules to the symbols libdeflate decoded, without producing
// output, so that the fast PNG path accepts exactly the streams compress/zlib accepts.
type deflateCheck struct {
	src  []byte
	pos  int    // next byte of src to load into b
	over int    // zero bytes loaded past the end of src
	b    uint64 // bit buffer, next bit lowest
	nb   uint   // valid bits in b
	lit  huffCode
	dist huffCode
	pre  huffCode
	lens [288 + 32]uint8 // code lengths: a dynamic header's, or the fixed codes'
	// fixed: lit and dist hold the fixed codes, so that a run of fixed-code blocks (a
	// stream of many empty ones costs 10 bits each) builds them once, as libdeflate does.
	fixed bool
}

const (
	maxLitCodes  = 286 // compress/flate's maxNumLit: codes 286 and 287 are refused
	maxDistCodes = 30  // compress/flate's maxNumDist: codes 30 and 31 are refused
	huffFastBits = 10
)

// huffCode is a canonical Huffman code: a table of the codewords up to huffFastBits long
// (entry = symbol<<5 | bits, where bits counts the codeword and the extra bits that follow
// it, which the walk skips in the same shift; 0 where the codeword is longer or unused) and
// the per-length counts and sorted symbols for the rest (puff's decode).
type huffCode struct {
	fast  [1 << huffFastBits]uint32 // the first mask+1 entries are in use
	mask  uint64
	count [16]uint16
	sym   [288]uint16
	extra []uint8 // extra bits after each symbol's codeword; nil for none
}

// build makes the code from the code lengths, with compress/flate's acceptance rule
// (huffmanDecoder.init): complete codes, the empty code, or one codeword of length 1.
// extra gives the extra bits following each symbol (nil: none).
func (h *huffCode) build(lens, extra []uint8) bool {
	h.extra = extra
	h.count = [16]uint16{}
	for _, l := range lens {
		h.count[l]++
	}
	h.count[0] = 0
	left, maxLen := 1, 0
	var offs [16]uint16
	for l := 1; l < 16; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return false // over-subscribed
		}
		if h.count[l] != 0 {
			maxLen = l
		}
		offs[l] = offs[l-1] + h.count[l-1]
	}
	if left != 0 && maxLen != 0 && !(maxLen == 1 && h.count[1] == 1) {
		return false // incomplete, and not one code of length 1
	}
	// The table is as long as the longest codeword needs (a precode's 7 bits: 128 entries),
	// so that the many small blocks of a degenerate stream cost little; a complete code
	// short enough for the table fills all of it, anything else starts from zeros.
	size := 1 << min(maxLen, huffFastBits)
	h.mask = uint64(size - 1)
	if left != 0 || maxLen > huffFastBits {
		clear(h.fast[:size])
	}
	var next [16]uint16
	for l := 1; l < 16; l++ {
		next[l] = (next[l-1] + h.count[l-1]) << 1
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		h.sym[offs[l]] = uint16(s)
		offs[l]++
		code := next[l]
		next[l]++
		if int(l) > huffFastBits {
			continue
		}
		e := uint32(s)<<5 | uint32(l)
		if s < len(extra) {
			e += uint32(extra[s])
		}
		for i := int(reverseBits(code, uint(l))); i < size; i += 1 << l {
			h.fast[i] = e
		}
	}
	return true
}

func reverseBits(code uint16, n uint) uint16 {
	var r uint16
	for i := uint(0); i < n; i++ {
		r = r<<1 | code>>i&1
	}
	return r
}

// refill loads bytes into b until it holds at least 56 bits, appending zero bytes past the
// end of src (counted in over, so that the caller can tell a read past the end).
func (c *deflateCheck) refill() {
	if c.pos+8 <= len(c.src) {
		c.b |= binary.LittleEndian.Uint64(c.src[c.pos:]) << c.nb
		c.pos += int(63-c.nb) >> 3
		c.nb |= 56
		return
	}
	for c.nb <= 56 {
		if c.pos < len(c.src) {
			c.b |= uint64(c.src[c.pos]) << c.nb
			c.pos++
		} else {
			c.over++
		}
		c.nb += 8
	}
}

func (c *deflateCheck) bits(n uint) uint32 {
	v := uint32(c.b & (1<<n - 1))
	c.b >>= n
	c.nb -= n
	return v
}

// sym decodes one symbol of h and skips its extra bits; -1 for a codeword h does not
// have. b must hold 15 bits and the extra bits.
func (c *deflateCheck) sym(h *huffCode) int {
	v, n := h.decode(c.b)
	c.b >>= n
	c.nb -= n
	return v
}

// decode returns the symbol whose codeword starts b and the number of bits the codeword
// and its extra bits take, or -1 if h has no such codeword (an unused codeword of an
// incomplete code).
func (h *huffCode) decode(b uint64) (int, uint) {
	if e := h.fast[b&h.mask]; e != 0 {
		return int(e >> 5), uint(e & 31)
	}
	return h.slow(b)
}

// slow is puff's canonical decode, one bit at a time, for the codewords the table does
// not hold.
func (h *huffCode) slow(b uint64) (int, uint) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= int(b>>(l-1)) & 1
		count := int(h.count[l])
		if code-count < first {
			s := int(h.sym[index+code-first])
			if s < len(h.extra) {
				return s, uint(l) + uint(h.extra[s])
			}
			return s, uint(l)
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return -1, 0
}

// Extra bits after the literal/length codes (0 for literals and end of block; RFC 1951
// 3.2.5: the length codes 257..285) and after the distance codes 0..29. The refused
// codes 286, 287, 30 and 31 have none: the walk stops at them.
var (
	litExtra  = [286]uint8{264: 0, 265: 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 285: 0}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// strictCheck walks the raw DEFLATE stream src and reports whether compress/flate would
// accept its structure and symbols and the stream ends exactly at the end of src (where
// libdeflate found it to end). It
// does not check what libdeflate checks identically (distances reaching before the
// output, the output size, the checksum): it is only called after libdeflate succeeded.
func (c *deflateCheck) strictCheck(src []byte) bool {
	c.src, c.pos, c.over, c.b, c.nb, c.fixed = src, 0, 0, 0, 0, false
	defer func() { c.src = nil }()
	for {
		c.refill()
		if c.over > 8 {
			return false
		}
		final, typ := c.bits(1), c.bits(2)
		var ok bool
		switch typ {
		case 0:
			ok = c.stored()
		case 1:
			ok = c.fixedCodes() && c.symbols()
		case 2:
			ok = c.dynamicCodes() && c.symbols()
		}
		if !ok {
			return false
		}
		if final == 1 {
			// The stream ends at the byte holding its last bit; bytes loaded past it are
			// given back.
			end := c.pos + c.over - int(c.nb>>3)
			return end == len(src)
		}
	}
}

// stored skips a stored block: to the byte boundary, LEN, NLEN = ^LEN, LEN bytes.
func (c *deflateCheck) stored() bool {
	c.bits(c.nb & 7)
	n, nn := c.bits(16), c.bits(16)
	start := c.pos + c.over - int(c.nb>>3)
	if c.pos+c.over-len(c.src) > int(c.nb>>3) || uint16(nn) != ^uint16(n) || start+int(n) > len(c.src) {
		return false
	}
	c.pos, c.over, c.b, c.nb = start+int(n), 0, 0, 0
	return true
}

func (c *deflateCheck) fixedCodes() bool {
	if c.fixed {
		return true
	}
	c.fixed = true
	l := c.lens[:288+32]
	for i := range 288 {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	for i := 288; i < len(l); i++ {
		l[i] = 5
	}
	return c.lit.build(l[:288], litExtra[:]) && c.dist.build(l[288:], distExtra[:])
}

// precodeOrder is the order of the code length code's lengths in a dynamic header.
var precodeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicCodes reads a dynamic block's header (RFC 1951 3.2.7) with readHuffman's checks.
func (c *deflateCheck) dynamicCodes() bool {
	c.fixed = false
	nlit, ndist, nclen := int(c.bits(5))+257, int(c.bits(5))+1, int(c.bits(4))+4
	if nlit > maxLitCodes || ndist > maxDistCodes {
		return false
	}
	var pl [19]uint8
	for i := 0; i < nclen; i++ {
		if c.nb < 3 {
			c.refill()
		}
		pl[precodeOrder[i]] = uint8(c.bits(3))
	}
	if !c.pre.build(pl[:], nil) {
		return false
	}
	n := nlit + ndist
	for i := 0; i < n; {
		if c.nb < 15+7 { // a codeword (decode may look at 15 bits) and 7 extra bits
			c.refill()
			if c.over > 8 {
				return false
			}
		}
		x := c.sym(&c.pre)
		if x < 0 {
			return false
		}
		if x < 16 {
			c.lens[i] = uint8(x)
			i++
			continue
		}
		var rep int
		var v uint8
		switch x {
		case 16:
			if i == 0 {
				return false
			}
			rep, v = 3+int(c.bits(2)), c.lens[i-1]
		case 17:
			rep = 3 + int(c.bits(3))
		default:
			rep = 11 + int(c.bits(7))
		}
		if i+rep > n {
			return false
		}
		for ; rep > 0; rep-- {
			c.lens[i] = v
			i++
		}
	}
	return c.lit.build(c.lens[:nlit], litExtra[:]) && c.dist.build(c.lens[nlit:n], distExtra[:])
}

// symbols walks a block's literal/length and distance symbols up to the end-of-block
// code, refusing the codes compress/flate refuses (huffmanBlock). The bit buffer is kept
// in locals: this loop is the walk's whole cost.
func (c *deflateCheck) symbols() bool {
	src, pos, b, nb := c.src, c.pos, c.b, c.nb
	lit, dist := &c.lit, &c.dist
	litMask := lit.mask
	for {
		// 48 bits: a length code (15) + 5 extra bits, a distance code (15) + 13 extra bits
		if nb < 48 {
			if pos+8 > len(src) {
				c.pos, c.b, c.nb = pos, b, nb
				c.refill()
				if c.over > 8 {
					return false
				}
				pos, b, nb = c.pos, c.b, c.nb
			} else {
				b |= binary.LittleEndian.Uint64(src[pos:]) << nb
				pos += int(63-nb) >> 3
				nb |= 56
			}
		}
		var v int
		if e := lit.fast[b&litMask&(1<<huffFastBits-1)]; e != 0 { // inline: the common case
			v = int(e >> 5)
			b >>= e & 31
			nb -= uint(e & 31)
		} else {
			var n uint
			v, n = lit.slow(b)
			b >>= n
			nb -= n
		}
		if uint(v) < 256 {
			continue
		}
		if v == 256 {
			c.pos, c.b, c.nb = pos, b, nb
			return true
		}
		if v < 0 || v >= maxLitCodes {
			return false
		}
		d, n := dist.decode(b)
		if d < 0 || d >= maxDistCodes {
			return false
		}
		b >>= n
		nb -= n
	}
}
