package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

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

// decode reads the body into dst (JSON) or into the input's fields and
// images (multipart/form-data).
func (s *Server) decode(c *gin.Context, dst any) (*input, error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes)
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if c.GetHeader("Content-Type") == "" {
		mt, err = "application/json", nil
	}
	switch {
	case err != nil:
		return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "bad Content-Type: "+err.Error())
	case mt == "multipart/form-data":
		return s.decodeMultipart(c)
	case mt == TensorContentType:
		return s.decodeTensorBody(c, dst) // raw.go
	case mt == "application/json" || mt == "text/plain" || mt == "application/x-www-form-urlencoded":
		// curl -d sends the last two by default; the body must still be JSON.
		dec := json.NewDecoder(c.Request.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return nil, jsonError(err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, newError(http.StatusBadRequest, CodeBadRequest, "the body has data after its JSON object")
		}
		return &input{json: true}, nil
	}
	return nil, newError(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
		fmt.Sprintf("Content-Type %q: send application/json, multipart/form-data or "+TensorContentType, mt))
}

func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", se, se.Offset))
	case errors.As(err, &te):
		return newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("field %q: want %v, got a JSON %s", te.Field, te.Type, te.Value))
	case errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, CodeBadRequest, "the body is empty: send a JSON object")
	}
	return newError(http.StatusBadRequest, CodeBadRequest, "the body is not a valid request: "+err.Error())
}

// decodeMultipart streams the parts: a part with a file name, or named
// "images"/"image", is an image; any other is a form field.
func (s *Server) decodeMultipart(c *gin.Context) (*input, error) {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeBadRequest, "multipart body: "+err.Error())
	}
	in := &input{fields: map[string][]string{}}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return in, nil
		}
		if err != nil {
			return nil, multipartError(err)
		}
		data, err := io.ReadAll(p)
		p.Close()
		if err != nil {
			return nil, multipartError(err)
		}
		name := p.FormName()
		if p.FileName() != "" || name == "images" || name == "image" {
			if len(in.images) == s.opts.MaxImages {
				return nil, fmt.Errorf("%w: more than %d images in one request", errTooMany, s.opts.MaxImages)
			}
			in.images = append(in.images, scoring.Image{Data: data})
			in.errs = append(in.errs, nil)
			continue
		}
		in.fields[name] = append(in.fields[name], string(data))
	}
}

func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return newError(http.StatusBadRequest, CodeBadRequest, "multipart body: "+err.Error())
}

func decodeBase64(s string) ([]byte, error) {
	if strings.HasPrefix(s, "data:") {
		comma := strings.IndexByte(s, ',')
		if comma < 0 || !strings.HasSuffix(s[:comma], ";base64") {
			return nil, fmt.Errorf("%w: a data: URL must be base64 (data:image/png;base64,...)", errBadBase64)
		}
		s = s[comma+1:]
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errBadBase64
}

// checkCount applies the per-request item limit.
func (s *Server) checkCount(what string, n int) error {
	if n > s.opts.MaxImages {
		return fmt.Errorf("%w: %d %s, the limit is %d per request", errTooMany, n, what, s.opts.MaxImages)
	}
	return nil
}

func (s *Server) checkPrompt(p string) error {
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

// scoreJSON is one image's scores (named by the registry's outputs, in
// registry order: ict, hp, hp_logit, imagereward, ...), or its error.
type scoreJSON struct {
	Values []scoring.Score
	Error  *errorJSON
}

func toScoreJSON(sc scoring.Scores, err error) scoreJSON {
	if err != nil {
		return scoreJSON{Error: itemError(err)}
	}
	return scoreJSON{Values: sc.Values}
}

// appendFields writes the object's members, without braces, after a comma
// when b already holds members.
func (s scoreJSON) appendFields(b []byte) ([]byte, error) {
	add := func(name string, v any) error {
		if len(b) > 0 && b[len(b)-1] != '{' {
			b = append(b, ',')
		}
		k, err := json.Marshal(name)
		if err != nil {
			return err
		}
		val, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(append(append(b, k...), ':'), val...)
		return nil
	}
	for _, v := range s.Values {
		if err := add(v.Name, v.Value); err != nil {
			return nil, err
		}
	}
	if s.Error != nil {
		if err := add("error", s.Error); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// MarshalJSON writes the scores in registry order (a map would sort them).
func (s scoreJSON) MarshalJSON() ([]byte, error) {
	b, err := s.appendFields([]byte{'{'})
	return append(b, '}'), err
}

type scoreRequest struct {
	Prompt *string     `json:"prompt"`
	Images []imageJSON `json:"images"`
	Models []string    `json:"models"`
}

func (s *Server) score(c *gin.Context) {
	var req scoreRequest
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
		if req.Images == nil {
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, `the request needs "images": [BASE64, ...]`))
			return
		}
		if err := s.checkCount("images", len(req.Images)); err != nil {
			s.fail(c, err)
			return
		}
		if err := in.decodeImages(req.Images, s.opts.MaxImages); err != nil {
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
	out := make([]scoreJSON, len(res.Scores))
	errs := make([]error, len(res.Scores))
	for i, sc := range res.Scores {
		errs[i] = merge(in.errs, i, sc.Err)
		out[i] = toScoreJSON(sc, errs[i])
	}
	if err := allFailed(errs); err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSON(c, http.StatusOK, gin.H{"scores": out, "models": res.Versions})
}

type rankRequest struct {
	Prompt *string     `json:"prompt"`
	Images []imageJSON `json:"images"`
}

type rankedJSON struct {
	Index int
	scoreJSON
	ICTHP *float64
}

// MarshalJSON writes index, the scores, then ict_hp.
func (r rankedJSON) MarshalJSON() ([]byte, error) {
	b, err := r.scoreJSON.appendFields(strconv.AppendInt([]byte(`{"index":`), int64(r.Index), 10))
	if err != nil {
		return nil, err
	}
	if r.ICTHP != nil {
		v, err := json.Marshal(*r.ICTHP)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"ict_hp":`...), v...)
	}
	return append(b, '}'), nil
}

func (s *Server) rank(c *gin.Context) {
	var req rankRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	if in.json {
		if req.Images == nil {
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, `the request needs "images": [BASE64, ...]`))
			return
		}
		if err := s.checkCount("images", len(req.Images)); err != nil {
			s.fail(c, err)
			return
		}
		if err := in.decodeImages(req.Images, s.opts.MaxImages); err != nil {
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
	out := make([]rankedJSON, 0, len(res.Ranking))
	errs := make([]error, len(in.images))
	var failed []rankedJSON
	for _, r := range res.Ranking {
		err := merge(in.errs, r.Index, r.Err)
		errs[r.Index] = err
		j := rankedJSON{Index: r.Index, scoreJSON: toScoreJSON(r.Scores, err), ICTHP: r.ICTHP}
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
	s.writeJSON(c, http.StatusOK, gin.H{"ranking": append(out, failed...), "models": res.Versions})
}

type rewardItem struct {
	Prompt *string   `json:"prompt"`
	Image  imageJSON `json:"image"`
}

type rewardRequest struct {
	Items []rewardItem `json:"items"`
	// Reward names the combination: product, ict, hp, imagereward, or
	// weighted:NAME=W,...; Weights is the other way to ask for a weighted
	// sum.
	Reward  string             `json:"reward"`
	Weights map[string]float64 `json:"weights"`
}

type itemErrorJSON struct {
	Index int `json:"index"`
	errorJSON
}

func (s *Server) reward(c *gin.Context) {
	var req rewardRequest
	in, err := s.decode(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	var prompts []string
	if in.json {
		if req.Items == nil {
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, `the request needs "items": [{"prompt": STR, "image": BASE64}, ...]`))
			return
		}
		if err := s.checkCount("items", len(req.Items)); err != nil {
			s.fail(c, err)
			return
		}
		b64 := make([]imageJSON, len(req.Items))
		for i, it := range req.Items {
			if it.Prompt == nil {
				s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("item %d has no \"prompt\"", i)))
				return
			}
			if it.Image.count() != 1 {
				s.fail(c, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("item %d: a reward item's image is one image (a raw tensor of shape [H, W, 3])", i)))
				return
			}
			prompts = append(prompts, *it.Prompt)
			b64[i] = it.Image
		}
		if err := in.decodeImages(b64, s.opts.MaxImages); err != nil {
			s.fail(c, err)
			return
		}
	} else {
		// Multipart: one "prompt" field for every image, or one per image
		// in order.
		ps := in.fields["prompt"]
		switch {
		case len(ps) == 1:
			for range in.images {
				prompts = append(prompts, ps[0])
			}
		case len(ps) == len(in.images):
			prompts = ps
		default:
			s.fail(c, newError(http.StatusBadRequest, CodeBadRequest,
				fmt.Sprintf("multipart reward: %d prompt fields for %d images (send one, or one per image)", len(ps), len(in.images))))
			return
		}
		req.Reward, _ = in.field("reward")
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
	body := gin.H{"rewards": res.Rewards, "models": res.Versions}
	cols := map[string][]*float64{}
	for _, sp := range s.svc.Specs() {
		if _, ok := res.Versions[sp.Name]; ok {
			for _, o := range sp.Outputs {
				cols[o.Name] = make([]*float64, len(items))
			}
		}
	}
	var failed []itemErrorJSON
	errs := make([]error, len(items))
	for i, sc := range res.Scores {
		errs[i] = merge(in.errs, i, sc.Err)
		if errs[i] != nil {
			res.Rewards[i] = nil
			failed = append(failed, itemErrorJSON{Index: i, errorJSON: *itemError(errs[i])})
			continue
		}
		for name, col := range cols {
			col[i] = sc.Get(name)
		}
	}
	if err := allFailed(errs); err != nil {
		s.fail(c, err)
		return
	}
	for name, col := range cols {
		body[name] = col
	}
	if len(failed) > 0 {
		body["errors"] = failed
	}
	s.writeJSON(c, http.StatusOK, body)
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

type embedRequest struct {
	Texts  []string    `json:"texts"`
	Images []imageJSON `json:"images"`
}

func (s *Server) embed(c *gin.Context) {
	var req embedRequest
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
	body := gin.H{"models": s.svc.Versions()}
	if len(req.Texts) > 0 {
		emb, err := s.svc.EmbedTexts(ctx, req.Texts)
		if err != nil {
			s.fail(c, err)
			return
		}
		body["text_embeddings"] = emb
	}
	if len(in.images) > 0 {
		emb, errs, err := s.svc.EmbedImages(ctx, in.images)
		if err != nil {
			s.fail(c, err)
			return
		}
		var failed []itemErrorJSON
		for i := range emb {
			if e := merge(in.errs, i, errs[i]); e != nil {
				errs[i], emb[i] = e, nil
				failed = append(failed, itemErrorJSON{Index: i, errorJSON: *itemError(e)})
			}
		}
		if err := allFailed(errs); err != nil && len(req.Texts) == 0 {
			s.fail(c, err)
			return
		}
		body["image_embeddings"] = emb
		if len(failed) > 0 {
			body["errors"] = failed
		}
	}
	s.writeJSON(c, http.StatusOK, body)
}
