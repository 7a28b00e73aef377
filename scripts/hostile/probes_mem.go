package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// pngImage is a w×h RGB PNG of noise in blocks of 8 pixels (seeded), so that
// it decodes like a photo but stays small; solid when noise is false.
func pngImage(w, h int, seed uint64, noise bool) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(seed, 1))
	base := color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := base
			if noise && (x/8+y/8)%3 == 0 {
				c.R, c.G = uint8(x*7+y), uint8(y*3)
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, img); err != nil {
		panic(err) // encoding to memory does not fail
	}
	return b.Bytes()
}

// scoreBody is a /v1/score JSON body with these images.
func scoreBody(imgs ...[]byte) []byte {
	var s []string
	for _, im := range imgs {
		s = append(s, base64.StdEncoding.EncodeToString(im))
	}
	b, _ := json.Marshal(map[string]any{"prompt": "a photo of a cat", "images": s})
	return b
}

// probeHeldHeaders: 40 connections send a raw-tensor header declaring
// [1,4700,4700,3] and no pixels; the heap must not grow by what they
// declare (issue 16: 2.5 GB).
func probeHeldHeaders(ctx context.Context, c *config, s *server) []result {
	heap := func() float64 { v, _ := metric(s.url, "go_memstats_heap_alloc_bytes"); return v }
	base := heap()
	smp := sample(100*time.Millisecond, heap)
	hdr := []byte(`{"prompt":"a cat","shape":[1,4700,4700,3],"dtype":"uint8"}` + "\n")
	clen := len(hdr) + 4700*4700*3
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			break
		}
		fmt.Fprintf(conn, "POST /v1/score HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-icthp-tensor\r\nContent-Length: %d\r\n\r\n", s.addr, clen)
		conn.Write(hdr)
		conns = append(conns, conn)
	}
	time.Sleep(3 * time.Second)
	peak, _ := smp.stop()
	for _, conn := range conns {
		conn.Close()
	}
	growth := peak - base
	return []result{{probe: "headers: heap growth, 40 held [1,4700,4700,3] headers", figure: fmt.Sprintf("%s (%d conns)", mb(growth), len(conns)),
		target: "< 300 MB", ok: growth < 300e6 && len(conns) == 40}}
}

// probeBomb: 6 concurrent /v1/score requests, each with two 7000×7000 PNGs
// (49 Mpx, under the 50 Mpx limit); peak RSS, and the latency of a normal
// request sent meanwhile.
func probeBomb(ctx context.Context, c *config, s *server) []result {
	big := scoreBody(pngImage(7000, 7000, 1, true), pngImage(7000, 7000, 2, true))
	small := scoreBody(pngImage(256, 256, 3, true))
	base := float64(rss(s.pid()))
	smp := sample(50*time.Millisecond, func() float64 { return float64(rss(s.pid())) })
	cl := &http.Client{Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _, _ = post(ctx, cl, s.url+"/v1/score", "application/json", big)
		}()
	}
	time.Sleep(time.Second)
	code, lat, _, err := post(ctx, cl, s.url+"/v1/score", "application/json", small)
	wg.Wait()
	peak, _ := smp.stop()
	normal := result{probe: "bomb: normal request during the bomb", figure: fmt.Sprintf("%d in %s", code, lat.Round(time.Millisecond)),
		target: "200 in < 10 s", ok: err == nil && code == 200 && lat < 10*time.Second}
	return []result{
		{probe: "bomb: peak RSS, 6 × two 7000×7000 PNGs", figure: fmt.Sprintf("%s (from %s; answers %v)", mb(peak), mb(base), codes),
			target: "< 1.2 GB", ok: peak < 1.2e9},
		normal,
	}
}
