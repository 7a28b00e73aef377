package preprocess

import (
	"encoding/binary"
	"math/bits"
)

// flateDecoder inflates a raw DEFLATE stream (RFC 1951) into a buffer of known size, with
// compress/flate's rules: it accepts exactly the streams compress/flate decodes, to the
// same bytes (FuzzInflate checks both ways). A PNG's inflated size is known from its
// header, so the output is one buffer and the window is the output itself.
//
// Why not compress/flate: it decodes through a 32 KiB window and one symbol at a time
// (about 6 ns a symbol on a noisy PNG's stream, the copy out included); this decoder takes two literals per table
// load where their codewords fit (a noisy image's stream is nearly all literals of 5 to 8
// bits) and writes straight into the PNG's buffer. Why not libdeflate (the C inflater used
// before): it also decodes some malformed streams zlib and compress/flate refuse, so a second
// strict pass over the stream had to follow it, and the two together cost more than this.
type flateDecoder struct {
	src  []byte
	pos  int    // next byte of src to load into b
	over int    // zero bytes loaded past the end of src
	b    uint64 // bit buffer, next bit lowest
	nb   uint   // valid bits in b
	dst  []byte
	op   int // bytes written to dst
	lit  flateTable
	dist flateTable
	pre  flateTable
	lens [288 + 32]uint8 // code lengths: a dynamic header's, or the fixed codes'
	// fixed: lit and dist hold the fixed codes, so that a run of fixed-code blocks (a
	// stream of many empty ones costs 10 bits each) builds them once.
	fixed bool
}

const (
	maxLitCodes  = 286 // compress/flate's maxNumLit: codes 286 and 287 are refused
	maxDistCodes = 30  // compress/flate's maxNumDist: codes 30 and 31 are refused
	flateBits    = 11  // table index bits: codewords up to this long are one lookup (noisy PNG: 10 bits 9.8 ms, 11 8.4, 12 8.5)

	// A table entry (flateTable.entry). The low six bits: the bits it consumes (its
	// codewords and the extra bits after a length or distance code), so that
	// b >>= e&entBits is one shift. entLit: one literal (in bits 8–15), or with entPair
	// two (the second in bits 16–23). Else bits 8–23 hold the value: a length code's base
	// length, a distance code's base distance, a precode's symbol; or, with entStop, the
	// end-of-block code or a refused code (the symbol); bits 24–27 the codeword's length.
	// 0: a codeword longer than flateBits (slow), or none (an unused codeword).
	entBits  = 63
	entLit   = 64
	entPair  = 128
	entStop  = 128 // not a literal: the two flags share the bit
	entValue = 8
	entCode  = 24
)

// Table kinds: what a symbol's entry holds.
const (
	tablePre = iota
	tableLit
	tableDist
)

// flateTable is a canonical Huffman code: a table of the codewords up to flateBits long and,
// for the rest, the per-length counts and sorted symbols (puff's decode).
type flateTable struct {
	fast  [1 << flateBits]uint32 // the first mask+1 entries are in use
	mask  uint64
	count [16]uint16
	sym   [288]uint16
	kind  int
}

// build makes the code of the given kind from the code lengths, with compress/flate's
// acceptance rule (huffmanDecoder.init): complete codes, the empty code, or one codeword
// of length 1. A literal/length table is filled whole, with literal pairs.
func (h *flateTable) build(lens []uint8, kind int) bool {
	h.kind = kind
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
	// A distance or precode table is as long as its longest codeword needs (a precode's 7
	// bits: 128 entries), so that the many small blocks of a degenerate stream cost little;
	// a complete code short enough for the table fills all of it, anything else starts
	// from zeros.
	size := 1 << min(maxLen, flateBits)
	if kind == tableLit {
		size = 1 << flateBits
	}
	h.mask = uint64(size - 1)
	if left != 0 || maxLen > flateBits {
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
		if int(l) > flateBits {
			continue
		}
		e := h.entry(s, uint(l))
		for i := int(bits.Reverse16(code) >> (16 - l)); i < size; i += 1 << l {
			h.fast[i] = e
		}
	}
	if kind == tableLit {
		h.pairLiterals(size)
	}
	return true
}

// entry is symbol s's table entry, its codeword l bits long.
func (h *flateTable) entry(s int, l uint) uint32 {
	e := uint32(l)<<entCode | uint32(l)
	switch {
	case h.kind == tablePre:
		return e | uint32(s)<<entValue
	case h.kind == tableDist && s < maxDistCodes:
		return e | uint32(distBase[s])<<entValue + uint32(distExtra[s])
	case h.kind == tableLit && s < 256:
		return entLit | uint32(s)<<entValue | uint32(l)
	case h.kind == tableLit && s > 256 && s < maxLitCodes:
		return e | uint32(lengthBase[s-257])<<entValue + uint32(litExtra[s])
	}
	return e | entStop | uint32(s)<<entValue // end of block; 286, 287, 30, 31
}

// pairLiterals turns each entry of a literal whose bits leave room for a second literal's
// whole codeword into one entry for both. Descending, so that the second lookup (at a
// lower index) still reads a one-literal entry. (Triples were measured, though 95 % of a
// detailed PNG's lookups are pairs: a third literal in bits 24–31 of these entries, 7.2
// against 6.7 ms on its stream and 10.1 against 8.8 on a noisy one, as Go spilled the
// entry and split the 4-byte store; 64-bit entries with a literal count, 6.4–6.6 against
// 6.4–6.8 and 8.9–9.0 against 8.6–8.8: few triples fit 11 bits.)
func (h *flateTable) pairLiterals(size int) {
	width := uint32(bits.Len(uint(size - 1)))
	for i := size - 1; i >= 0; i-- {
		e := h.fast[i]
		if e&entLit == 0 {
			continue
		}
		l := e & entBits
		if e2 := h.fast[i>>l]; e2&entLit != 0 && e2&entPair == 0 && l+e2&entBits <= width {
			h.fast[i] = e&^entBits | entPair | (e2>>entValue&0xff)<<16 | (l + e2&entBits)
		}
	}
}

// decode returns the entry of the codeword that starts b; 0 if h has no such codeword
// (an unused codeword of an incomplete code).
func (h *flateTable) decode(b uint64) uint32 {
	if e := h.fast[b&h.mask]; e != 0 {
		return e
	}
	return h.slow(b)
}

// slow is puff's canonical decode, one bit at a time, for the codewords the table does
// not hold: the entry the table would hold, never a pair.
func (h *flateTable) slow(b uint64) uint32 {
	c, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		c |= int(b>>(l-1)) & 1
		count := int(h.count[l])
		if c-count < first {
			return h.entry(int(h.sym[index+c-first]), uint(l))
		}
		index += count
		first = (first + count) << 1
		c <<= 1
	}
	return 0
}

// Extra bits after the literal/length codes (0 for literals and end of block; RFC 1951
// 3.2.5: the length codes 257..285) and after the distance codes 0..29, and the base
// lengths and distances. The refused codes 286, 287, 30 and 31 have none: decoding stops
// at them.
var (
	litExtra   = [286]uint8{264: 0, 265: 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 285: 0}
	distExtra  = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	lengthBase = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	distBase   = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
)

// inflate decodes the raw DEFLATE stream at the start of src into dst and returns where
// in src the stream ended (the byte after its last bit); ok only if compress/flate
// accepts the stream and it holds exactly len(dst) bytes.
func (d *flateDecoder) inflate(dst, src []byte) (end int, ok bool) {
	d.src, d.pos, d.over, d.b, d.nb, d.fixed = src, 0, 0, 0, 0, false
	d.dst, d.op = dst, 0
	defer func() { d.src, d.dst = nil, nil }()
	for {
		d.refill()
		if d.over > 8 {
			return 0, false
		}
		final, typ := d.bits(1), d.bits(2)
		switch typ {
		case 0:
			ok = d.stored()
		case 1:
			ok = d.fixedCodes() && d.block()
		case 2:
			ok = d.dynamicCodes() && d.block()
		default:
			ok = false
		}
		if !ok {
			return 0, false
		}
		if final == 1 {
			// The stream ends at the byte holding its last bit; bytes loaded past it are
			// given back.
			end = d.pos + d.over - int(d.nb>>3)
			return end, end <= len(src) && d.op == len(dst)
		}
	}
}

// refill loads bytes into b until it holds at least 56 bits, appending zero bytes past the
// end of src (counted in over, so that a read past the end is seen).
func (d *flateDecoder) refill() {
	if d.pos+8 <= len(d.src) {
		d.b |= binary.LittleEndian.Uint64(d.src[d.pos:]) << d.nb
		d.pos += int(63-d.nb) >> 3
		d.nb |= 56
		return
	}
	for d.nb <= 56 {
		if d.pos < len(d.src) {
			d.b |= uint64(d.src[d.pos]) << d.nb
			d.pos++
		} else {
			d.over++
		}
		d.nb += 8
	}
}

func (d *flateDecoder) bits(n uint) uint32 {
	v := uint32(d.b & (1<<n - 1))
	d.b >>= n
	d.nb -= n
	return v
}

// stored copies a stored block: to the byte boundary, LEN, NLEN = ^LEN, LEN bytes.
func (d *flateDecoder) stored() bool {
	d.bits(d.nb & 7)
	n, nn := int(d.bits(16)), d.bits(16)
	start := d.pos + d.over - int(d.nb>>3)
	if d.pos+d.over-len(d.src) > int(d.nb>>3) || uint16(nn) != ^uint16(n) || start+n > len(d.src) || n > len(d.dst)-d.op {
		return false
	}
	d.op += copy(d.dst[d.op:], d.src[start:start+n])
	d.pos, d.over, d.b, d.nb = start+n, 0, 0, 0
	return true
}

func (d *flateDecoder) fixedCodes() bool {
	if d.fixed {
		return true
	}
	d.fixed = true
	l := d.lens[:288+32]
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
	return d.lit.build(l[:288], tableLit) && d.dist.build(l[288:], tableDist)
}

// precodeOrder is the order of the code length code's lengths in a dynamic header.
var precodeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicCodes reads a dynamic block's header (RFC 1951 3.2.7) with readHuffman's checks.
func (d *flateDecoder) dynamicCodes() bool {
	d.fixed = false
	nlit, ndist, nclen := int(d.bits(5))+257, int(d.bits(5))+1, int(d.bits(4))+4
	if nlit > maxLitCodes || ndist > maxDistCodes {
		return false
	}
	var pl [19]uint8
	for i := 0; i < nclen; i++ {
		if d.nb < 3 {
			d.refill()
		}
		pl[precodeOrder[i]] = uint8(d.bits(3))
	}
	if !d.pre.build(pl[:], tablePre) {
		return false
	}
	n := nlit + ndist
	for i := 0; i < n; {
		if d.nb < 15+7 { // a codeword (decode may look at 15 bits) and 7 extra bits
			d.refill()
			if d.over > 8 {
				return false
			}
		}
		e := d.pre.decode(d.b)
		if e == 0 {
			return false
		}
		x := int(e >> entValue & 0xffff)
		d.b >>= e & entBits
		d.nb -= uint(e & entBits)
		if x < 16 {
			d.lens[i] = uint8(x)
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
			rep, v = 3+int(d.bits(2)), d.lens[i-1]
		case 17:
			rep = 3 + int(d.bits(3))
		default:
			rep = 11 + int(d.bits(7))
		}
		if i+rep > n {
			return false
		}
		for ; rep > 0; rep-- {
			d.lens[i] = v
			i++
		}
	}
	return d.lit.build(d.lens[:nlit], tableLit) && d.dist.build(d.lens[nlit:n], tableDist)
}

// block decodes a block's literal/length and distance symbols up to the end-of-block code,
// refusing the codes compress/flate refuses (huffmanBlock), distances before the start of
// the output, and output past the end of dst. The bit buffer and the output position are
// kept in locals: this loop is the decoder's whole cost, and its hot path is one function
// on purpose (moving the rare long-literal path out, by a goto or a check ahead of the
// literals, once cost 4–6 % on noisy images: the compiler then laid out and allocated the
// hot loop worse). After a refill, up to five literal entries are decoded without another
// look at the bit count: the refill's branch, taken every third or fourth entry in no
// fixed pattern, was mispredicted often enough to cost a third of a noisy image's inflate
// (8.1 → 5.3 ms with four entries; the detailed one 6.1 → 4.7 ms; the fifth, refilling to
// 56 bits, 1.5–3 % more). The rare paths (a literal too long for the table, the last bytes
// of dst, a refill at the end of src, a match's values and its short copy) share checks or
// sit in small functions: 33 lines fewer for 0.5–1.5 % of the time.
func (d *flateDecoder) block() bool {
	src, pos, b, nb := d.src, d.pos, d.b, d.nb
	dst, op := d.dst, d.op
	fast := &d.lit.fast // all of it: build fills the whole literal/length table
	for {
		// 56 bits: five literal entries (below; 48 for a length code (15) + 5 extra bits,
		// a distance code (15) + 13 extra bits)
		if nb < 56 {
			if pos+8 > len(src) {
				if pos, b, nb = d.refillAt(pos, b, nb); d.over > 8 {
					return false
				}
			} else {
				b |= binary.LittleEndian.Uint64(src[pos:]) << (nb & 63)
				pos += int(63-nb) >> 3
				nb |= 56
			}
		}
		e := fast[b&(1<<flateBits-1)]
		if e == 0 {
			if e = d.lit.slow(b); e == 0 {
				return false
			}
		}
		if e&entLit != 0 {
			n := uint(e & entBits)
			b >>= n
			nb -= n
			if n > flateBits || op+10 > len(dst) { // a literal too long for the table; the end of dst
				if op = putLiterals(dst, op, e); op < 0 {
					return false // more than len(dst) bytes
				}
				continue
			}
			// One or two literals, both bytes written in one store (the second is
			// overwritten next when e is one), then up to four more literal entries
			// without a refill: the buffer held at least 56 bits and each takes at most
			// flateBits, so 12 are left for the fifth lookup; anything else goes back to
			// the top (and is looked up again after a refill).
			for k := 0; ; k++ {
				binary.LittleEndian.PutUint16(dst[op:op+2], uint16(e>>entValue))
				op += 1 + int(e>>7&1)
				if k == 4 {
					break
				}
				if e = fast[b&(1<<flateBits-1)]; e&entLit == 0 {
					break
				}
				n = uint(e & entBits)
				b >>= n
				nb -= n
			}
			continue
		}
		if e&entStop != 0 {
			if e>>entValue&0xffff != 256 {
				return false // 286, 287
			}
			b >>= e & entBits
			d.pos, d.b, d.nb, d.op = pos, b, nb-uint(e&entBits), op
			return true
		}
		length, n := entryValue(e, b)
		b >>= n
		nb -= n
		de := d.dist.fast[b&d.dist.mask]
		if de == 0 {
			de = d.dist.slow(b)
		}
		if de == 0 || de&entStop != 0 {
			return false // no such codeword; 30, 31
		}
		back, n := entryValue(de, b)
		b >>= n
		nb -= n
		if back > op || length > len(dst)-op {
			return false
		}
		if back >= 8 && length <= 40 && len(dst)-op >= 40 {
			copyShort(dst[op:op+40], dst[op-back:op-back+40])
		} else {
			copyMatch(dst, op, back, length)
		}
		op += length
	}
}

// refillAt is refill for block's locals, near the end of src.
func (d *flateDecoder) refillAt(pos int, b uint64, nb uint) (int, uint64, uint) {
	d.pos, d.b, d.nb = pos, b, nb
	d.refill()
	return d.pos, d.b, d.nb
}

// putLiterals writes the one or two literals of entry e at op in dst and returns the
// position after them, or -1 if they do not fit.
func putLiterals(dst []byte, op int, e uint32) int {
	n := 1 + int(e>>7&1)
	if n > len(dst)-op {
		return -1
	}
	dst[op] = byte(e >> entValue)
	if n == 2 {
		dst[op+1] = byte(e >> 16)
	}
	return op + n
}

// entryValue is a length or distance entry's value, its base plus the extra bits that
// follow its codeword at the bottom of b, and the bits both take.
func entryValue(e uint32, b uint64) (int, uint) {
	code, total := e>>entCode&15, e&entBits
	return int(e>>entValue&0xffff) + int(uint32(b>>code)&(1<<(total-code)-1)), uint(total)
}

// copyShort copies a match of at most 40 bytes at least 8 back: most of a PNG's matches
// (a row or a pixel back) are this short, so five words, unconditionally, without a loop
// whose end the branch predictor misses or the call of copy. w and r are the 40 bytes at
// the match and at its source; bytes written past the match are written over later. Each
// word read lies at least eight bytes behind the one written, so it is already final even
// where the match overlaps itself.
func copyShort(w, r []byte) {
	w, r = w[:40], r[:40]
	binary.LittleEndian.PutUint64(w[0:], binary.LittleEndian.Uint64(r[0:]))
	binary.LittleEndian.PutUint64(w[8:], binary.LittleEndian.Uint64(r[8:]))
	binary.LittleEndian.PutUint64(w[16:], binary.LittleEndian.Uint64(r[16:]))
	binary.LittleEndian.PutUint64(w[24:], binary.LittleEndian.Uint64(r[24:]))
	binary.LittleEndian.PutUint64(w[32:], binary.LittleEndian.Uint64(r[32:]))
}

// copyMatch copies length bytes from back bytes before op to op, in dst (back ≤ op,
// op+length ≤ len(dst)): the matches block does not copy inline. (Runs of one byte as
// eight-byte stores measured no faster on a 147 MB image of zeros: the copies are memory
// bound there.)
func copyMatch(dst []byte, op, back, length int) {
	if back >= length {
		copy(dst[op:op+length], dst[op-back:op])
		return
	}
	// Overlapping: each copy doubles what is there to copy from.
	for n := 0; n < length; {
		n += copy(dst[op+n:op+length], dst[op-back:op+n])
	}
}
