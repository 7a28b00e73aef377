package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Errors of UnmarshalStrict beyond encoding/json's own.
var (
	// ErrInvalidUTF8 is a body that is not UTF-8, or a string with a lone
	// surrogate escape (\ud800): encoding/json would turn either into
	// U+FFFD silently, so that a prompt would be scored as other text.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrTrailingData is a body with more after its JSON value.
	ErrTrailingData = errors.New("data after the JSON value")
)

// UnknownFieldError is a key that names no field exactly (encoding/json
// would have matched "Prompt" to "prompt").
type UnknownFieldError struct{ Field string }

func (e *UnknownFieldError) Error() string { return fmt.Sprintf("unknown field %q", e.Field) }

// strictOptions are encoding/json's behaviour (case-insensitive matching,
// which the walk then refuses, duplicate keys, its error types and texts)
// with unknown members refused, as encoding/json's
// Decoder.DisallowUnknownFields does.
var strictOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true))

// UnmarshalStrict decodes one JSON value from data into v as the server
// reads requests: unknown fields refused, keys matched exactly (case
// included), valid UTF-8 only, nothing after the value. Types that
// unmarshal themselves (Image) check their own keys.
func UnmarshalStrict(data []byte, v any) error { return unmarshalStrict(data, v, elideMin, nil) }

// UnmarshalRequest is UnmarshalStrict as the server reads a request: an
// image sent as a long base64 string (16 KiB and more) comes back in
// Image.File, decoded straight from data, rather than as a copy of its text
// in Image.Base64 (one that does not decode keeps its text in Base64, for
// the caller to report as that image's error; shorter ones stay in Base64
// too). data may be reused once it returns.
func UnmarshalRequest(data []byte, v any) error { return unmarshalStrict(data, v, elideMin, newSlice) }

// UnmarshalRequestBuffers is UnmarshalRequest whose files are decoded into
// get(n)[:n] (n: the most the text can decode to) instead of new slices: a
// server's pooled buffers, which it takes back once it is done with the
// files. A File is a prefix of one of them; get may be called for text that
// then turns out not to be base64.
func UnmarshalRequestBuffers(data []byte, v any, get func(n int) []byte) error {
	return unmarshalStrict(data, v, elideMin, get)
}

// unmarshalStrict is UnmarshalStrict with strings from min bytes long cut out of the
// decoder's way (elide; 0: never), and their images decoded into get(n) when get is set.
func unmarshalStrict(data []byte, v any, min int, get func(n int) []byte) error {
	if min > 0 && len(data) >= min && elidable(v) {
		if e, ok := elide(data, min); ok {
			e.get = get
			fresh := reflect.New(reflect.TypeOf(v).Elem())
			if e.decode(fresh.Interface()) == nil {
				reflect.ValueOf(v).Elem().Set(fresh.Elem())
				return nil
			}
		}
	}
	return strictDecode(data, v)
}

// strictDecode is UnmarshalStrict on the body as it is.
func strictDecode(data []byte, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w at byte %d", ErrInvalidUTF8, invalidAt(data))
	}
	// encoding/json/v2 (go-json-experiment/json: the standard library's
	// from Go 1.27 on) with encoding/json's semantics and errors, for its
	// speed: a body of base64 images is megabytes of string, which
	// encoding/json's scanner stepped through a byte at a time, twice
	// (checking, then decoding), plus the decoder's growing copy of the
	// body: 24 ms for one 4 MB image against 6 ms now
	// (BenchmarkUnmarshalStrictBig). The walk below then makes it strict.
	dec := jsontext.NewDecoder(bytes.NewBuffer(data), strictOptions) // a bytes.Buffer is parsed in place
	if err := jsonv2.UnmarshalDecode(dec, v, strictOptions); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return ErrTrailingData
	}
	// data is valid JSON now: walk it beside v's type for inexact keys and
	// lone surrogates.
	w := walker{b: data}
	return w.value(reflect.TypeOf(v))
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// walker reads a valid JSON text; it never sees a syntax error.
type walker struct {
	b []byte
	i int
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func (w *walker) ws() {
	for w.i < len(w.b) && (w.b[w.i] == ' ' || w.b[w.i] == '\t' || w.b[w.i] == '\n' || w.b[w.i] == '\r') {
		w.i++
	}
}

// value walks one value; t is the Go type it decodes into (nil: any).
func (w *walker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(unmarshaler) {
			t = nil // it checks itself
			break
		}
		t = t.Elem()
	}
	if t != nil && reflect.PointerTo(t).Implements(unmarshaler) {
		t = nil
	}
	w.ws()
	switch w.b[w.i] {
	case '{':
		return w.object(t)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		w.i++
		for {
			w.ws()
			if w.b[w.i] == ']' {
				w.i++
				return nil
			}
			if err := w.value(elem); err != nil {
				return err
			}
			w.ws()
			if w.b[w.i] == ',' {
				w.i++
			}
		}
	case '"':
		return w.skipStr()
	}
	for w.i < len(w.b) && !strings.ContainsRune(",]} \t\n\r", rune(w.b[w.i])) {
		w.i++
	}
	return nil
}

func (w *walker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = map[string]reflect.Type{}
			structFields(t, fields)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	w.i++ // {
	for {
		w.ws()
		if w.b[w.i] == '}' {
			w.i++
			return nil
		}
		key, err := w.str()
		if err != nil {
			return err
		}
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				return &UnknownFieldError{Field: key}
			}
			vt = ft
		}
		w.ws()
		w.i++ // :
		if err := w.value(vt); err != nil {
			return err
		}
		w.ws()
		if w.b[w.i] == ',' {
			w.i++
		}
	}
}

// structFields adds t's JSON field names, as encoding/json names them
// (tags, "-", embedded structs flattened), with their types.
func structFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				structFields(ft, out)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
}

// str reads a string and returns it unquoted when it has escapes (keys
// need that), checking that every \u escape of a surrogate is paired.
func (w *walker) str() (string, error) {
	start := w.i
	w.i++ // "
	escaped := false
	for {
		c := w.b[w.i]
		switch {
		case c == '"':
			w.i++
			raw := w.b[start:w.i]
			if !escaped {
				return string(raw[1 : len(raw)-1]), nil
			}
			s, err := strconv.Unquote(string(raw))
			if err != nil { // JSON escapes that Go's syntax lacks (\/): let json do it
				if jerr := json.Unmarshal(raw, &s); jerr != nil {
					return "", jerr
				}
			}
			return s, nil
		case c == '\\':
			escaped = true
			if w.b[w.i+1] == 'u' {
				if err := w.surrogate(); err != nil {
					return "", err
				}
				continue
			}
			w.i += 2
		default:
			w.i++
		}
	}
}

// skipStr passes over a string value, checking its \u escapes of
// surrogates as str does, without making the string (an image's base64 is
// megabytes): IndexByte to the next backslash before the next quote, the
// quote looked for again only once an escape has taken it (\"), so that
// every byte is scanned a bounded number of times whatever the escapes.
func (w *walker) skipStr() error {
	w.i++   // "
	q := -1 // the next quote at or after w.i; valid JSON: the string ends
	for {
		if q < w.i {
			q = w.i + bytes.IndexByte(w.b[w.i:], '"')
		}
		bs := bytes.IndexByte(w.b[w.i:q], '\\')
		if bs < 0 {
			w.i = q + 1
			return nil
		}
		w.i += bs
		if w.b[w.i+1] == 'u' {
			if err := w.surrogate(); err != nil {
				return err
			}
			continue
		}
		w.i += 2 // \" among them
	}
}

// surrogate reads a \uXXXX escape at w.i (and its pair when it is a high
// surrogate).
func (w *walker) surrogate() error {
	r := hex4(w.b[w.i+2 : w.i+6])
	w.i += 6
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return fmt.Errorf("%w: lone surrogate escape \\u%04x in a string", ErrInvalidUTF8, r)
	case r >= 0xD800 && r <= 0xDBFF:
		if w.i+6 > len(w.b) || w.b[w.i] != '\\' || w.b[w.i+1] != 'u' {
			return fmt.Errorf("%w: lone surrogate escape \\u%04x in a string", ErrInvalidUTF8, r)
		}
		lo := hex4(w.b[w.i+2 : w.i+6])
		if lo < 0xDC00 || lo > 0xDFFF {
			return fmt.Errorf("%w: lone surrogate escape \\u%04x in a string", ErrInvalidUTF8, r)
		}
		w.i += 6
	}
	return nil
}

func hex4(b []byte) rune {
	v, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(v)
}
