package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// UnmarshalRequest gives an image sent as a long base64 string as its
// decoded bytes (Image.File), checked against encoding/base64; text that is
// not base64 stays in Base64 for the caller to report, short strings stay
// there too, and nothing decoded refers to the body once it is reused.
func TestUnmarshalRequestFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	file := make([]byte, 30000) // 40 000 bytes of base64: cut out of the body (elideMin)
	for i := range file {
		file[i] = byte(rng.Uint32())
	}
	std := base64.StdEncoding.EncodeToString(file)
	bad := strings.Repeat("%", 20000)
	short := base64.StdEncoding.EncodeToString(file[:300])
	for _, c := range []struct {
		name   string
		image  string // the JSON string's contents
		file   []byte // want File
		base64 string // want Base64 (UnmarshalStrict: always the text, no File)
	}{
		{"standard", std, file, ""},
		{"unpadded URL alphabet", base64.RawURLEncoding.EncodeToString(file[:29999]), file[:29999], ""},
		{"data: URL", "data:image/png;base64," + std, file, ""},
		{"not base64", bad, nil, bad},
		{"data: URL not base64", "data:image/png," + std, nil, "data:image/png," + std},
		{"short", short, nil, short},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(`{"prompt": "a cat", "images": ["` + c.image + `"]}`)
			var got ScoreRequest
			if err := UnmarshalRequest(body, &got); err != nil {
				t.Fatal(err)
			}
			for i := range body {
				body[i] = 'x' // the server reuses the body's buffer
			}
			if len(got.Images) != 1 {
				t.Fatalf("%d images", len(got.Images))
			}
			m := got.Images[0]
			if !bytes.Equal(m.File, c.file) || (m.File == nil) != (c.file == nil) || m.Base64 != c.base64 || m.Tensor != nil {
				t.Errorf("File %d bytes (nil %v), Base64 %d bytes, Tensor %v; want File %d bytes, Base64 %d bytes",
					len(m.File), m.File == nil, len(m.Base64), m.Tensor, len(c.file), len(c.base64))
			}
			if got.Prompt == nil || *got.Prompt != "a cat" {
				t.Errorf("prompt %v", got.Prompt)
			}
			var strict ScoreRequest
			if err := UnmarshalStrict([]byte(`{"images": ["`+c.image+`"]}`), &strict); err != nil || strict.Images[0].Base64 != c.image || strict.Images[0].File != nil {
				t.Errorf("UnmarshalStrict: %v, Base64 %d bytes, File %v; want the text", err, len(strict.Images[0].Base64), strict.Images[0].File != nil)
			}
		})
	}
}

// An Image holding File is sent as the file's base64, which reads back as
// the same bytes; Base64 and tensors are sent as before.
func TestImageFileMarshal(t *testing.T) {
	file := []byte("\x89PNG\r\n\x1a\n not really, but bytes")
	b, err := json.Marshal(Image{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"` + base64.StdEncoding.EncodeToString(file) + `"`; string(b) != want {
		t.Fatalf("File marshalled as %s, want %s", b, want)
	}
	var back Image
	if err := json.Unmarshal(b, &back); err != nil || back.Base64 != base64.StdEncoding.EncodeToString(file) || back.File != nil {
		t.Fatalf("read back: %v %+v", err, back)
	}
	if d, err := DecodeBase64(back.Base64); err != nil || !bytes.Equal(d, file) {
		t.Fatalf("DecodeBase64: %v, %q", err, d)
	}
}

// UnmarshalRequestBuffers decodes each long image into a buffer get gave:
// File is a prefix of it, with the same bytes UnmarshalRequest gives.
func TestUnmarshalRequestBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	file := make([]byte, 25000)
	for i := range file {
		file[i] = byte(rng.Uint32())
	}
	body := []byte(`{"images": ["` + base64.StdEncoding.EncodeToString(file) + `", "` + base64.RawURLEncoding.EncodeToString(file[:20000]) + `"]}`)
	var bufs [][]byte
	get := func(n int) []byte {
		b := make([]byte, n, n+100)
		bufs = append(bufs, b)
		return b
	}
	var got ScoreRequest
	if err := UnmarshalRequestBuffers(body, &got, get); err != nil {
		t.Fatal(err)
	}
	if len(bufs) != 2 || len(got.Images) != 2 {
		t.Fatalf("%d buffers taken, %d images; want 2, 2", len(bufs), len(got.Images))
	}
	for i, want := range [][]byte{file, file[:20000]} {
		f := got.Images[i].File
		if !bytes.Equal(f, want) || &f[0] != &bufs[i][0] || cap(f) != len(f) {
			t.Errorf("image %d: %d bytes (in get's buffer: %v, cap %d); want %d bytes at the buffer's start, capped", i, len(f), &f[0] == &bufs[i][0], cap(f), len(want))
		}
	}
}

// DecodeBase64's refusals wrap ErrBadBase64 and say what the text looks like
// when it is a URL or a file path; base64 that begins with "/" (every JPEG's
// does) still decodes.
func TestDecodeBase64Refusals(t *testing.T) {
	jpeg := []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F'}
	for _, c := range []struct {
		name, text, want string // want: in the message; "" decodes
	}{
		{"https URL", "https://example.com/cat.png", "looks like a URL"},
		{"s3 URL", "s3://bucket/cat.png", "looks like a URL"},
		{"absolute path", "/data/images/cat.png", "looks like a file path"},
		{"relative path", "./cat.png", "looks like a file path"},
		{"home path", "~/cat.png", "looks like a file path"},
		{"other text", "not an image!", "image is not valid base64"},
		{"data: URL without base64", "data:image/png,abc", "a data: URL must be base64"},
		{"JPEG base64 starting with /", base64.StdEncoding.EncodeToString(jpeg), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeBase64(c.text)
			if c.want == "" {
				if err != nil || !bytes.Equal(got, jpeg) {
					t.Fatalf("%q: %v, %x; want %x", c.text, err, got, jpeg)
				}
				return
			}
			if !errors.Is(err, ErrBadBase64) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%q: error %v, want ErrBadBase64 saying %q", c.text, err, c.want)
			}
			if strings.Contains(err.Error(), c.text) {
				t.Errorf("the error %q holds the client's text", err)
			}
		})
	}
}
