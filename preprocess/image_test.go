package preprocess

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The fixtures are produced by testdata/gen_image_fixtures.py with Pillow 9.4 (see its
// docstring); the tests need only the committed files.

type fixtureCase struct {
	Name         string `json:"name"`
	Desc         string `json:"desc"`
	Src          string `json:"src"`
	ShortestEdge int    `json:"shortest_edge"`
	Crop         int    `json:"crop"`
	Formula      []int  `json:"formula"`
	Error        string `json:"error"`
	Resized      []int  `json:"resized"`
	Mode         string `json:"mode"`
	Size         []int  `json:"size"`
	RGBSHA256    string `json:"rgb_sha256"`
	WantSHA256   string `json:"want_sha256"`
	Want         string `json:"want"`
	Tensor       string `json:"tensor"`
}

type fixtureManifest struct {
	Pillow string        `json:"pillow"`
	Cases  []fixtureCase `json:"cases"`
}

var clipMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
var clipStd = [3]float32{0.26862954, 0.26130258, 0.27577711}

// readTestdata returns the file testdata/path... .
func readTestdata(t testing.TB, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, path...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readTestJSON decodes the JSON file testdata/path... into v.
func readTestJSON(t testing.TB, v any, path ...string) {
	t.Helper()
	if err := json.Unmarshal(readTestdata(t, path...), v); err != nil {
		t.Fatal(err)
	}
}

// readSrc returns the fixture source image testdata/images/src/name.
func readSrc(t testing.TB, name string) []byte {
	t.Helper()
	return readTestdata(t, "images", "src", name)
}

// clipPipeline is the CLIP pipeline (OpenAI mean and std) for one resize and crop size.
func clipPipeline(t testing.TB, shortestEdge, cropSize int) *ImagePipeline {
	t.Helper()
	p, err := NewImagePipeline(ImageOptions{ShortestEdge: shortestEdge, CropSize: cropSize, Mean: clipMean, Std: clipStd})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func loadManifest(t testing.TB) fixtureManifest {
	t.Helper()
	var m fixtureManifest
	readTestJSON(t, &m, "images", "manifest.json")
	if len(m.Cases) == 0 {
		t.Fatal("empty manifest")
	}
	return m
}

// formulaRGB is formula_rgb of gen_image_fixtures.py:
//
//	r = ((x*3) ^ (y*5)) & 255;  g = ((x*x + 3*y*y) >> 7) & 255;  b = (x + 2*y) & 255
func formulaRGB(w, h int) *RGB {
	img := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			p := img.Pix[(y*w+x)*3:]
			p[0] = uint8(((x * 3) ^ (y * 5)) & 255)
			p[1] = uint8(((x*x + 3*y*y) >> 7) & 255)
			p[2] = uint8((x + 2*y) & 255)
		}
	}
	return img
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readWantPNG(t *testing.T, name string) *RGB {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(readTestdata(t, "images", "want", name)))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pixbufOfImage(img, false)
	if err != nil {
		t.Fatal(err)
	}
	return pb.toRGB()
}

// diffStats reports how many bytes differ and by how much at most.
func diffStats(a, b []byte) (n, maxd int) {
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		if d != 0 {
			n++
		}
		if d > maxd {
			maxd = d
		}
	}
	return
}

func TestImageFixtures(t *testing.T) {
	m := loadManifest(t)
	modes := map[string]int{}
	for _, c := range m.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if !jpegNative && filepath.Ext(c.Src) == ".jpg" {
				t.Skip("JPEG parity needs the cgo libjpeg-turbo decoder")
			}
			opt := ImageOptions{ShortestEdge: c.ShortestEdge, CropSize: c.Crop, Mean: clipMean, Std: clipStd}
			p, err := NewImagePipeline(opt)
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			var src *RGB
			if c.Formula != nil {
				src = formulaRGB(c.Formula[0], c.Formula[1])
			} else {
				data = readSrc(t, c.Src)
			}
			if c.Error != "" {
				_, err := DecodeRGB(data, opt)
				if !errors.Is(err, ErrUndecodable) {
					t.Fatalf("Pillow refuses this file (%s); DecodeRGB returned %v, want ErrUndecodable", c.Error, err)
				}
				if _, err := p.Crop(data); !errors.Is(err, ErrUndecodable) {
					t.Fatalf("Crop returned %v, want ErrUndecodable", err)
				}
				return
			}
			if data != nil {
				rgb, err := DecodeRGB(data, opt)
				if err != nil {
					t.Fatalf("DecodeRGB: %v", err)
				}
				if rgb.W != c.Size[0] || rgb.H != c.Size[1] {
					t.Fatalf("decoded %dx%d, Pillow %dx%d", rgb.W, rgb.H, c.Size[0], c.Size[1])
				}
				if got := sha(rgb.Pix); got != c.RGBSHA256 {
					t.Errorf("convert(\"RGB\") differs from Pillow's (mode %s)", c.Mode)
				}
				src = rgb
			}
			var crop *RGB
			if data != nil {
				crop, err = p.Crop(data)
			} else {
				crop, err = p.CropRGB(src)
			}
			if err != nil {
				t.Fatalf("Crop: %v", err)
			}
			if crop.W != c.Crop || crop.H != c.Crop || len(crop.Pix) != c.Crop*c.Crop*3 {
				t.Fatalf("crop is %dx%d", crop.W, crop.H)
			}
			if got := sha(crop.Pix); got != c.WantSHA256 {
				msg := ""
				if c.Want != "" {
					n, maxd := diffStats(crop.Pix, readWantPNG(t, c.Want).Pix)
					msg = ": " + itoa(n) + " bytes differ, max diff " + itoa(maxd)
				}
				t.Errorf("crop differs from Pillow's%s", msg)
			}
			if data != nil { // CropRGB of the decoded pixels must agree with Crop
				crop2, err := p.CropRGB(src)
				if err != nil || !bytes.Equal(crop2.Pix, crop.Pix) {
					t.Errorf("CropRGB(DecodeRGB(x)) != Crop(x) (err %v)", err)
				}
			}
			if c.Tensor != "" {
				checkTensor(t, p, data, c.Tensor)
			}
			modes[c.Mode]++
		})
	}
	t.Logf("%d fixtures (Pillow %s); modes seen: %v", len(m.Cases), m.Pillow, modes)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func checkTensor(t *testing.T, p *ImagePipeline, data []byte, name string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(readTestdata(t, "images", name)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 4*p.TensorLen() {
		t.Fatalf("reference tensor has %d bytes, want %d", len(raw), 4*p.TensorLen())
	}
	got := make([]float32, p.TensorLen())
	if err := p.Tensor(data, got); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, v := range got {
		want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		if math.Float32bits(v) != math.Float32bits(want) {
			if bad < 5 {
				t.Errorf("tensor[%d] = %v (%08x), numpy %v (%08x)", i, v, math.Float32bits(v), want, math.Float32bits(want))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d tensor values differ from numpy's", bad, len(got))
	}
}

// checkPlanes checks that the CHW tensor dst holds, bit for bit, want(c, v) for the value
// v of channel c of each pixel of the packed RGB bytes pix.
func checkPlanes(t *testing.T, dst []float32, pix []byte, want func(c int, v uint8) float32) {
	t.Helper()
	n := len(pix) / 3
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			got, w := dst[c*n+i], want(c, pix[3*i+c])
			if math.Float32bits(got) != math.Float32bits(w) {
				t.Fatalf("tensor[%d][%d] = %v (%08x), want %v (%08x)", c, i, got, math.Float32bits(got), w, math.Float32bits(w))
			}
		}
	}
}

// TestNormalizeBits checks rescale+normalize for all 256 values of every channel against
// the float32 bit patterns numpy produced (transformers 4.27 order and dtypes).
func TestNormalizeBits(t *testing.T) {
	var ref struct {
		Mean, Std []float64
		Bits      [][]uint32
	}
	readTestJSON(t, &ref, "images", "normalize.json")
	var mean, std [3]float32
	for c := 0; c < 3; c++ {
		mean[c], std[c] = float32(ref.Mean[c]), float32(ref.Std[c])
	}
	p, err := NewImagePipeline(ImageOptions{ShortestEdge: 224, CropSize: 224, Mean: mean, Std: std})
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			if got := math.Float32bits(p.lut[c][v]); got != ref.Bits[c][v] {
				t.Errorf("channel %d value %d: %08x, numpy %08x", c, v, got, ref.Bits[c][v])
			}
		}
	}
}

// TestTensorLayout checks Tensor = LUT(Crop) in CHW order for a non-square-friendly case.
func TestTensorLayout(t *testing.T) {
	p := clipPipeline(t, 40, 32)
	src := formulaRGB(97, 61)
	crop, err := p.CropRGB(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.TensorRGB(src, dst); err != nil {
		t.Fatal(err)
	}
	checkPlanes(t, dst, crop.Pix, func(c int, v uint8) float32 { return normalizeValue(v, clipMean[c], clipStd[c]) })
	if err := p.TensorRGB(src, dst[:10]); err == nil {
		t.Fatal("short dst accepted")
	}
}

// TestDecodeRGBPooled: every fixture decodes to DecodeRGB's pixels (or its error) through
// the pooled path too, twice over in one sequence with each buffer released before the
// next decode, so that buffers come back from the pool holding another image's pixels
// (PNG, JPEG, WebP, GIF, BMP; RGB, RGBA, gray, palette).
func TestDecodeRGBPooled(t *testing.T) {
	dir := filepath.Join("testdata", "images", "src")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	lim := ImageOptions{MaxPixels: 50_000_000, MaxBytes: 64 << 20}
	checked := 0
	for round := 0; round < 2; round++ {
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			want, werr := DecodeRGB(data, lim)
			got, release, gerr := DecodeRGBPooled(data, lim)
			if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
				t.Fatalf("%s: DecodeRGB error %v, pooled %v", e.Name(), werr, gerr)
			}
			if werr != nil {
				continue
			}
			if got.W != want.W || got.H != want.H || !bytes.Equal(got.Pix, want.Pix) {
				t.Fatalf("%s: pooled pixels differ (%dx%d, want %dx%d)", e.Name(), got.W, got.H, want.W, want.H)
			}
			release()
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d decodable fixtures", checked)
	}
}
