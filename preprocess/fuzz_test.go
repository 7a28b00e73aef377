package preprocess

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// Fuzz targets. scripts/test.sh runs each for 15 s in CI; the seeds (the committed image
// fixtures, the tokenizer cases) also run as plain tests in `go test`.

// Limits of the image fuzzer: small enough that every input is cheap, so that any
// allocation beyond them is a bug (the header check must refuse the image first).
const (
	fuzzMaxPixels = 1 << 20
	fuzzMaxBytes  = 1 << 20
)

func addImageSeeds(f *testing.F) {
	dir := filepath.Join("testdata", "images", "src")
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) <= 4<<10 { // big seeds make minimising a new input take most of a short run
			f.Add(data)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Add([]byte{0xff, 0xd8, 0xff})
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	f.Add([]byte("GIF89a"))
	f.Add([]byte("BM"))
	f.Add(pngBomb(50000, 50000))
}

// FuzzImage feeds arbitrary bytes to the decoders and the whole pipeline: no panic; every
// failure is exactly one of the three documented kinds; a success gives a crop of the
// configured size, Crop and DecodeRGB+CropRGB agree, and the tensor is the normalised
// crop; and the memory allocated stays within what the pixel limit allows.
func FuzzImage(f *testing.F) {
	addImageSeeds(f)
	opt := ImageOptions{ShortestEdge: 64, CropSize: 56, Mean: clipMean, Std: clipStd,
		MaxPixels: fuzzMaxPixels, MaxBytes: fuzzMaxBytes}
	p, err := NewImagePipeline(opt)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		rgb, err := DecodeRGB(data, opt)
		runtime.ReadMemStats(&ms1)
		// Decoders may hold a few copies of the pixels (e.g. a 16-bit RGBA image and its
		// conversion) and of the input, never more.
		bound := uint64(40*fuzzMaxPixels + 8*len(data) + 16<<20)
		if got := ms1.TotalAlloc - ms0.TotalAlloc; got > bound {
			t.Fatalf("decoding %d bytes allocated %d bytes (bound %d)", len(data), got, bound)
		}
		if hd, herr := pngIHDR(data); sniff(data) != fmtPNG || herr != nil || opt.limits().checkDims("PNG", hd.w, hd.h) != nil {
			// not a PNG the pipeline would decode
		} else if fast, ok := pngFastRGB(data); ok {
			// The direct PNG decoder answers only where image/png agrees, pixel for pixel.
			img, serr := png.Decode(bytes.NewReader(data))
			if serr != nil {
				t.Fatalf("direct PNG decoder accepted what image/png refuses: %v", serr)
			}
			std, serr := pixbufOfImage(img, false)
			if serr != nil || !bytes.Equal(std.toRGB().Pix, fast.Pix) {
				t.Fatalf("direct PNG decoder and image/png differ (err %v)", serr)
			}
		}
		crop, cerr := p.Crop(data)
		if err != nil {
			checkKind(t, err)
			if cerr == nil || errorKind(cerr) != errorKind(err) {
				t.Fatalf("DecodeRGB: %v but Crop: %v", err, cerr)
			}
			return
		}
		if rgb.W <= 0 || rgb.H <= 0 || int64(rgb.W)*int64(rgb.H) > fuzzMaxPixels || len(rgb.Pix) != rgb.W*rgb.H*3 {
			t.Fatalf("DecodeRGB gave %dx%d with %d bytes", rgb.W, rgb.H, len(rgb.Pix))
		}
		if cerr != nil {
			// Only the resize geometry may refuse a decodable image (extreme aspect ratio).
			if !errors.Is(cerr, ErrTooLarge) {
				t.Fatalf("DecodeRGB succeeded, Crop: %v", cerr)
			}
			return
		}
		crop2, err := p.CropRGB(rgb)
		if err != nil || !bytes.Equal(crop.Pix, crop2.Pix) {
			t.Fatalf("Crop != CropRGB(DecodeRGB) (err %v)", err)
		}
		dst := make([]float32, p.TensorLen())
		if err := p.Tensor(data, dst); err != nil {
			t.Fatalf("Tensor: %v after Crop succeeded", err)
		}
		n := opt.CropSize * opt.CropSize
		for i := 0; i < n; i++ {
			for c := 0; c < 3; c++ {
				if dst[c*n+i] != p.lut[c][crop.Pix[3*i+c]] {
					t.Fatalf("tensor[%d][%d] = %v, not the normalised crop value", c, i, dst[c*n+i])
				}
			}
		}
	})
}

func errorKind(err error) error {
	for _, k := range []error{ErrUnsupportedFormat, ErrUndecodable, ErrTooLarge} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

func checkKind(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, k := range []error{ErrUnsupportedFormat, ErrUndecodable, ErrTooLarge} {
		if errors.Is(err, k) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d of the three kinds, want exactly 1", err, n)
	}
}

// fuzzTokenizers returns tokenizers over the real vocabulary when it is present (else a
// synthetic one): with the default caches, with no caches, and with a 200-token context.
var fuzzTokenizers = sync.OnceValues(func() ([3]*Tokenizer, error) {
	var ts [3]*Tokenizer
	gz, err := os.ReadFile(realVocabPath)
	if err != nil {
		gz = SyntheticVocab(20000)
	}
	for i, opts := range [][]TokenizerOption{
		nil,
		{WithPromptCacheSize(0), WithWordCacheSize(0)},
		{WithContextLength(200), WithPromptCacheSize(0)},
	} {
		if ts[i], err = NewTokenizerFromBPE(gz, opts...); err != nil {
			return ts, err
		}
	}
	return ts, nil
})

// FuzzTokenize: any bytes (invalid UTF-8, empty, control characters, entity soup, special
// token names) encode without error up to the length limit, to ids that start with
// <start_of_text>, end in <end_of_text> followed only by padding, stay in the vocabulary,
// do not depend on the caches, equal the first 76 tokens of a longer context plus
// <end_of_text> when cut, and equal the ids of the text with its invalid UTF-8 replaced
// by U+FFFD first.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{
		"", " ", "a photo of a cat", "A  PHOTO\tof\u00a0a\u3000CAT", "&amp;amp;lt;b&gt;", "&#x1F600; &#0; &#xD800;",
		"caf\xc3\xa9 \xff\xfe invalid \xed\xa0\x80 surrogate \xf4\x90\x80\x80", "<|startoftext|><|endoftext|>", "<start_of_text><end_of_text>",
		"\u201cquoted\u201d \ufb01sh \uff21\uff22", "ſtraße İstanbul ΣΑΣ", "don't won't it's 'S 'LL",
		strings.Repeat("word ", 100), strings.Repeat("a", 500), "\x1b[31mred\x1b[0m", "Ã©tÃ© mojibake",
		"123 4567 ½ ١٢٣", "\u0345\u0345 x", "\r\n\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029",
	} {
		f.Add(s)
	}
	ts, err := fuzzTokenizers()
	if err != nil {
		f.Fatal(err)
	}
	tok, nocache, long := ts[0], ts[1], ts[2]
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := tok.Encode(text)
		if len(text) > tok.MaxInputBytes() {
			if !errors.Is(err, ErrPromptTooLong) {
				t.Fatalf("%d-byte prompt: %v, want ErrPromptTooLong", len(text), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		checkIDs(t, tok, ids)
		again, _ := tok.Encode(text) // from the prompt cache now
		fresh, err := nocache.Encode(text)
		if err != nil || !slices.Equal(ids, again) || !slices.Equal(ids, fresh) {
			t.Fatalf("cache changes the ids:\n%v\n%v\n%v (err %v)", ids, again, fresh, err)
		}
		batch := make([]int64, 2*77)
		if err := tok.EncodeBatch([]string{text, "x"}, batch); err != nil || !slices.Equal(batch[:77], ids) {
			t.Fatalf("EncodeBatch row 0 differs from Encode (err %v)", err)
		}
		l, err := long.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, long, l)
		if k := lastIndex(l, long.EOT()); k < 199 { // not cut at 200: cutting at 77 is derivable
			var want []int64
			if k < 77 {
				want = l[:77]
			} else {
				want = append(slices.Clone(l[:76]), tok.EOT())
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("77-token ids are not the 200-token ids cut:\n%v\n%v", ids, l)
			}
		}
		if fixed := decodeUTF8Replace(text); fixed != text && len(fixed) <= tok.MaxInputBytes() {
			if r, _ := tok.Encode(fixed); !slices.Equal(r, ids) {
				t.Fatalf("invalid UTF-8 is not read as U+FFFD")
			}
		}
		if c := CleanPrompt(text); !utf8.ValidString(c) || strings.TrimFunc(c, pyIsSpace) != c {
			t.Fatalf("CleanPrompt(%q) = %q: invalid UTF-8 or untrimmed", text, c)
		}
	})
}

func lastIndex(ids []int64, v int64) int {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == v {
			return i
		}
	}
	return -1
}

// checkIDs checks the shape every encoding has: <start_of_text>, ids in the vocabulary,
// a closing <end_of_text> after which only padding (0) follows.
func checkIDs(t *testing.T, tok *Tokenizer, ids []int64) {
	t.Helper()
	if len(ids) != tok.ContextLength() {
		t.Fatalf("%d ids, want %d", len(ids), tok.ContextLength())
	}
	if ids[0] != tok.SOT() {
		t.Fatalf("ids[0] = %d, want <start_of_text> %d", ids[0], tok.SOT())
	}
	k := lastIndex(ids, tok.EOT())
	if k < 1 {
		t.Fatalf("no <end_of_text> in %v", ids)
	}
	for i, id := range ids {
		if id < 0 || id >= int64(tok.VocabSize()) {
			t.Fatalf("ids[%d] = %d outside the vocabulary (%d)", i, id, tok.VocabSize())
		}
		if i > k && id != 0 {
			t.Fatalf("ids[%d] = %d after the closing <end_of_text>, want padding 0", i, id)
		}
	}
}
