package redistest

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

// A port taken between freePort's check and redis-server's bind must come
// back as errPortTaken (so launch tries another port), not as a 10-second
// wait for a PING that never comes.
func TestStartSeesPortTaken(t *testing.T) {
	binaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s := &Server{Port: port, dir: t.TempDir(), t: t}
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log")}
	err = s.start()
	if !errors.Is(err, errPortTaken) {
		s.Stop()
		t.Fatalf("start on a taken port: %v, want errPortTaken", err)
	}
	// launch gets past it: Start works while the squatter still listens.
	if got := Start(t); got.Port == port || !ping(got.Addr()) {
		t.Fatalf("Start gave port %d (taken %d), ping %v", got.Port, port, ping(got.Addr()))
	}
}
