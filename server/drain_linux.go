//go:build linux

package server

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// stopHandshakes makes the kernel drop every new connection attempt to ln
// from now on, while what is already queued stays acceptable: a classic
// BPF filter on the listening socket that drops pure SYNs (SYN set, ACK
// clear). A client whose SYN is dropped retransmits it after a second and
// then meets the closed port (connection refused): it was never accepted.
//
// The filter runs on the listener for more than SYNs: Linux (tcp_v4_rcv,
// tcp_v6_rcv) runs it on the final ACK of a handshake and on data sent to
// a connection whose handshake is not yet complete, so only pure SYNs may
// be dropped. It sees the segment from its TCP header on (the IP header
// has been pulled), for IPv4, IPv6 and IPv4 clients of a dual-stack
// socket alike: the flags are byte 13.
func stopHandshakes(ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("a %T: %w", ln, errors.ErrUnsupported)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return err
	}
	const (
		flagsAt = 13
		syn     = 0x02
		ack     = 0x10
	)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: flagsAt},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: syn | ack},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: syn, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // a pure SYN: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // anything else: keep all of it
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.EOPNOTSUPP) {
		return fmt.Errorf("SO_ATTACH_FILTER: %w (a Multipath TCP listener? server.Listen makes a plain TCP one)", serr)
	}
	if serr != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", serr)
	}
	return nil
}
