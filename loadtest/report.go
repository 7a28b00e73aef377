package loadtest

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is what a run measured. Its JSON form is what `icthp loadtest
// --json` prints (SPEC §3: requests, errors, throughput_rps, images_per_s,
// latency_ms {p50, p90, p99, max}, and the rest below).
type Report struct {
	URL              string  `json:"url"`   // the endpoint driven: base URL + /v1/ + route
	Route            string  `json:"route"` // score, rank or reward
	Mode             string  `json:"mode"`  // "closed" (concurrency) or "open" (rate)
	Concurrency      int     `json:"concurrency,omitempty"`
	Rate             float64 `json:"rate,omitempty"` // target arrivals per second
	MaxInflight      int     `json:"max_inflight,omitempty"`
	ImagesPerRequest int     `json:"images_per_request"`

	// ElapsedS runs from the start to the last answer (in-flight requests
	// at the end of the window included).
	ElapsedS float64 `json:"elapsed_s"`
	// Requests is the number of requests sent that ended in an answer or
	// an error: OK + Errors. Dropped and Canceled are not in it.
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`     // 2xx with a JSON object body
	Errors   int64 `json:"errors"` // everything else
	// ErrorsByCode counts Errors by HTTP status ("429", "500", …) or by
	// "transport", "timeout" and "invalid_response".
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	Throttled    int64            `json:"throttled_429"` // ErrorsByCode["429"]
	// Dropped counts open-loop arrivals not sent because MaxInflight
	// requests were in flight.
	Dropped int64 `json:"dropped"`
	// Canceled counts requests abandoned because the run was interrupted.
	Canceled    int64 `json:"canceled"`
	Interrupted bool  `json:"interrupted"`

	// ThroughputRPS is successful requests per second of ElapsedS;
	// ResponsesPerS counts every answered request, errors included.
	ThroughputRPS float64 `json:"throughput_rps"`
	ResponsesPerS float64 `json:"responses_per_s"`
	// ImagesPerS is images in successful requests per second.
	ImagesPerS float64 `json:"images_per_s"`

	// Latency is over successful requests, in milliseconds, measured from
	// LatencyFrom: "send" (closed loop) or "scheduled" (open loop: the
	// arrival time, so queueing in the client counts too). Percentiles are
	// within LatencyRelErr (relative) of the exact ones; max and mean are
	// exact.
	Latency       Latency `json:"latency_ms"`
	LatencyFrom   string  `json:"latency_from"`
	LatencyRelErr float64 `json:"latency_rel_err"`
	// Latency429 is over the 429 answers (Throttled), measured the same
	// way, kept apart so that fast refusals do not flatter Latency and slow
	// ones show (a 429 should cost the server almost nothing). Absent when
	// there were none.
	Latency429 *Latency `json:"latency_429_ms,omitempty"`
}

// Latency holds latency figures in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
}

func (r *runner) report(elapsed time.Duration, interrupted bool) *Report {
	c := &r.rec
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := &Report{
		URL:              r.target,
		Route:            r.cfg.Route,
		Mode:             "closed",
		Concurrency:      r.cfg.Concurrency,
		Rate:             r.cfg.Rate,
		MaxInflight:      r.cfg.MaxInflight,
		ImagesPerRequest: r.cfg.ImagesPerRequest,
		ElapsedS:         elapsed.Seconds(),
		Requests:         c.ok + c.errs,
		OK:               c.ok,
		Errors:           c.errs,
		ErrorsByCode:     map[string]int64{},
		Throttled:        c.byCode["429"],
		Dropped:          c.dropped,
		Canceled:         c.canceled,
		Interrupted:      interrupted,
		LatencyFrom:      "send",
		LatencyRelErr:    HistogramRelErr,
	}
	if r.cfg.Rate > 0 {
		rep.Mode, rep.LatencyFrom = "open", "scheduled"
	}
	for k, v := range c.byCode {
		rep.ErrorsByCode[k] = v
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.ThroughputRPS = float64(c.ok) / s
		rep.ResponsesPerS = float64(rep.Requests) / s
		rep.ImagesPerS = float64(c.ok) * float64(r.cfg.ImagesPerRequest) / s
	}
	rep.Latency = latencyOf(&c.hist)
	if c.byCode["429"] > 0 {
		l := latencyOf(&c.hist429)
		rep.Latency429 = &l
	}
	return rep
}

func latencyOf(h *Histogram) Latency {
	ms := func(ns float64) float64 { return ns / 1e6 }
	return Latency{
		P50:  ms(h.Quantile(0.50)),
		P90:  ms(h.Quantile(0.90)),
		P99:  ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)),
		Max:  ms(float64(h.Max())),
		Min:  ms(float64(h.Min())),
		Mean: ms(h.Mean()),
	}
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s, ", r.URL)
	if r.Mode == "open" {
		fmt.Fprintf(&b, "open loop at %g req/s (Poisson), at most %d in flight", r.Rate, r.MaxInflight)
	} else {
		fmt.Fprintf(&b, "closed loop, %d client%s", r.Concurrency, plural(r.Concurrency))
	}
	fmt.Fprintf(&b, ", %d image%s per request\n", r.ImagesPerRequest, plural(r.ImagesPerRequest))
	fmt.Fprintf(&b, "  elapsed      %.2f s", r.ElapsedS)
	if r.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "  requests     %d (%d ok, %d errors)", r.Requests, r.OK, r.Errors)
	if r.Mode == "open" {
		fmt.Fprintf(&b, ", %d dropped at the in-flight cap", r.Dropped)
	}
	if r.Canceled > 0 {
		fmt.Fprintf(&b, ", %d canceled", r.Canceled)
	}
	b.WriteByte('\n')
	if len(r.ErrorsByCode) > 0 {
		keys := make([]string, 0, len(r.ErrorsByCode))
		for k := range r.ErrorsByCode {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("  errors      ")
		for _, k := range keys {
			fmt.Fprintf(&b, " %s: %d", k, r.ErrorsByCode[k])
		}
		if r.Throttled > 0 {
			fmt.Fprintf(&b, " (%d throttled with 429)", r.Throttled)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "  throughput   %.2f req/s ok, %.2f images/s (%.2f responses/s)\n",
		r.ThroughputRPS, r.ImagesPerS, r.ResponsesPerS)
	l := r.Latency
	fmt.Fprintf(&b, "  latency ms   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
	if r.Mode == "open" {
		b.WriteString("               (successful requests, from their scheduled arrival time")
	} else {
		b.WriteString("               (successful requests, from the send")
	}
	fmt.Fprintf(&b, "; percentiles within %.2f%%)\n", 100*r.LatencyRelErr)
	if l := r.Latency429; l != nil {
		fmt.Fprintf(&b, "  429 ms       p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
			l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
		fmt.Fprintf(&b, "               (the %d answers 429, apart from the above)\n", r.Throttled)
	}
	if n := r.ErrorsByCode[ErrRefused]; n > 0 {
		fmt.Fprintf(&b, "  refused      %d connections refused; the clients backed off (up to %v) before retrying\n", n, backoffMax)
	}
	io.WriteString(w, b.String())
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
