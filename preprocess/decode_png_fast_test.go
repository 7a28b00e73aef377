package preprocess

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pngStd is decodePNG without the fast path: image/png and the Pillow mode mapping.
func pngStd(t *testing.T, data []byte) *RGB {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	hd, err := pngIHDR(data)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pixbufOfImage(img, hd.depth == 16 && hd.ctype == pngGray)
	if err != nil {
		t.Fatal(err)
	}
	return pb.toRGB()
}

func pngFastRGB(data []byte) (*RGB, bool) {
	hd, err := pngIHDR(data)
	if err != nil {
		return nil, false
	}
	pb, ok := pngFast(data, hd)
	if !ok {
		return nil, false
	}
	defer pb.release()
	return pb.toRGB(), true
}

// TestPNGFastPath: the direct decoder gives image/png's pixels on every PNG fixture it
// accepts and on PNGs written by image/png with every filter choice it makes (all five
// filter types occur in noisy and smooth content), and it declines the damaged fixtures
// so that they keep their Pillow-checked treatment.
func TestPNGFastPath(t *testing.T) {
	dir := filepath.Join("testdata", "images", "src")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".png") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := pngFastRGB(data)
		damaged := strings.Contains(e.Name(), "bad_") || strings.Contains(e.Name(), "truncated") || strings.Contains(e.Name(), "noiend")
		if damaged {
			if ok {
				t.Errorf("%s: fast path accepted a damaged file", e.Name())
			}
			continue
		}
		if !ok {
			continue // 16-bit, sub-byte, interlaced, gray+alpha: image/png
		}
		accepted++
		if want := pngStd(t, data); got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("%s: fast path pixels differ from image/png's", e.Name())
		}
	}
	if accepted < 25 {
		t.Errorf("fast path took only %d fixtures", accepted)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 40; i++ {
		w, h := 1+rng.IntN(70), 1+rng.IntN(40)
		img := filterTestImage(rng, i%4, w, h)
		var buf bytes.Buffer
		enc := png.Encoder{CompressionLevel: []png.CompressionLevel{png.DefaultCompression, png.BestSpeed, png.NoCompression}[i%3]}
		if err := enc.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		got, ok := pngFastRGB(buf.Bytes())
		if !ok {
			t.Fatalf("case %d (%dx%d): fast path declined a PNG image/png wrote", i, w, h)
		}
		if want := pngStd(t, buf.Bytes()); !bytes.Equal(got.Pix, want.Pix) {
			t.Fatalf("case %d (%dx%d): fast path pixels differ", i, w, h)
		}
	}
}

// filterTestImage is a w×h image of one of four kinds (opaque RGBA, NRGBA
// with alpha, gray, 200-colour palette) whose noisy and smooth parts make
// image/png use every filter type.
func filterTestImage(rng *rand.Rand, kind, w, h int) image.Image {
	switch kind {
	case 0:
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for j := range m.Pix {
			m.Pix[j] = uint8(rng.IntN(256))
			if j%4 == 3 {
				m.Pix[j] = 255 // opaque: image/png writes RGB
			}
		}
		return m
	case 1:
		m := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				m.Set(x, y, color.NRGBA{uint8(x * 3), uint8(y*5 + x), uint8(rng.IntN(16)), uint8(rng.IntN(256))})
			}
		}
		return m
	case 2:
		m := image.NewGray(image.Rect(0, 0, w, h))
		for j := range m.Pix {
			m.Pix[j] = uint8(j*7) + uint8(rng.IntN(3))
		}
		return m
	default:
		pal := color.Palette{}
		for j := 0; j < 200; j++ {
			pal = append(pal, color.RGBA{uint8(rng.IntN(256)), uint8(j), uint8(rng.IntN(256)), 255})
		}
		m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range m.Pix {
			m.Pix[j] = uint8(rng.IntN(200))
		}
		return m
	}
}

type rawChunk struct {
	typ  string
	data []byte
}

func splitChunks(t *testing.T, png []byte) []rawChunk {
	t.Helper()
	var cs []rawChunk
	for p := 8; p+12 <= len(png); {
		n := int(uint32(png[p])<<24 | uint32(png[p+1])<<16 | uint32(png[p+2])<<8 | uint32(png[p+3]))
		cs = append(cs, rawChunk{string(png[p+4 : p+8]), png[p+8 : p+8+n]})
		p += 12 + n
	}
	return cs
}

func joinChunks(cs []rawChunk) []byte {
	out := []byte("\x89PNG\r\n\x1a\n")
	for _, c := range cs {
		out = append(out, pngChunk(c.typ, c.data)...)
	}
	return out
}

// chunkOrderImages are small 9×7 palette (20 colours: image/png writes
// 8-bit indices), gray and opaque RGBA images.
func chunkOrderImages() (pal *image.Paletted, gray *image.Gray, rgb *image.RGBA) {
	var colors color.Palette
	for i := 0; i < 20; i++ {
		colors = append(colors, color.RGBA{uint8(i * 12), uint8(200 - i), uint8(i * i), 255})
	}
	pal = image.NewPaletted(image.Rect(0, 0, 9, 7), colors)
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 20)
	}
	gray = image.NewGray(image.Rect(0, 0, 9, 7))
	rgb = image.NewRGBA(image.Rect(0, 0, 9, 7))
	for i := range rgb.Pix {
		rgb.Pix[i] = uint8(i * 37)
		if i%4 == 3 {
			rgb.Pix[i] = 255
		}
	}
	for i := range gray.Pix {
		gray.Pix[i] = uint8(i * 11)
	}
	return pal, gray, rgb
}

// chunkAt is the index of the first chunk of type typ.
func chunkAt(t *testing.T, cs []rawChunk, typ string) int {
	t.Helper()
	for i, c := range cs {
		if c.typ == typ {
			return i
		}
	}
	t.Fatalf("no %s", typ)
	return -1
}

// insertChunk returns a copy of cs with c inserted at i.
func insertChunk(cs []rawChunk, i int, c rawChunk) []rawChunk {
	return append(append(append([]rawChunk{}, cs[:i]...), c), cs[i:]...)
}

// splitIDAT returns a copy of cs with its IDAT split in two halves, gap
// (if not nil) between them.
func splitIDAT(t *testing.T, cs []rawChunk, gap *rawChunk) []rawChunk {
	i := chunkAt(t, cs, "IDAT")
	d := cs[i].data
	a, b := rawChunk{"IDAT", d[:len(d)/2]}, rawChunk{"IDAT", d[len(d)/2:]}
	out := append(append([]rawChunk{}, cs[:i]...), a)
	if gap != nil {
		out = append(out, *gap)
	}
	return append(append(out, b), cs[i+1:]...)
}

// TestPNGFastPathChunkOrder: on reordered, split, extra and misplaced chunks, the direct
// decoder accepts a file only if image/png does, with the same pixels.
func TestPNGFastPathChunkOrder(t *testing.T) {
	encode := func(img image.Image) []rawChunk {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return splitChunks(t, buf.Bytes())
	}
	pal, gray, rgb := chunkOrderImages()
	at := func(cs []rawChunk, typ string) int { return chunkAt(t, cs, typ) }
	insert := insertChunk
	tEXt := rawChunk{"tEXt", []byte("Comment\x00hi")}
	trnsPal := rawChunk{"tRNS", []byte{0, 128}}
	trnsRGB := rawChunk{"tRNS", []byte{0, 1, 0, 2, 0, 3}}
	trnsGray := rawChunk{"tRNS", []byte{0, 7}}
	cases := map[string][]rawChunk{
		"palette":                  encode(pal),
		"palette tRNS after PLTE":  insert(encode(pal), at(encode(pal), "IDAT"), trnsPal),
		"palette tRNS before PLTE": insert(encode(pal), at(encode(pal), "PLTE"), trnsPal),
		"palette tRNS after IDAT":  insert(encode(pal), at(encode(pal), "IEND"), trnsPal),
		"palette without PLTE": func() []rawChunk {
			cs := encode(pal)
			i := at(cs, "PLTE")
			return append(append([]rawChunk{}, cs[:i]...), cs[i+1:]...)
		}(),
		"gray with PLTE":            insert(encode(gray), 1, rawChunk{"PLTE", []byte{1, 2, 3}}),
		"gray tRNS":                 insert(encode(gray), 1, trnsGray),
		"gray tRNS of RGB size":     insert(encode(gray), 1, trnsRGB),
		"rgb tRNS":                  insert(encode(rgb), 1, trnsRGB),
		"rgb suggested PLTE":        insert(encode(rgb), 1, rawChunk{"PLTE", []byte{1, 2, 3, 4, 5, 6}}),
		"rgb tEXt before and after": insert(insert(encode(rgb), 1, tEXt), at(encode(rgb), "IEND")+1, tEXt),
		"rgb split IDAT":            splitIDAT(t, encode(rgb), nil),
		"rgb IDAT split by tEXt":    splitIDAT(t, encode(rgb), &tEXt),
		"rgb unknown critical":      insert(encode(rgb), 1, rawChunk{"ABCD", []byte{1}}),
		"rgb two IHDR":              insert(encode(rgb), 1, encode(rgb)[0]),
		"rgb IEND first":            insert(encode(rgb), 1, rawChunk{"IEND", nil}),
	}
	mustAccept := map[string]bool{"palette": true, "palette tRNS after PLTE": true, "gray tRNS": true,
		"rgb tRNS": true, "rgb suggested PLTE": true, "rgb tEXt before and after": true, "rgb split IDAT": true}
	for name, cs := range cases {
		t.Run(name, func(t *testing.T) {
			data := joinChunks(cs)
			fast, ok := pngFastRGB(data)
			if mustAccept[name] && !ok {
				t.Fatal("direct decoder declined a well-formed file")
			}
			_, err := png.Decode(bytes.NewReader(data))
			if ok && err != nil {
				t.Fatalf("direct decoder accepts what image/png refuses (%v)", err)
			}
			if ok {
				if want := pngStd(t, data); !bytes.Equal(fast.Pix, want.Pix) {
					t.Fatal("pixels differ")
				}
			}
			t.Logf("%s: direct %v, image/png %v", name, ok, err)
		})
	}
}

// BenchmarkPNGUnfilter: the unfiltering of the 1024² benchmark PNG's inflated rows (a
// fresh copy of the filtered rows each time; the copy alone is the "copy" line).
// TestAddBytes: every pair of byte values, at every length up to 100 (the vector blocks,
// the word loop and its tail), adds as a byte loop adds, modulo 256, and writes nothing
// past the row.
func TestAddBytes(t *testing.T) {
	for _, simd := range []bool{false, true} {
		if simd && !useSIMD {
			continue
		}
		for n := 0; n <= 100; n++ {
			for v := 0; v < 256*256; v += 97 {
				// guards after both rows: nothing past n is read into dst or written
				dstg, srcg := make([]byte, n+8), make([]byte, n+8)
				for i := range dstg {
					dstg[i], srcg[i] = byte(v+i*31), byte(v>>8+i*57)
				}
				want := bytes.Clone(dstg)
				for i := range want[:n] {
					want[i] += srcg[i]
				}
				addBytesWith(simd, dstg[:n:n], srcg[:n:n])
				if !bytes.Equal(dstg, want) {
					t.Fatalf("vector %v, length %d, seed %d: % x, want % x", simd, n, v, dstg, want)
				}
			}
		}
		a, b := bytes.Repeat([]byte{0xff, 0x80, 0x7f, 0x01}, 16), bytes.Repeat([]byte{0x01, 0x80, 0x81, 0xff}, 16)
		addBytesWith(simd, a, b)
		if !bytes.Equal(a, make([]byte, 64)) {
			t.Fatalf("vector %v: carries crossed bytes: % x", simd, a)
		}
	}
}

// TestUnSub: the Sub filter undone for 1 to 4 bytes a pixel, at every row length up to
// 40, is the byte loop of the PNG specification's.
func TestUnSub(t *testing.T) {
	for bpp := 1; bpp <= 4; bpp++ {
		for n := 0; n <= 40; n++ {
			row := make([]byte, n)
			for i := range row {
				row[i] = byte(i*73 + bpp*19 + n)
			}
			want := bytes.Clone(row)
			for i := bpp; i < n; i++ {
				want[i] += want[i-bpp]
			}
			unSub(row, bpp)
			if !bytes.Equal(row, want) {
				t.Fatalf("bpp %d, %d bytes: % x, want % x", bpp, n, row, want)
			}
		}
	}
}

// TestUnAvg: the Average filter undone below the first row, for 1 to 4 bytes a pixel at
// every row length up to 40, is the specification's byte loop.
func TestUnAvg(t *testing.T) {
	for bpp := 1; bpp <= 4; bpp++ {
		for n := 0; n <= 40; n++ {
			row, prev := make([]byte, n), make([]byte, n)
			for i := range row {
				row[i], prev[i] = byte(i*73+bpp*19+n), byte(i*151+n*7+200)
			}
			want := bytes.Clone(row)
			for i := range want {
				left := 0
				if i >= bpp {
					left = int(want[i-bpp])
				}
				want[i] += byte((left + int(prev[i])) / 2)
			}
			unAvg(row, prev, bpp)
			if !bytes.Equal(row, want) {
				t.Fatalf("bpp %d, %d bytes: % x, want % x", bpp, n, row, want)
			}
		}
	}
}

// BenchmarkPNGUnfilter times undoing the row filters of bench_1024.png (smooth: Up and
// Paeth rows) and bench_gen1024.png (generated-like: mostly Paeth), after a copy of the
// filtered rows (timed alone as "copy").
func BenchmarkPNGUnfilter(b *testing.B) {
	for _, img := range []struct{ name, file string }{{"smooth", "bench_1024.png"}, {"generated", "bench_gen1024.png"}} {
		hd, idat := benchIDAT(b, img.file)
		stride := 1 + hd.w*3
		filtered := make([]byte, hd.h*stride)
		if !pngInflate(filtered, idat) {
			b.Fatal("not an RGB PNG the fast path takes")
		}
		rows := make([]byte, len(filtered))
		for _, unfilter := range []bool{false, true} {
			name := img.name + map[bool]string{false: "/copy", true: "/unfilter"}[unfilter]
			b.Run(name, func(b *testing.B) {
				cpu0 := processCPU()
				for b.Loop() {
					copy(rows, filtered)
					if unfilter && !pngUnfilter(rows, stride, 3, hd.h) {
						b.Fatal("unknown filter")
					}
				}
				reportCPU(b, cpu0)
			})
		}
	}
}

// TestPaeth: the Paeth filter undone on one row and on two rows at once, in Go and (where
// the CPU has it) by the vector kernels, is the specification's byte loop, for 1 to 4
// bytes a pixel at every row length up to 64 and rows of 1024 pixels; the bytes around
// the rows are left as they were. The values come mostly from {0, 1, 127, 128, 254, 255} so that the
// predictor's ties (pa = pb, pa = pc, pb = pc) and its extremes all occur.
func TestPaeth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	val := func() byte { return paethTestByte(rng) }
	spec := paethSpec
	const guard = 8
	for bpp := 1; bpp <= 4; bpp++ {
		for _, n := range append(rangeInts(0, 64), 1024*bpp, 1024*bpp+1) {
			for round := 0; round < 20; round++ {
				// above, row, row below, each n bytes, guards around them
				buf := make([]byte, guard+3*n+guard)
				for i := range buf {
					buf[i] = val()
				}
				rows := func(b []byte) (above, r0, r1 []byte) {
					return b[guard : guard+n], b[guard+n : guard+2*n], b[guard+2*n : guard+3*n]
				}
				want := bytes.Clone(buf)
				above, r0, r1 := rows(want)
				spec(r0, above, bpp)
				wantOne := bytes.Clone(want)
				spec(r1, r0, bpp)
				for _, simd := range []bool{false, true} {
					if simd && !useSIMD {
						continue
					}
					got := bytes.Clone(buf)
					above, r0, _ := rows(got)
					paethWith(simd, r0, above, bpp)
					if !bytes.Equal(got, wantOne) {
						t.Fatalf("bpp %d, %d bytes, vector code %v:\nabove % x\n  got % x\n want % x", bpp, n, simd, above, got, wantOne)
					}
					got = bytes.Clone(buf)
					above, r0, r1 = rows(got)
					paethPair(simd, r0, r1, above, bpp)
					if !bytes.Equal(got, want) {
						t.Fatalf("two rows: bpp %d, %d bytes, vector code %v:\nabove % x\n  got % x\n want % x", bpp, n, simd, above, got, want)
					}
				}
			}
		}
	}
}

// TestPaethQuad: four Paeth rows undone at once (the four-row kernel, each row two pixels
// behind the one above, Go for their first and last pixels) equal the specification's
// byte loop row after row, for 1 to 4 bytes a pixel at widths up to 40 pixels and 1024;
// the bytes around the rows (their filter bytes, the guards) are left as they were.
func TestPaethQuad(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	const guard = 8
	for bpp := 1; bpp <= 4; bpp++ {
		for _, px := range append(rangeInts(0, 40), 1024) {
			n := px * bpp
			stride := 1 + n
			for round := 0; round < 10; round++ {
				// guard, the row above (with a filter byte), four Paeth rows, guard
				buf := make([]byte, guard+5*stride+guard)
				for i := range buf {
					buf[i] = paethTestByte(rng)
				}
				rows := buf[guard : guard+5*stride]
				for k := 1; k <= 4; k++ {
					rows[k*stride] = 4
				}
				want := bytes.Clone(buf)
				wrows := want[guard : guard+5*stride]
				for k := 1; k <= 4; k++ {
					paethSpec(wrows[k*stride+1:(k+1)*stride], wrows[(k-1)*stride+1:k*stride], bpp)
				}
				for _, simd := range []bool{false, true} {
					if simd && !useSIMD {
						continue
					}
					got := bytes.Clone(buf)
					paethQuad(simd, got[guard:guard+5*stride], stride, bpp, 1)
					if !bytes.Equal(got, want) {
						t.Fatalf("bpp %d, %d pixels, vector code %v:\n  got % x\n want % x", bpp, px, simd, got, want)
					}
				}
			}
		}
	}
}

// paethTestByte is mostly one of {0, 1, 127, 128, 254, 255}, so that the Paeth
// predictor's ties and extremes all occur.
func paethTestByte(rng *rand.Rand) byte {
	if rng.IntN(4) == 0 {
		return byte(rng.IntN(256))
	}
	return []byte{0, 1, 127, 128, 254, 255}[rng.IntN(6)]
}

// paethSpec is the PNG specification's Paeth unfilter of one row, byte by byte.
func paethSpec(cur, prev []byte, bpp int) {
	for i := range cur {
		var a, c int
		if i >= bpp {
			a, c = int(cur[i-bpp]), int(prev[i-bpp])
		}
		b := int(prev[i])
		p := a + b - c
		pa, pb, pc := max(p-a, a-p), max(p-b, b-p), max(p-c, c-p)
		switch {
		case pa <= pb && pa <= pc:
			cur[i] += byte(a)
		case pb <= pc:
			cur[i] += byte(b)
		default:
			cur[i] += byte(c)
		}
	}
}

func rangeInts(lo, hi int) []int {
	var s []int
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

// filteredPNG is a w×h 8-bit PNG of colour type ctype (2: RGB, 6: RGBA) whose row y is
// filtered with filters[y % len(filters)] and holds random residuals: any bytes are a
// valid image, so image/png decodes it as the specification says.
func filteredPNG(rng *rand.Rand, w, h int, ctype byte, filters []byte) []byte {
	bpp := map[byte]int{2: 3, 6: 4}[ctype]
	raw := make([]byte, h*(1+w*bpp))
	for i := range raw {
		raw[i] = byte(rng.IntN(256))
	}
	for y := 0; y < h; y++ {
		raw[y*(1+w*bpp)] = filters[y%len(filters)]
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, ctype
	out := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	out = append(out, pngChunk("IDAT", z.Bytes())...)
	return append(out, pngChunk("IEND", nil)...)
}

// TestPNGFastPathPaethRows: RGB and RGBA images whose rows are Paeth in runs of every
// length from 1 to 11 (so the four-, two- and one-row kernels run after every other
// filter, and one after another in a run), at widths 1 to 40, 9 and 20 rows high: the fast
// path's pixels are image/png's.
func TestPNGFastPathPaethRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	patterns := [][]byte{{4}, {4, 4, 4, 0}, {4, 1, 4, 4, 2}, {3, 4, 4, 4, 4}, {2, 4},
		{1, 4, 4, 4, 4, 4, 4, 4}, {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2}, {0, 4, 4, 4, 4, 4, 4}}
	for _, ctype := range []byte{2, 6} {
		for w := 1; w <= 40; w++ {
			for i, f := range patterns {
				data := filteredPNG(rng, w, 9+11*(i%2), ctype, f)
				got, ok := pngFastRGB(data)
				if !ok {
					t.Fatalf("colour type %d, width %d, filters %v: the fast path declined", ctype, w, f)
				}
				if want := pngStd(t, data); !bytes.Equal(got.Pix, want.Pix) {
					t.Fatalf("colour type %d, width %d, pattern %d: pixels differ from image/png's", ctype, w, i)
				}
			}
		}
	}
}
