package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDrainListenerServesQueue: connections waiting in the kernel's accept
// queue when the listener is closed are accepted and can be answered, not
// reset; then the socket is closed and new connections are refused.
func TestDrainListenerServesQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl := newDrainListener(ln)
	const n = 5
	clients := make([]net.Conn, n)
	for i := range clients {
		c, err := net.Dial("tcp", ln.Addr().String()) // queued: nobody accepts yet
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("ping"))
		clients[i] = c
	}
	dl.Close()
	accepted := 0
	for {
		c, err := dl.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after the queue: %v, want net.ErrClosed", err)
			}
			break
		}
		accepted++
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Errorf("server read %q, %v", buf, err)
		}
		c.Write([]byte("pong"))
		c.Close()
	}
	if accepted != n {
		t.Errorf("accepted %d queued connections, want %d", accepted, n)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if string(b) != "pong" || err != nil {
			t.Errorf("client %d read %q, %v; want pong and a clean end of stream", i, b, err)
		}
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("a connection after the drain was accepted")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("a connection after the drain: %v, want refused", err)
	}
}

// TestLingerConnClosesCleanly: a connection closed while its client is
// still sending ends with FIN: the client's late bytes are read and
// dropped, and it reads a clean end of stream, not a reset.
func TestLingerConnClosesCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("GET / HTTP/1.1\r\n")) // unread by the server
	time.Sleep(50 * time.Millisecond)
	(&lingerConn{Conn: sc}).Close()
	time.Sleep(50 * time.Millisecond)
	if _, err := client.Write([]byte("Host: x\r\n\r\n")); err != nil {
		t.Fatalf("client write after the server's close: %v", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(client)
	if err != nil || len(b) != 0 {
		t.Errorf("client read %q, %v; want a clean end of stream", b, err)
	}
}

// TestDrainStopsHandshakes: clients that open a new connection at once
// after each answer (as the hostile sigterm probe's do after a 503) keep
// the accept queue busy; at the drain, no connection the kernel accepted
// is then reset: each client ends with its connection refused (or, its SYN
// dropped, refused at the retransmission). Before the drain stopped new
// handshakes, the queue never went quiet and the close reset what was in
// it (1 to 16 of 16 clients per run). On IPv4, IPv6 and the IPv4 clients
// of a dual-stack socket (the same filter sees all three).
func TestDrainStopsHandshakes(t *testing.T) {
	cases := []struct{ name, network, listen, dial string }{
		{"ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "tcp6", "[::1]:0", "::1"},
		{"dual-stack socket, ipv4 client", "tcp", "[::]:0", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := Listen(context.Background(), tc.network, tc.listen)
			if err != nil {
				t.Skipf("no %s listener here: %v", tc.network, err)
			}
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			dl := newDrainListener(ln)
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			})}
			served := make(chan error, 1)
			go func() { served <- hs.Serve(dl) }()
			defer hs.Close()

			clients := reconnecting(t, net.JoinHostPort(tc.dial, port), 16)
			clients.waitAnswered(200) // the queue is busy
			err = dl.beginDrain()
			if runtime.GOOS == "linux" && err != nil {
				t.Errorf("new handshakes not stopped: %v", err)
			}
			if err := <-served; !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve: %v, want net.ErrClosed", err)
			}
			answered, refused, resets := clients.wait()
			t.Logf("%d answered, %d refused, %d reset", answered, refused, resets)
			if resets != 0 {
				t.Errorf("%d connections accepted by the kernel were then reset", resets)
			}
			if refused != 16 {
				t.Errorf("%d of 16 clients ended refused", refused)
			}
		})
	}
}

// reconnectingClients open a connection per request, send it and read
// the answer, and open the next at once, until a connection is refused.
type reconnectingClients struct {
	wg                        sync.WaitGroup
	answered, refused, resets atomic.Int64
	mu                        sync.Mutex
	moreAnswered              *sync.Cond
}

func reconnecting(t *testing.T, addr string, n int) *reconnectingClients {
	c := &reconnectingClients{}
	c.moreAnswered = sync.NewCond(&c.mu)
	req := "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
	for range n {
		c.wg.Go(func() {
			for {
				conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if errors.Is(err, syscall.ECONNREFUSED) {
					c.refused.Add(1)
					return
				}
				if err == nil {
					conn.SetDeadline(time.Now().Add(10 * time.Second))
					_, err = io.WriteString(conn, req)
				}
				var b []byte
				if err == nil {
					b, err = io.ReadAll(conn)
				}
				if err == nil && !strings.HasPrefix(string(b), "HTTP/1.1 200 OK") {
					err = fmt.Errorf("answer %q", b)
				}
				if conn != nil {
					conn.Close()
				}
				if err != nil { // connected (or reset while connecting), then no answer
					t.Logf("reset: %v", err)
					c.resets.Add(1)
					continue
				}
				c.answered.Add(1)
				c.mu.Lock()
				c.moreAnswered.Broadcast()
				c.mu.Unlock()
			}
		})
	}
	return c
}

// waitAnswered returns once n requests have been answered.
func (c *reconnectingClients) waitAnswered(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.answered.Load() < n {
		c.moreAnswered.Wait()
	}
}

func (c *reconnectingClients) wait() (answered, refused, resets int64) {
	c.wg.Wait()
	return c.answered.Load(), c.refused.Load(), c.resets.Load()
}
