package preprocess

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"image/png"
	"io"
	"math/rand/v2"
	"testing"
)

// goInflate is compress/zlib's verdict on src as a PNG's stream of n bytes, as the
// compress/zlib fast path read it: exactly n bytes, then the end with a valid checksum.
func goInflate(src []byte, n int) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, err
	}
	var one [1]byte
	if k, err := zr.Read(one[:]); k != 0 || err != io.EOF {
		return nil, fmt.Errorf("no clean end after %d bytes: %d more, %v", n, k, err)
	}
	return out, nil
}

// zlibWrap puts a raw DEFLATE body in a zlib stream whose checksum is that of out.
func zlibWrap(body, out []byte) []byte {
	s := append([]byte{0x78, 0x01}, body...)
	return binary.BigEndian.AppendUint32(s, adler32.Checksum(out))
}

// TestPNGInflateLikeZlib: on streams compress/zlib writes at every level (stored, fixed
// and dynamic blocks; literals only; long matches), whole or split into IDAT-like parts,
// pngInflate accepts and gives the original bytes.
func TestPNGInflateLikeZlib(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 60; i++ {
		n := 1 + rng.IntN(1<<uint(4+i%14))
		raw := make([]byte, n)
		switch i % 6 {
		case 0: // noise
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
		case 1: // smooth rows
			for j := range raw {
				raw[j] = byte(j/7 + j%5)
			}
		case 2: // runs
			for j := range raw {
				raw[j] = byte(j / 300)
			}
		case 3: // few symbols
			for j := range raw {
				raw[j] = "ab"[rng.IntN(2)]
			}
		default: // a filtered noisy image's residuals: literal codes of 2 to 15 bits
			for j := range raw {
				raw[j] = byte(int(rng.NormFloat64() * float64(1+i%5*4)))
			}
		}
		level := []int{zlib.HuffmanOnly, zlib.NoCompression, zlib.BestSpeed, zlib.DefaultCompression, zlib.BestCompression}[i%5]
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, level)
		zw.Write(raw)
		zw.Close()
		src := z.Bytes()
		parts := [][]byte{src}
		if i%3 == 1 && len(src) > 3 { // split, one part empty
			a, b := rng.IntN(len(src)), 0
			b = a + rng.IntN(len(src)-a)
			parts = [][]byte{src[:a], src[a:a], src[a:b], src[b:]}
		}
		dst := make([]byte, n)
		if !pngInflate(dst, parts) {
			t.Fatalf("case %d (%d bytes, level %d): declined a stream compress/zlib wrote", i, n, level)
		}
		if !bytes.Equal(dst, raw) {
			t.Fatalf("case %d: bytes differ", i)
		}
	}
}

// TestPNGInflateLongLiterals: most literals one of a few dozen (codewords of 5 and 6 bits,
// so table entries of two literals and 11 bits), the rest of geometrically falling
// frequency (codewords up to 15 bits): literals longer than the table (decoded one bit at
// a time) amid runs of full-width pairs, where the decoder takes several table entries per
// refill, come out right.
func TestPNGInflateLongLiterals(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, common := range []int{40, 48, 56} {
		raw := make([]byte, 1<<20)
		for j := range raw {
			if rng.IntN(10) != 0 {
				raw[j] = byte(rng.IntN(common))
				continue
			}
			k := common
			for k < 255 && rng.IntN(3) != 0 {
				k++
			}
			raw[j] = byte(k)
		}
		for _, level := range []int{zlib.HuffmanOnly, zlib.DefaultCompression} {
			var z bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&z, level)
			zw.Write(raw)
			zw.Close()
			dst := make([]byte, len(raw))
			if !pngInflate(dst, [][]byte{z.Bytes()}) || !bytes.Equal(dst, raw) {
				t.Fatalf("%d common literals, level %d: declined or bytes differ", common, level)
			}
		}
	}
}

// TestPairLiterals: in a literal/length table, an entry is two literals exactly when a
// second literal's whole codeword follows the first's within the table's bits, and then
// holds both and consumes both; every other entry is that of the one symbol puff's
// bit-by-bit decode (slow) finds; codewords longer than the table have none. Codes: random complete codes with codewords of 1 to 15 bits (splitting
// random leaves of a code tree).
func TestPairLiterals(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 40; round++ {
		lens := []uint8{1, 1}
		for len(lens) < 2+rng.IntN(maxLitCodes-1) {
			k := rng.IntN(len(lens))
			if lens[k] == 15 {
				continue
			}
			lens[k]++
			lens = append(lens, lens[k])
		}
		rng.Shuffle(len(lens), func(a, b int) { lens[a], lens[b] = lens[b], lens[a] })
		var h flateTable
		if !h.build(lens, tableLit) {
			t.Fatalf("round %d: a complete code refused", round)
		}
		// codeLen is the length of the codeword of a one-symbol entry.
		codeLen := func(e uint32) uint32 {
			if e&entLit != 0 {
				return e & entBits
			}
			return e >> entCode & 15
		}
		for i := uint64(0); i < 1<<flateBits; i++ {
			e, e1 := h.fast[i], h.slow(i)
			c1 := codeLen(e1)
			if c1 > flateBits {
				if e != 0 {
					t.Fatalf("round %d, index %d: entry %#x for a %d-bit codeword", round, i, e, c1)
				}
				continue
			}
			want := e1
			if e2 := h.slow(i >> c1); e1&entLit != 0 && e2&entLit != 0 && c1+codeLen(e2) <= flateBits {
				want = e1&^entBits | entPair | (e2>>entValue&0xff)<<16 | (c1 + codeLen(e2))
			}
			if e != want {
				t.Fatalf("round %d, index %d: entry %#x, want %#x", round, i, e, want)
			}
		}
	}
}

// TestCopyMatch: every distance and length DEFLATE allows (up to 40 back, all 3–258 long),
// in the middle of a buffer and ending at its last byte, copies what a byte loop copies
// and writes nothing before op or after the buffer's end.
func TestCopyMatch(t *testing.T) {
	for back := 1; back <= 40; back++ {
		for length := 3; length <= 258; length++ {
			for _, tail := range []int{0, 1, 7, 8, 300} {
				op := 50
				dst := make([]byte, op+length+tail)
				for i := range dst[:op] {
					dst[i] = byte(i*37 + back)
				}
				want := bytes.Clone(dst)
				for i := op; i < op+length; i++ {
					want[i] = want[i-back]
				}
				copyMatch(dst, op, back, length)
				if !bytes.Equal(dst[:op+length], want[:op+length]) {
					t.Fatalf("back %d, length %d, %d after: bytes differ", back, length, tail)
				}
			}
		}
	}
}

// bitWriter writes a DEFLATE bit stream, least significant bit first.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint32, n uint) {
	w.acc |= uint64(v&(1<<n-1)) << w.n
	for w.n += n; w.n >= 8; w.n -= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
	}
}

// code writes a Huffman codeword, most significant bit first.
func (w *bitWriter) code(c uint32, n uint8) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i), 1)
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
	return w.out
}

// canonical is the canonical Huffman code of the lengths (RFC 1951 3.2.2).
func canonical(lens []uint8) []uint32 {
	var count, next [16]uint32
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	for l := 1; l < 16; l++ {
		next[l] = (next[l-1] + count[l-1]) << 1
	}
	codes := make([]uint32, len(lens))
	for s, l := range lens {
		if l != 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// huffWriter writes symbols of a code given by its lengths.
type huffWriter struct {
	lens  []uint8
	codes []uint32
}

func newHuff(lens []uint8) huffWriter { return huffWriter{lens, canonical(lens)} }

func (h huffWriter) put(w *bitWriter, sym int) { w.code(h.codes[sym], h.lens[sym]) }

func fixedLit() huffWriter {
	l := make([]uint8, 288)
	for i := range l {
		l[i] = [4]uint8{8, 9, 7, 8}[btoi(i >= 144)+btoi(i >= 256)+btoi(i >= 280)]
	}
	return newHuff(l)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lens is a code length table of n symbols with the given (symbol, length) pairs.
func lens(n int, set ...int) []uint8 {
	l := make([]uint8, n)
	for i := 0; i < len(set); i += 2 {
		l[set[i]] = uint8(set[i+1])
	}
	return l
}

// dynamicHeader starts a dynamic block (final or not) declaring the lit and dist code lengths, each
// written as an explicit length except the last zeros, which overrun lengths cover with
// one "repeat zero" code reaching past the declared count (0: none).
func dynamicHeader(w *bitWriter, final bool, lit, dist []uint8, overrun int) {
	pre := newHuff(lens(19, 0, 4, 1, 4, 2, 4, 3, 4, 4, 4, 5, 4, 6, 4, 7, 4, 8, 4, 9, 4, 10, 4, 11, 4, 12, 4,
		13, 5, 14, 5, 15, 5, 16, 5, 17, 5, 18, 5))
	w.bits(uint32(btoi(final)), 1)
	w.bits(2, 2)
	w.bits(uint32(len(lit)-257), 5)
	w.bits(uint32(len(dist)-1), 5)
	w.bits(19-4, 4)
	for _, s := range precodeOrder {
		w.bits(uint32(pre.lens[s]), 3)
	}
	all := append(append([]uint8{}, lit...), dist...)
	explicit := len(all)
	if overrun > 0 {
		for explicit > 0 && all[explicit-1] == 0 {
			explicit--
		}
	}
	for _, l := range all[:explicit] {
		pre.put(w, int(l))
	}
	if overrun > 0 {
		pre.put(w, 18)
		w.bits(uint32(len(all)-explicit+overrun-11), 7)
	}
}

// lenientStream is a DEFLATE stream libdeflate 1.14 decodes (to want) but compress/flate
// refuses, or a control both decode; ok says whether compress/flate accepts it.
type lenientStream struct {
	name string
	body []byte
	want []byte
	ok   bool
}

func lenientStreams() []lenientStream {
	return append(append(fixedStreams(), dynamicStreams()...), mixedStreams()...)
}

// mixedStreams have fixed-code blocks on both sides of a dynamic one (the walk keeps the
// fixed codes built between fixed blocks and must drop them for the dynamic one), the last
// using the reserved code 286 or not.
func mixedStreams() []lenientStream {
	var out []lenientStream
	fl := fixedLit()
	ab := lens(258, 'A', 2, 'B', 2, 256, 2, 257, 2)
	for _, reserved := range []bool{true, false} {
		w := &bitWriter{}
		w.bits(0, 1)
		w.bits(1, 2)
		fl.put(w, 'A')
		fl.put(w, 256)
		dynamicHeader(w, false, ab, lens(1), 0)
		newHuff(ab).put(w, 'B')
		newHuff(ab).put(w, 256)
		w.bits(1, 1)
		w.bits(1, 2)
		want := []byte("ABB")
		if reserved {
			fl.put(w, 286) // libdeflate: length 258
			w.code(0, 5)   // distance 1
			want = append([]byte("AB"), bytes.Repeat([]byte("B"), 258)...)
		} else {
			fl.put(w, 'B')
		}
		fl.put(w, 256)
		name := map[bool]string{true: "fixed, dynamic, fixed with code 286", false: "fixed, dynamic, fixed"}[reserved]
		out = append(out, lenientStream{name, w.bytes(), want, !reserved})
	}
	return out
}

// fixedStreams use the fixed codes, which have the codes compress/flate refuses.
func fixedStreams() []lenientStream {
	type stream = lenientStream
	var out []stream
	// Fixed codes: the reserved length code 286 (libdeflate: length 258).
	w := &bitWriter{}
	w.bits(1, 1)
	w.bits(1, 2)
	fl := fixedLit()
	fl.put(w, 'A')
	fl.put(w, 286)
	w.code(0, 5) // distance 1
	fl.put(w, 256)
	out = append(out, stream{"fixed length code 286", w.bytes(), bytes.Repeat([]byte("A"), 259), false})
	// A stored block of 32 KiB, then fixed codes with the reserved distance code 30
	// (libdeflate: distance 24577) or its legal neighbour 29 (24577 with 13 extra bits 0).
	for _, dc := range []uint32{30, 29} {
		w = &bitWriter{}
		w.bits(0, 3)
		w.bytes()
		stored := make([]byte, 32768)
		for i := range stored {
			stored[i] = byte(i * 13 / 7)
		}
		w.bits(32768, 16)
		w.bits(^uint32(32768), 16)
		w.out = append(w.out, stored...)
		w.bits(1, 1)
		w.bits(1, 2)
		fl.put(w, 257) // length 3
		w.code(dc, 5)
		w.bits(0, 13)
		fl.put(w, 256)
		want := append(append([]byte{}, stored...), stored[32768-24577:32768-24577+3]...)
		out = append(out, stream{"fixed distance code " + string(rune('0'+dc/10)) + string(rune('0'+dc%10)), w.bytes(), want, dc == 29})
	}
	return out
}

// dynamicStreams have headers or codes compress/flate refuses.
func dynamicStreams() []lenientStream {
	type stream = lenientStream
	var out []stream
	var w *bitWriter
	ab := func(nlit int) []uint8 { return lens(nlit, 'A', 2, 'B', 2, 256, 2, 257, 2) }
	for _, c := range []struct {
		name      string
		lit, dist []uint8
		overrun   int
		ok        bool
	}{
		{"dynamic 288 literal/length codes", ab(288), lens(1), 0, false},
		{"dynamic 286 literal/length codes", ab(286), lens(1), 0, true},
		{"dynamic 32 distance codes", ab(258), lens(32, 0, 1, 1, 1), 0, false},
		{"dynamic 30 distance codes", ab(258), lens(30, 0, 1, 1, 1), 0, true},
		{"code length repeat past the count", ab(258), lens(30, 0, 1, 1, 1), 100, false},
		{"code length repeat up to the count", ab(258), lens(30, 0, 1, 1, 1), 0, true},
	} {
		w = &bitWriter{}
		dynamicHeader(w, true, c.lit, c.dist, c.overrun)
		lit := newHuff(c.lit)
		lit.put(w, 'A')
		lit.put(w, 'B')
		lit.put(w, 256)
		out = append(out, stream{c.name, w.bytes(), []byte("AB"), c.ok})
	}
	// A match with a one-codeword distance code (codeword 0 is its symbol, 1 is unused)
	// and with an empty distance code (libdeflate: distance 1 from one bit).
	for _, c := range []struct {
		name string
		dist []uint8
		bit  uint32
		ok   bool
	}{
		{"one-symbol distance code, codeword 1", lens(1, 0, 1), 1, false},
		{"one-symbol distance code, codeword 0", lens(1, 0, 1), 0, true},
		{"empty distance code used", lens(1), 0, false},
	} {
		w = &bitWriter{}
		dynamicHeader(w, true, ab(258), c.dist, 0)
		lit := newHuff(ab(258))
		lit.put(w, 'A')
		lit.put(w, 257) // length 3
		w.bits(c.bit, 1)
		lit.put(w, 256)
		out = append(out, stream{c.name, w.bytes(), []byte("AAAA"), c.ok})
	}
	return out
}

// TestPNGInflateLeniencies: on each stream that a lenient inflater decodes (libdeflate
// 1.14, the fast path's inflater before flateDecoder, decodes each of them to want) but
// compress/zlib refuses, the fast path refuses too (so image/png answers); on the controls
// beside them, both decode the same bytes.
func TestPNGInflateLeniencies(t *testing.T) {
	for _, s := range lenientStreams() {
		t.Run(s.name, func(t *testing.T) {
			src := zlibWrap(s.body, s.want)
			gout, gerr := goInflate(src, len(s.want))
			if (gerr == nil) != s.ok {
				t.Fatalf("compress/zlib: %v, want ok=%v", gerr, s.ok)
			}
			dst := make([]byte, len(s.want))
			if ok := pngInflate(dst, [][]byte{src}); ok != s.ok {
				t.Fatalf("pngInflate: %v, compress/zlib: %v", ok, gerr)
			}
			if s.ok && (!bytes.Equal(dst, s.want) || !bytes.Equal(gout, s.want)) {
				t.Fatal("bytes differ")
			}
		})
	}
}

// rgbPNG is a w×h 8-bit RGB PNG whose IDAT chunks hold the given bodies.
func rgbPNG(w, h int, idat ...[]byte) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2
	out := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	for _, b := range idat {
		out = append(out, pngChunk("IDAT", b)...)
	}
	return append(out, pngChunk("IEND", nil)...)
}

func zlibOf(t *testing.T, raw []byte) []byte {
	t.Helper()
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// TestPNGInflateRefuses: a zlib stream with a bad Adler-32, shorter or longer than the
// image, truncated, or with a header compress/zlib refuses: the fast path declines each,
// so decodePNG answers as image/png does (the path whose treatment of damaged files is
// checked against Pillow): ErrUndecodable where image/png refuses the file, its pixels
// where it decodes it. Data after a complete stream is ignored, by the fast path as by
// compress/zlib before it and by Pillow 9.4 (which decodes all four trailing cases;
// image/png refuses a long tail in the stream's own chunk).
func TestPNGInflateRefuses(t *testing.T) {
	const w, h = 23, 17
	raw := make([]byte, h*(1+3*w)) // filter byte 0, then the row
	for i := range raw {
		if i%(1+3*w) != 0 {
			raw[i] = byte(i * 31 / 7)
		}
	}
	good := zlibOf(t, raw)
	flip := func(b []byte, i int) []byte {
		c := append([]byte{}, b...)
		c[(i+len(c))%len(c)] ^= 0x40
		return c
	}
	cases := []struct {
		name   string
		idat   [][]byte
		accept bool
	}{
		{"trailing byte", [][]byte{append(append([]byte{}, good...), 0)}, true},
		{"trailing IDAT chunk", [][]byte{good, []byte("junk")}, true},
		{"trailing 10 KB", [][]byte{append(append([]byte{}, good...), make([]byte, 10000)...)}, true},
		{"trailing 10 KB IDAT chunk", [][]byte{good, make([]byte, 10000)}, true},
		{"bad Adler-32", [][]byte{flip(good, -1)}, false},
		{"one byte short", [][]byte{zlibOf(t, raw[:len(raw)-1])}, false},
		{"one row short", [][]byte{zlibOf(t, raw[:len(raw)-(1+3*w)])}, false},
		{"one byte long", [][]byte{zlibOf(t, append(append([]byte{}, raw...), 0))}, false},
		{"truncated by 3", [][]byte{good[:len(good)-3]}, false},
		{"truncated by half", [][]byte{good[:len(good)/2]}, false},
		{"header: 32 KiB window exceeded", [][]byte{append([]byte{0x88, 0x98}, good[2:]...)}, false},
		{"header: preset dictionary", [][]byte{append([]byte{0x78, 0xbb}, good[2:]...)}, false},
		{"header: check bits", [][]byte{append([]byte{0x78, 0x9d}, good[2:]...)}, false},
		{"corrupt block type", [][]byte{append([]byte{0x78, 0x01, 0x07}, good[3:]...)}, false},
	}
	lim := ImageOptions{MaxPixels: 1 << 20, MaxBytes: 1 << 20}.limits()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := rgbPNG(w, h, c.idat...)
			_, gerr := goInflate(bytes.Join(c.idat, nil), len(raw))
			if (gerr == nil) != c.accept {
				t.Fatalf("compress/zlib: %v; the case is not what it claims", gerr)
			}
			dst := make([]byte, len(raw))
			if ok := pngInflate(dst, c.idat); ok != c.accept || ok && !bytes.Equal(dst, raw) {
				t.Fatalf("pngInflate: %v (bytes equal %v), compress/zlib: %v", ok, bytes.Equal(dst, raw), gerr)
			}
			if _, ok := pngFastRGB(data); ok != c.accept {
				t.Fatalf("fast path: %v", ok)
			}
			if c.accept {
				return
			}
			pb, err := decodePNG(data, lim)
			img, serr := png.Decode(bytes.NewReader(data))
			switch {
			case serr != nil && !errors.Is(err, ErrUndecodable):
				t.Fatalf("image/png: %v; decodePNG: %v, want ErrUndecodable", serr, err)
			case serr == nil && err != nil:
				t.Fatalf("image/png decodes it; decodePNG: %v", err)
			case serr == nil:
				std, _ := pixbufOfImage(img, false)
				if !bytes.Equal(pb.toRGB().Pix, std.toRGB().Pix) {
					t.Fatal("pixels differ from image/png's")
				}
			}
			t.Logf("image/png: %v; decodePNG: %v; compress/zlib: %v", serr, err, gerr)
		})
	}
}

// FuzzInflate: the fast path's inflater accepts exactly the streams compress/flate
// decodes, with the same bytes. On a body compress/flate decodes (to at most 64 KiB),
// wrapped as a PNG's zlib stream of that size and checksum, the fast path gives the same
// bytes, and refuses it for one byte more or less; on a body compress/flate refuses, it
// refuses whatever the size. Seeds: the crafted lenient streams and compress/flate's own.
func FuzzInflate(f *testing.F) {
	for _, s := range lenientStreams() {
		f.Add(s.body)
	}
	// Filtered-row-like residuals (literal codes of 2 to 15 bits: pairs, long codes) and
	// rows repeating with small changes (matches), at two levels each.
	rng := rand.New(rand.NewPCG(9, 10))
	residuals, rows := make([]byte, 3000), make([]byte, 3000)
	for i := range residuals {
		residuals[i] = byte(int(rng.NormFloat64() * 6))
		rows[i] = byte(i%300/7) + byte(rng.IntN(2))
	}
	for _, level := range []int{zlib.HuffmanOnly, zlib.NoCompression, zlib.BestSpeed, zlib.BestCompression} {
		for _, raw := range [][]byte{[]byte("a PNG row, a PNG row, a PNG row: \x00\x01\x02\x01\x00 and a few more bytes"), residuals, rows} {
			var z bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&z, level)
			zw.Write(raw)
			zw.Close()
			f.Add(z.Bytes()[2 : z.Len()-4])
		}
	}
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, body []byte) {
		br := bytes.NewReader(body) // an io.ByteReader: compress/flate reads no byte past its stream
		want, ferr := io.ReadAll(io.LimitReader(flate.NewReader(br), max+1))
		if len(want) > max {
			return
		}
		inflate := func(n int, src []byte) ([]byte, bool) {
			dst := make([]byte, n)
			return dst, pngInflate(dst, [][]byte{src})
		}
		if ferr != nil {
			src := zlibWrap(body, want)
			for _, n := range []int{len(want), len(want) + 1, max} {
				if _, ok := inflate(n, src); ok {
					t.Fatalf("compress/flate: %v after %d bytes; the fast path accepts it as %d bytes", ferr, len(want), n)
				}
			}
			return
		}
		if len(want) == 0 {
			return // a PNG's stream is never empty: the fast path refuses it first
		}
		src := zlibWrap(body[:len(body)-br.Len()], want)
		if got, ok := inflate(len(want), src); !ok || !bytes.Equal(got, want) {
			t.Fatalf("compress/flate decodes %d bytes; the fast path: %v (bytes equal %v)", len(want), ok, bytes.Equal(got, want))
		}
		for _, n := range []int{len(want) - 1, len(want) + 1} {
			if _, ok := inflate(n, src); ok {
				t.Fatalf("a %d-byte stream accepted as %d bytes", len(want), n)
			}
		}
	})
}

// benchIDAT is the header and the IDAT chunks of a benchmark RGB PNG (benchImage).
func benchIDAT(b *testing.B, file string) (pngHeader, [][]byte) {
	data := benchImage(b, file)
	hd, err := pngIHDR(data)
	if err != nil {
		b.Fatal(err)
	}
	_, idat, ok := pngChunks(data, hd.ctype)
	if !ok || hd.ctype != pngRGB {
		b.Fatal("not an RGB PNG the fast path takes")
	}
	return hd, idat
}

// BenchmarkPNGInflate: the IDAT streams of the 1024² benchmark PNGs (smooth:
// bench_1024.png, 8 blocks; generated: bench_gen1024.png, 94 blocks, mostly literal pairs)
// inflated by pngInflate (joining the IDAT chunks, flateDecoder, Adler-32) and by
// compress/zlib, in CPU time per image.
func BenchmarkPNGInflate(b *testing.B) {
	for _, img := range []struct{ name, file string }{{"smooth", "bench_1024.png"}, {"generated", "bench_gen1024.png"}} {
		hd, idat := benchIDAT(b, img.file)
		src := bytes.Join(idat, nil)
		dst := make([]byte, hd.h*(1+hd.w*3))
		run := func(name string, f func() bool) {
			b.Run(img.name+"/"+name, func(b *testing.B) {
				cpu0 := processCPU()
				for b.Loop() {
					if !f() {
						b.Fatal("refused")
					}
				}
				reportCPU(b, cpu0)
			})
		}
		run("pngInflate", func() bool { return pngInflate(dst, idat) })
		zr, err := zlib.NewReader(bytes.NewReader(src)) // reused, as the old fast path pooled it
		if err != nil {
			b.Fatal(err)
		}
		var br bytes.Reader
		run("compress-zlib", func() bool {
			br.Reset(src)
			if zr.(zlib.Resetter).Reset(&br, nil) != nil {
				return false
			}
			_, err := io.ReadFull(zr, dst)
			var one [1]byte
			n, end := zr.Read(one[:])
			return err == nil && n == 0 && end == io.EOF
		})
	}
}

// TestPNGInflateConcurrent: goroutines sharing the pooled inflaters (decompressor, walk
// state, join buffer) on streams of different sizes and splits each get their own bytes
// (run under -race too).
func TestPNGInflateConcurrent(t *testing.T) {
	type job struct {
		raw  []byte
		idat [][]byte
	}
	var jobs []job
	for i := 0; i < 8; i++ {
		raw := make([]byte, 1000+i*7919)
		for j := range raw {
			raw[j] = byte(j*(i+3)/5 + j%(i+2))
		}
		z := zlibOf(t, raw)
		jobs = append(jobs, job{raw, [][]byte{z[:len(z)/3], z[len(z)/3:]}})
	}
	errs := make(chan error, len(jobs))
	for _, j := range jobs {
		go func() {
			for k := 0; k < 50; k++ {
				dst := make([]byte, len(j.raw))
				if !pngInflate(dst, j.idat) || !bytes.Equal(dst, j.raw) {
					errs <- fmt.Errorf("%d-byte stream: wrong result on round %d", len(j.raw), k)
					return
				}
			}
			errs <- nil
		}()
	}
	for range jobs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
