package loadtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"sync/atomic"
)

// maxCachedBytes bounds the request bodies kept for reuse; bodies beyond it
// are assembled for each request (still without JSON encoding: the images
// are base64 once, at the start).
const maxCachedBytes = 256 << 20

// payloads makes the request bodies for cfg.Route. Body j takes images
// j·K … j·K+K−1 and prompt j, both cyclically, for j in [0, n) with
// n = max(prompts, ⌈images/K⌉): every file of --images and every prompt is
// sent in each cycle of n requests, however many files there are. A body
// is assembled the first time it is needed and kept while the kept ones
// total under maxCachedBytes.
type payloads struct {
	route      string
	k          int
	imgs       [][]byte // base64, already a valid JSON string body
	prompts    [][]byte // JSON-quoted
	promptText []string
	raw        *rawImages     // Config.Raw: the decoded images (then imgs is unused)
	form       *multipartForm // Config.Multipart: the parts' headers (then imgs is unused)
	files      [][]byte       // Config.Multipart: the files' bytes
	n          int
	cache      []atomic.Pointer[[]byte]
	cached     atomic.Int64 // bytes kept
}

func newPayloads(cfg Config) (*payloads, error) {
	p := &payloads{route: cfg.Route, k: cfg.ImagesPerRequest, promptText: cfg.Prompts}
	switch {
	case cfg.Raw:
		var err error
		if p.raw, err = decodeRaw(cfg.Images); err != nil {
			return nil, err
		}
	case cfg.Multipart:
		p.form = newMultipartForm(cfg.Images, cfg.Prompts)
		for _, im := range cfg.Images {
			p.files = append(p.files, im.Data)
		}
	default:
		p.imgs = make([][]byte, len(cfg.Images))
		for i, im := range cfg.Images {
			p.imgs[i] = []byte(base64.StdEncoding.EncodeToString(im.Data))
		}
	}
	p.prompts = make([][]byte, len(cfg.Prompts))
	for i, s := range cfg.Prompts {
		p.prompts[i], _ = json.Marshal(s) // a string always marshals
	}
	p.n = max(len(p.prompts), (len(cfg.Images)+p.k-1)/p.k)
	p.cache = make([]atomic.Pointer[[]byte], p.n)
	return p, nil
}

// body returns the body of the i-th request.
func (p *payloads) body(i uint64) []byte {
	j := int(i % uint64(p.n))
	if b := p.cache[j].Load(); b != nil {
		return *b
	}
	b := p.build(j)
	if p.cached.Add(int64(len(b))) <= maxCachedBytes {
		p.cache[j].Store(&b)
	} else {
		p.cached.Add(-int64(len(b)))
	}
	return b
}

// build assembles body j: the bytes json.Marshal gives for the route's
// api request with these images and prompt (a test checks it).
func (p *payloads) build(j int) []byte {
	k := p.k
	var b bytes.Buffer
	switch p.route {
	case RouteReward:
		b.WriteString(`{"items":[`)
		for t := 0; t < k; t++ {
			if t > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"prompt":`)
			b.Write(p.prompts[(j*k+t)%len(p.prompts)])
			b.WriteString(`,"image":"`)
			b.Write(p.imgs[(j*k+t)%len(p.imgs)])
			b.WriteString(`"}`)
		}
		b.WriteString(`]}`)
	default: // score, rank
		b.WriteString(`{"prompt":`)
		b.Write(p.prompts[j%len(p.prompts)])
		b.WriteString(`,"images":[`)
		for t := 0; t < k; t++ {
			if t > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('"')
			b.Write(p.imgs[(j*k+t)%len(p.imgs)])
			b.WriteByte('"')
		}
		b.WriteString(`]}`)
	}
	return b.Bytes()
}
