package preprocess

import "fmt"

// Default limits applied when ImageOptions leaves MaxBytes / MaxPixels at 0.
const (
	DefaultMaxBytes  int64 = 32 << 20   // 32 MiB of encoded image
	DefaultMaxPixels int64 = 50_000_000 // 50 megapixels (width × height, from the header)
)

// maxResizedEdge bounds the long edge the shortest-edge resize may ask for. Pillow would
// have to allocate a 224 × maxResizedEdge image (and fails with MemoryError long before
// this); we only ever compute the crop, but the fixed-point geometry is kept in int32
// range like Pillow's.
const maxResizedEdge = 1 << 30

type limits struct {
	maxBytes  int64
	maxPixels int64
}

func (o ImageOptions) limits() limits {
	l := limits{maxBytes: o.MaxBytes, maxPixels: o.MaxPixels}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.maxPixels <= 0 {
		l.maxPixels = DefaultMaxPixels
	}
	return l
}

// checkBytes is called before anything is parsed.
func (l limits) checkBytes(n int) error {
	if int64(n) > l.maxBytes {
		return fmt.Errorf("%w: %d encoded bytes exceed the limit of %d", ErrTooLarge, n, l.maxBytes)
	}
	return nil
}

// checkDims is called with the dimensions read from the header, before any pixel data is
// decoded or any pixel buffer is allocated.
func (l limits) checkDims(format string, w, h int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %s header declares a %dx%d image", ErrUndecodable, format, w, h)
	}
	if int64(w) > l.maxPixels || int64(h) > l.maxPixels || int64(w)*int64(h) > l.maxPixels {
		return fmt.Errorf("%w: %s image is %dx%d = %d pixels, the limit is %d",
			ErrTooLarge, format, w, h, int64(w)*int64(h), l.maxPixels)
	}
	return nil
}
