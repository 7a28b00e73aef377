package cache

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/x448/float16"
)

// The codec stores float16 through github.com/x448/float16; these tests hold that
// conversion to IEEE 754 (the cache's float16 values must be the nearest binary16).
func f32to16(f float32) uint16 { return float16.Fromfloat32(f).Bits() }
func f16to32(h uint16) float32 { return float16.Frombits(h).Float32() }

// Every binary16 widens and narrows back to itself (NaNs stay NaN).
func TestFloat16RoundTripAll(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := f16to32(uint16(h))
		back := f32to16(f)
		if f != f { // NaN
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %04x came back as %04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%04x → %g → %04x", h, f, back)
		}
	}
}

// Hand-checked values of IEEE 754 binary16.
func TestFloat16Known(t *testing.T) {
	for _, c := range []struct {
		f float32
		h uint16
	}{
		{0, 0x0000}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800},
		{65504, 0x7bff},                  // largest finite
		{65520, 0x7c00},                  // halfway to 2^16 rounds to even: infinity
		{65519, 0x7bff},                  // just below halfway
		{1e10, 0x7c00},                   // overflow
		{float32(math.Inf(-1)), 0xfc00},  //
		{6.103515625e-05, 0x0400},        // smallest normal, 2^-14
		{5.960464477539063e-08, 0x0001},  // smallest subnormal, 2^-24
		{2.9802322387695312e-08, 0x0000}, // 2^-25: halfway between 0 and 2^-24, ties to even (0)
		{2.9802326e-08, 0x0001},          // just above 2^-25
		{1 + 1.0/2048, 0x3c00},           // halfway between 1 and 1+2^-10: even (1)
		{1 + 3.0/2048, 0x3c02},           // halfway between 1+2^-10 and 1+2^-9: even (1+2^-9)
		{0.1, 0x2e66},
	} {
		if got := f32to16(c.f); got != c.h {
			t.Errorf("f32to16(%g) = %04x, want %04x", c.f, got, c.h)
		}
	}
}

// Rounding is to the nearest binary16, checked in exact arithmetic against
// both neighbours.
func TestFloat16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(40)-28)))
		if math.Abs(float64(f)) >= 65504 {
			continue
		}
		h := f32to16(f)
		got := new(big.Float).SetFloat64(float64(f16to32(h)))
		x := new(big.Float).SetFloat64(float64(f))
		d := new(big.Float).Abs(new(big.Float).Sub(got, x))
		for _, nb := range []uint16{h + 1, h - 1} {
			g := f16to32(nb)
			if g != g || math.IsInf(float64(g), 0) || (nb^h)&0x8000 != 0 {
				continue
			}
			dn := new(big.Float).Abs(new(big.Float).Sub(new(big.Float).SetFloat64(float64(g)), x))
			if dn.Cmp(d) < 0 {
				t.Fatalf("f32to16(%g) = %g, but %g is nearer", f, f16to32(h), g)
			}
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	v := Value{Vec: []float32{0.25, -1, 3.5e-3, 0, 1e-7}, Scalars: []float64{-1.2345678901234567, 224}, Width: 7000, Height: 1}
	for _, f16 := range []bool{false, true} {
		b, err := encode("k", v, f16)
		if err != nil {
			t.Fatal(err)
		}
		if want := 24 + 16 + 5*map[bool]int{false: 4, true: 2}[f16]; len(b) != want {
			t.Errorf("f16=%v: %d bytes, want %d", f16, len(b), want)
		}
		got, err := decode("k", b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Scalars) != 2 || got.Scalars[0] != v.Scalars[0] || got.Scalars[1] != 224 {
			t.Errorf("scalars %v", got.Scalars)
		}
		if got.Width != 7000 || got.Height != 1 {
			t.Errorf("size %dx%d, want 7000x1", got.Width, got.Height)
		}
		for i, x := range v.Vec {
			want := x
			if f16 {
				want = f16to32(f32to16(x))
			}
			if got.Vec[i] != want {
				t.Errorf("f16=%v: vec[%d] = %g, want %g", f16, i, got.Vec[i], want)
			}
		}
	}
}

// Every kind of damage is ErrCorrupt, never a wrong value or a panic.
func TestCodecCorrupt(t *testing.T) {
	good, err := encode("key", Value{Vec: []float32{1, 2, 3}, Scalars: []float64{0.5}}, false)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":        {},
		"short header": good[:10],
		"truncated":    good[:len(good)-1],
		"extra byte":   append(append([]byte(nil), good...), 0),
		"magic":        mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":      mut(func(b []byte) []byte { b[3] = 9; return b }),
		"dtype":        mut(func(b []byte) []byte { b[4] = 7; return b }),
		"scalars":      mut(func(b []byte) []byte { b[5] = 200; return b }),
		"reserved":     mut(func(b []byte) []byte { b[6] = 1; return b }),
		"dim":          mut(func(b []byte) []byte { b[8]++; return b }),
		"payload bit":  mut(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"scalar bit":   mut(func(b []byte) []byte { b[24] ^= 0x80; return b }),
		"width bit":    mut(func(b []byte) []byte { b[16] ^= 1; return b }),
		"height bit":   mut(func(b []byte) []byte { b[23] ^= 0x80; return b }),
		"checksum":     mut(func(b []byte) []byte { b[12] ^= 1; return b }),
		"plain text":   []byte("hello, not an embedding"),
	}
	for name, b := range cases {
		if _, err := decode("key", b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// The same bytes under another key are corrupt too.
	if _, err := decode("other", good); !errors.Is(err, ErrCorrupt) {
		t.Errorf("entry under another key: err = %v, want ErrCorrupt", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := encode("k", Value{Vec: []float32{1, 2}, Scalars: []float64{3}}, true)
	f.Add(good)
	f.Add([]byte("ICH\x01\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode("k", b)
		if err == nil {
			// Anything accepted re-encodes to the same bytes.
			again, err := encode("k", v, b[4] == dtypeF16)
			if err != nil || string(again) != string(b) {
				t.Fatalf("accepted %x but re-encodes to %x (%v)", b, again, err)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v is not ErrCorrupt", err)
		}
	})
}

func TestBreaker(t *testing.T) {
	now := time.Unix(1000, 0)
	var log []string
	b := &breaker{threshold: 2, cooldown: time.Second, now: func() time.Time { return now },
		onChange: func(from, to State) { log = append(log, from.String()+">"+to.String()) }}
	step := func(wantOK, wantProbe bool) bool {
		t.Helper()
		ok, probe := b.allow()
		if ok != wantOK || probe != wantProbe {
			t.Fatalf("allow() = %v, %v; want %v, %v (state %v)", ok, probe, wantOK, wantProbe, b.State())
		}
		return probe
	}
	step(true, false)
	b.done(false, false, true) // one failure: still closed
	step(true, false)
	b.done(false, true, true) // a success resets the count
	step(true, false)
	b.done(false, false, true)
	step(true, false)
	b.done(false, false, false) // the caller gave up: no verdict
	if b.State() != Closed {
		t.Fatalf("state %v after a failure and an abandoned call", b.State())
	}
	b.done(false, false, true) // second consecutive failure: open
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
	step(false, false)
	now = now.Add(999 * time.Millisecond)
	step(false, false)
	now = now.Add(time.Millisecond)
	p := step(true, true) // cool-down over: one probe
	step(false, false)    // the others still skip
	b.done(p, false, true)
	if b.State() != Open {
		t.Fatalf("failed probe: state %v, want open", b.State())
	}
	step(false, false)
	now = now.Add(time.Second)
	p = step(true, true)
	b.done(p, false, false) // abandoned probe: the next call probes again at once
	p = step(true, true)
	b.done(p, true, true)
	if b.State() != Closed {
		t.Fatalf("successful probe: state %v, want closed", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>open",
		"open>half-open", "half-open>closed"}
	if len(log) != len(want) {
		t.Fatalf("transitions %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("transitions %v, want %v", log, want)
		}
	}
}

func TestKeyString(t *testing.T) {
	k := Key{Version: "clip-abc", Kind: KindImage, Sum: BytesSum([]byte("abc"))}
	// sha256("abc"), as sha256sum prints it.
	want := "icthp:2:clip-abc:image:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if k.String() != want {
		t.Errorf("key %q, want %q", k.String(), want)
	}
	if TokensSum([]int64{1, 2}) == TokensSum([]int64{2, 1}) || PixelsSum(2, 3, make([]byte, 18)) == PixelsSum(3, 2, make([]byte, 18)) {
		t.Error("different content, same sum")
	}
	if KindText.String() != "text" || KindHP.String() != "hp" {
		t.Error("kind names")
	}
}
