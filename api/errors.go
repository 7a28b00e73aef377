package api

import (
	"fmt"
	"time"
)

// Error codes of the error body {"error": {"code", "message"}}, with their
// status.
const (
	CodeBadRequest       = "bad_request"            // 400
	CodeBadBase64        = "bad_base64"             // 400, per image
	CodePromptTooLong    = "prompt_too_long"        // 400
	CodeUnauthorized     = "unauthorized"           // 401
	CodeForbidden        = "forbidden"              // 403
	CodeNotFound         = "not_found"              // 404
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeConflict         = "conflict"               // 409: an idempotency key reused with another request
	CodeTooLarge         = "too_large"              // 413: body, image bytes or pixels
	CodeTooManyItems     = "too_many_items"         // 413: images, items or texts per request
	CodeUnsupportedMedia = "unsupported_media_type" // 415: not JSON, multipart or a tensor body
	CodeUnsupportedImage = "unsupported_image"      // 415, per image
	CodeUndecodable      = "undecodable_image"      // 422, per image
	CodeRewardOverflow   = "reward_overflow"        // 422: a weighted reward is not a finite number
	CodeOverloaded       = "overloaded"             // 429 with Retry-After
	CodeCanceled         = "canceled"               // 499: the client went away (logged only)
	CodeInternal         = "internal"               // 500
	CodeNotReady         = "not_ready"              // 503: warming up
	CodeDraining         = "draining"               // 503 with Retry-After: shutting down
	CodeOutOfMemory      = "out_of_memory"          // 503 with Retry-After: one item did not fit in GPU memory
	CodeDeadline         = "deadline_exceeded"      // 504
)

// ErrorBody is the error of SPEC §4: {"code", "message"}; also used per
// item.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// Error is an error answer as the client sees it: the HTTP status, the
// body's code and message, the Retry-After the server asked for (429, 503)
// and the request id. Check it with errors.As.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // 0 when the answer had no Retry-After
	RequestID  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("icthp: %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether the same request may succeed later (429, 503).
func (e *Error) Temporary() bool { return e.Status == 429 || e.Status == 503 }
