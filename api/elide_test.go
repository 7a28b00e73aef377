package api

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// TestElide: in bodies of big strings, exactly the long printable-ASCII
// strings without escapes that are values are cut (not keys, not strings
// with escapes, control or non-ASCII bytes, not short ones), and the body
// decodes to what it decodes to uncut: the same values, the same errors.
func TestElide(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	big := func(n int) string {
		b := make([]byte, n*3/4)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	img, img2 := big(40000), big(20000)
	long := strings.Repeat("a long prompt ", 2000)
	cases := []struct {
		name string
		body string
		into func() any
		cut  int // strings cut
	}{
		{"score", `{"prompt":"a cat","images":["` + img + `", "` + img2 + `" ]}`, func() any { return new(ScoreRequest) }, 2},
		{"long prompt", `{"prompt":"` + long + `","images":["` + img + `"]}`, func() any { return new(ScoreRequest) }, 2},
		{"reward items", `{"items":[{"prompt":"p","image":"` + img + `"},{"prompt":"q","image":"` + img2 + `"}],"weights":{"hp":1}}`, func() any { return new(RewardRequest) }, 2},
		{"tensor", `{"images":[{"data":"` + img + `","shape":[1,1,3],"dtype":"uint8"}]}`, func() any { return new(ScoreRequest) }, 1},
		{"embed", `{"texts":["` + long + `"],"images":["` + img + `"]}`, func() any { return new(EmbedRequest) }, 2},
		{"escaped", `{"images":["` + img[:30000] + `\/` + img[30000:] + `"]}`, func() any { return new(ScoreRequest) }, 0},
		{"non-ASCII", `{"prompt":"` + long + `é","images":[]}`, func() any { return new(ScoreRequest) }, 0},
		{"control byte", "{\"prompt\":\"" + long + "\x01\",\"images\":[]}", func() any { return new(ScoreRequest) }, 0},
		{"forged marker", `{"prompt":"\u0000` + "0123456789abcdef#0" + `","images":["` + img + `"]}`, func() any { return new(ScoreRequest) }, 1},
		// Refused bodies: the error of the body as it is.
		{"big key", `{"` + long + `":1,"images":["` + img + `"]}`, func() any { return new(ScoreRequest) }, 1},
		{"image is a number", `{"images":[1,"` + img + `"]}`, func() any { return new(ScoreRequest) }, 1},
		{"prompt is a number", `{"prompt":2,"images":["` + img + `"]}`, func() any { return new(ScoreRequest) }, 1},
		{"unknown field", `{"Images":["` + img + `"]}`, func() any { return new(ScoreRequest) }, 1},
		{"trailing", `{"images":["` + img + `"]} x`, func() any { return new(ScoreRequest) }, 1},
		{"tensor unknown key", `{"images":[{"data":"` + img + `","Shape":[1,1,3]}]}`, func() any { return new(ScoreRequest) }, 1},
		{"unterminated", `{"images":["` + img, func() any { return new(ScoreRequest) }, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := c.into(), c.into()
			err, werr := UnmarshalStrict([]byte(c.body), got), unmarshalStrict([]byte(c.body), want, 0, nil)
			if fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
				t.Errorf("cut: %v; uncut: %v (values equal %v)", err, werr, reflect.DeepEqual(got, want))
			}
			cut := 0
			if e, ok := elide([]byte(c.body), elideMin); ok {
				cut = len(e.strs)
				// An accepted body was decoded from the cut one, not on the way back.
				if derr := e.decode(c.into()); werr == nil && derr != nil {
					t.Errorf("the cut body did not decode: %v", derr)
				}
			}
			if cut != c.cut {
				t.Errorf("%d strings cut, want %d", cut, c.cut)
			}
		})
	}
	if !printableASCII([]byte("abc ~\x7f0123456789")) || printableASCII([]byte("0123456789\x1f")) || printableASCII([]byte("01234567\x80")) {
		t.Error("printableASCII")
	}
}
