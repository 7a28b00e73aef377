package scoring

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scorer/scorertest"
)

// These tests drive the pipeline with scorertest's fake models: no
// onnxruntime, and numbers recomputable by hand.

func solidPNG(t *testing.T, w, h int, c color.RGBA) Image {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return Image{Data: b.Bytes()}
}

func rgbOf(c color.RGBA) [3]float32 {
	return [3]float32{float32(float64(c.R) / 255), float32(float64(c.G) / 255), float32(float64(c.B) / 255)}
}

func newFake(t *testing.T, o Options, fakes ...*scorertest.Fake) *Service {
	t.Helper()
	var ms []scorer.Model
	for _, f := range fakes {
		ms = append(ms, f.Model())
	}
	s, err := New(ms, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var red, teal = color.RGBA{200, 10, 30, 255}, color.RGBA{0, 128, 128, 255}

func TestFakeScores(t *testing.T) {
	clipLike, aesthetic := scorertest.New("pick", true), scorertest.New("aes", false)
	s := newFake(t, Options{}, clipLike, aesthetic)
	prompt := "a red fox"
	res, err := s.Score(context.Background(), ScoreRequest{Prompt: &prompt, Images: []Image{solidPNG(t, 9, 7, red), {Data: []byte("junk")}, solidPNG(t, 4, 4, teal)}})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range map[int]color.RGBA{0: red, 2: teal} {
		sc := res.Scores[i]
		if sc.Err != nil || len(sc.Values) != 2 || sc.Values[0].Name != "pick" || sc.Values[1].Name != "aes" {
			t.Fatalf("image %d: %+v", i, sc)
		}
		if got, want := sc.Values[0].Value, clipLike.Want(rgbOf(c), prompt); math.Abs(got-want) > 1e-12 {
			t.Errorf("image %d: pick %v, want %v", i, got, want)
		}
		if got, want := sc.Values[1].Value, aesthetic.Want(rgbOf(c), ""); math.Abs(got-want) > 1e-12 {
			t.Errorf("image %d: aes %v, want %v", i, got, want)
		}
	}
	if !errors.Is(res.Scores[1].Err, preprocess.ErrUnsupportedFormat) || len(res.Scores[1].Values) != 0 {
		t.Errorf("junk image: %+v", res.Scores[1])
	}
	if n := clipLike.Tokenized.Load(); n != 1 {
		t.Errorf("the prompt was tokenized %d times, want once", n)
	}
}

// A request that would pass the queue bound is refused before any of its
// images is decoded, while another holds the places.
func TestAdmissionBeforeDecode(t *testing.T) {
	f := scorertest.New("aes", false)
	f.Gate, f.Entered = make(chan struct{}), make(chan int, 1)
	s := newFake(t, Options{MaxQueue: 3}, f)
	var decodes atomic.Int64
	s.decode = func(b []byte, o preprocess.ImageOptions) (*preprocess.RGB, func(), error) {
		decodes.Add(1)
		return preprocess.DecodeRGBPooled(b, o)
	}
	img := solidPNG(t, 8, 8, red)
	done := make(chan error)
	go func() {
		_, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img, img}})
		done <- err
	}()
	<-f.Entered // the first request holds two places inside the model
	before := decodes.Load()
	start := time.Now()
	_, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img, img}})
	took := time.Since(start)
	var oe *models.OverloadError
	if !errors.As(err, &oe) || oe.Reason != models.ReasonQueueFull || oe.RetryAfter <= 0 {
		t.Fatalf("second request: %v, want an OverloadError (queue full)", err)
	}
	if decodes.Load() != before {
		t.Errorf("the refused request decoded %d images", decodes.Load()-before)
	}
	t.Logf("refused in %v", took)
	// One more image still fits beside the first request.
	third := make(chan error)
	go func() {
		_, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img}})
		third <- err
	}()
	<-f.Entered
	close(f.Gate)
	if err := <-third; err != nil {
		t.Errorf("a request within the bound: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s.Inflight(); n != 0 {
		t.Errorf("%d places still held after every request ended", n)
	}
}

// The decoded-pixel budget is shared by every request: with room for one
// image at a time, decodes never overlap, and a request past its deadline
// stops waiting.
func TestPixelBudget(t *testing.T) {
	f := scorertest.New("aes", false)
	s := newFake(t, Options{PixelBudget: 100, Workers: 4}, f)
	var cur, peak atomic.Int64
	release := make(chan struct{})
	s.decode = func(b []byte, o preprocess.ImageOptions) (*preprocess.RGB, func(), error) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		defer cur.Add(-1)
		return preprocess.DecodeRGBPooled(b, o)
	}
	img := solidPNG(t, 10, 10, red) // 100 pixels: the whole budget
	done := make(chan error)
	go func() {
		_, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img, img, img}})
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for cur.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Score(ctx, ScoreRequest{Images: []Image{img}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request waiting for the budget past its deadline: %v, want DeadlineExceeded", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d decodes at once within a budget of one image", p)
	}
}

// Options.Workers bounds the decodes over every request, not per request:
// with one worker, three concurrent requests never decode two images at
// once, and a request past its deadline stops waiting for a worker.
func TestWorkersAreServiceWide(t *testing.T) {
	f := scorertest.New("aes", false)
	s := newFake(t, Options{Workers: 1}, f)
	var cur, peak atomic.Int64
	s.decode = func(b []byte, o preprocess.ImageOptions) (*preprocess.RGB, func(), error) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		// Long enough for the other requests to reach their decodes
		// when nothing holds them back.
		time.Sleep(20 * time.Millisecond)
		return preprocess.DecodeRGBPooled(b, o)
	}
	img := solidPNG(t, 4, 4, red)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img, img}})
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d decodes at once over three requests with one worker", p)
	}

	// A request whose deadline passes while the worker is taken gives up.
	hold, entered := make(chan struct{}), make(chan struct{}, 1)
	var first atomic.Bool
	s.decode = func(b []byte, o preprocess.ImageOptions) (*preprocess.RGB, func(), error) {
		if first.CompareAndSwap(false, true) { // only the first decode holds its worker
			entered <- struct{}{}
			<-hold
		}
		return preprocess.DecodeRGBPooled(b, o)
	}
	go func() { _, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img}}); errs <- err }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.Score(ctx, ScoreRequest{Images: []Image{img}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("request waiting for a worker past its deadline: %v, want DeadlineExceeded", err)
	}
	close(hold)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// A decoder that panics fails its image, not the process or the others.
func TestDecoderPanicIsItemError(t *testing.T) {
	f := scorertest.New("aes", false)
	s := newFake(t, Options{}, f)
	bomb := solidPNG(t, 3, 3, teal)
	s.decode = func(b []byte, o preprocess.ImageOptions) (*preprocess.RGB, func(), error) {
		if bytes.Equal(b, bomb.Data) {
			panic("index out of range in a hostile header")
		}
		return preprocess.DecodeRGBPooled(b, o)
	}
	res, err := s.Score(context.Background(), ScoreRequest{Images: []Image{solidPNG(t, 5, 5, red), bomb}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scores[0].Err != nil || res.Scores[0].Get("aes") == nil {
		t.Errorf("the good image: %+v", res.Scores[0])
	}
	if !errors.Is(res.Scores[1].Err, preprocess.ErrUndecodable) {
		t.Errorf("the panicking image: %v, want ErrUndecodable", res.Scores[1].Err)
	}
}

func TestPromptAndRewardErrors(t *testing.T) {
	f := scorertest.New("pick", true)
	s := newFake(t, Options{}, f)
	img := solidPNG(t, 5, 5, red)
	if _, err := s.Score(context.Background(), ScoreRequest{Images: []Image{img}}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("no prompt, only a prompt-taking model: %v, want ErrBadRequest", err)
	}
	big := Combination{Kind: "weighted", Weights: map[string]float64{"pick": math.MaxFloat64}}
	items := []RewardItem{{Prompt: "zzzzzzzz", Image: solidPNG(t, 5, 5, color.RGBA{255, 255, 255, 255})}}
	if _, err := s.Reward(context.Background(), append(items, items...), &big); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflowing weights: %v, want ErrOverflow", err)
	}
	if n := f.Tokenized.Load(); n != 1 {
		t.Errorf("two items with one prompt: tokenized %d times, want once", n)
	}
	unknown := Combination{Kind: "weighted", Weights: map[string]float64{"beauty": 1}}
	if _, err := s.Reward(context.Background(), items, &unknown); !errors.Is(err, ErrBadRequest) {
		t.Errorf("weight of a score no model gives: %v, want ErrBadRequest", err)
	}
}

// A request's image encoders and text encoders run at the same time: each
// holds its call until all three have started. Run one after another (as
// before), the first would wait forever for the others.
func TestEncodersSideBySide(t *testing.T) {
	ict, hp := scorertest.New("ict", true), scorertest.New("hp", false)
	ict.Gate, hp.Gate, ict.TextGate = make(chan struct{}), make(chan struct{}), make(chan struct{})
	ict.Entered, hp.Entered, ict.TextEntered = make(chan int, 1), make(chan int, 1), make(chan int, 1)
	s := newFake(t, Options{}, ict, hp)
	prompt := "a red fox"
	type result struct {
		res *ScoreResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.Score(context.Background(), ScoreRequest{Prompt: &prompt, Images: []Image{solidPNG(t, 5, 5, red)}})
		done <- result{res, err}
	}()
	deadline := time.After(20 * time.Second) // a deadlock detector, not a timing
	for _, ch := range []chan int{ict.Entered, hp.Entered, ict.TextEntered} {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("the encoders did not all start: they run one after another")
		}
	}
	close(ict.Gate)
	close(hp.Gate)
	close(ict.TextGate)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	sc := r.res.Scores[0]
	if sc.Err != nil || len(sc.Values) != 2 {
		t.Fatalf("%+v", sc)
	}
	if got, want := sc.Values[0].Value, ict.Want(rgbOf(red), prompt); math.Abs(got-want) > 1e-12 {
		t.Errorf("ict %v, want %v", got, want)
	}
	if got, want := sc.Values[1].Value, hp.Want(rgbOf(red), ""); math.Abs(got-want) > 1e-12 {
		t.Errorf("hp %v, want %v", got, want)
	}
}

// When one side fails, the request's error is that failure, not the
// cancellation it caused on the other side (here the image encoder, held
// until it is cancelled); a panicking encoder is an error, and the service
// goes on.
func TestEncoderFailures(t *testing.T) {
	broken := errors.New("the text tower broke")
	for _, tc := range []struct {
		name string
		fail func(side string) error
		want func(error) bool
	}{
		{"text error", func(side string) error {
			if side == "text" {
				return broken
			}
			return nil
		}, func(err error) bool { return errors.Is(err, broken) }},
		{"text panic", func(side string) error {
			if side == "text" {
				panic("index out of range in a tokenizer table")
			}
			return nil
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "index out of range") }},
		{"image panic", func(side string) error {
			if side == "image" {
				panic("nil map in an encoder")
			}
			return nil
		}, func(err error) bool { return err != nil && strings.Contains(err.Error(), "nil map") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ict := scorertest.New("ict", true)
			ict.Fail = tc.fail
			if !strings.HasPrefix(tc.name, "image") {
				ict.Gate = make(chan struct{}) // held: only a cancellation ends it
			}
			s := newFake(t, Options{}, ict)
			prompt := "a red fox"
			_, err := s.Score(context.Background(), ScoreRequest{Prompt: &prompt, Images: []Image{solidPNG(t, 5, 5, red)}})
			if !tc.want(err) {
				t.Fatalf("error %v", err)
			}
			ict.Fail, ict.Gate = nil, nil
			res, err := s.Score(context.Background(), ScoreRequest{Prompt: &prompt, Images: []Image{solidPNG(t, 5, 5, red)}})
			if err != nil || res.Scores[0].Err != nil {
				t.Fatalf("the next request: %v %+v", err, res)
			}
		})
	}
}

// Row buffers go back to a pool after a request and come out uncleared for
// the next: every request's scores are still its own images', whatever the
// requests before it left in them (more rows, fewer, failed images between).
func TestRowBuffersReused(t *testing.T) {
	aes := scorertest.New("aes", false)
	s := newFake(t, Options{}, aes)
	type item struct {
		c    color.RGBA
		junk bool
	}
	for round, items := range [][]item{
		{{c: red}, {c: red}, {c: red}},
		{{junk: true}, {c: teal}},
		{{c: teal}, {junk: true}, {c: red}},
		{{c: red}},
	} {
		imgs := make([]Image, len(items))
		for i, it := range items {
			imgs[i] = solidPNG(t, 5+i, 5+i, it.c)
			if it.junk {
				imgs[i] = Image{Data: []byte("not an image")}
			}
		}
		res, err := s.Score(context.Background(), ScoreRequest{Images: imgs})
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range items {
			sc := res.Scores[i]
			if it.junk {
				if sc.Err == nil {
					t.Fatalf("round %d, image %d: junk scored", round, i)
				}
				continue
			}
			if got, want := sc.Values[0].Value, aes.Want(rgbOf(it.c), ""); sc.Err != nil || math.Abs(got-want) > 1e-12 {
				t.Fatalf("round %d, image %d: %v (err %v), want %v", round, i, got, sc.Err, want)
			}
		}
	}
}
