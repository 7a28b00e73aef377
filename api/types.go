// Package api is the wire format of icthp's HTTP API (SPEC §4) as Go types,
// and a Go client for it (Client). The server decodes its requests into
// these types and encodes its answers from them, so the two cannot drift
// apart; the field order of the answers is alphabetical where the server used
// to write maps, so that the bytes on the wire stay what they were.
//
// Requests are decoded strictly (UnmarshalStrict): keys must match exactly
// (encoding/json alone matches them case-insensitively), unknown keys are
// refused, the body must be valid UTF-8 with no lone surrogate escapes.
package api

import (
	"encoding/json"
	"time"
)

// Routes, relative to the server's base URL.
const (
	PathScore   = "/v1/score"
	PathRank    = "/v1/rank"
	PathReward  = "/v1/reward"
	PathEmbed   = "/v1/embed"
	PathModels  = "/v1/models"
	PathJobs    = "/v1/jobs"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// Content types the server accepts on its POST routes.
const (
	ContentTypeJSON      = "application/json"
	ContentTypeMultipart = "multipart/form-data"
	// ContentTypeTensor is the compact binary body for raw pixels: one line
	// of JSON (the route's request without its images, plus "shape" and
	// "dtype" of the pixels), a '\n', then exactly B×H×W×3 bytes of packed
	// uint8 RGB (row-major, HWC). For /v1/reward the header may carry
	// "prompts" (one per image) or "prompt" (one for all) instead of
	// "items".
	ContentTypeTensor = "application/x-icthp-tensor"
)

// Headers with a meaning to the server.
const (
	// TimeoutHeader shortens a request's deadline: a Go duration ("1.5s",
	// "250ms") or a number of seconds. It cannot lengthen the server's.
	TimeoutHeader = "X-Request-Timeout"
	// RequestIDHeader carries the request id: taken from the request when
	// it is a sane token, else made up; always returned.
	RequestIDHeader = "X-Request-Id"
	// IdempotencyKeyHeader makes POST /v1/jobs idempotent.
	IdempotencyKeyHeader = "Idempotency-Key"
)

// Model names of the first models, as in requests' "models" and answers'
// "models" maps. The server's registry has more (pickscore, clipscore,
// clipscore100, hpsv2, aesthetic, ...); GET /v1/models lists those loaded.
const (
	ModelICT         = "ict"
	ModelHP          = "hp"
	ModelImageReward = "imagereward"
)

// ScoreRequest is the body of POST /v1/score. Without a prompt only the
// image-only models (hp, aesthetic) run.
type ScoreRequest struct {
	Prompt *string  `json:"prompt,omitempty"`
	Images []Image  `json:"images"`
	Models []string `json:"models,omitempty"` // narrows the models by registry name; empty: all loaded
}

// Scores (one image's results, or its error), Ranked and RewardResponse
// are in scores.go: their members are named by the server's model registry,
// so they are lists, not fields.

// ScoreResponse answers POST /v1/score: one Scores per image, in order, and
// the version of each model that ran.
type ScoreResponse struct {
	Models map[string]string `json:"models"`
	Scores []Scores          `json:"scores"`
}

// RankRequest is the body of POST /v1/rank.
type RankRequest struct {
	Prompt *string `json:"prompt,omitempty"`
	Images []Image `json:"images"`
}

// RankResponse answers POST /v1/rank: best first, failed images last.
type RankResponse struct {
	Models  map[string]string `json:"models"`
	Ranking []Ranked          `json:"ranking"`
}

// RewardItem is one (prompt, image) pair of a reward request. Prompt is
// required (a pointer so that a missing one is told from "").
type RewardItem struct {
	Prompt *string `json:"prompt"`
	Image  Image   `json:"image"`
}

// RewardRequest is the body of POST /v1/reward. Reward names the
// combination (product, ict, hp, imagereward, weighted:NAME=W,...); Weights
// is the other way to ask for a weighted sum. Neither: the server's default.
type RewardRequest struct {
	Items   []RewardItem       `json:"items"`
	Reward  string             `json:"reward,omitempty"`
	Weights map[string]float64 `json:"weights,omitempty"`
}

// ItemError is the error of one item of a reward or embed request.
type ItemError struct {
	Index int `json:"index"`
	ErrorBody
}

// EmbedRequest is the body of POST /v1/embed: texts and/or images.
type EmbedRequest struct {
	Texts  []string `json:"texts,omitempty"`
	Images []Image  `json:"images,omitempty"`
}

// EmbedResponse answers POST /v1/embed with L2-normalised embeddings (nil
// for an image that failed, with its entry in Errors).
type EmbedResponse struct {
	Errors          []ItemError       `json:"errors,omitempty"`
	ImageEmbeddings [][]float32       `json:"image_embeddings,omitzero"`
	Models          map[string]string `json:"models"`
	TextEmbeddings  [][]float32       `json:"text_embeddings,omitzero"`
}

// ModelInfo describes one loaded model.
type ModelInfo struct {
	Name         string `json:"name"` // the registry name: ict, hp, imagereward, pickscore, ...
	Version      string `json:"version"`
	Kind         string `json:"kind,omitempty"`
	Provider     string `json:"provider,omitempty"` // cpu, cuda, tensorrt
	Device       string `json:"device,omitempty"`   // cpu, cuda:0, ...
	EmbeddingDim int    `json:"embedding_dim,omitempty"`
	Precision    string `json:"precision,omitempty"` // float32, float16, int8
	MaxBatch     int    `json:"max_batch,omitempty"`
	// Scores are the score names the model gives, in response order: the
	// names of its columns in /v1/score, /v1/reward and batch, and what
	// /v1/reward's weights take.
	Scores []string `json:"scores,omitempty"`
	// Formula is how the model makes its score from its outputs (the zoo
	// models: PickScore, CLIPScore, HPSv2, aesthetic); absent for a model
	// whose manifest records none.
	Formula *ModelFormula `json:"formula,omitempty"`
	// Source is what the model directory was converted from (the
	// manifest's "source": checkpoint and format, or the random preset and
	// seed), file paths reduced to their base names.
	Source map[string]any `json:"source,omitempty"`
	// Dir is the model directory on the server; never sent.
	Dir string `json:"-"`
}

// ModelFormula is a model's formula: its name, the formula in words and
// the original code it transcribes.
type ModelFormula struct {
	Name        string `json:"name"` // pickscore, clipscore, clipscore-100, hpsv2, aesthetic
	Description string `json:"description"`
	Reference   string `json:"reference,omitempty"`
}

// ModelsResponse answers GET /v1/models.
type ModelsResponse struct {
	Models []ModelInfo `json:"models"`
}

// StatusResponse answers GET /healthz ("ok") and GET /readyz ("ready",
// with the models' versions).
type StatusResponse struct {
	Models map[string]string `json:"models,omitempty"`
	Status string            `json:"status"`
}

// Job states.
const (
	JobPending = "pending"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Job answers POST /v1/jobs and GET /v1/jobs/{id}: pending, or done/failed
// with the route's answer in Result and its HTTP status in HTTPStatus.
type Job struct {
	ID         string          `json:"id"`
	Route      string          `json:"route"`
	Status     string          `json:"status"`
	HTTPStatus int             `json:"http_status,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Created    time.Time       `json:"created"`
	Finished   *time.Time      `json:"finished,omitempty"`
}

// String returns a pointer to s, for the optional prompts of requests.
func String(s string) *string { return &s }
