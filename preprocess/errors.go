package preprocess

import "errors"

// Image errors. Every error returned by the image half of this package wraps exactly one
// of these (test with errors.Is); the HTTP server maps them to 415, 422 and 413.
var (
	// ErrUnsupportedFormat: the bytes are not PNG, JPEG, WebP, GIF or BMP, or they are one
	// of those in a variant this package does not decode (e.g. 12-bit JPEG, RLE BMP).
	ErrUnsupportedFormat = errors.New("unsupported image format")
	// ErrUndecodable: a supported format whose data is corrupt or truncated.
	ErrUndecodable = errors.New("undecodable image")
	// ErrTooLarge: the encoded size or the pixel count (read from the header, before any
	// pixel is decoded) exceeds the configured limits.
	ErrTooLarge = errors.New("image too large")
)
