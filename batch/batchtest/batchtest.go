// Package batchtest writes procedurally generated image datasets, in the
// layouts `icthp batch` reads, for tests and benchmarks.
package batchtest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Options shape a generated dataset.
type Options struct {
	Size           int // width and height; default 64
	PerPrompt      int // images that share one prompt; default 4
	JPEGQuality    int // default 90
	Seed           uint64
	NoNoise        bool // flat shapes only (smaller, faster to decode)
	PNGEvery       int  // every PNGEvery-th image is a PNG, the rest JPEG; default 2
	FirstIndex     int  // number of the first image (keys are %06d of it)
	MissingPrompts []int
}

func (o *Options) defaults() {
	if o.Size <= 0 {
		o.Size = 64
	}
	if o.PerPrompt <= 0 {
		o.PerPrompt = 4
	}
	if o.JPEGQuality <= 0 {
		o.JPEGQuality = 90
	}
	if o.PNGEvery <= 0 {
		o.PNGEvery = 2
	}
}

var words = []string{"red", "apple", "castle", "ocean", "portrait", "neon", "forest", "robot", "sunset", "city",
	"watercolor", "cat", "mountain", "glass", "street", "dragon", "garden", "winter", "desert", "lantern"}

// Prompt is the prompt of image i.
func Prompt(i, perPrompt int) string {
	g := i / max(perPrompt, 1)
	return fmt.Sprintf("a %s %s near a %s, photo %d", words[g%len(words)], words[(g/len(words)+3)%len(words)], words[(g*7+1)%len(words)], g)
}

// Image draws image i: a gradient, a few rectangles and discs, and noise.
func Image(i int, o Options) image.Image {
	o.defaults()
	r := rand.New(rand.NewPCG(o.Seed, uint64(i)))
	n := o.Size
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	c0 := [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	c1 := [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	type shape struct {
		x0, y0, x1, y1 int
		disc           bool
		c              color.RGBA
	}
	shapes := make([]shape, 3+r.IntN(4))
	for k := range shapes {
		x0, y0 := r.IntN(n), r.IntN(n)
		shapes[k] = shape{x0, y0, x0 + 1 + r.IntN(n/2+1), y0 + 1 + r.IntN(n/2+1), r.IntN(2) == 0,
			color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}}
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			t := float64(x+y) / float64(2*n)
			px := color.RGBA{uint8(c0[0]*(1-t) + c1[0]*t), uint8(c0[1]*(1-t) + c1[1]*t), uint8(c0[2]*(1-t) + c1[2]*t), 255}
			for _, s := range shapes {
				in := x >= s.x0 && x < s.x1 && y >= s.y0 && y < s.y1
				if s.disc {
					cx, cy, rx := (s.x0+s.x1)/2, (s.y0+s.y1)/2, (s.x1-s.x0)/2+1
					in = (x-cx)*(x-cx)+(y-cy)*(y-cy) < rx*rx
				}
				if in {
					px = s.c
				}
			}
			if !o.NoNoise {
				d := r.IntN(17) - 8
				px.R, px.G, px.B = clamp(int(px.R)+d), clamp(int(px.G)+d), clamp(int(px.B)+d)
			}
			img.SetRGBA(x, y, px)
		}
	}
	return img
}

func clamp(v int) uint8 { return uint8(min(max(v, 0), 255)) }

// Encode returns image i's file bytes and extension ("jpg" or "png").
func Encode(i int, o Options) ([]byte, string, error) {
	o.defaults()
	img := Image(i, o)
	var b bytes.Buffer
	if i%o.PNGEvery == o.PNGEvery-1 {
		err := png.Encode(&b, img)
		return b.Bytes(), "png", err
	}
	err := jpeg.Encode(&b, img, &jpeg.Options{Quality: o.JPEGQuality})
	return b.Bytes(), "jpg", err
}

func missing(o Options, i int) bool {
	for _, m := range o.MissingPrompts {
		if m == i {
			return true
		}
	}
	return false
}

// WriteFolder writes n images into dir as KEY.jpg|png with KEY.txt prompts
// (in subfolders of 100), and returns their keys in the order a folder
// walk lists them.
func WriteFolder(dir string, n int, o Options) ([]string, error) {
	o.defaults()
	keys := make([]string, 0, n)
	for k := 0; k < n; k++ {
		i := o.FirstIndex + k
		data, ext, err := Encode(i, o)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%03d/%06d", i/100, i)
		p := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p+"."+ext, data, 0o644); err != nil {
			return nil, err
		}
		if !missing(o, i) {
			if err := os.WriteFile(p+".txt", []byte(Prompt(i, o.PerPrompt)+"\n"), 0o644); err != nil {
				return nil, err
			}
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// WriteTar writes n images as one WebDataset shard, as img2dataset does:
// KEY.jpg|png, KEY.txt and KEY.json per image, and returns the keys.
func WriteTar(path string, n int, o Options) ([]string, error) {
	o.defaults()
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	var keys []string
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for k := 0; k < n; k++ {
		i := o.FirstIndex + k
		data, ext, err := Encode(i, o)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%09d", i)
		if err := add(key+"."+ext, data); err != nil {
			return nil, err
		}
		if !missing(o, i) {
			if err := add(key+".txt", []byte(Prompt(i, o.PerPrompt))); err != nil {
				return nil, err
			}
		}
		meta, _ := json.Marshal(map[string]any{"key": key, "status": "success", "width": o.Size, "height": o.Size})
		if err := add(key+".json", meta); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return keys, f.Close()
}
