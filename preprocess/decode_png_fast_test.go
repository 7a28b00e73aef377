package preprocess

import (
	"bytes"
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
		var img image.Image
		switch i % 4 {
		case 0:
			m := image.NewRGBA(image.Rect(0, 0, w, h))
			for j := range m.Pix {
				m.Pix[j] = uint8(rng.IntN(256))
				if j%4 == 3 {
					m.Pix[j] = 255 // opaque: image/png writes RGB
				}
			}
			img = m
		case 1:
			m := image.NewNRGBA(image.Rect(0, 0, w, h))
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					m.Set(x, y, color.NRGBA{uint8(x * 3), uint8(y*5 + x), uint8(rng.IntN(16)), uint8(rng.IntN(256))})
				}
			}
			img = m
		case 2:
			m := image.NewGray(image.Rect(0, 0, w, h))
			for j := range m.Pix {
				m.Pix[j] = uint8(j*7) + uint8(rng.IntN(3))
			}
			img = m
		default:
			pal := color.Palette{}
			for j := 0; j < 200; j++ {
				pal = append(pal, color.RGBA{uint8(rng.IntN(256)), uint8(j), uint8(rng.IntN(256)), 255})
			}
			m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
			for j := range m.Pix {
				m.Pix[j] = uint8(rng.IntN(200))
			}
			img = m
		}
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
