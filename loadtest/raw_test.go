package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icthp/icthp/api"
)

// pngImage is a w×h PNG of seeded random pixels, and its packed RGB as
// image/png decodes it (the reference the tensor bodies are checked against).
func pngImage(t *testing.T, w, h int, seed uint64) ([]byte, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	dec, err := png.Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	rgb := make([]byte, 0, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBAModel.Convert(dec.At(x, y)).(color.NRGBA)
			rgb = append(rgb, c.R, c.G, c.B)
		}
	}
	return b.Bytes(), rgb
}

// tensorServer checks each request as an application/x-icthp-tensor body:
// the header line, a Content-Length (not chunked), and pixels equal to
// image/png's decoding of one of the files.
type tensorServer struct {
	t       *testing.T
	route   string
	k, h, w int
	prompts []string
	pixels  [][]byte
	mu      sync.Mutex
	seen    map[int]int // pixel index → times sent
}

func (s *tensorServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := s.t
	if ct := r.Header.Get("Content-Type"); ct != api.ContentTypeTensor || r.ContentLength <= 0 || len(r.TransferEncoding) > 0 {
		t.Errorf("Content-Type %q, Content-Length %d, Transfer-Encoding %v", ct, r.ContentLength, r.TransferEncoding)
	}
	br := bufio.NewReader(r.Body)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Errorf("header line: %v", err)
		return
	}
	var hdr struct {
		Prompt  *string  `json:"prompt"`
		Prompts []string `json:"prompts"`
		Shape   []int    `json:"shape"`
		Dtype   string   `json:"dtype"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		t.Errorf("header %q: %v", line, err)
	}
	if want := []int{s.k, s.h, s.w, 3}; hdr.Dtype != "uint8" || !slices.Equal(hdr.Shape, want) {
		t.Errorf("header %s: want shape %v, dtype uint8", line, want)
	}
	if s.route == RouteReward && (hdr.Prompt != nil || len(hdr.Prompts) != s.k) ||
		s.route != RouteReward && (hdr.Prompt == nil || hdr.Prompts != nil) {
		t.Errorf("%s header %s: wrong prompt fields", s.route, line)
	}
	s.checkPixels(br, int64(len(line)), r.ContentLength)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"scores":[]}`)
}

func (s *tensorServer) checkPixels(br io.Reader, headerLen, contentLength int64) {
	t := s.t
	n := s.h * s.w * 3
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != s.k*n || headerLen+int64(len(rest)) != contentLength {
		t.Errorf("pixels: %d bytes (%v), want %d; Content-Length %d", len(rest), err, s.k*n, contentLength)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < s.k; i++ {
		found := -1
		for j, p := range s.pixels {
			if bytes.Equal(rest[i*n:(i+1)*n], p) {
				found = j
			}
		}
		if found < 0 {
			t.Errorf("image %d of a body matches no file's pixels", i)
		}
		s.seen[found]++
	}
}

// Config.Raw sends every file's decoded pixels, in bodies of k images.
func TestRawBodies(t *testing.T) {
	const w, h = 7, 5
	var imgs []Image
	var pixels [][]byte
	for i := range 3 {
		b, rgb := pngImage(t, w, h, uint64(i))
		imgs = append(imgs, Image{Name: string(rune('a'+i)) + ".png", Data: b})
		pixels = append(pixels, rgb)
	}
	prompts := []string{"a red apple", "ünïcode \"quoted\""}
	for _, tc := range []struct {
		route string
		k     int
	}{{RouteScore, 2}, {RouteReward, 3}, {RouteRank, 4}} {
		t.Run(tc.route, func(t *testing.T) {
			s := &tensorServer{t: t, route: tc.route, k: tc.k, h: h, w: w, prompts: prompts, pixels: pixels, seen: map[int]int{}}
			srv := httptest.NewServer(s)
			defer srv.Close()
			const n = 9
			rep := mustRun(t, Config{URL: srv.URL, Route: tc.route, Concurrency: 2, Requests: n, Images: imgs,
				ImagesPerRequest: tc.k, Prompts: prompts, Raw: true, Timeout: 5 * time.Second})
			if rep.OK != n || rep.Errors != 0 {
				t.Errorf("report: ok %d errors %d, want %d/0", rep.OK, rep.Errors, n)
			}
			if len(s.seen) != len(imgs) || s.seen[-1] != 0 {
				t.Errorf("images sent: %v, want each of %d", s.seen, len(imgs))
			}
		})
	}
}

// Files of different sizes cannot share a body: Run refuses them, naming
// the file; an undecodable file is named too.
func TestRawRefusesMixedSizes(t *testing.T) {
	a, _ := pngImage(t, 7, 5, 1)
	b, _ := pngImage(t, 5, 7, 2)
	for _, tc := range []struct {
		imgs []Image
		want string
	}{
		{[]Image{{Name: "a.png", Data: a}, {Name: "b.png", Data: b}}, "b.png is 5×7"},
		{[]Image{{Name: "a.png", Data: a}, {Name: "bad.png", Data: []byte("\x89PNG\r\n\x1a\nnot really")}}, "bad.png"},
	} {
		_, err := Run(runCtx(t), Config{URL: "http://127.0.0.1:1", Requests: 1, Images: tc.imgs, Raw: true}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run: %v, want an error naming %q", err, tc.want)
		}
	}
}
