//go:build !linux

package server

import (
	"errors"
	"net"
)

// stopHandshakes is Linux-only (drain_linux.go): elsewhere the drain
// accepts until the queue has been quiet for acceptQuiet, as it can.
func stopHandshakes(net.Listener) error { return errors.ErrUnsupported }
