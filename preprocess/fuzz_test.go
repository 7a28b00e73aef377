package preprocess

import (
	"bytes"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// The image fuzz target. scripts/test.sh runs it for 15 s in CI; its seeds (the committed
// image fixtures) also run as plain tests in `go test`. The tokenizer's is in preprocess/text.

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
	// Paeth rows in runs (the one- and two-row vector kernels), RGB and RGBA.
	rng := rand.New(rand.NewPCG(3, 4))
	f.Add(filteredPNG(rng, 9, 7, 2, []byte{4, 4, 4, 1, 4, 4}))
	f.Add(filteredPNG(rng, 6, 5, 6, []byte{4, 4, 2}))
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
		checkPlanes(t, dst, crop.Pix, func(c int, v uint8) float32 { return p.lut[c][v] })
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
