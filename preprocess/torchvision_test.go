package preprocess

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math"
	"testing"

	"golang.org/x/image/bmp"
)

func torchvisionOptions() ImageOptions {
	return ImageOptions{ShortestEdge: 224, CropSize: 224,
		Mean: [3]float32{0.48145466, 0.4578275, 0.40821073}, Std: [3]float32{0.26862954, 0.26130258, 0.27577711}}
}

// torchvisionManifest is testdata/torchvision/manifest.json: each case's source, the
// Pillow mode it opens in, its size and the SHA-256 of torchvision's crop.
type torchvisionManifest struct {
	Cases []struct {
		File   string `json:"file"`
		Mode   string `json:"mode"`
		Size   [2]int `json:"size"`
		SHA256 string `json:"crop_sha256"`
	} `json:"cases"`
}

func readTorchvisionManifest(t *testing.T) torchvisionManifest {
	t.Helper()
	var man torchvisionManifest
	readTestJSON(t, &man, "torchvision", "manifest.json")
	return man
}

// Every image of testdata/torchvision/manifest.json (its own sources and the
// CLIP fixtures' sources, in all the Pillow modes they open in) gives the
// crop torchvision 0.14 + Pillow 9.4 made, byte for byte.
func TestTorchvisionCropsMatchPillow(t *testing.T) {
	if !jpegNative {
		t.Skip("JPEG parity needs the cgo libjpeg-turbo decoder")
	}
	man := readTorchvisionManifest(t)
	if len(man.Cases) < 100 {
		t.Fatalf("manifest has %d cases", len(man.Cases))
	}
	p, err := NewTorchvisionPipeline(torchvisionOptions())
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int{}
	for _, c := range man.Cases {
		crop, err := p.Crop(readTestdata(t, c.File))
		if err != nil {
			t.Errorf("%s (%s %v): %v", c.File, c.Mode, c.Size, err)
			continue
		}
		if sha(crop.Pix) != c.SHA256 {
			t.Errorf("%s (%s %v): crop differs from torchvision's", c.File, c.Mode, c.Size)
			continue
		}
		modes[c.Mode]++
	}
	t.Logf("identical crops by Pillow mode: %v", modes)
	for _, m := range []string{"RGB", "RGBA", "LA", "L", "P", "1", "I", "CMYK"} {
		if modes[m] == 0 {
			t.Errorf("no passing case of mode %s", m)
		}
	}
}

// ToTensor + Normalize equal torch's float32 values bit for bit.
func TestTorchvisionNormalize(t *testing.T) {
	var ref struct {
		Bits [3][256]uint32 `json:"bits"`
	}
	readTestJSON(t, &ref, "torchvision", "normalize.json")
	p, err := NewTorchvisionPipeline(torchvisionOptions())
	if err != nil {
		t.Fatal(err)
	}
	// A 224×224 image holding every value in every channel.
	img := &RGB{W: 224, H: 224, Pix: make([]uint8, 224*224*3)}
	for i := range img.Pix {
		img.Pix[i] = uint8((i/3 + i%3*85) % 256)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.TensorRGB(img, dst); err != nil {
		t.Fatal(err)
	}
	checkPlanes(t, dst, img.Pix, func(c int, v uint8) float32 { return math.Float32frombits(ref.Bits[c][v]) })
}

func TestTorchCropOffset(t *testing.T) {
	for _, c := range []struct{ size, crop, want int }{
		{224, 224, 0}, {225, 224, 0}, {226, 224, 1}, {227, 224, 2}, {228, 224, 2}, {229, 224, 2}, {231, 224, 4}, {233, 224, 4},
	} {
		if got := torchCropOffset(c.size, c.crop); got != c.want {
			t.Errorf("offset(%d, %d) = %d, want round(%g) = %d", c.size, c.crop, got, float64(c.size-c.crop)/2, c.want)
		}
	}
}

func TestTorchvisionErrors(t *testing.T) {
	if _, err := NewTorchvisionPipeline(ImageOptions{ShortestEdge: 200, CropSize: 224, Std: [3]float32{1, 1, 1}}); err == nil {
		t.Error("crop larger than the resize accepted")
	}
	if _, err := NewTorchvisionPipeline(ImageOptions{ShortestEdge: 224, CropSize: 224}); err == nil {
		t.Error("zero std accepted")
	}
	p, err := NewTorchvisionPipeline(torchvisionOptions())
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	for _, c := range []struct {
		data []byte
		want error
	}{
		{nil, ErrUndecodable},
		{[]byte("not an image at all"), ErrUnsupportedFormat},
		{[]byte("\x89PNG\r\n\x1a\n\x00\x00"), ErrUndecodable},
	} {
		if err := p.Tensor(c.data, dst); !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want %v", c.data, err, c.want)
		}
	}
	if err := p.Tensor([]byte("x"), dst[:10]); err == nil {
		t.Error("short buffer accepted")
	}
}

// The mode rules and the rounding matter: on these images the CLIP pipeline
// (convert first, floor offsets) does not give torchvision's crop.
func TestTorchvisionDiffersFromCLIPPipeline(t *testing.T) {
	man := readTorchvisionManifest(t)
	want := map[string]string{}
	for _, c := range man.Cases {
		want[c.File] = c.SHA256
	}
	clip, err := NewImagePipeline(torchvisionOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{
		"torchvision/src/rgba8_300x200.png", // premultiplied resize
		"torchvision/src/rgb8_227x224.png",  // offset round(1.5) = 2, floor 1
		"torchvision/src/p8_310x215.png",    // NEAREST for palette images
		"torchvision/src/i16_260x300.png",   // resized before clipping
	} {
		crop, err := clip.Crop(readTestdata(t, f))
		if err != nil {
			t.Fatal(err)
		}
		if sha(crop.Pix) == want[f] {
			t.Errorf("%s: the CLIP pipeline gives torchvision's crop; the case tests nothing", f)
		}
	}
}

// Arbitrary bytes give a crop or a typed error, never a panic.
func FuzzTorchvisionCrop(f *testing.F) {
	// Small seeds of the modes with their own paths (big files make the
	// fuzzer crawl): RGBA and 16-bit gray PNG, a palette GIF and BMP.
	var buf bytes.Buffer
	rgba := image.NewNRGBA(image.Rect(0, 0, 5, 4))
	g16 := image.NewGray16(image.Rect(0, 0, 4, 6))
	pal := image.NewPaletted(image.Rect(0, 0, 6, 3), color.Palette{color.Black, color.White, color.RGBA{200, 10, 10, 255}})
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(i * 37)
	}
	for i := range g16.Pix {
		g16.Pix[i] = uint8(i * 91)
	}
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	for _, enc := range []func() error{
		func() error { return png.Encode(&buf, rgba) },
		func() error { return png.Encode(&buf, g16) },
		func() error { return gif.Encode(&buf, pal, nil) },
		func() error { return bmp.Encode(&buf, pal) },
	} {
		buf.Reset()
		if err := enc(); err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.Clone(buf.Bytes()))
	}
	p, err := NewTorchvisionPipeline(ImageOptions{ShortestEdge: 16, CropSize: 16, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}, MaxPixels: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		crop, err := p.Crop(data)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) && !errors.Is(err, ErrUnsupportedFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if crop.W != 16 || crop.H != 16 || len(crop.Pix) != 16*16*3 {
			t.Fatalf("crop %dx%d", crop.W, crop.H)
		}
	})
}
