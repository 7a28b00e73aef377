//go:build linux

package server

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStopHandshakes: once the filter is on, a new connection attempt
// gets no answer (its SYN is dropped), while a connection queued before it
// is still accepted and its data, sent after, still arrives.
func TestStopHandshakes(t *testing.T) {
	ln, err := Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	queued, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer queued.Close()
	if err := stopHandshakes(ln); err != nil {
		t.Fatal(err)
	}
	// Connecting takes microseconds on loopback; 300 ms without a SYN-ACK
	// means the SYN was dropped (the kernel retransmits it after 1 s).
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 300*time.Millisecond); err == nil {
		c.Close()
		t.Errorf("a new connection was made after the filter")
	} else if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Errorf("a new connection after the filter: %v, want a timeout", err)
	}
	queued.Write([]byte("ping"))
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("the queued connection's data: %q, %v", buf, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestStopHandshakesNeedsPlainTCP: Listen makes a plain TCP socket, which
// takes the filter; net.Listen makes a Multipath TCP one where the kernel
// has MPTCP (Go 1.24 on), which refuses it: why the first filters tried
// (RELIABILITY.md) changed nothing.
func TestStopHandshakesNeedsPlainTCP(t *testing.T) {
	plain, err := Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if p := protocol(t, plain); p != unix.IPPROTO_TCP {
		t.Errorf("Listen made a socket of protocol %d, want TCP (%d)", p, unix.IPPROTO_TCP)
	}
	if err := stopHandshakes(plain); err != nil {
		t.Errorf("on Listen's socket: %v", err)
	}
	def, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	if p := protocol(t, def); p != unix.IPPROTO_MPTCP {
		t.Skipf("net.Listen made a socket of protocol %d here, not MPTCP", p)
	}
	if err := stopHandshakes(def); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("on an MPTCP listener: %v, want EOPNOTSUPP", err)
	}
}

func protocol(t *testing.T, ln net.Listener) int {
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var p int
	var perr error
	rc.Control(func(fd uintptr) { p, perr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL) })
	if perr != nil {
		t.Fatal(perr)
	}
	return p
}
