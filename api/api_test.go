package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestUnmarshalStrict(t *testing.T) {
	type inner struct {
		A int `json:"a"`
	}
	type embedded struct {
		E string `json:"e"`
	}
	type doc struct {
		embedded
		Name  string            `json:"name"`
		Items []inner           `json:"items"`
		Ptr   *inner            `json:"ptr"`
		Map   map[string]inner  `json:"map"`
		Free  map[string]any    `json:"free"`
		Raw   json.RawMessage   `json:"raw"`
		Img   Image             `json:"img"`
		Skip  string            `json:"-"`
		Tags  map[string]string `json:"tags,omitempty"`
	}
	cases := []struct {
		name, in string
		err      string // "" for none; else a substring
	}{
		{"exact", `{"name":"x","items":[{"a":1}],"ptr":{"a":2},"map":{"K":{"a":3}},"e":"y"}`, ""},
		{"escaped key", `{"n\u0061me":"x"}`, ""},
		{"free map keys", `{"free":{"Any":{"Thing":[1,{"X":2}]}},"raw":{"Whatever":1},"tags":{"A":"b"}}`, ""},
		{"image string", `{"img":"aGVsbG8="}`, ""},
		{"image tensor", `{"img":{"data":"AAAA","shape":[1,1,3],"dtype":"uint8"}}`, ""},
		{"paired surrogates", `{"name":"\ud83d\ude00 \u00e9 \\ \" \/"}`, ""},
		{"top case", `{"Name":"x"}`, `unknown field "Name"`},
		{"nested case", `{"items":[{"A":1}]}`, `unknown field "A"`},
		{"pointer case", `{"ptr":{"A":1}}`, `unknown field "A"`},
		{"map value case", `{"map":{"k":{"A":1}}}`, `unknown field "A"`},
		{"embedded case", `{"E":"y"}`, `unknown field "E"`},
		{"skipped field", `{"Skip":"y"}`, `unknown field`},
		{"unknown", `{"other":1}`, `unknown field "other"`},
		{"tensor case", `{"img":{"Data":"AAAA","shape":[1,1,3],"dtype":"uint8"}}`, `unknown field "Data"`},
		{"image number", `{"img":3}`, "base64 string or a raw tensor"},
		{"image object of another kind", `{"img":{"url":"https://example.com/a.png"}}`, `unknown field "url" (an image is a base64 string or a raw tensor`},
		{"lone high", `{"name":"\ud800x"}`, "surrogate"},
		{"lone high at end", `{"name":"\ud800"}`, "surrogate"},
		{"high then high", `{"name":"\ud800\ud800"}`, "surrogate"},
		{"lone low", `{"free":{"k":"\udfff"}}`, "surrogate"},
		{"lone surrogate in an image", `{"img":"aGVs\ud800bG8="}`, "surrogate"},
		{"many escapes, then a lone surrogate", `{"img":"` + strings.Repeat(`\\\"`, 5000) + `\ud800"}`, "surrogate"},
		{"many escapes", `{"img":"` + strings.Repeat(`\\\"`, 5000) + `x"}`, ""},
		{"escaped quotes in values", `{"name":"a\"b\\","img":"x\"y","free":{"k":"\"\ud83d\ude00\""}}`, ""},
		{"surrogate in key", `{"free":{"\udc00":1}}`, "surrogate"},
		{"bad utf-8", "{\"name\":\"\xff\"}", "invalid UTF-8 at byte 9"},
		{"trailing", `{} {}`, "data after"},
		{"syntax", `{"name":}`, "invalid character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			err := UnmarshalStrict([]byte(tc.in), &d)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.err != "" && (err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.err))):
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
		})
	}
	var d doc
	if err := UnmarshalStrict([]byte(`{"Name":"x"}`), &d); !errors.As(err, new(*UnknownFieldError)) {
		t.Errorf("%v is not an *UnknownFieldError", err)
	}
	if err := UnmarshalStrict([]byte(`{"name":"\udc00"}`), &d); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("%v is not ErrInvalidUTF8", err)
	}
}

func TestImageJSON(t *testing.T) {
	pix := []byte{1, 2, 3, 250, 251, 252}
	for _, im := range []Image{File([]byte("PNG bytes")), Pixels(1, 2, pix)} {
		b, err := json.Marshal(im)
		if err != nil {
			t.Fatal(err)
		}
		var back Image
		if err := UnmarshalStrict(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if back.Base64 != im.Base64 || (im.Tensor != nil) != (back.Tensor != nil) ||
			(im.Tensor != nil && (!bytes.Equal(back.Tensor.Data, im.Tensor.Data) || back.Tensor.Dtype != "uint8" || len(back.Tensor.Shape) != 3)) {
			t.Errorf("%s read back as %+v", b, back)
		}
	}
	// An image string reads as encoding/json reads the same literal,
	// escapes or none (the unescaped ones take a shortcut).
	for _, lit := range []string{`""`, `"aGVsbG8="`, `"aGVs\/bG8="`, `"a\u0047Vs"`, `"ab\"c\\"`, `"\ud83d\ude00"`} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		var got Image
		if err := UnmarshalStrict([]byte(lit), &got); err != nil || got.Base64 != want || got.Tensor != nil {
			t.Errorf("%s: %q (%v), want %q", lit, got.Base64, err, want)
		}
	}
	// Unpadded base64 data is read too.
	var im Image
	if err := json.Unmarshal([]byte(`{"data":"AQID","shape":[1,1,3],"dtype":"uint8"}`), &im); err != nil || !bytes.Equal(im.Tensor.Data, []byte{1, 2, 3}) {
		t.Errorf("%+v, %v", im, err)
	}
	if err := json.Unmarshal([]byte(`{"data":"AQ","shape":[1,1,1],"dtype":"uint8"}`), &im); err != nil || !bytes.Equal(im.Tensor.Data, []byte{1}) {
		t.Errorf("unpadded: %+v, %v", im, err)
	}
	if err := json.Unmarshal([]byte(`{"data":"!!","shape":[1,1,1],"dtype":"uint8"}`), &im); err == nil {
		t.Error("bad base64 accepted")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "0": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", h, got, want)
		}
	}
}

func TestNewClient(t *testing.T) {
	for _, bad := range []string{"", "ftp://x", "localhost:8080", "http://"} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
	c, err := NewClient("http://127.0.0.1:8080/prefix/")
	if err != nil || c.URL(PathScore) != "http://127.0.0.1:8080/prefix/v1/score" {
		t.Errorf("%v, %v", c, err)
	}
}
