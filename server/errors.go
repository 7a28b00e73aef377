package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/icthp/icthp/api"
	"github.com/icthp/icthp/models"
	"github.com/icthp/icthp/preprocess"
	"github.com/icthp/icthp/preprocess/text"
	"github.com/icthp/icthp/scoring"
)

// Error codes of the error body {"error": {"code", "message"}} (api.Code*);
// openapi.json lists them with their status.
const (
	CodeBadRequest       = api.CodeBadRequest
	CodeBadBase64        = api.CodeBadBase64
	CodePromptTooLong    = api.CodePromptTooLong
	CodeUnauthorized     = api.CodeUnauthorized
	CodeForbidden        = api.CodeForbidden
	CodeNotFound         = api.CodeNotFound
	CodeMethodNotAllowed = api.CodeMethodNotAllowed
	CodeTooLarge         = api.CodeTooLarge
	CodeTooManyItems     = api.CodeTooManyItems
	CodeUnsupportedMedia = api.CodeUnsupportedMedia
	CodeUnsupportedImage = api.CodeUnsupportedImage
	CodeUndecodable      = api.CodeUndecodable
	CodeRewardOverflow   = api.CodeRewardOverflow
	CodeOverloaded       = api.CodeOverloaded
	CodeCanceled         = api.CodeCanceled
	CodeInternal         = api.CodeInternal
	CodeNotReady         = api.CodeNotReady
	CodeDraining         = api.CodeDraining
	CodeOutOfMemory      = api.CodeOutOfMemory
	CodeDeadline         = api.CodeDeadline
)

// statusClientClosed is the status logged (never seen by the client) when
// the client left before the answer.
const statusClientClosed = 499

// apiError is an error with its status and code decided.
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter time.Duration // sets Retry-After when > 0
	reason     string        // label of icthp_http_rejected_total; code when empty
	detail     string        // logged, never sent: what an internal error was
}

func (e *apiError) Error() string { return e.msg }

func newError(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// Errors the server itself makes (the others are typed at their source).
var (
	errBadBase64 = api.ErrBadBase64
	errTooMany   = errors.New("too many items")
)

// callerErrors are the typed errors of a bad request whose text goes to
// the client as it is, in the order classify tries them.
var callerErrors = []struct {
	err    error
	status int
	code   string
}{
	{preprocess.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{errTooMany, http.StatusRequestEntityTooLarge, CodeTooManyItems},
	{preprocess.ErrUnsupportedFormat, http.StatusUnsupportedMediaType, CodeUnsupportedImage},
	{preprocess.ErrUndecodable, http.StatusUnprocessableEntity, CodeUndecodable},
	{errBadBase64, http.StatusBadRequest, CodeBadBase64},
	{text.ErrPromptTooLong, http.StatusBadRequest, CodePromptTooLong},
	{scoring.ErrOverflow, http.StatusUnprocessableEntity, CodeRewardOverflow},
	{scoring.ErrBadRequest, http.StatusBadRequest, CodeBadRequest},
}

// classify maps an error to its status and code: the one place where typed
// errors from preprocess, models and scoring become HTTP.
func classify(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	var oe *models.OverloadError
	if errors.As(err, &ae) {
		return ae
	}
	if errors.As(err, &mbe) {
		return newError(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over the limit of "+strconv.FormatInt(mbe.Limit, 10)+" bytes")
	}
	for _, ce := range callerErrors {
		if errors.Is(err, ce.err) {
			return newError(ce.status, ce.code, err.Error())
		}
	}
	switch {
	case errors.As(err, &oe):
		e := newError(http.StatusTooManyRequests, CodeOverloaded, err.Error())
		e.retryAfter, e.reason = max(oe.RetryAfter, time.Second), oe.Reason
		return e
	case errors.Is(err, models.ErrClosed):
		e := newError(http.StatusServiceUnavailable, CodeDraining, "the server is shutting down")
		e.retryAfter = time.Second
		return e
	case errors.Is(err, models.ErrOutOfMemory):
		// The batch was split down to single items and still did not fit:
		// memory taken by other work on the GPU; worth a retry, not a crash.
		e := newError(http.StatusServiceUnavailable, CodeOutOfMemory, err.Error())
		e.retryAfter = time.Second
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return newError(http.StatusGatewayTimeout, CodeDeadline, "the request's deadline passed before it was answered")
	case errors.Is(err, context.Canceled):
		return newError(statusClientClosed, CodeCanceled, "the request was cancelled")
	}
	// The service's own failure: its text may name internal places (a
	// Redis address, a file path), so it goes to the log (observe), not to
	// the client.
	e := newError(http.StatusInternalServerError, CodeInternal, "internal error: the server's log has the details under this request's "+RequestIDHeader)
	e.detail = err.Error()
	return e
}

// errorJSON is the error body of SPEC §4, also used per item.
type errorJSON = api.ErrorBody

func itemError(err error) *errorJSON {
	if err == nil {
		return nil
	}
	e := classify(err)
	return &errorJSON{Code: e.code, Message: e.msg}
}

// allFailed returns the error that fails the whole request when every item
// failed: a request whose only image is bad gets that image's status (413,
// 415, 422, 400) instead of a 200 with nothing in it. With at least one good
// item the answer is a 200 with per-item errors.
func allFailed(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	for _, e := range errs {
		if e == nil {
			return nil
		}
	}
	return errs[0]
}
