package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/icthp/icthp/loadtest"
	"golang.org/x/term"
)

func init() {
	register(command{
		name: "loadtest",
		args: "--url URL [--route score|rank|reward] [--concurrency N | --rate R] [--duration D] [--requests N] " +
			"--images DIR [--raw|--multipart] [--prompts FILE] [--images-per-request K] [--json]",
		summary: "drive an icthp server with concurrent clients (closed loop) or Poisson arrivals (open loop) and report throughput, latency percentiles and errors",
		run:     runLoadtest,
	})
}

func runLoadtest(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "loadtest")
	var cfg loadtest.Config
	fs.StringVar(&cfg.URL, "url", "", "the server's base URL, e.g. http://127.0.0.1:8080 (required); requests go to URL/v1/ROUTE only")
	fs.StringVar(&cfg.Route, "route", loadtest.RouteScore, "score, rank or reward")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: N clients, each sending when its previous request is answered (default 1 without --rate)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: R requests per second, Poisson arrivals, whatever the answers")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", 0, fmt.Sprintf("open loop: at most N requests in flight, further arrivals are counted as dropped (default %d)", loadtest.DefaultMaxInflight))
	fs.DurationVar(&cfg.Duration, "duration", 0, fmt.Sprintf("start requests for this long (default %v when --requests is not given)", loadtest.DefaultDuration))
	fs.IntVar(&cfg.Requests, "requests", 0, "send this many requests (open loop: arrivals), then stop")
	images := fs.String("images", "", "folder of .png, .jpg, .jpeg, .webp files to send, every one in turn (required)")
	prompts := fs.String("prompts", "", "file of prompts, one a line (default: a few built-in prompts)")
	fs.IntVar(&cfg.ImagesPerRequest, "images-per-request", 0, "images in each request (default 1; 4 for rank)")
	fs.BoolVar(&cfg.Multipart, "multipart", false, "send each request as multipart/form-data, the files as parts named images (no base64: what a server decodes cheapest from encoded files)")
	fs.BoolVar(&cfg.Raw, "raw", false, "send decoded pixels in application/x-icthp-tensor bodies, as RL loops do (each file decoded once at the start; all files must have one size)")
	fs.DurationVar(&cfg.Timeout, "timeout", loadtest.DefaultTimeout, "bound on each request, response included")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the open loop's arrival times (0: from the clock)")
	token := fs.String("token", "", "bearer token (default $ICTHP_TOKEN)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("unexpected argument %q", rest[0])
	}
	if cfg.URL == "" {
		return usagef("--url is required")
	}
	if *images == "" {
		return usagef("--images is required")
	}
	cfg.Token = *token
	if cfg.Token == "" {
		cfg.Token = a.getenv("ICTHP_TOKEN")
	}
	// Check the flags before reading any file: a placeholder image stands in.
	probe := cfg
	probe.Images = []loadtest.Image{{Name: "probe"}}
	if err := probe.Validate(); err != nil {
		return usageError{err.Error()}
	}
	if cfg.Images, err = loadtest.LoadImages(*images); err != nil {
		return fmt.Errorf("--images: %w", err)
	}
	if *prompts != "" {
		if cfg.Prompts, err = loadtest.LoadPrompts(*prompts); err != nil {
			return fmt.Errorf("--prompts: %w", err)
		}
	}

	// A progress line only on a terminal; elsewhere stderr stays for the
	// one line of a failure.
	var progress io.Writer
	if f, ok := a.stderr.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		progress = a.stderr
	}
	rep, err := loadtest.Run(ctx, cfg, progress)
	if err != nil {
		return usageError{err.Error()}
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.WriteText(a.stdout)
	}
	switch {
	case rep.Interrupted:
		return exitError{1, fmt.Sprintf("interrupted after %.1f s (%d requests answered)", rep.ElapsedS, rep.Requests)}
	case rep.Requests > 0 && rep.OK == 0:
		return exitError{1, fmt.Sprintf("no request succeeded: %d failed (%s)", rep.Errors, errorSummary(rep.ErrorsByCode))}
	}
	return nil
}

// errorSummary lists error counts by code, most frequent first.
func errorSummary(by map[string]int64) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if by[keys[i]] != by[keys[j]] {
			return by[keys[i]] > by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, by[k])
	}
	return strings.Join(parts, ", ")
}
