package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/icthp/icthp/server"
)

// TestShutdownResetsNothing: at shutdown, a keep-alive connection whose
// client is sending its next request is closed cleanly (FIN, its bytes
// read), and clients opening new connections meanwhile get an answer (200,
// or 503 draining) or a refused connection once the listener is closed:
// never a reset.
func TestShutdownResetsNothing(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true, server: server.Options{Grace: 10 * time.Second}}, false)
	stop, ran := e.run(t)
	addr := strings.TrimPrefix(e.url, "http://")
	waitFor(t, e.srv.Ready)

	// A keep-alive connection, answered once, then half-way through its
	// next request's headers when the shutdown comes.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	br := bufio.NewReader(idle)
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("first request on the keep-alive connection: %v %v", res, err)
	}
	io.Copy(io.Discard, res.Body)
	io.WriteString(idle, "POST /v1/score HTTP/1.1\r\nHost: test\r\n")

	clients := hammer(t, e.url+"/v1/score", []byte(`{"images": ["`+b64(pngBytes(t, 1, 16, 16))+`"]}`))
	time.Sleep(300 * time.Millisecond)
	stop() // SIGTERM (no drain delay: the listener closes at once)
	time.Sleep(300 * time.Millisecond)

	// The idle connection was closed: its late bytes meet a clean close.
	if _, err := io.WriteString(idle, "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Errorf("writing the rest of a request after the shutdown: %v (want no reset)", err)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(br); err != nil {
		t.Errorf("the keep-alive connection ended with %v after %q, want a clean end of stream", err, rest)
	}
	answered, refused, resets := clients()
	if err := <-ran; err != nil {
		t.Errorf("Run: %v", err)
	}
	if resets != 0 {
		t.Errorf("%d connections reset (%d answered, %d refused)", resets, answered, refused)
	}
	if answered == 0 || refused != 4 {
		t.Errorf("%d answered, %d refused: want answers, then each client refused", answered, refused)
	}
	t.Logf("%d answered, %d refused, %d reset", answered, refused, resets)
}

// hammer starts 4 clients posting body to url, each on a new connection
// per request, until their connection is refused; they wait as Retry-After
// says after a 503, as a load balancer stops sending to a server that is
// draining. The function it returns waits for them and counts the
// requests answered (200 or 503), refused and reset; any other outcome
// fails the test.
func hammer(t *testing.T, url string, body []byte) func() (answered, refused, resets int64) {
	var nAnswered, nRefused, nResets atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				res, err := hc.Post(url, "application/json", bytes.NewReader(body))
				switch {
				case err == nil:
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 200 && res.StatusCode != 503 {
						t.Errorf("unexpected answer %s", res.Status)
					}
					nAnswered.Add(1)
					if res.StatusCode == 503 { // draining: wait as Retry-After asks
						time.Sleep(time.Second)
					}
				case errors.Is(err, syscall.ECONNREFUSED):
					nRefused.Add(1)
					return
				case errors.Is(err, syscall.ECONNRESET):
					t.Logf("%v", err)
					nResets.Add(1)
				default:
					t.Errorf("unexpected outcome: %v", err)
				}
			}
		})
	}
	return func() (int64, int64, int64) {
		wg.Wait()
		return nAnswered.Load(), nRefused.Load(), nResets.Load()
	}
}
