package server

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
)

// TensorContentType is the compact binary body for raw pixels: one line of
// JSON (the route's request without its images, plus "shape" and "dtype"
// of the pixels), a '\n', then exactly B×H×W×3 bytes of packed uint8 RGB
// (row-major, HWC, no padding: what numpy's tobytes() gives for a
// C-contiguous uint8 array). For /v1/reward the header may carry "prompts"
// (one per image) or "prompt" (one for all) instead of "items".
const TensorContentType = "application/x-icthp-tensor"

// Limits on raw pixel input, beyond Options.MaxBodyBytes, Options.MaxImages
// and the service's per-image pixel limit.
const (
	MaxRawSide           = 1 << 15 // each of H and W
	MaxTensorHeaderBytes = 1 << 20 // the JSON header line of a TensorContentType body
)

// imageJSON is one element of a request's images: a base64 string of an
// encoded file, or a raw tensor {"data": BASE64, "shape": [H,W,3] or
// [B,H,W,3], "dtype": "uint8"}, which stands for B images.
type imageJSON struct {
	b64    string
	tensor bool
	rgb    []*preprocess.RGB
}

func (m *imageJSON) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, &m.b64)
	case len(b) == 0 || b[0] != '{':
		return errors.New(`an image is a base64 string or a raw tensor {"data": BASE64, "shape": [H, W, 3], "dtype": "uint8"}`)
	}
	var t struct {
		Data  *string `json:"data"`
		Shape []int   `json:"shape"`
		Dtype string  `json:"dtype"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return fmt.Errorf("raw tensor: %w", err)
	}
	if t.Data == nil {
		return errors.New(`raw tensor: no "data" (base64 of the packed uint8 bytes)`)
	}
	n, err := tensorSize(t.Shape, t.Dtype)
	if err != nil {
		return err
	}
	pix, err := decodeRawBase64(*t.Data)
	if err != nil {
		return err
	}
	if int64(len(pix)) != n {
		return fmt.Errorf("raw tensor: shape %v needs %d bytes, data has %d", t.Shape, n, len(pix))
	}
	m.tensor, m.rgb = true, splitTensor(t.Shape, pix)
	return nil
}

func decodeRawBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New(`raw tensor: "data" is not valid base64`)
}

// tensorSize checks a tensor's shape and dtype and returns its byte count.
func tensorSize(shape []int, dtype string) (int64, error) {
	if dtype != "uint8" {
		return 0, fmt.Errorf(`raw tensor: dtype %q: only "uint8" is accepted (convert floats in [0,1] with round(x*255))`, dtype)
	}
	if len(shape) != 3 && len(shape) != 4 {
		return 0, fmt.Errorf("raw tensor: shape %v: want [H, W, 3] or [B, H, W, 3]", shape)
	}
	hwc := shape[len(shape)-3:]
	if hwc[2] != 3 {
		return 0, fmt.Errorf("raw tensor: shape %v: the last dimension must be 3 (RGB, channels last)", shape)
	}
	if hwc[0] < 1 || hwc[1] < 1 || hwc[0] > MaxRawSide || hwc[1] > MaxRawSide {
		return 0, fmt.Errorf("raw tensor: shape %v: height and width must be in [1, %d]", shape, MaxRawSide)
	}
	n := int64(hwc[0]) * int64(hwc[1]) * 3
	if len(shape) == 4 {
		if shape[0] < 0 || shape[0] > 1<<16 {
			return 0, fmt.Errorf("raw tensor: shape %v: bad batch size", shape)
		}
		n *= int64(shape[0])
	}
	return n, nil
}

// splitTensor cuts packed pixels into images without copying.
func splitTensor(shape []int, pix []byte) []*preprocess.RGB {
	h, w := shape[len(shape)-3], shape[len(shape)-2]
	sz := h * w * 3
	b := 1
	if len(shape) == 4 {
		b = shape[0]
	}
	out := make([]*preprocess.RGB, b)
	for i := range out {
		out[i] = &preprocess.RGB{W: w, H: h, Pix: pix[i*sz : (i+1)*sz : (i+1)*sz]}
	}
	return out
}

// count is the number of images the element stands for.
func (m *imageJSON) count() int {
	if m.tensor {
		return len(m.rgb)
	}
	return 1
}

// decodeImages turns the request's images into scoring images: base64
// strings (optionally data: URLs) into file bytes, tensors into pixels. A
// string that is not base64 is that image's error; more than max images in
// all is the request's.
func (in *input) decodeImages(imgs []imageJSON, max int) error {
	n := 0
	for i := range imgs {
		n += imgs[i].count()
	}
	if n > max {
		return fmt.Errorf("%w: %d images, the limit is %d per request", errTooMany, n, max)
	}
	in.images = make([]scoring.Image, 0, n)
	in.errs = make([]error, 0, n)
	for _, m := range imgs {
		if m.tensor {
			for _, r := range m.rgb {
				in.images = append(in.images, scoring.Image{RGB: r})
				in.errs = append(in.errs, nil)
			}
			continue
		}
		data, err := decodeBase64(m.b64)
		in.images = append(in.images, scoring.Image{Data: data})
		in.errs = append(in.errs, err)
	}
	return nil
}

// decodeTensorBody reads a TensorContentType body into dst: the header
// line as the route's JSON request, the pixels as its images.
func (s *Server) decodeTensorBody(c *gin.Context, dst any) (*input, error) {
	br := bufio.NewReaderSize(c.Request.Body, 64<<10)
	line, err := readHeaderLine(br)
	if err != nil {
		return nil, err
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, "tensor body: the header line is not a JSON object: "+err.Error())
	}
	var shape []int
	dtype := "uint8"
	if err := json.Unmarshal(hdr["shape"], &shape); err != nil || shape == nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: the header needs "shape": [B, H, W, 3] or [H, W, 3]`)
	}
	if raw, ok := hdr["dtype"]; ok {
		if err := json.Unmarshal(raw, &dtype); err != nil {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: "dtype" must be a string`)
		}
	}
	var prompts []string
	if raw, ok := hdr["prompts"]; ok {
		if err := json.Unmarshal(raw, &prompts); err != nil {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: "prompts" must be a list of strings`)
		}
	}
	var prompt *string
	if raw, ok := hdr["prompt"]; ok {
		if _, isReward := dst.(*rewardRequest); isReward {
			if err := json.Unmarshal(raw, &prompt); err != nil {
				return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: "prompt" must be a string`)
			}
			delete(hdr, "prompt")
		}
	}
	for _, k := range []string{"shape", "dtype", "prompts", "images"} {
		if k == "images" && hdr[k] != nil {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: the images are the bytes after the header, not "images"`)
		}
		delete(hdr, k)
	}
	n, err := tensorSize(shape, dtype)
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	if n > s.opts.MaxBodyBytes {
		return nil, newError(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("tensor body: shape %v is %d bytes, over the limit of %d", shape, n, s.opts.MaxBodyBytes))
	}
	rest, _ := json.Marshal(hdr)
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return nil, jsonError(err)
	}
	pix := make([]byte, n)
	if _, err := io.ReadFull(br, pix); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("tensor body: shape %v needs %d bytes after the header: %v", shape, n, err))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("tensor body: data after the %d bytes that shape %v needs", n, shape))
	}
	imgs := splitTensor(shape, pix)
	if len(imgs) > s.opts.MaxImages {
		return nil, fmt.Errorf("%w: %d images, the limit is %d per request", errTooMany, len(imgs), s.opts.MaxImages)
	}
	all := []imageJSON{{tensor: true, rgb: imgs}}
	switch r := dst.(type) {
	case *scoreRequest:
		r.Images = all
	case *rankRequest:
		r.Images = all
	case *embedRequest:
		r.Images = all
	case *rewardRequest:
		switch {
		case r.Items != nil && (prompts != nil || prompt != nil):
			return nil, newError(http.StatusBadRequest, CodeBadRequest, `tensor body: send "items", "prompts" or "prompt", not several`)
		case prompt != nil:
			for range imgs {
				r.Items = append(r.Items, rewardItem{Prompt: prompt})
			}
		case prompts != nil:
			r.Items = make([]rewardItem, len(prompts))
			for i := range prompts {
				r.Items[i].Prompt = &prompts[i]
			}
		}
		if len(r.Items) != len(imgs) {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("tensor body: %d prompts or items for %d images", len(r.Items), len(imgs)))
		}
		if r.Items == nil {
			r.Items = []rewardItem{}
		}
		for i := range r.Items {
			if r.Items[i].Image.b64 != "" || r.Items[i].Image.tensor {
				return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf(`tensor body: item %d has an "image"; the images are the bytes after the header`, i))
			}
			r.Items[i].Image = imageJSON{tensor: true, rgb: imgs[i : i+1]}
		}
	default:
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, TensorContentType+" is not accepted on this route")
	}
	return &input{json: true}, nil
}

// readHeaderLine reads up to '\n', at most MaxTensorHeaderBytes.
func readHeaderLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxTensorHeaderBytes {
			return nil, newError(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("tensor body: header line over %d bytes", MaxTensorHeaderBytes))
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, newError(http.StatusBadRequest, CodeBadRequest, "tensor body: no '\\n' after the JSON header line")
		}
	}
}
