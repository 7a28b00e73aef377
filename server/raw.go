package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/scoring"
)

// TensorContentType is the compact binary body for raw pixels: one line of
// JSON (the route's request without its images, plus "shape" and "dtype"
// of the pixels), a '\n', then exactly B×H×W×3 bytes of packed uint8 RGB
// (row-major, HWC, no padding: what numpy's tobytes() gives for a
// C-contiguous uint8 array). For /v1/reward the header may carry "prompts"
// (one per image) or "prompt" (one for all) instead of "items".
//
// The pixels are read as they arrive, into pooled buffers drawn from the
// server-wide budget Options.MaxRawBytesInFlight (rawbuf.go): what a client
// declares in "shape" is never reserved before its bytes come.
const TensorContentType = api.ContentTypeTensor

// Limits on raw pixel input, beyond Options.MaxBodyBytes, Options.MaxImages
// and the service's per-image pixel limit.
const (
	MaxRawSide           = 1 << 15 // each of H and W
	MaxTensorHeaderBytes = 1 << 20 // the JSON header line of a TensorContentType body
)

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

// imageCount checks an image of a JSON request and returns how many images
// it stands for (B for a [B, H, W, 3] tensor).
func imageCount(m api.Image) (int, error) {
	t := m.Tensor
	if t == nil {
		return 1, nil
	}
	n, err := tensorSize(t.Shape, t.Dtype)
	if err != nil {
		return 0, newError(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	if int64(len(t.Data)) != n {
		return 0, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("raw tensor: shape %v needs %d bytes, data has %d", t.Shape, n, len(t.Data)))
	}
	if len(t.Shape) == 4 {
		return t.Shape[0], nil
	}
	return 1, nil
}

// splitTensor cuts a checked tensor's pixels into images without copying.
func splitTensor(t *api.Tensor) []*preprocess.RGB {
	shape := t.Shape
	h, w := shape[len(shape)-3], shape[len(shape)-2]
	sz := h * w * 3
	b := 1
	if len(shape) == 4 {
		b = shape[0]
	}
	out := make([]*preprocess.RGB, b)
	for i := range out {
		out[i] = &preprocess.RGB{W: w, H: h, Pix: t.Data[i*sz : (i+1)*sz : (i+1)*sz]}
	}
	return out
}

// decodeImages turns the request's images into scoring images: base64
// strings (optionally data: URLs) into file bytes, tensors into pixels. A
// string that is not base64 is that image's error; a bad tensor, or more
// than max images in all, the request's.
func (in *input) decodeImages(imgs []api.Image, max int) error {
	n := 0
	for i := range imgs {
		k, err := imageCount(imgs[i])
		if err != nil {
			return err
		}
		n += k
	}
	if n > max {
		return fmt.Errorf("%w: %d images, the limit is %d per request", errTooMany, n, max)
	}
	in.images = make([]scoring.Image, 0, n)
	in.errs = make([]error, 0, n)
	for _, m := range imgs {
		if m.Tensor != nil {
			for _, r := range splitTensor(m.Tensor) {
				in.images = append(in.images, scoring.Image{RGB: r})
				in.errs = append(in.errs, nil)
			}
			continue
		}
		data, err := m.File, error(nil) // decoded from the body (api.UnmarshalRequest)
		if data == nil {
			data, err = api.DecodeBase64(m.Base64)
		}
		in.images = append(in.images, scoring.Image{Data: data})
		in.errs = append(in.errs, err)
	}
	return nil
}

// tensorHeader is the header line of a tensor body, split into the pixels'
// description and the route's request (rest).
type tensorHeader struct {
	shape   []int
	dtype   string
	prompts []string
	prompt  *string // /v1/reward only
	rest    []byte  // the other keys, as a JSON object
}

// parseTensorHeader reads the header line: valid UTF-8 JSON, the pixel keys
// taken out.
func parseTensorHeader(line []byte, reward bool) (*tensorHeader, error) {
	var hdr map[string]json.RawMessage
	if err := api.UnmarshalStrict(line, &hdr); err != nil {
		if errors.Is(err, api.ErrInvalidUTF8) {
			return nil, jsonError(err)
		}
		return nil, newError(http.StatusBadRequest, CodeBadRequest, "tensor body: the header line is not a JSON object: "+err.Error())
	}
	h := &tensorHeader{dtype: "uint8"}
	bad := func(msg string) error { return newError(http.StatusBadRequest, CodeBadRequest, "tensor body: "+msg) }
	if err := json.Unmarshal(hdr["shape"], &h.shape); err != nil || h.shape == nil {
		return nil, bad(`the header needs "shape": [B, H, W, 3] or [H, W, 3]`)
	}
	if raw, ok := hdr["dtype"]; ok {
		if err := json.Unmarshal(raw, &h.dtype); err != nil {
			return nil, bad(`"dtype" must be a string`)
		}
	}
	if raw, ok := hdr["prompts"]; ok {
		if err := json.Unmarshal(raw, &h.prompts); err != nil {
			return nil, bad(`"prompts" must be a list of strings`)
		}
	}
	if raw, ok := hdr["prompt"]; ok && reward {
		if err := json.Unmarshal(raw, &h.prompt); err != nil {
			return nil, bad(`"prompt" must be a string`)
		}
		delete(hdr, "prompt")
	}
	if hdr["images"] != nil {
		return nil, bad(`the images are the bytes after the header, not "images"`)
	}
	for _, k := range []string{"shape", "dtype", "prompts"} {
		delete(hdr, k)
	}
	h.rest, _ = json.Marshal(hdr)
	return h, nil
}

// decodeTensorBody reads a TensorContentType body into dst: the header
// line as the route's JSON request, the pixels as its images, read as they
// arrive (rawbuf.go).
func (s *Server) decodeTensorBody(c *gin.Context, dst any) (*input, error) {
	switch dst.(type) {
	case *api.ScoreRequest, *api.RankRequest, *api.EmbedRequest, *api.RewardRequest:
	default:
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, TensorContentType+" is not accepted on this route")
	}
	br := bufio.NewReaderSize(c.Request.Body, 64<<10)
	line, err := readHeaderLine(br)
	if err != nil {
		return nil, err
	}
	_, isReward := dst.(*api.RewardRequest)
	h, err := parseTensorHeader(line, isReward)
	if err != nil {
		return nil, err
	}
	n, err := tensorSize(h.shape, h.dtype)
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	if n > s.opts.MaxBodyBytes {
		return nil, newError(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("tensor body: shape %v is %d bytes, over the limit of %d", h.shape, n, s.opts.MaxBodyBytes))
	}
	b, hh, w := 1, h.shape[len(h.shape)-3], h.shape[len(h.shape)-2]
	if len(h.shape) == 4 {
		b = h.shape[0]
	}
	if b > s.opts.MaxImages {
		return nil, fmt.Errorf("%w: %d images, the limit is %d per request", errTooMany, b, s.opts.MaxImages)
	}
	if err := api.UnmarshalStrict(h.rest, dst); err != nil {
		return nil, jsonError(err)
	}
	// The request's fields are checked: only now read the pixels.
	pix, err := s.raw.readImages(c, br, h.shape, b, hh*w*3)
	if err != nil {
		return nil, err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("tensor body: data after the %d bytes that shape %v needs", n, h.shape))
	}
	imgs := make([]api.Image, b)
	for i := range imgs {
		imgs[i] = api.Pixels(hh, w, pix[i])
	}
	if err := setTensorImages(dst, imgs, h); err != nil {
		return nil, err
	}
	return &input{json: true}, nil
}

// setTensorImages puts the images of a tensor body into the request.
func setTensorImages(dst any, imgs []api.Image, h *tensorHeader) error {
	switch r := dst.(type) {
	case *api.ScoreRequest:
		r.Images = imgs
	case *api.RankRequest:
		r.Images = imgs
	case *api.EmbedRequest:
		r.Images = imgs
	case *api.RewardRequest:
		bad := func(msg string) error { return newError(http.StatusBadRequest, CodeBadRequest, "tensor body: "+msg) }
		switch {
		case r.Items != nil && (h.prompts != nil || h.prompt != nil):
			return bad(`send "items", "prompts" or "prompt", not several`)
		case h.prompt != nil:
			for range imgs {
				r.Items = append(r.Items, api.RewardItem{Prompt: h.prompt})
			}
		case h.prompts != nil:
			r.Items = make([]api.RewardItem, len(h.prompts))
			for i := range h.prompts {
				r.Items[i].Prompt = &h.prompts[i]
			}
		}
		if len(r.Items) != len(imgs) {
			return bad(fmt.Sprintf("%d prompts or items for %d images", len(r.Items), len(imgs)))
		}
		if r.Items == nil {
			r.Items = []api.RewardItem{}
		}
		for i := range r.Items {
			if m := r.Items[i].Image; m.Base64 != "" || m.File != nil || m.Tensor != nil {
				return bad(fmt.Sprintf(`item %d has an "image"; the images are the bytes after the header`, i))
			}
			r.Items[i].Image = imgs[i]
		}
	}
	return nil
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
