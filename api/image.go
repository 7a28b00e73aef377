package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/icthp/icthp/internal/base64simd"
)

// Image is one element of a request's images: an encoded file (PNG, JPEG,
// WebP) as base64, or raw pixels. On the wire it is a JSON string (the
// base64, or a data: URL) or a raw tensor object
// {"data": BASE64, "shape": [H, W, 3] or [B, H, W, 3], "dtype": "uint8"},
// which stands for B images.
type Image struct {
	// Base64 is the file's bytes in base64 (standard or URL alphabet,
	// padded or not), or a data: URL. The server decodes it, and a bad one
	// is that image's error, not the request's.
	Base64 string
	// File, when set, is the file's bytes in place of Base64: what
	// UnmarshalRequest gives for an image sent as base64 (decoded once,
	// straight from the body). It is sent as base64, as Base64 is.
	File []byte
	// Tensor, when set, is raw pixels instead of a file.
	Tensor *Tensor
}

// ErrBadBase64 is the error of an image whose text is not base64.
var ErrBadBase64 = errors.New("image is not valid base64")

// DecodeBase64 decodes an image's text as the server accepts it: base64 in
// the standard or URL alphabet, padded or not, or a data: URL with base64.
// Its errors wrap ErrBadBase64.
func DecodeBase64(s string) ([]byte, error) { return decodeBase64Into(s, newSlice) }

func newSlice(n int) []byte { return make([]byte, n) }

// decodeBase64Into is DecodeBase64 writing into get(n) (n: the most any
// alphabet decodes s to).
func decodeBase64Into(s string, get func(n int) []byte) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		comma := strings.IndexByte(s, ',')
		if comma < 0 || !strings.HasSuffix(s[:comma], ";base64") {
			return nil, fmt.Errorf("%w: a data: URL must be base64 (data:image/png;base64,...)", ErrBadBase64)
		}
		s = s[comma+1:]
	}
	// base64simd: encoding/base64's result, the standard alphabet's bulk
	// decoded with AVX2 (6× faster: ~1 ms of CPU less per 2 MB PNG).
	n := base64.RawStdEncoding.DecodedLen(len(s)) // ≥ the padded alphabets'
	dst := get(n)[:n]
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := base64simd.Decode(enc, dst, s); err == nil {
			return dst[:k:k], nil
		}
	}
	return nil, badBase64(s)
}

// badBase64 is the error of text that no alphabet decodes, saying what it
// looks like when it looks like a URL or a file path: a common first try,
// and icthp fetches nothing. (Checked only after decoding failed: base64
// may begin with "/", a JPEG's always does.) It holds none of the text.
func badBase64(s string) error {
	head := s[:min(len(s), 16)]
	switch {
	case strings.Contains(head, "://"):
		return fmt.Errorf("%w: it looks like a URL, and images are not fetched: send the image's bytes (base64, a multipart part or a raw tensor)", ErrBadBase64)
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "~/"):
		return fmt.Errorf("%w: it looks like a file path, and the server reads no files: send the image's bytes (base64, a multipart part or a raw tensor)", ErrBadBase64)
	}
	return ErrBadBase64
}

// decodeBase64Bytes is decodeBase64Into of text in a body. The string over
// b lives only during the call: nothing keeps it (the result is written into
// other bytes, and the errors hold none of the text), so b may be reused.
func decodeBase64Bytes(b []byte, get func(n int) []byte) ([]byte, error) {
	if len(b) == 0 {
		return decodeBase64Into("", get)
	}
	return decodeBase64Into(unsafe.String(&b[0], len(b)), get)
}

// Tensor is packed uint8 RGB pixels, row-major, channels last: what
// numpy's tobytes() gives for a C-contiguous uint8 array of Shape.
type Tensor struct {
	Data  []byte
	Shape []int  // [H, W, 3] or [B, H, W, 3]
	Dtype string // "uint8", the only one accepted
}

// File is an image from a file's bytes.
func File(data []byte) Image { return Image{Base64: base64.StdEncoding.EncodeToString(data)} }

// Pixels is an image from packed H×W×3 uint8 RGB.
func Pixels(h, w int, rgb []byte) Image {
	return Image{Tensor: &Tensor{Data: rgb, Shape: []int{h, w, 3}, Dtype: "uint8"}}
}

// tensorJSON is a Tensor on the wire; Data is a string so that both padded
// and unpadded base64 are read.
type tensorJSON struct {
	Data  *string `json:"data"`
	Shape []int   `json:"shape"`
	Dtype string  `json:"dtype"`
}

// MarshalJSON writes the base64 string (of File when it is set), or the
// tensor object.
func (m Image) MarshalJSON() ([]byte, error) {
	if m.Tensor == nil && m.File != nil {
		return json.Marshal(base64.StdEncoding.EncodeToString(m.File))
	}
	if m.Tensor == nil {
		return json.Marshal(m.Base64)
	}
	d := base64.StdEncoding.EncodeToString(m.Tensor.Data)
	return json.Marshal(tensorJSON{Data: &d, Shape: m.Tensor.Shape, Dtype: m.Tensor.Dtype})
}

// ErrImageForm is the error of an image that is neither a string nor a
// tensor object.
var ErrImageForm = errors.New(`an image is a base64 string or a raw tensor {"data": BASE64, "shape": [H, W, 3], "dtype": "uint8"}`)

// UnmarshalJSON reads a string or a tensor object (strictly: its keys
// exactly, no others). It checks the form only; shape, dtype and size are
// the server's to check.
func (m *Image) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		m.Tensor, m.File = nil, nil
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
			// No escapes (base64 needs none): the string is the text
			// between the quotes, as encoding/json, which has checked
			// the literal before calling us, would unquote it; without
			// its second scan and copy of megabytes.
			m.Base64 = string(b[1 : len(b)-1])
			return nil
		}
		return json.Unmarshal(b, &m.Base64)
	case len(b) == 0 || b[0] != '{':
		return ErrImageForm
	}
	var t tensorJSON
	if err := UnmarshalStrict(b, &t); err != nil {
		// {"url": ...} and the like: say what an image object is.
		return fmt.Errorf("raw tensor: %w (%v)", err, ErrImageForm)
	}
	return m.setTensor(t)
}

// setTensor makes m the raw tensor t (its data decoded from base64).
func (m *Image) setTensor(t tensorJSON) error {
	if t.Data == nil {
		return errors.New(`raw tensor: no "data" (base64 of the packed uint8 bytes)`)
	}
	var pix []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if pix, err = base64simd.DecodeString(enc, *t.Data); err == nil {
			break
		}
	}
	if err != nil {
		return errors.New(`raw tensor: "data" is not valid base64`)
	}
	m.Base64, m.File, m.Tensor = "", nil, &Tensor{Data: pix, Shape: t.Shape, Dtype: t.Dtype}
	return nil
}
