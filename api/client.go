package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls an icthp server. Its zero value is not usable: make it with
// NewClient. Methods are safe for concurrent use; each takes a context that
// bounds the call. An error answer is returned as *Error.
type Client struct {
	base string
	// HTTP sends the requests (http.DefaultClient when nil).
	HTTP *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// Timeout, when positive, is sent as TimeoutHeader: the server's
	// deadline for each request.
	Timeout time.Duration
}

// NewClient makes a client of the server at base, an http or https URL
// with an optional path prefix (requests go to base + "/v1/...").
func NewClient(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("icthp: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("icthp: base URL %q: want http(s)://HOST[:PORT][/PREFIX]", base)
	}
	return &Client{base: strings.TrimRight(u.String(), "/")}, nil
}

// URL is the absolute URL of path on the server.
func (c *Client) URL(path string) string { return c.base + path }

// Score calls POST /v1/score.
func (c *Client) Score(ctx context.Context, req *ScoreRequest) (*ScoreResponse, error) {
	return post[ScoreResponse](ctx, c, PathScore, req)
}

// Rank calls POST /v1/rank.
func (c *Client) Rank(ctx context.Context, req *RankRequest) (*RankResponse, error) {
	return post[RankResponse](ctx, c, PathRank, req)
}

// Reward calls POST /v1/reward.
func (c *Client) Reward(ctx context.Context, req *RewardRequest) (*RewardResponse, error) {
	return post[RewardResponse](ctx, c, PathReward, req)
}

// Embed calls POST /v1/embed.
func (c *Client) Embed(ctx context.Context, req *EmbedRequest) (*EmbedResponse, error) {
	return post[EmbedResponse](ctx, c, PathEmbed, req)
}

// post sends req as JSON to path and decodes the answer into a new Resp.
func post[Resp any](ctx context.Context, c *Client, path string, req any) (*Resp, error) {
	var out Resp
	return &out, c.postJSON(ctx, path, req, &out)
}

// Models calls GET /v1/models.
func (c *Client) Models(ctx context.Context) (*ModelsResponse, error) {
	var out ModelsResponse
	return &out, c.Do(ctx, http.MethodGet, PathModels, "", nil, nil, &out)
}

// Health calls GET /healthz.
func (c *Client) Health(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	return &out, c.Do(ctx, http.MethodGet, PathHealthz, "", nil, nil, &out)
}

// Ready calls GET /readyz: an *Error with status 503 while the server warms
// up or drains.
func (c *Client) Ready(ctx context.Context) (*StatusResponse, error) {
	var out StatusResponse
	return &out, c.Do(ctx, http.MethodGet, PathReadyz, "", nil, nil, &out)
}

// SubmitJob calls POST /v1/jobs?route=ROUTE (score, rank, reward or embed)
// with body as that route's JSON request; a non-empty idempotencyKey is sent
// as IdempotencyKeyHeader.
func (c *Client) SubmitJob(ctx context.Context, route string, body any, idempotencyKey string) (*Job, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("icthp: encoding the request: %w", err)
	}
	var hdr http.Header
	if idempotencyKey != "" {
		hdr = http.Header{IdempotencyKeyHeader: {idempotencyKey}}
	}
	var out Job
	return &out, c.Do(ctx, http.MethodPost, PathJobs+"?route="+url.QueryEscape(route), ContentTypeJSON, bytes.NewReader(b), hdr, &out)
}

// Job calls GET /v1/jobs/{id}.
func (c *Client) Job(ctx context.Context, id string) (*Job, error) {
	var out Job
	return &out, c.Do(ctx, http.MethodGet, PathJobs+"/"+url.PathEscape(id), "", nil, nil, &out)
}

func (c *Client) postJSON(ctx context.Context, path string, req, out any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("icthp: encoding the request: %w", err)
	}
	return c.Do(ctx, http.MethodPost, path, ContentTypeJSON, bytes.NewReader(b), nil, out)
}

// Do sends one request (body of contentType, when not nil) and decodes a
// 2xx answer into out (when not nil; the answer must then be JSON). Any
// other status is returned as *Error; a failure to send or read, wrapped.
// Use it for the multipart and tensor bodies, or to send pre-built bytes.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body io.Reader, hdr http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("icthp: %w", err)
	}
	if l, ok := body.(interface{ Len() int }); ok && req.ContentLength == 0 && l.Len() > 0 {
		// A body of known length other than net/http's three (e.g. a
		// tensor body read from its parts) goes with a Content-Length,
		// not chunked.
		req.ContentLength = int64(l.Len())
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", ContentTypeJSON)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Timeout > 0 {
		req.Header.Set(TimeoutHeader, c.Timeout.String())
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("icthp: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readError(resp)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("icthp: %s %s: reading the answer: %w", method, path, err)
	}
	// Read to the end, so that the connection is reused.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	return err
}

// readError turns an error answer into *Error; a body that is not the error
// JSON still gives the status (and the start of the body as the message).
func readError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get(RequestIDHeader),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body ErrorResponse
	if err := json.Unmarshal(raw, &body); err == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	return e
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IsStatus reports whether err is an *Error with that status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}
