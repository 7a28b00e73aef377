package loadtest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"slices"
	"strings"
	"testing"
)

// TestMultipartBodies: read back with mime/multipart (as the server reads
// them), the multipart bodies carry the prompts and files of the JSON body
// of the same index: score and rank one prompt field and K parts named
// images, reward one prompt per image in order; a boundary that a file
// contains is never chosen.
func TestMultipartBodies(t *testing.T) {
	imgs := []Image{{Name: "a.png", Data: []byte("first")}, {Name: "b\r\n.png", Data: []byte("second \x00\xff\r\n--")}, {Name: "c", Data: []byte("3")}}
	prompts := []string{"a <b> & \"c\"", "ünï\u2028code\r\nline two"}
	for _, route := range []string{RouteScore, RouteRank, RouteReward} {
		p := testPayloads(t, Config{URL: "http://127.0.0.1:1", Route: route, Images: imgs, Prompts: prompts, ImagesPerRequest: 2, Multipart: true})
		for i := range p.n + 1 { // the last one is the first again
			j := i % p.n
			r, ctype := p.request(uint64(i))
			mt, params, err := mime.ParseMediaType(ctype)
			if err != nil || mt != "multipart/form-data" {
				t.Fatalf("%s body %d: Content-Type %q (%v)", route, i, ctype, err)
			}
			n := r.(*partsReader).Len()
			body, _ := io.ReadAll(r)
			if len(body) != n {
				t.Errorf("%s body %d: Len %d, %d bytes read", route, i, n, len(body))
			}
			var gotPrompts []string
			var gotFiles [][]byte
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			for {
				part, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s body %d: %v", route, i, err)
				}
				b, _ := io.ReadAll(part)
				switch part.FormName() {
				case "prompt":
					gotPrompts = append(gotPrompts, string(b))
				case "images":
					gotFiles = append(gotFiles, b)
				default:
					t.Errorf("%s body %d: a part named %q", route, i, part.FormName())
				}
			}
			wantPrompts := []string{prompts[j%2]}
			if route == RouteReward {
				wantPrompts = []string{prompts[(j*2)%2], prompts[(j*2+1)%2]}
			}
			wantFiles := [][]byte{imgs[(j*2)%3].Data, imgs[(j*2+1)%3].Data}
			if !slices.Equal(gotPrompts, wantPrompts) || !slices.EqualFunc(gotFiles, wantFiles, bytes.Equal) {
				t.Errorf("%s body %d: prompts %q files %q, want %q %q", route, i, gotPrompts, gotFiles, wantPrompts, wantFiles)
			}
		}
	}
	if !clashes(strings.Repeat("ab", 30), []Image{{Data: []byte("x\r\n--" + strings.Repeat("ab", 30) + "--")}}, nil) {
		t.Error("a boundary inside a file is not seen")
	}
	if _, err := (Config{URL: "http://127.0.0.1:1", Images: imgs, Raw: true, Multipart: true}).withDefaults(); err == nil {
		t.Error("raw and multipart together accepted")
	}
}
