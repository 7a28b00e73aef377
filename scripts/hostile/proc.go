package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// server is one `icthp serve` process on a loopback port.
type server struct {
	cmd  *exec.Cmd
	url  string
	addr string
	log  string
	done chan error
}

// freePort is a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServe runs `icthp serve` (the demo models unless args name others)
// on 127.0.0.1 and waits until /readyz answers 200 (2 minutes at most).
func startServe(ctx context.Context, c *config, name string, args ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port), log: filepath.Join(c.work, name+".serve.log"), done: make(chan error, 1)}
	s.url = "http://" + s.addr
	f, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	argv := append([]string{c.bin, "serve", "--addr", s.addr, "--log-level", "warn"}, args...)
	argv = append(argv, c.serveArgs...)
	if c.proberNice > 0 {
		// nice(1) execs the server in its own process (same pid), raised
		// back by what reniceSelf took from the prober.
		argv = append([]string{"nice", "-n", strconv.Itoa(-c.proberNice)}, argv...)
	}
	if c.serverCPUs != "" {
		// taskset(1) execs the server with its affinity set before Go
		// starts, so runtime.NumCPU (and icthp's thread defaults) see it.
		argv = append([]string{"taskset", "-c", c.serverCPUs}, argv...)
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); f.Close() }()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("icthp serve exited before it was ready (%v); see %s", err, tail(s.log))
		default:
		}
		if r, err := http.Get(s.url + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.kill()
	return nil, fmt.Errorf("icthp serve not ready in 2 minutes; %s", tail(s.log))
}

// stop sends SIGTERM and waits (30 s, then SIGKILL); the exit error.
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		s.kill()
		return errors.New("did not exit 30 s after SIGTERM")
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// rss is a process's resident set (VmRSS) in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// metric reads one unlabelled gauge from the server's /metrics.
func metric(url, name string) (float64, error) {
	r, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			return strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// sampler records the largest value f returns, every interval, until stop.
type sampler struct {
	mu      sync.Mutex
	max     float64
	samples []float64
	stopc   chan struct{}
	wg      sync.WaitGroup
}

func sample(every time.Duration, f func() float64) *sampler {
	s := &sampler{stopc: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			v := f()
			s.mu.Lock()
			s.samples = append(s.samples, v)
			s.max = max(s.max, v)
			s.mu.Unlock()
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (peak float64, samples []float64) {
	close(s.stopc)
	s.wg.Wait()
	return s.max, s.samples
}

// percentile of d (sorted in place), p in [0, 100].
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(p / 100 * float64(len(d)-1))
	return d[i]
}

// post sends one request and returns its status and latency; status 0 is a
// transport error (err says which).
func post(ctx context.Context, cl *http.Client, url, ctype string, body []byte) (int, time.Duration, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("Content-Type", ctype)
	start := time.Now()
	r, err := cl.Do(req)
	if err != nil {
		return 0, time.Since(start), nil, err
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	return r.StatusCode, time.Since(start), b, err
}

func mb(b float64) string { return fmt.Sprintf("%.0f MB", b/1e6) }

func failed(probe string, err error) []result { return []result{{probe: probe, err: err}} }

// cpuTime is a process's user+system CPU time so far (from /proc/PID/stat,
// in clock ticks of 10 ms); 0 when it cannot be read.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: fields count from after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// loadAvg is the 1-minute load average (/proc/loadavg), as text.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// reniceSelf adds n to the nice value of every thread of this process
// (Linux keeps one per thread; threads started later inherit it from the
// thread that starts them).
func reniceSelf(n int) error {
	return eachThread(func(tid int) error {
		cur, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
		if err != nil {
			return err
		}
		// The raw syscall answers 20 - nice.
		return syscall.Setpriority(syscall.PRIO_PROCESS, tid, 20-cur+n)
	})
}

// eachThread calls f with the id of every thread of this process, stopping
// at the first error.
func eachThread(f func(tid int) error) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := f(tid); err != nil {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}

// pinSelf restricts every thread of this process to the CPUs of list
// ("0", "1-3", "0,2"); threads started later inherit the mask from the
// thread that starts them.
func pinSelf(list string) error {
	var set unix.CPUSet
	set.Zero()
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return fmt.Errorf("CPU list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return fmt.Errorf("CPU list %q: %w", list, err)
			}
		}
		if a < 0 || b < a {
			return fmt.Errorf("CPU list %q: bad range %q", list, part)
		}
		for i := a; i <= b; i++ {
			set.Set(i)
		}
	}
	return eachThread(func(tid int) error { return unix.SchedSetaffinity(tid, &set) })
}
