package server_test

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/icthp/icthp/server"
)

// openTensorBody opens a connection and sends the HTTP headers and the
// tensor header line of a body declaring shape, then the first n pixel
// bytes; the caller holds or closes the connection.
func openTensorBody(t *testing.T, url, header string, pixels int, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	line := header + "\n"
	fmt.Fprintf(c, "POST /v1/score HTTP/1.1\r\nHost: test\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		server.TensorContentType, len(line)+pixels, line)
	if n > 0 {
		if _, err := c.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRawHeldHeadersHeap: 40 connections that send a tensor header
// declaring [1, 4700, 4700, 3] (66 MB each, under the body limit) and hold
// make the server reserve nothing for the pixels that have not come: the
// heap grows by far less than 300 MB (issue 16; it grew by 2.5 GB when the
// declared size was allocated up front).
func TestRawHeldHeadersHeap(t *testing.T) {
	e := newEnv(t, envConfig{noICT: true}, true)
	const conns, side = 40, 4700
	before := heapAlloc()
	for range conns {
		openTensorBody(t, e.url, fmt.Sprintf(`{"shape": [1, %d, %d, 3]}`, side, side), side*side*3, 0)
	}
	// Every request is in its handler (the scrape is one more in flight).
	waitFor(t, func() bool { return e.metric(t, "icthp_http_in_flight_requests") == conns+1 })
	time.Sleep(200 * time.Millisecond) // let each reach its read of the pixels
	grew := int64(heapAlloc()) - int64(before)
	t.Logf("heap grew by %.1f MB with %d held %dx%d tensor bodies", float64(grew)/1e6, conns, side, side)
	if grew > 300e6 {
		t.Errorf("heap grew by %.0f MB, want < 300 MB", float64(grew)/1e6)
	}
	if v := e.metric(t, "icthp_http_raw_bytes_in_flight"); v != 0 {
		t.Errorf("raw bytes in flight with no pixel sent: %v, want 0", v)
	}
}

// TestRawBudget: pixels are counted against the server-wide budget as they
// arrive; a body that would go over it gets 429 with Retry-After, and the
// budget comes back when the requests holding it end.
func TestRawBudget(t *testing.T) {
	const mib = 1 << 20
	e := newEnv(t, envConfig{noICT: true, server: server.Options{MaxRawBytesInFlight: 6 * mib}}, true)
	hdr := `{"shape": [1, 1024, 1024, 3]}`
	pixels := 1024 * 1024 * 3
	// A holds 1.5 MiB sent: its buffer has grown from 1 MiB to the image's
	// 3 MiB (the budget held went 1, 4 while copying, then 3 MiB).
	a := openTensorBody(t, e.url, hdr, pixels, 3*mib/2)
	waitFor(t, func() bool { return e.metric(t, "icthp_http_raw_bytes_in_flight") == 3*mib })
	// B, the same image in full, needs 1 + 3 MiB while its buffer grows
	// from 1 to 3 MiB: with A's 3, over the 6 MiB budget.

	full := tensorBody(t, map[string]any{"shape": []int{1, 1024, 1024, 3}}, make([]byte, pixels))
	ct := []string{"Content-Type", server.TensorContentType}
	r := e.post(t, "/v1/score", full, ct...)
	if r.status != http.StatusTooManyRequests || r.errCode() != server.CodeOverloaded || r.header.Get("Retry-After") == "" {
		t.Fatalf("a body over the budget: %d %s (Retry-After %q), want 429 overloaded with Retry-After", r.status, r.raw, r.header.Get("Retry-After"))
	}
	if v := e.metric(t, `icthp_http_rejected_total{reason="raw_bytes_in_flight"}`); v != 1 {
		t.Errorf("rejections counted: %v, want 1", v)
	}
	a.Close() // A's request ends (400: the body was cut) and gives its bytes back
	waitFor(t, func() bool { return e.metric(t, "icthp_http_raw_bytes_in_flight") == 0 })
	for i := range 2 { // the second one takes pooled buffers
		if r := e.post(t, "/v1/score", full, ct...); r.status != http.StatusOK {
			t.Fatalf("request %d once the budget is free: %d %s", i, r.status, r.raw)
		}
	}
	if v := e.metric(t, "icthp_http_raw_bytes_in_flight"); v != 0 {
		t.Errorf("raw bytes in flight after the requests: %v, want 0", v)
	}
}
