package api

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// elideMin is the length from which a string value is cut out of a body before the JSON
// decoder reads it (elide): base64 images, raw tensors' data. Below it, and in bodies
// shorter than it, nothing changes.
const elideMin = 16 << 10

// Why: the decoder checks every byte of every string (≈ 3.5 ms for a 1024² PNG's 2.9 MB of
// base64, the largest cost of a JSON request after the image's own decoding), and the
// UTF-8 check and the strict walk each read the body again. A string of printable ASCII
// without escapes decodes to its own bytes, so such strings are cut out (a fast scan
// checks them), the decoder and the walk read what is left (a few hundred bytes), and the
// strings come back as they are where the decoder meets their markers. Anything that goes
// wrong there (an error of any kind) sends the original body down the usual path, so that
// refusals and their messages are what they were; a success decodes the same values
// (FuzzUnmarshalStrictLikeV1 checks both against encoding/json with every string cut).

// elided is a body whose long plain strings were cut out.
type elided struct {
	body   []byte             // the body, each cut string replaced by a marker string
	strs   [][]byte           // the cut strings' contents (slices of the original body)
	marker []byte             // `"\u0000` + a random nonce + `#`: a marker is marker, its index, `"`
	get    func(n int) []byte // where images' base64 is decoded to, Image.File (nil: not decoded)
}

// errNotElided sends a body back to the usual path.
var errNotElided = errors.New("api: not decoded from the elided body")

// elide cuts the string values of data at least min bytes long that are printable ASCII
// (no control bytes, nothing above 0x7f) without escapes; keys are kept. ok is false when
// nothing was cut, or data is not lexically JSON (a string without its end).
func elide(data []byte, min int) (e *elided, ok bool) {
	e = &elided{}
	var nonce [8]byte
	rand.Read(nonce[:]) // never fails (crypto/rand)
	e.marker = append([]byte(`"\u0000`), hex.EncodeToString(nonce[:])+"#"...)
	last := 0
	for i := 0; ; {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		end, plain := stringEnd(data, start+1)
		if end < 0 {
			return nil, false
		}
		if s := data[start+1 : end]; plain && len(s) >= min && printableASCII(s) && !isKey(data, end+1) {
			e.body = append(e.body, data[last:start]...)
			e.body = append(e.body, e.marker...)
			e.body = strconv.AppendInt(e.body, int64(len(e.strs)), 10)
			e.body = append(e.body, '"')
			e.strs = append(e.strs, s)
			last = end + 1
		}
		i = end + 1
	}
	if len(e.strs) == 0 {
		return nil, false
	}
	e.body = append(e.body, data[last:]...)
	return e, true
}

// stringEnd is the index of the quote that ends the string whose text starts at i, and
// whether the string has no backslash; -1 when it does not end.
func stringEnd(b []byte, i int) (int, bool) {
	plain := true
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1, false
		}
		bs := bytes.IndexByte(b[i:i+q], '\\')
		if bs < 0 {
			return i + q, plain
		}
		plain = false
		i += bs + 2 // the escaped byte, a quote among them
		if i > len(b) {
			return -1, false
		}
	}
}

// printableASCII says whether every byte of b is in 0x20–0x7f, eight at a time: a byte
// below 0x20 borrows into its top bit when 0x20 is taken from it, one above 0x7f has it.
func printableASCII(b []byte) bool {
	const lows, tops = 0x2020202020202020, 0x8080808080808080
	for ; len(b) >= 8; b = b[8:] {
		x := binary.LittleEndian.Uint64(b)
		if (x|(x-lows))&tops != 0 {
			return false
		}
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

// isKey says whether the string that ended before i is an object key (a colon follows).
func isKey(b []byte, i int) bool {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return b[i] == ':'
		}
	}
	return false
}

// index is the cut string a JSON value stands for: its marker's index, or -1.
func (e *elided) index(raw []byte) int {
	if !bytes.HasPrefix(raw, e.marker) || len(raw) < len(e.marker)+2 || raw[len(raw)-1] != '"' {
		return -1
	}
	n, err := strconv.Atoi(string(raw[len(e.marker) : len(raw)-1]))
	if err != nil || n < 0 || n >= len(e.strs) {
		return -1
	}
	return n
}

// decode decodes the elided body into v as strictDecode decodes a body, strings and
// images taking the cut strings back; any error is errNotElided's.
func (e *elided) decode(v any) error {
	if !utf8.Valid(e.body) {
		return errNotElided
	}
	return e.decodeValue(e.body, v)
}

func (e *elided) decodeValue(data []byte, v any) error {
	str := jsonv2.UnmarshalFunc(func(raw []byte, s *string) error {
		if n := e.index(raw); n >= 0 {
			*s = string(e.strs[n])
			return nil
		}
		if len(raw) == 0 || raw[0] != '"' && !bytes.Equal(raw, []byte("null")) {
			return errNotElided // a type error: its message comes from the usual path
		}
		return jsonv2.Unmarshal(raw, s, strictOptions)
	})
	img := jsonv2.UnmarshalFunc(func(raw []byte, m *Image) error {
		if n := e.index(raw); n >= 0 {
			if e.get != nil {
				// Decoded straight from the body: no copy of megabytes
				// of text into a string first (at 8 clients × 16 1024²
				// PNGs those fresh copies were 18 % of the server's CPU).
				if f, err := decodeBase64Bytes(e.strs[n], e.get); err == nil {
					m.Base64, m.File, m.Tensor = "", f, nil
					return nil
				}
			}
			m.Base64, m.File, m.Tensor = string(e.strs[n]), nil, nil // a bad one is the caller's to report
			return nil
		}
		if len(raw) > 0 && raw[0] == '{' {
			var t tensorJSON
			if err := e.decodeValue(raw, &t); err != nil {
				return err
			}
			return m.setTensor(t)
		}
		return m.UnmarshalJSON(raw)
	})
	opts := jsonv2.JoinOptions(strictOptions, jsonv2.WithUnmarshalers(jsonv2.JoinUnmarshalers(str, img)))
	dec := jsontext.NewDecoder(bytes.NewBuffer(data), opts)
	if err := jsonv2.UnmarshalDecode(dec, v, opts); err != nil {
		return errNotElided
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errNotElided
	}
	w := walker{b: data}
	if w.value(reflect.TypeOf(v)) != nil {
		return errNotElided
	}
	return nil
}

// elidable says whether every value of t decodes through the funcs of decodeValue: no
// interfaces, raw messages or other types that unmarshal themselves (they would see a
// marker where a string was), and v a pointer to a zero value (the elided attempt decodes
// into a fresh one).
func elidable(v any) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !rv.Elem().IsZero() {
		return false
	}
	seen := map[reflect.Type]bool{}
	var ok func(t reflect.Type) bool
	ok = func(t reflect.Type) bool {
		if seen[t] {
			return true
		}
		seen[t] = true
		if t == reflect.TypeFor[Image]() {
			return true
		}
		if t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler) {
			return false
		}
		switch t.Kind() {
		case reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
			return false
		case reflect.String: // a named string type (json.Number) would take a marker
			return t == reflect.TypeFor[string]()
		case reflect.Slice:
			return t.Elem().Kind() != reflect.Uint8 && ok(t.Elem()) // []byte: base64
		case reflect.Pointer, reflect.Array:
			return ok(t.Elem())
		case reflect.Map:
			return t.Key().Kind() == reflect.String && ok(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				if strings.Contains(f.Tag.Get("json"), ",string") || !ok(f.Type) {
					return false
				}
			}
		}
		return true
	}
	return ok(rv.Type().Elem())
}
