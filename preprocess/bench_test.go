package preprocess

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Benchmarks of bytes → 224×224 normalised tensor, to compare with Pillow doing the same
// (testdata/bench_pillow.py; BENCHMARKS.md, "Preprocessing against Pillow").
//
// With ICTHP_BENCH_IMAGES=DIR they read DIR/bench_512.jpg, DIR/bench_1024.png and
// DIR/bench_gen1024.png, the files bench_pillow.py writes and times, so both sides decode
// the very same bytes.
// Without it they encode similar images with Go's encoders (the figures are then only
// indicative: a different encoder makes a different file).
//
//	/usr/bin/python3 preprocess/testdata/bench_pillow.py /tmp/pb
//	ICTHP_BENCH_IMAGES=/tmp/pb go test ./preprocess -run '^$' -bench Tensor -cpu 1 -benchmem

// benchPhoto is a smooth, photo-like RGB picture with a patch of noise (sharp detail),
// like the fixtures' smooth_rgb + noise_rgb.
func benchPhoto(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(12345)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			r := 128 + 100*math.Sin(6*fx+2*fy)
			g := 128 + 90*math.Cos(4*fy-3*fx*fy)
			b := 128 + 80*math.Sin(9*fx*fy+1)
			if x > w/3 && x < w/2 && y > h/3 && y < h/2 {
				seed = seed*1664525 + 1013904223
				r, g, b = float64(seed>>24), float64(seed>>16&255), float64(seed>>8&255)
			}
			img.SetRGBA(x, y, color.RGBA{uint8(r), uint8(g), uint8(b), 255})
		}
	}
	return img
}

// benchGenerated is a detailed picture like a generated image: a 48×48 grid of random
// colours interpolated bilinearly, plus noise of standard deviation about 2 everywhere (a
// sum of four uniform draws). As PNG it is about 1.6 MB at 1024², with nearly every row
// filtered with Paeth, which encoders choose for photographs (Pillow and Go's alike); the
// smooth benchPhoto's rows are mostly Up, and pure noise's Up and Sub.
func benchGenerated(w, h int) *image.RGBA {
	const g = 48
	seed := uint32(2024)
	next := func() float64 {
		seed = seed*1664525 + 1013904223
		return float64(seed>>8) / (1 << 24)
	}
	var grid [g + 1][g + 1][3]float64
	for i := range grid {
		for j := range grid[i] {
			for c := range grid[i][j] {
				grid[i][j][c] = 255 * next()
			}
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		ty := float64(y) * g / float64(h)
		y0, fy := int(ty), ty-math.Floor(ty)
		for x := 0; x < w; x++ {
			tx := float64(x) * g / float64(w)
			x0, fx := int(tx), tx-math.Floor(tx)
			var px [3]uint8
			for c := range px {
				v := (grid[y0][x0][c]*(1-fx)+grid[y0][x0+1][c]*fx)*(1-fy) +
					(grid[y0+1][x0][c]*(1-fx)+grid[y0+1][x0+1][c]*fx)*fy
				v += (next() + next() + next() + next() - 2) * 3.46
				px[c] = uint8(min(255, max(0, math.Round(v))))
			}
			img.SetRGBA(x, y, color.RGBA{px[0], px[1], px[2], 255})
		}
	}
	return img
}

func benchImage(b *testing.B, name string) []byte {
	b.Helper()
	if dir := os.Getenv("ICTHP_BENCH_IMAGES"); dir != "" {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	var buf bytes.Buffer
	var err error
	switch name {
	case "bench_512.jpg":
		err = jpeg.Encode(&buf, benchPhoto(512, 512), &jpeg.Options{Quality: 90})
	case "bench_1024.png":
		err = png.Encode(&buf, benchPhoto(1024, 1024))
	case "bench_gen1024.png":
		err = png.Encode(&buf, benchGenerated(1024, 1024))
	default:
		b.Fatalf("unknown bench image %s", name)
	}
	if err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func benchTensor(b *testing.B, name string) { benchTensorOf(b, clipPipeline(b, 224, 224), name) }

// benchTensorOf times p.Tensor on the named image.
func benchTensorOf(b *testing.B, p interface {
	TensorLen() int
	Tensor([]byte, []float32) error
}, name string) {
	data := benchImage(b, name)
	dst := make([]float32, p.TensorLen())
	if err := p.Tensor(data, dst); err != nil { // warm the pools and the coefficient cache
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		if err := p.Tensor(data, dst); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// reportCPU adds the process CPU time per image (all threads: the garbage collector's
// work counts) and its inverse, images per CPU-second. On a shared machine this is the
// steadier per-core figure; bench_pillow.py reports the same (time.process_time).
func reportCPU(b *testing.B, cpu0 float64) {
	if cpu0 < 0 {
		return
	}
	d := processCPU() - cpu0
	if d <= 0 {
		return
	}
	b.ReportMetric(d*1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.N)/d, "images/cpu-s")
}

func BenchmarkTensorJPEG512(b *testing.B) { benchTensor(b, "bench_512.jpg") }
func BenchmarkTensorPNG1024(b *testing.B) { benchTensor(b, "bench_1024.png") }

// BenchmarkTensorPNGGen1024: the detailed, generated-like picture (Paeth rows).
func BenchmarkTensorPNGGen1024(b *testing.B) { benchTensor(b, "bench_gen1024.png") }

// The same through torchvision's pipeline (ImageReward's 224² BICUBIC resize on Pillow's
// decode), whose horizontal pass over 3-channel images is hpass's too.
func BenchmarkTorchvisionJPEG512(b *testing.B) { benchTorchvision(b, "bench_512.jpg") }
func BenchmarkTorchvisionPNG1024(b *testing.B) { benchTorchvision(b, "bench_1024.png") }

func benchTorchvision(b *testing.B, name string) {
	p, err := NewTorchvisionPipeline(torchvisionOptions())
	if err != nil {
		b.Fatal(err)
	}
	benchTensorOf(b, p, name)
}

// The same from GOMAXPROCS goroutines, each with its own tensor buffer, as the scoring
// worker pool runs it: images/s here is for all cores together.
func benchTensorParallel(b *testing.B, name string) {
	data := benchImage(b, name)
	p := clipPipeline(b, 224, 224)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]float32, p.TensorLen())
		for pb.Next() {
			if err := p.Tensor(data, dst); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

func BenchmarkTensorParallelJPEG512(b *testing.B) { benchTensorParallel(b, "bench_512.jpg") }
func BenchmarkTensorParallelPNG1024(b *testing.B) { benchTensorParallel(b, "bench_1024.png") }

// BenchmarkTensorRGB is the resize + crop + normalise part alone on already decoded
// 1024×1024 pixels (no decoder garbage): it must not allocate at all.
func BenchmarkTensorRGB(b *testing.B) {
	src := formulaRGB(1024, 1024)
	p := clipPipeline(b, 224, 224)
	dst := make([]float32, p.TensorLen())
	if err := p.TensorRGB(src, dst); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		if err := p.TensorRGB(src, dst); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu0)
}

// TestTensorRGBNoGarbage checks what BenchmarkTensorRGB reports: once the pools are warm,
// resize + crop + normalise into a caller's buffer allocates nothing per image (the
// pixbuf header is the one small allocation allowed).
func TestTensorRGBNoGarbage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers on purpose")
	}
	src := formulaRGB(640, 480)
	p := clipPipeline(t, 224, 224)
	dst := make([]float32, p.TensorLen())
	allocs := testing.AllocsPerRun(20, func() {
		if err := p.TensorRGB(src, dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("TensorRGB allocates %.1f times per image, want at most 1", allocs)
	}
}

// BenchmarkRefusePNGBomb: a few KB declaring 50,000 × 50,000 pixels is refused from its
// header (ErrTooLarge) without decoding or allocating pixels.
func BenchmarkRefusePNGBomb(b *testing.B) {
	data := pngBomb(50000, 50000)
	p := clipPipeline(b, 224, 224)
	dst := make([]float32, p.TensorLen())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := p.Tensor(data, dst); !errors.Is(err, ErrTooLarge) {
			b.Fatalf("%d-byte bomb: %v", len(data), err)
		}
	}
}
