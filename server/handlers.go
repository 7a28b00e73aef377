package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scorer"
	"github.com/icthp/icthp/scoring"
)

// input is a request body after decoding, JSON or multipart alike: form
// fields by name, and the images in order (base64 already decoded, or the
// decoding error of each).
type input struct {
	json   bool
	fields map[string][]string
	images []scoring.Image
	errs   []error // per image: errBadBase64, or nil
}

func (in *input) field(name string) (string, bool) {
	v, ok := in.fields[name]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// acceptedTypes is what a POST route reads, for 415 answers.
const acceptedTypes = api.ContentTypeJSON + ", " + api.ContentTypeMultipart + " or " + api.ContentTypeTensor

// formFields are the multipart form fields each request type takes besides
// its images (parts named "images" or "image"); any other part is refused
// as an unknown JSON key is.
func formFields(dst any) []string {
	switch dst.(type) {
	case *api.ScoreRequest:
		return []string{"prompt", "models"}
	case *api.RankRequest:
		return []string{"prompt"}
	case *api.RewardRequest:
		return []string{"prompt", "reward"}
	case *api.EmbedRequest:
		return []string{"texts"}
	}
	return nil
}

// decode reads the body into dst (JSON, strictly: api.UnmarshalStrict) or
// into the input's fields and images (multipart/form-data), or a raw
// tensor body (raw.go). Any other Content-Type is 415, naming the accepted
// ones: a form-encoded or text body is not read as JSON.
func (s *Server) decode(c *gin.Context, dst any) (*input, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes)
	ct := c.GetHeader("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" {
		mt, err = api.ContentTypeJSON, nil
	}
	switch {
	case err != nil:
		c.Header("Accept-Post", strings.ReplaceAll(acceptedTypes, " or ", ", "))
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, fmt.Sprintf("bad Content-Type %q (%v): send %s", ct, err, acceptedTypes))
	case mt == api.ContentTypeMultipart:
		return s.decodeMultipart(c, params, formFields(dst))
	case mt == api.ContentTypeTensor:
		return s.decodeTensorBody(c, dst) // raw.go
	case mt == api.ContentTypeJSON:
		buf := s.bodies.get()
		defer s.bodies.put(buf)
		body, err := readBody(buf, c.Request.Body, c.Request.ContentLength)
		if err != nil {
			return nil, jsonError(err)
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, "the body is empty: send a JSON object")
		}
		// The images come decoded (Image.File, in pooled buffers) from the
		// body, which goes back to its pool when this returns.
		if err := api.UnmarshalRequestBuffers(body, dst, s.fileGetter(c)); err != nil {
			return nil, jsonError(err)
		}
		return &input{json: true}, nil
	}
	c.Header("Accept-Post", strings.ReplaceAll(acceptedTypes, " or ", ", "))
	hint := ""
	if mt == "application/x-www-form-urlencoded" {
		// What `curl -d` sends unless told otherwise: the usual way to get here.
		hint = " (curl -d sends this type: add -H 'Content-Type: application/json')"
	}
	return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
		fmt.Sprintf("Content-Type %q is not accepted: send %s%s", mt, acceptedTypes, hint))
}

func jsonError(err error) error {
	var mbe *http.MaxBytesError
	// api.UnmarshalStrict's errors are encoding/json's types as
	// go-json-experiment/json/v1 defines them (the same types from Go 1.27).
	var se *jsonv1.SyntaxError
	var te *jsonv1.UnmarshalTypeError
	var ue *api.UnknownFieldError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, api.ErrInvalidUTF8):
		return newError(http.StatusBadRequest, CodeBadRequest, "the body is not valid UTF-8 text: "+err.Error())
	case errors.Is(err, api.ErrTrailingData):
		return newError(http.StatusBadRequest, CodeBadRequest, "the body has data after its JSON object")
	case errors.As(err, &ue):
		return newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the body is not a valid request: unknown field %q (keys are matched exactly, case included)", ue.Field))
	case errors.As(err, &se):
		return newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", se, se.Offset))
	case errors.As(err, &te):
		return newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("field %q: want %v, got a JSON %s", te.Field, te.Type, te.Value))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, CodeBadRequest, "the body is empty or cut short: send a JSON object")
	}
	return newError(http.StatusBadRequest, CodeBadRequest, "the body is not a valid request: "+err.Error())
}

// decodeMultipart streams the parts: a part named "images" or "image" is an
// image, one named in fields a form field (valid UTF-8); any other is
// refused.
//
// The parts are read through a 64 KiB buffer: mime/multipart reads its
// source 4 KiB at a time, a read system call each when it is the body
// itself (400 for a 1.6 MB PNG, 9 % of the server's CPU on PNGs sent as
// multipart; BENCHMARKS.md).
func (s *Server) decodeMultipart(c *gin.Context, params map[string]string, fields []string) (*input, error) {
	boundary, ok := params["boundary"]
	if !ok { // what (*http.Request).MultipartReader answers
		return nil, newError(http.StatusBadRequest, CodeBadRequest, "multipart body: "+http.ErrMissingBoundary.Error())
	}
	br := s.bodyReaders.Get().(*bufio.Reader)
	br.Reset(c.Request.Body)
	defer func() {
		br.Reset(nil)
		s.bodyReaders.Put(br)
	}()
	mr := multipart.NewReader(br, boundary)
	in := &input{fields: map[string][]string{}}
	files := s.fileGetter(c)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return in, nil
		}
		if err != nil {
			return nil, multipartError(err)
		}
		name := p.FormName()
		isImage := name == "images" || name == "image"
		if !isImage && !contains(fields, name) {
			p.Close()
			return nil, newError(http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("multipart body: unknown field %q (this route takes images and %s)", name, strings.Join(fields, ", ")))
		}
		get := func(n int) []byte { return make([]byte, n) } // a field: made into a string
		if isImage {
			get = files
		}
		data, err := s.readPart(p, get)
		p.Close()
		if err != nil {
			return nil, multipartError(err)
		}
		if isImage {
			if len(in.images) == s.opts.MaxImages {
				return nil, fmt.Errorf("%w: more than %d images in one request", errTooMany, s.opts.MaxImages)
			}
			in.images = append(in.images, scoring.Image{Data: data})
			in.errs = append(in.errs, nil)
			continue
		}
		if !utf8.Valid(data) {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("multipart body: field %q is not valid UTF-8 text", name))
		}
		in.fields[name] = append(in.fields[name], string(data))
	}
}

// readPart reads a part through one of the body buffers and returns a copy of
// exactly its size, made by get: io.ReadAll grew its slice a quarter at a
// time, clearing and copying each step (3.5 % of the server's CPU on 1.6 MB
// PNG parts). An image's copy is in one of the request's pooled file
// buffers (fileGetter), as the images of JSON requests are: a job replays
// its body through the same routes, so no image outlives its request.
func (s *Server) readPart(p io.Reader, get func(n int) []byte) ([]byte, error) {
	buf := s.bodies.get()
	defer s.bodies.put(buf)
	b, err := readBody(buf, p, -1)
	if err != nil {
		return nil, err
	}
	data := get(len(b))[:len(b):len(b)]
	copy(data, b)
	return data, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return newError(http.StatusBadRequest, CodeBadRequest, "multipart body: "+err.Error())
}

// checkCount applies the per-request item limit.
func (s *Server) checkCount(what string, n int) error {
	if n > s.opts.MaxImages {
		return fmt.Errorf("%w: %d %s, the limit is %d per request", errTooMany, n, what, s.opts.MaxImages)
	}
	return nil
}

// checkPrompt applies the prompt limit, and refuses text that is not UTF-8
// (the tokenizer would read other text than the client meant).
func (s *Server) checkPrompt(p string) error {
	if !utf8.ValidString(p) {
		return newError(http.StatusBadRequest, CodeBadRequest, "the prompt is not valid UTF-8 text")
	}
	if len(p) > s.opts.MaxPromptBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", text.ErrPromptTooLong, len(p), s.opts.MaxPromptBytes)
	}
	return nil
}

// merge puts the server's own per-image errors (bad base64) over the
// service's.
func merge(pre []error, i int, err error) error {
	if i < len(pre) && pre[i] != nil {
		return pre[i]
	}
	return err
}

// toScores is one image's scores (named by the registry's outputs, in
// registry order: ict, hp, hp_logit, imagereward, ...), or its error.
func toScores(sc scoring.Scores, err error) api.Scores {
	if err != nil {
		return api.Scores{Error: itemError(err)}
	}
	out := api.Scores{Values: make([]api.Score, len(sc.Values))}
	for i, v := range sc.Values {
		out.Values[i] = api.Score{Name: v.Name, Value: v.Value}
	}
	return out
}

func (s *Server) score(c *gin.Context) {
	var req api.ScoreRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if !in.json {
		if p, ok := in.field("prompt"); ok {
			req.Prompt = &p
		}
		for _, m := range in.fields["models"] {
			for _, name := range strings.Split(m, ",") {
				if name = strings.TrimSpace(name); name != "" {
					req.Models = append(req.Models, name)
				}
			}
		}
	} else {
		if err := s.requiredImages(in, req.Images); err != nil {
			s.fail(c, err)
			return
		}
	}
	if req.Prompt != nil {
		if err := s.checkPrompt(*req.Prompt); err != nil {
			s.fail(c, err)
			return
		}
	}
	c.Set(keyItems, len(in.images))
	res, err := s.svc.Score(c.Request.Context(), scoring.ScoreRequest{Prompt: req.Prompt, Images: in.images, Models: req.Models})
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]api.Scores, len(res.Scores))
	errs := make([]error, len(res.Scores))
	for i, sc := range res.Scores {
		errs[i] = merge(in.errs, i, sc.Err)
		out[i] = toScores(sc, errs[i])
	}
	if err := allFailed(errs); err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, api.ScoreResponse{Scores: out, Models: res.Versions})
}

// requiredImages decodes a JSON request's "images" into in, which score and
// rank require: absent is a bad request, then the count and image limits.
func (s *Server) requiredImages(in *input, images []api.Image) error {
	if images == nil {
		return newError(http.StatusBadRequest, CodeBadRequest, `the request needs "images": [BASE64, ...]`)
	}
	if err := s.checkCount("images", len(images)); err != nil {
		return err
	}
	return in.decodeImages(images, s.opts.MaxImages)
}

func (s *Server) rank(c *gin.Context) {
	var req api.RankRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if in.json {
		if err := s.requiredImages(in, req.Images); err != nil {
			s.fail(c, err)
			return
		}
	} else if p, ok := in.field("prompt"); ok {
		req.Prompt = &p
	}
	if need := promptModels(s.svc.Specs()); req.Prompt == nil && need != "" {
		s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, `ranking needs a "prompt" (the `+need+` model scores against it)`))
		return
	}
	prompt := ""
	if req.Prompt != nil {
		prompt = *req.Prompt
		if err := s.checkPrompt(prompt); err != nil {
			s.fail(c, err)
			return
		}
	}
	// Images that failed base64 decoding are still passed (with no bytes)
	// so that indices stay those of the request; they fail to decode.
	c.Set(keyItems, len(in.images))
	res, err := s.svc.Rank(c.Request.Context(), prompt, in.images)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]api.Ranked, 0, len(res.Ranking))
	errs := make([]error, len(in.images))
	var failed []api.Ranked
	for _, r := range res.Ranking {
		err := merge(in.errs, r.Index, r.Err)
		errs[r.Index] = err
		j := api.Ranked{Index: r.Index, Scores: toScores(r.Scores, err), ICTHP: r.ICTHP}
		if err != nil {
			j.ICTHP = nil
			failed = append(failed, j)
			continue
		}
		out = append(out, j)
	}
	if err := allFailed(errs); err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, api.RankResponse{Ranking: append(out, failed...), Models: res.Versions})
}

func (s *Server) reward(c *gin.Context) {
	var req api.RewardRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	var prompts []string
	if in.json {
		prompts, err = s.rewardItems(in, req.Items)
	} else {
		prompts, err = rewardFormPrompts(in)
		req.Reward, _ = in.field("reward")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	comb, err := combination(req.Reward, req.Weights)
	if err != nil {
		s.fail(c, err)
		return
	}
	items := make([]scoring.RewardItem, len(prompts))
	for i, p := range prompts {
		if err := s.checkPrompt(p); err != nil {
			s.fail(c, fmt.Errorf("item %d: %w", i, err))
			return
		}
		items[i] = scoring.RewardItem{Prompt: p, Image: in.images[i]}
	}
	c.Set(keyItems, len(items))
	res, err := s.svc.Reward(c.Request.Context(), items, comb)
	if err != nil {
		s.fail(c, err)
		return
	}
	body, errs := rewardBody(res, s.svc.Specs(), in.errs)
	if err := allFailed(errs); err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, body)
}

// rewardItems checks a JSON request's items and decodes their images into
// in; it returns the prompts.
func (s *Server) rewardItems(in *input, items []api.RewardItem) ([]string, error) {
	if items == nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, `the request needs "items": [{"prompt": STR, "image": BASE64}, ...]`)
	}
	if err := s.checkCount("items", len(items)); err != nil {
		return nil, err
	}
	prompts := make([]string, 0, len(items))
	imgs := make([]api.Image, len(items))
	for i, it := range items {
		if it.Prompt == nil {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("item %d has no \"prompt\"", i))
		}
		if n, err := imageCount(it.Image); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		} else if n != 1 {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("item %d: a reward item's image is one image (a raw tensor of shape [H, W, 3])", i))
		}
		prompts = append(prompts, *it.Prompt)
		imgs[i] = it.Image
	}
	return prompts, in.decodeImages(imgs, s.opts.MaxImages)
}

// rewardFormPrompts reads a multipart reward's prompts: one "prompt" field
// for every image, or one per image in order.
func rewardFormPrompts(in *input) ([]string, error) {
	ps := in.fields["prompt"]
	switch {
	case len(ps) == 1:
		prompts := make([]string, len(in.images))
		for i := range prompts {
			prompts[i] = ps[0]
		}
		return prompts, nil
	case len(ps) == len(in.images):
		return ps, nil
	}
	return nil, newError(http.StatusBadRequest, CodeBadRequest,
		fmt.Sprintf("multipart reward: %d prompt fields for %d images (send one, or one per image)", len(ps), len(in.images)))
}

// rewardBody encodes the service's answer: a column per output of each
// model that ran (in registry order), a null reward and an entry in errors
// for each failed item (the server's own per-image errors, pre, over the
// service's).
func rewardBody(res *scoring.RewardResponse, specs []scorer.Spec, pre []error) (api.RewardResponse, []error) {
	n := len(res.Scores)
	body := api.RewardResponse{Rewards: res.Rewards, Models: res.Versions}
	for _, sp := range specs {
		if _, ok := res.Versions[sp.Name]; ok {
			for _, o := range sp.Outputs {
				body.Columns = append(body.Columns, api.Column{Name: o.Name, Values: make([]*float64, n)})
			}
		}
	}
	errs := make([]error, n)
	for i, sc := range res.Scores {
		errs[i] = merge(pre, i, sc.Err)
		if errs[i] != nil {
			res.Rewards[i] = nil
			body.Errors = append(body.Errors, api.ItemError{Index: i, ErrorBody: *itemError(errs[i])})
			continue
		}
		for _, col := range body.Columns {
			col.Values[i] = sc.Get(col.Name)
		}
	}
	return body, errs
}

// promptModels names the loaded models that need a prompt ("" for none).
func promptModels(specs []scorer.Spec) string {
	var names []string
	for _, sp := range specs {
		if sp.Prompt {
			names = append(names, sp.Name)
		}
	}
	return strings.Join(names, " and ")
}

// combination reads a request's reward combination; nil means the
// server's default.
func combination(name string, weights map[string]float64) (*scoring.Combination, error) {
	if name == "" && weights == nil {
		return nil, nil
	}
	if weights != nil {
		if name != "" && name != "weighted" {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("reward %q with weights: weights go with \"weighted\"", name))
		}
		comb := scoring.Combination{Kind: "weighted", Weights: weights}
		if err := comb.Validate(); err != nil {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, err.Error())
		}
		return &comb, nil
	}
	comb, err := scoring.ParseCombination(name)
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	return &comb, nil
}

func (s *Server) embed(c *gin.Context) {
	var req api.EmbedRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if in.json {
		if err := in.decodeImages(req.Images, s.opts.MaxImages); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		req.Texts = in.fields["texts"]
	}
	if len(req.Texts) == 0 && len(in.images) == 0 {
		s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, `the request needs "texts": [STR, ...] and/or "images": [BASE64, ...]`))
		return
	}
	for _, n := range []int{len(req.Texts), len(in.images)} {
		if err := s.checkCount("inputs", n); err != nil {
			s.fail(c, err)
			return
		}
	}
	for i, t := range req.Texts {
		if err := s.checkPrompt(t); err != nil {
			s.fail(c, fmt.Errorf("text %d: %w", i, err))
			return
		}
	}
	c.Set(keyItems, len(req.Texts)+len(in.images))
	ctx := c.Request.Context()
	body := api.EmbedResponse{Models: s.svc.Versions()}
	if len(req.Texts) > 0 {
		emb, err := s.svc.EmbedTexts(ctx, req.Texts)
		if err != nil {
			s.fail(c, err)
			return
		}
		body.TextEmbeddings = emb
	}
	if len(in.images) > 0 {
		emb, errs, err := s.svc.EmbedImages(ctx, in.images)
		if err != nil {
			s.fail(c, err)
			return
		}
		for i := range emb {
			if e := merge(in.errs, i, errs[i]); e != nil {
				errs[i], emb[i] = e, nil
				body.Errors = append(body.Errors, api.ItemError{Index: i, ErrorBody: *itemError(e)})
			}
		}
		if err := allFailed(errs); err != nil && len(req.Texts) == 0 {
			s.fail(c, err)
			return
		}
		body.ImageEmbeddings = emb
	}
	s.writeJSON(c, http.StatusOK, body)
}
