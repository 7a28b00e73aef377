package loadtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// maxBodies and maxBodyBytes bound the set of distinct request bodies built
// before the run (requests then cycle through them, so that sending costs no
// encoding and no allocation).
const (
	maxBodies    = 64
	maxBodyBytes = 256 << 20
)

// buildBodies encodes every image to base64 once and assembles the JSON
// request bodies for cfg.Route: body j takes images j·K … j·K+K−1 and
// prompts from j on, both cyclically. At least one body is built; as many as
// it takes to use every image and every prompt once, within maxBodies and
// maxBodyBytes.
func buildBodies(cfg Config) [][]byte {
	imgs := make([][]byte, len(cfg.Images)) // base64, already a valid JSON string body
	for i, im := range cfg.Images {
		imgs[i] = []byte(base64.StdEncoding.EncodeToString(im.Data))
	}
	prompts := make([][]byte, len(cfg.Prompts)) // JSON-quoted
	for i, p := range cfg.Prompts {
		prompts[i], _ = json.Marshal(p) // a string always marshals
	}
	k := cfg.ImagesPerRequest
	n := max(len(prompts), (len(imgs)+k-1)/k)
	n = min(n, maxBodies)

	var bodies [][]byte
	total := 0
	for j := 0; j < n; j++ {
		var b bytes.Buffer
		switch cfg.Route {
		case RouteReward:
			b.WriteString(`{"items":[`)
			for t := 0; t < k; t++ {
				if t > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`{"prompt":`)
				b.Write(prompts[(j*k+t)%len(prompts)])
				b.WriteString(`,"image":"`)
				b.Write(imgs[(j*k+t)%len(imgs)])
				b.WriteString(`"}`)
			}
			b.WriteString(`]}`)
		default: // score, rank
			b.WriteString(`{"prompt":`)
			b.Write(prompts[j%len(prompts)])
			b.WriteString(`,"images":[`)
			for t := 0; t < k; t++ {
				if t > 0 {
					b.WriteByte(',')
				}
				b.WriteByte('"')
				b.Write(imgs[(j*k+t)%len(imgs)])
				b.WriteByte('"')
			}
			b.WriteString(`]}`)
		}
		if j > 0 && total+b.Len() > maxBodyBytes {
			break
		}
		total += b.Len()
		bodies = append(bodies, b.Bytes())
	}
	return bodies
}
