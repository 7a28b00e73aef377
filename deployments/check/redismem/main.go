// Command redismem measures what icthp's cache costs in Redis: it starts a
// redis-server of its own, stores N entries laid out as cache/codec.go
// writes them (key icthp:1:<version>:<kind>:<sha256 hex>, value a 16-byte
// header, the float64 scalars and the vector in float32 or float16), and
// reports used_memory per entry and per million entries.
//
//	go run ./redismem [-n 100000] [-dim 1024] [-scalars 0]
//
// Values are random bytes (Redis does not compress them), so the figure is
// the same as for real embeddings of that size.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 100000, "entries to store")
	dim := flag.Int("dim", 1024, "embedding dimensions (ViT-H-14: 1024)")
	scalars := flag.Int("scalars", 0, "float64 scalars per entry (HP entries carry the logit)")
	flag.Parse()
	if err := run(*n, *dim, *scalars); err != nil {
		fmt.Fprintln(os.Stderr, "redismem:", err)
		os.Exit(1)
	}
}

func run(n, dim, scalars int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := srv.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var c net.Conn
	for i := 0; ; i++ {
		if c, err = net.Dial("tcp", l.Addr().String()); err == nil {
			break
		}
		if i > 200 {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	version, err := command(c, r, "INFO", "server")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(version, "\n") {
		if strings.HasPrefix(l, "redis_version:") {
			fmt.Printf("redis %s, %d entries of %d dimensions, %d scalars\n", strings.TrimSpace(l[14:]), n, dim, scalars)
		}
	}
	for _, esize := range []int{4, 2} {
		if _, err := command(c, r, "FLUSHALL"); err != nil {
			return err
		}
		before, err := usedMemory(c, r)
		if err != nil {
			return err
		}
		if err := fill(c, r, n, dim, esize, scalars); err != nil {
			return err
		}
		after, err := usedMemory(c, r)
		if err != nil {
			return err
		}
		per := float64(after-before) / float64(n)
		name := map[int]string{4: "float32", 2: "float16"}[esize]
		fmt.Printf("%s: value %d bytes, %.0f bytes per entry in Redis, %.2f GiB per million entries\n",
			name, 16+8*scalars+dim*esize, per, per*1e6/(1<<30))
	}
	return nil
}

// fill pipelines n SETs and reads their replies.
func fill(c net.Conn, r *bufio.Reader, n, dim, esize, scalars int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	val := make([]byte, 16+8*scalars+dim*esize)
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "+OK") {
				errc <- fmt.Errorf("SET reply %q: %v", line, err)
				return
			}
		}
		errc <- nil
	}()
	w := bufio.NewWriterSize(c, 1<<20)
	for i := 0; i < n; i++ {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		s := sha256.Sum256(b[:])
		key := "icthp:1:clip-0123456789abcdef:image:" + hex.EncodeToString(s[:])
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, len(val))
		w.Write(val)
		w.WriteString("\r\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return <-errc
}

func usedMemory(c net.Conn, r *bufio.Reader) (int64, error) {
	info, err := command(c, r, "INFO", "memory")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO")
}

// command sends one command and returns a simple or bulk string reply.
func command(c net.Conn, r *bufio.Reader, args ...string) (string, error) {
	fmt.Fprintf(c, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	switch line[0] {
	case '+':
		return strings.TrimSpace(line[1:]), nil
	case '$':
		size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil || size < 0 {
			return "", fmt.Errorf("bulk reply %q", line)
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:size]), nil
	}
	return "", fmt.Errorf("reply %q", strings.TrimSpace(line))
}
