package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"
)

// strictV1 is UnmarshalStrict as it was on encoding/json (v1): the
// reference the v2 engine must agree with.
func strictV1(data []byte, v any) error {
	if !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailingData
	}
	w := walker{b: data}
	return w.value(reflect.TypeOf(v))
}

// requestTypes are the bodies the server decodes strictly.
func requestTypes() []func() any {
	return []func() any{
		func() any { return new(ScoreRequest) },
		func() any { return new(RankRequest) },
		func() any { return new(RewardRequest) },
		func() any { return new(EmbedRequest) },
		func() any { return new(tensorJSON) },
	}
}

// FuzzUnmarshalStrictLikeV1: for any body and every request type, the v2
// engine accepts exactly what encoding/json did and decodes the same
// values; refusals keep their kind (unknown field, trailing data, invalid
// UTF-8). Under Go 1.27, whose encoding/json runs on v2 itself, the seed
// corpus run of `go test` on the project's Go (1.26) is what compares the
// two engines. With every string value cut out of the decoder's way
// (elide, from one byte on), the answer is UnmarshalStrict's exactly: the
// same values, the same error text.
func FuzzUnmarshalStrictLikeV1(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"a cat","images":["aGVsbG8="]}`, `{"Prompt":"a","images":[]}`, `{"prompt":"a","prompt":"b"}`,
		`{"images":["aGVs\u0062G8="],"models":["hp","ict"]}`, `{"images":[{"data":"AAAA","shape":[1,1,3],"dtype":"uint8"}]}`,
		`{"items":[{"prompt":"a","image":"aGVsbG8="}],"weights":{"hp":1.5}}`, `{"texts":["a","\ud83d\ude00"]}`,
		`{"prompt":null,"images":null}`, `{"images":[null]}`, `{"prompt":3}`, `{"images":"x"}`, `{} {}`, `{} x`, ` {} `,
		`{"prompt":"a"`, `[]`, `null`, `"x"`, `{"prompt":"\ud800"}`, `{"colour":1}`, `{"images":[1e999]}`,
		`{"weights":{"hp":1e400}}`, `{"shape":[1.5]}`, `{"shape":[-1,2,3]}`, `{"dtype":"uint8","data":null}`,
		"{\"prompt\":\"a\xffb\"}", `{"prompt":"a\u0000b"}`, "{\"prompt\":\"a\tb\"}", `{"prompt" : "a" , "images" : [ ] }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range requestTypes() {
			got, want := mk(), mk()
			errGot, errWant := UnmarshalStrict(body, got), strictV1(body, want)
			cut := mk()
			if errCut := unmarshalStrict(body, cut, 1, nil); fmt.Sprint(errCut) != fmt.Sprint(errGot) || !reflect.DeepEqual(cut, got) {
				t.Fatalf("%T %q: with strings cut %+v, %v; as it is %+v, %v", got, body, cut, errCut, got, errGot)
			}
			// UnmarshalRequest: the same, but for the cut images' text that
			// decodes, which comes as the decoded bytes.
			files := mk()
			if errFiles := unmarshalStrict(body, files, 1, newSlice); fmt.Sprint(errFiles) != fmt.Sprint(errGot) {
				t.Fatalf("%T %q: with files %v, without %v", got, body, errFiles, errGot)
			}
			fi, ci := images(reflect.ValueOf(files), nil), images(reflect.ValueOf(cut), nil)
			for i := range fi {
				if fi[i].File != nil {
					d, err := DecodeBase64(ci[i].Base64)
					if err != nil || !bytes.Equal(d, fi[i].File) || fi[i].Base64 != "" {
						t.Fatalf("%T %q: image %d decoded to %q, its text %q decodes to %q (%v)", got, body, i, fi[i].File, ci[i].Base64, d, err)
					}
					fi[i].File, fi[i].Base64 = nil, ci[i].Base64
				}
			}
			if !reflect.DeepEqual(files, cut) {
				t.Fatalf("%T %q: with files %+v, without %+v", got, body, files, cut)
			}
			if (errGot == nil) != (errWant == nil) {
				t.Fatalf("%T %q: v2 %v, encoding/json %v", got, body, errGot, errWant)
			}
			if errGot == nil {
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%T %q: v2 %+v, encoding/json %+v", got, body, got, want)
				}
				continue
			}
			for _, kind := range []error{ErrInvalidUTF8, ErrTrailingData} {
				if errors.Is(errGot, kind) != errors.Is(errWant, kind) {
					t.Fatalf("%T %q: v2 %v, encoding/json %v", got, body, errGot, errWant)
				}
			}
			var ug, uw *UnknownFieldError
			if errors.As(errGot, &ug) && errors.As(errWant, &uw) && ug.Field != uw.Field {
				t.Fatalf("%T %q: unknown field %q, encoding/json %q", got, body, ug.Field, uw.Field)
			}
		}
	})
}

// BenchmarkUnmarshalStrictBig is one /v1/score body holding a 3 MiB image
// as base64 (4 MiB): the v2 engine against encoding/json's.
func BenchmarkUnmarshalStrictBig(b *testing.B) {
	raw := make([]byte, 3<<20)
	rand.Read(raw)
	body, _ := json.Marshal(map[string]any{"prompt": "a cat", "images": []string{base64.StdEncoding.EncodeToString(raw)}})
	for _, e := range []struct {
		name string
		fn   func([]byte, any) error
	}{{"engine=v2", UnmarshalStrict}, {"engine=v2-uncut", func(b []byte, v any) error { return unmarshalStrict(b, v, 0, nil) }},
		{"engine=encoding-json", strictV1}} {
		b.Run(e.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var r ScoreRequest
				if err := e.fn(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// images appends every Image reachable from v, in order, to out.
func images(v reflect.Value, out []*Image) []*Image {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return out
		}
		if m, ok := v.Interface().(*Image); ok {
			return append(out, m)
		}
		return images(v.Elem(), out)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = images(v.Field(i).Addr(), out)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			out = images(v.Index(i).Addr(), out)
		}
	}
	return out
}
