// Package redistest starts real redis-server processes on free loopback
// ports for tests: standalone servers and small Clusters, with no
// persistence, stopped when the test ends. Tests skip, saying why, when
// redis-server is not installed (`make setup` installs it).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
	// exited is closed when cmd has exited; only its waiter calls cmd.Wait.
	exited chan struct{}
	t      testing.TB
}

// errPortTaken is a start that lost its port to another process between
// freePort's check and redis-server's bind (tests run in parallel).
var errPortTaken = errors.New("port already in use")

// startTries bounds the retries on a new port after errPortTaken.
const startTries = 5

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is redis://127.0.0.1:port.
func (s *Server) URL() string { return "redis://" + s.Addr() }

func binaries(t testing.TB) (server, cli string) {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server, or `make setup`); skipping the Redis tests")
	}
	cli, err = exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli is not installed (it comes with redis-server); skipping the Redis tests")
	}
	return server, cli
}

// Start runs a standalone redis-server with no persistence; extra are more
// command-line options (e.g. "--requirepass", "secret").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	binaries(t)
	return launch(t, false, func(s *Server) {
		s.args = append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", s.dir, "--protected-mode", "no", "--loglevel", "warning", "--logfile", filepath.Join(s.dir, "redis.log")}, extra...)
	})
}

// launch starts a server on a free port, with the arguments configure sets
// for that port, and tries again on another port when the chosen one was
// taken before redis-server could bind it.
func launch(t testing.TB, bus bool, configure func(s *Server)) *Server {
	t.Helper()
	for try := 1; ; try++ {
		s := &Server{Port: freePort(t, bus), dir: t.TempDir(), t: t}
		configure(s)
		err := s.start()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if !errors.Is(err, errPortTaken) || try == startTries {
			t.Fatalf("redistest: %v", err)
		}
		t.Logf("redistest: port %d was taken meanwhile; trying another", s.Port)
	}
}

func (s *Server) start() error {
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.Dir = s.dir
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(s.cmd)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr()) {
			return nil
		}
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			if strings.Contains(string(log), "Address already in use") {
				return fmt.Errorf("redis-server on port %d: %w", s.Port, errPortTaken)
			}
			return fmt.Errorf("redis-server on port %d exited at start; log:\n%s", s.Port, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.Stop()
			return fmt.Errorf("redis-server on port %d did not answer PING in 10 s; log:\n%s", s.Port, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: as abrupt as a crash) and waits for it.
// Its data is gone; Restart brings up an empty server on the same port.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts the server again on the same port, with the same options.
// The port was just freed by the server itself, so a bind failure is
// retried for a while rather than answered with another port (callers keep
// the address).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for try := 1; try <= startTries; try++ {
		if err = s.start(); !errors.Is(err, errPortTaken) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause stops the process (SIGSTOP): connections stay open but nothing is
// answered, as with a hung or overloaded server. Resume continues it.
func (s *Server) Pause() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused server.
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// CLI runs redis-cli against the server and returns its output.
func (s *Server) CLI(args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// StartSentinel starts one Sentinel watching master under the name name
// (quorum 1) and waits until it knows the master.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	binaries(t)
	s := launch(t, false, func(s *Server) {
		conf := filepath.Join(s.dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n",
			s.Port, s.dir, filepath.Join(s.dir, "redis.log"), name, master.Port, name)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s.args = []string{conf, "--sentinel"}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := s.CLI("sentinel", "get-master-addr-by-name", name)
		if strings.Contains(out, strconv.Itoa(master.Port)) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: sentinel does not know %s after 10 s: %q", name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.Addr())
	}
	return a
}

// URL names the first node and the others as addr= seeds.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr()
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr()
	}
	return u
}

// StartCluster starts n masters (n >= 3), joins them with
// `redis-cli --cluster create` and waits for cluster_state:ok. The masters
// keep serving their own slots when another one fails
// (cluster-require-full-coverage no), as a Cluster without replicas should
// for a cache; with the default the live masters too refuse every key once
// the failure is agreed on.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	binaries(t)
	c := &Cluster{}
	for i := 0; i < n; i++ {
		s := launch(t, true, func(s *Server) {
			s.args = []string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
				"--dir", s.dir, "--protected-mode", "no", "--loglevel", "warning", "--logfile", filepath.Join(s.dir, "redis.log"),
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "2000",
				"--cluster-require-full-coverage", "no"}
		})
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		for {
			info, _ := s.CLI("cluster", "info")
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s not ok after 20 s:\n%s", s.Addr(), info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// freePort finds a loopback port nobody listens on; for a Cluster node the
// bus port (port + 10000) must be free too.
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		p := 20000 + rand.IntN(30000)
		if !free(p) || (bus && !free(p+10000)) {
			continue
		}
		return p
	}
	t.Fatal("redistest: no free loopback port found")
	return 0
}

func free(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ping says whether a Redis answers PING (or asks for a password, which is
// an answer too).
func ping(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := fmt.Fprint(conn, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}
