package server

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// How the server lets go of connections at shutdown without resetting any
// (issue 16, item 7). Two things reset connections a client had every right
// to use: closing the listening socket while connections wait in the
// kernel's accept queue (each gets a RST), and closing an idle keep-alive
// connection whose client is sending its next request (the bytes arrive at
// a closed socket: RST). drainListener accepts what is queued before it
// closes, and serves it (the answer is 503 draining, Connection: close);
// lingerConn closes by sending FIN first and reading what the client still
// sends, so that the client sees a clean end of stream.
//
// Accepting what is queued only ends if the queue goes quiet, and clients
// that reconnect at once after each 503 keep it busy: closing after
// acceptDrainMax then reset the connections they had just opened (the
// hostile sigterm probe: 1 to 16 per run, all at the close). So the drain
// first stops new handshakes at the socket (stopHandshakes, Linux: SYNs
// are dropped), and the queue goes quiet once what was queued is accepted.
const (
	// acceptQuiet is how long the listener, once closing, waits for one
	// more queued connection before it closes; acceptDrainMax bounds the
	// whole drain, so that clients that keep connecting (and get 503) do
	// not hold the shutdown. handshakeQuiet replaces acceptQuiet once new
	// handshakes are stopped: nothing new can arrive then but the
	// handshakes whose SYN-ACK was already sent, whose ACK comes one round
	// trip later; it covers clients up to 200 ms away.
	acceptQuiet    = 50 * time.Millisecond
	handshakeQuiet = 200 * time.Millisecond
	acceptDrainMax = time.Second
	// lingerTimeout bounds the wait for the client's side of a closing
	// connection, and lingerMaxBytes what is read (and dropped) meanwhile.
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 1 << 20
)

// deadliner is a listener whose Accept can be bounded (net.TCPListener,
// net.UnixListener).
type deadliner interface {
	SetDeadline(time.Time) error
}

// drainListener is the listener Run serves: its Close lets Accept return
// the connections already queued, then closes the socket.
type drainListener struct {
	net.Listener
	closing atomic.Bool
	closeBy atomic.Int64 // unix nanoseconds: the drain's end
	quiet   atomic.Int64 // how long a quiet queue is waited for (nanoseconds)
	begin   sync.Once
	once    sync.Once
	err     error
}

func newDrainListener(ln net.Listener) *drainListener { return &drainListener{Listener: ln} }

func (l *drainListener) Accept() (net.Conn, error) {
	for {
		d, canWait := l.Listener.(deadliner)
		closing := l.closing.Load()
		if closing && !canWait {
			return nil, l.closeNow()
		}
		if closing {
			end := time.Unix(0, l.closeBy.Load())
			if !time.Now().Before(end) {
				return nil, l.closeNow()
			}
			next := time.Now().Add(time.Duration(l.quiet.Load()))
			if end.Before(next) {
				next = end
			}
			d.SetDeadline(next)
		}
		c, err := l.Listener.Accept()
		if err == nil {
			return &lingerConn{Conn: c}, nil
		}
		var ne net.Error
		if l.closing.Load() && errors.As(err, &ne) && ne.Timeout() {
			return nil, l.closeNow() // the queue is empty
		}
		if l.closing.Load() && !closing {
			continue // woken by Close: accept what is queued
		}
		return nil, err
	}
}

// Close makes Accept drain the queue and then close; it does not block
// (http.Server calls it under its lock).
func (l *drainListener) Close() error {
	l.beginDrain()
	if _, ok := l.Listener.(deadliner); !ok {
		return l.closeNow()
	}
	return nil
}

// beginDrain starts the accept phase, once: new handshakes are stopped
// where the socket allows it, then a blocked Accept is woken to accept
// what is queued. It returns why handshakes could not be stopped (the
// drain then ends when the queue has been quiet for acceptQuiet or at
// acceptDrainMax, and what is queued then is reset), nil otherwise and on
// later calls.
func (l *drainListener) beginDrain() error {
	var err error
	l.begin.Do(func() {
		quiet := acceptQuiet
		if err = stopHandshakes(l.Listener); err == nil {
			quiet = handshakeQuiet
		}
		l.quiet.Store(int64(quiet))
		l.closeBy.Store(time.Now().Add(acceptDrainMax).UnixNano())
		l.closing.Store(true)
		if d, ok := l.Listener.(deadliner); ok {
			d.SetDeadline(time.Now().Add(quiet)) // wake a blocked Accept
		}
	})
	return err
}

func (l *drainListener) closeNow() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	if l.err != nil {
		return l.err
	}
	return net.ErrClosed
}

// lingerConn closes by half-closing first: FIN, then what the client still
// sends is read and dropped until it closes too (or lingerTimeout), then
// the socket is closed. Close returns at once; from then on the server's
// own reads fail as they would on a closed connection (one blocked in Read
// is woken), so that only the linger reads the socket.
type lingerConn struct {
	net.Conn
	closed  atomic.Bool
	reading sync.RWMutex // held (shared) by the server's reads
	once    sync.Once
}

func (c *lingerConn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.reading.RLock()
	defer c.reading.RUnlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes (http.Server does it before closing a connection
// it answered with Connection: close).
func (c *lingerConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}

func (c *lingerConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		if _, ok := c.Conn.(interface{ CloseWrite() error }); !ok {
			c.Conn.Close()
			return
		}
		c.CloseWrite()                          // FIN (again, harmlessly, after http.Server's own)
		c.Conn.SetReadDeadline(time.Unix(1, 0)) // wake a read in progress
		go func() {
			// Once the lock is ours the server's read has returned (and any
			// later one fails on closed), so the deadline is the linger's own.
			c.reading.Lock()
			c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout))
			c.reading.Unlock()
			io.Copy(io.Discard, io.LimitReader(c.Conn, lingerMaxBytes))
			c.Conn.Close()
		}()
	})
	return nil
}

// closeWhileDraining wraps h so that every answer whose header is written
// once the drain has begun carries Connection: close, the answers to
// requests that were already running included. A keep-alive connection
// then never goes back to idle after the drain begins, so the shutdown
// finds none to close under a client that is sending its next request on
// it: the one race lingerConn cannot fix (the client sees a clean end of
// stream, but no answer to a request it already sent, which it may not
// resend: a POST).
func closeWhileDraining(h http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&drainWriter{ResponseWriter: w, draining: draining}, r)
	})
}

type drainWriter struct {
	http.ResponseWriter
	draining *atomic.Bool
	wrote    bool
}

func (w *drainWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		if w.draining.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *drainWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming answers streaming (gin asserts http.Flusher).
func (w *drainWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *drainWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
