package server

import (
	"context"
	"net"
)

// Listen opens the listener Run expects on a TCP network ("tcp", "tcp4",
// "tcp6"): a plain TCP socket. Since Go 1.24, net.Listen makes a Multipath
// TCP socket on Linux when the kernel has MPTCP, and an MPTCP socket
// refuses the socket filter (EOPNOTSUPP) with which the drain stops new
// handshakes before it closes the listener (drain_linux.go); on such a
// listener the connections still queued at the close are reset. Clients
// lose nothing: without MPTCP on their side too, an MPTCP listener serves
// them as plain TCP.
func Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(ctx, network, addr)
}
