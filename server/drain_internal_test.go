package server

import (
	"errors"
	"io"
	"net"
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
