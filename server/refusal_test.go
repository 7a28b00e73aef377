package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"image/color"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icthp/icthp/scorer/scorertest"
	"github.com/icthp/icthp/scoring"
)

// saturatedServer serves one fake model behind a service whose one place
// is taken by a request held inside the model until the test ends: every
// scoring request is then refused before its body is read.
func saturatedServer(t *testing.T) string {
	t.Helper()
	aes := scorertest.New("aes", false)
	aes.Gate, aes.Entered = make(chan struct{}), make(chan int, 1)
	url := fakeServer(t, scoring.Options{MaxQueue: 1}, aes)
	img, _ := solid(t, color.RGBA{9, 9, 9, 255})
	first := make(chan fakeReply, 1)
	go func() { first <- postJSON(t, url+"/v1/score", map[string]any{"images": []string{img}}) }()
	<-aes.Entered
	t.Cleanup(func() {
		close(aes.Gate)
		if r := <-first; r.status != http.StatusOK {
			t.Errorf("the held request: %d %s", r.status, r.body)
		}
	})
	return strings.TrimPrefix(url, "http://")
}

// refusalConn is one client connection written and read by hand, so that
// a test sees what happens to the connection itself.
type refusalConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRefusal(t *testing.T, addr string) *refusalConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Bounds every read and write: a server that waits for the body before
	// it answers fails the test instead of hanging it.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &refusalConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes a request's header (Content-Length length, or chunked when
// length < 0) and the first part of its body.
func (r *refusalConn) send(length int, part []byte) {
	r.t.Helper()
	framing := fmt.Sprintf("Content-Length: %d", length)
	if length < 0 {
		framing = "Transfer-Encoding: chunked"
	}
	head := "POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n" + framing + "\r\n\r\n"
	if _, err := r.c.Write(append([]byte(head), part...)); err != nil {
		r.t.Fatal(err)
	}
}

// answer reads one answer: its status and whether it closes the connection.
func (r *refusalConn) answer() (status int, closes bool) {
	r.t.Helper()
	res, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("reading the answer: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Close
}

// A request refused before its body was read (saturated) is answered at
// once; a body of up to 1 MiB is then read and dropped and the connection
// serves the next request, instead of a new TCP connection for every
// refusal. A larger body, or one of unknown length, closes the
// connection; so does a body that ends before its declared length.
func TestRefusalKeepsConnection(t *testing.T) {
	addr := saturatedServer(t)
	body := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) } // never parsed

	t.Run("answered before the body, then kept", func(t *testing.T) {
		r := dialRefusal(t, addr)
		for i := range 3 {
			// 10 kB of a 200 kB body: the answer must come without the rest.
			r.send(200_000, body(10_000))
			if status, closes := r.answer(); status != http.StatusTooManyRequests || closes {
				t.Fatalf("request %d: %d, closes %v; want 429 on a kept connection", i, status, closes)
			}
			if _, err := r.c.Write(body(190_000)); err != nil {
				t.Fatalf("request %d: the rest of the body: %v", i, err)
			}
		}
	})
	t.Run("no body", func(t *testing.T) {
		r := dialRefusal(t, addr)
		for i := range 2 {
			r.send(0, nil)
			if status, closes := r.answer(); status != http.StatusTooManyRequests || closes {
				t.Fatalf("request %d: %d, closes %v; want 429 on a kept connection", i, status, closes)
			}
		}
	})
	for _, c := range []struct {
		name   string
		length int
	}{
		{"over 1 MiB", 1<<20 + 1},
		{"chunked", -1},
	} {
		t.Run(c.name+": closed", func(t *testing.T) {
			r := dialRefusal(t, addr)
			r.send(c.length, body(1000))
			if status, closes := r.answer(); status != http.StatusTooManyRequests || !closes {
				t.Fatalf("%d, closes %v; want 429 closing the connection", status, closes)
			}
		})
	}
	t.Run("body too slow: closed", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits out the server's 2 s for a refused body")
		}
		r := dialRefusal(t, addr)
		r.send(40_000, body(10_000))
		if status, _ := r.answer(); status != http.StatusTooManyRequests {
			t.Fatalf("%d, want 429", status)
		}
		time.Sleep(2500 * time.Millisecond) // lingerTimeout, and some
		// The rest of the body and a whole request after it: a server
		// still reading this connection would answer that request.
		r.c.Write(append(body(30_000), "POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"...))
		if b, _ := io.ReadAll(r.br); len(b) != 0 { // EOF or a reset
			t.Fatalf("a connection whose body came too slowly answered again: %.80q", b)
		}
	})
	t.Run("body ends early: closed after the answer", func(t *testing.T) {
		r := dialRefusal(t, addr)
		r.send(40_000, body(10_000))
		if status, _ := r.answer(); status != http.StatusTooManyRequests {
			t.Fatalf("%d, want 429", status)
		}
		r.c.(*net.TCPConn).CloseWrite()
		// What the server still had to read ended early: the connection
		// ends, and nothing else (no answer to the body's bytes taken as
		// a request) comes on it.
		if b, err := io.ReadAll(r.br); err != nil || len(b) != 0 {
			t.Fatalf("after the short body: %.80q, %v; want a clean end of stream", b, err)
		}
		// The server goes on serving.
		r2 := dialRefusal(t, addr)
		r2.send(100, body(100))
		if status, closes := r2.answer(); status != http.StatusTooManyRequests || closes {
			t.Fatalf("next connection: %d, closes %v; want 429 on a kept connection", status, closes)
		}
	})
}
