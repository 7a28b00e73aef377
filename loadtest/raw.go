package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/preprocess"
)

// rawImages are the files of Config.Images decoded once (Config.Raw), all
// of one size, for application/x-icthp-tensor bodies.
type rawImages struct {
	h, w int
	pix  [][]byte // packed RGB, h×w×3 each
}

// decodeRaw decodes every image as the server does (preprocess.DecodeRGB,
// its default limits). A batch body has one shape, so the images must all
// have the size of the first.
func decodeRaw(imgs []Image) (*rawImages, error) {
	r := &rawImages{pix: make([][]byte, len(imgs))}
	for i, im := range imgs {
		rgb, err := preprocess.DecodeRGB(im.Data, preprocess.ImageOptions{})
		if err != nil {
			return nil, fmt.Errorf("raw: %s: %w", im.Name, err)
		}
		if i == 0 {
			r.h, r.w = rgb.H, rgb.W
		} else if rgb.H != r.h || rgb.W != r.w {
			return nil, fmt.Errorf("raw: %s is %d×%d, %s %d×%d: one request's images share one shape, so every file must have the same size",
				im.Name, rgb.W, rgb.H, imgs[0].Name, r.w, r.h)
		}
		r.pix[i] = rgb.Pix
	}
	return r, nil
}

// rawHeader is the JSON line before the pixels: the route's request without
// images, plus the shape of the k images.
type rawHeader struct {
	Prompt  *string  `json:"prompt,omitempty"`
	Prompts []string `json:"prompts,omitempty"`
	Shape   [4]int   `json:"shape"`
	Dtype   string   `json:"dtype"`
}

// rawBody is body j as application/x-icthp-tensor: the header line, then
// the k images' pixels, read from the decoded images without a copy.
func (p *payloads) rawBody(j int) *partsReader {
	k := p.k
	h := rawHeader{Shape: [4]int{k, p.raw.h, p.raw.w, 3}, Dtype: "uint8"}
	if p.route == RouteReward {
		for t := 0; t < k; t++ {
			h.Prompts = append(h.Prompts, p.promptText[(j*k+t)%len(p.promptText)])
		}
	} else {
		h.Prompt = &p.promptText[j%len(p.promptText)]
	}
	line, _ := json.Marshal(h) // strings and ints always marshal
	parts := make([][]byte, 0, k+1)
	parts = append(parts, append(line, '\n'))
	for t := 0; t < k; t++ {
		parts = append(parts, p.raw.pix[(j*k+t)%len(p.raw.pix)])
	}
	return newPartsReader(parts)
}

// partsReader reads byte slices one after another. Len lets the client send
// a Content-Length (api.Client.Do), so the body is not chunked.
type partsReader struct {
	parts [][]byte
	left  int
}

func newPartsReader(parts [][]byte) *partsReader {
	r := &partsReader{parts: parts}
	for _, b := range parts {
		r.left += len(b)
	}
	return r
}

func (r *partsReader) Len() int { return r.left }

func (r *partsReader) Read(b []byte) (int, error) {
	for len(r.parts) > 0 && len(r.parts[0]) == 0 {
		r.parts = r.parts[1:]
	}
	if len(r.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.parts[0])
	r.parts[0] = r.parts[0][n:]
	r.left -= n
	return n, nil
}

// request is the i-th request's body and content type.
func (p *payloads) request(i uint64) (io.Reader, string) {
	switch {
	case p.raw != nil:
		return p.rawBody(int(i % uint64(p.n))), api.ContentTypeTensor
	case p.form != nil:
		return p.multipartBody(int(i % uint64(p.n))), p.form.contentType
	}
	return bytes.NewReader(p.body(i)), api.ContentTypeJSON
}
