package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxRawBytesInFlight is Options.MaxRawBytesInFlight's default.
const DefaultMaxRawBytesInFlight = 256 << 20

// rawMinBuf is the first buffer of an image's pixels; each next one is
// rawGrowth times as large (or the image's size), and is taken only once a
// byte for it has arrived, so that what a body holds is at most rawGrowth
// times what it sent plus rawMinBuf, whatever its header declared.
const rawMinBuf = 1 << 20

// rawGrowth is 4, not 2: each growth copies what has arrived, and a 1024²
// RGB image (3 MiB) then costs one 1 MiB copy instead of 1 + 2 MiB (the
// copies were 7 % of the server's CPU on raw 1024² requests).
const rawGrowth = 4

// rawMaxPools bounds the buffer sizes that are pooled: the doubling sizes
// and the image sizes clients send (a training loop sends one or two).
// Sizes beyond the first rawMaxPools seen are allocated and dropped.
const rawMaxPools = 64

// keyRawBufs is where a request's pixel buffers are listed, for deadline()
// to give back when the request ends.
const keyRawBufs = "icthp.rawbufs"

// rawBuffers are the server's buffers for raw-tensor pixels: pools by size,
// and the budget of bytes held by requests in flight (MaxRawBytesInFlight);
// a body that would go over it is refused with 429.
type rawBuffers struct {
	limit int64
	used  atomic.Int64
	mu    sync.Mutex
	pools map[int]*sync.Pool
}

func newRawBuffers(limit int64, reg prometheus.Registerer) (*rawBuffers, error) {
	r := &rawBuffers{limit: limit, pools: map[int]*sync.Pool{}}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icthp_http_raw_bytes_in_flight",
		Help: "Bytes of raw-tensor pixel buffers held by requests in flight (the budget is --max-raw-bytes-in-flight)."},
		func() float64 { return float64(r.used.Load()) })
	if err := reg.Register(g); err != nil {
		return nil, fmt.Errorf("server metrics: %w", err)
	}
	return r, nil
}

func (r *rawBuffers) pool(n int) *sync.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pools[n]
	if !ok && len(r.pools) < rawMaxPools {
		p = &sync.Pool{}
		r.pools[n] = p
	}
	return p
}

// get returns a buffer of length and capacity n within the budget, or
// false when the budget has no room for it.
func (r *rawBuffers) get(n int) ([]byte, bool) {
	if r.used.Add(int64(n)) > r.limit {
		r.used.Add(-int64(n))
		return nil, false
	}
	if p := r.pool(n); p != nil {
		if b, ok := p.Get().(*[]byte); ok {
			return (*b)[:n:n], true
		}
	}
	return make([]byte, n), true
}

// put gives b's capacity back to the budget, and b to its pool when reuse
// says nothing can still be reading it.
func (r *rawBuffers) put(b []byte, reuse bool) {
	r.used.Add(-int64(cap(b)))
	if reuse {
		if p := r.pool(cap(b)); p != nil {
			b = b[:cap(b)]
			p.Put(&b)
		}
	}
}

func (r *rawBuffers) overloaded(need int) error {
	e := newError(http.StatusTooManyRequests, CodeOverloaded,
		fmt.Sprintf("raw pixels in flight are at the server's limit of %d bytes (this body needs %d more): retry later", r.limit, need))
	e.retryAfter, e.reason = time.Second, "raw_bytes_in_flight"
	return e
}

// readImages reads b images of sz bytes each from br, each into its own
// buffer, listed on c for release (deadline()).
func (r *rawBuffers) readImages(c *gin.Context, br *bufio.Reader, shape []int, b, sz int) ([][]byte, error) {
	out := make([][]byte, b)
	for i := range out {
		buf, err := r.readOne(br, sz)
		if err != nil {
			var short *shortError
			if errors.As(err, &short) {
				return nil, newError(http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("tensor body: shape %v needs %d bytes after the header, the body ended after %d: %v",
					shape, b*sz, i*sz+short.got, short.err))
			}
			return nil, err
		}
		list := bufList(c, keyRawBufs)
		*list = append(*list, buf)
		out[i] = buf
	}
	return out, nil
}

// readOne reads sz bytes, growing its buffer only as bytes arrive.
func (r *rawBuffers) readOne(br *bufio.Reader, sz int) (buf []byte, err error) {
	defer func() {
		if err != nil && buf != nil {
			r.put(buf, true) // never handed out
		}
	}()
	for len(buf) < sz {
		if len(buf) == cap(buf) {
			// Wait for a byte before taking more memory for it.
			if _, err := br.Peek(1); err != nil {
				return buf, rawReadError(err, len(buf), sz)
			}
			next := min(sz, max(rawMinBuf, rawGrowth*cap(buf)))
			nb, ok := r.get(next)
			if !ok {
				return buf, r.overloaded(sz - len(buf))
			}
			copy(nb, buf)
			if buf != nil {
				r.put(buf, true)
			}
			buf = nb[:len(buf)]
		}
		k, err := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < sz {
			return buf, rawReadError(err, len(buf), sz)
		}
	}
	return buf, nil
}

func rawReadError(err error, got, _ int) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &shortError{got: got, err: err}
}

// shortError is a body that ended (or failed) before an image's bytes.
type shortError struct {
	got int
	err error
}

func (e *shortError) Error() string { return fmt.Sprintf("after %d bytes: %v", e.got, e.err) }

// releaseRaw gives back the request's pixel buffers; to their pools only
// when the request ended in time (reuse): a request cut short by its
// deadline may have left work that still reads them.
func (s *Server) releaseRaw(c *gin.Context, reuse bool) {
	v, ok := c.Get(keyRawBufs)
	if !ok {
		return
	}
	list := v.(*[][]byte)
	for _, b := range *list {
		s.raw.put(b, reuse)
	}
	*list = nil
}
