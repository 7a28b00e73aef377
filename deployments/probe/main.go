// Command icthp-probe is the container image's health check: it GETs one URL
// and exits 0 when the answer is 2xx, 1 otherwise (unreachable, timeout, any
// other status), 2 on bad usage. It exists so that the runtime image needs
// neither curl nor wget: a static binary of a few MiB, no shell involved.
//
//	icthp-probe [-timeout 3s] [URL]
//
// The URL defaults to $ICTHP_PROBE_URL, then http://127.0.0.1:8080/healthz.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:8080/healthz"

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr)) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("icthp-probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	url := getenv("ICTHP_PROBE_URL")
	switch fs.NArg() {
	case 0:
	case 1:
		url = fs.Arg(0)
	default:
		fmt.Fprintln(stderr, "icthp-probe: at most one URL")
		return 2
	}
	if url == "" {
		url = defaultURL
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "icthp-probe: -timeout must be positive")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(stderr, "icthp-probe: %v\n", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "icthp-probe: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(stderr, "icthp-probe: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}
