// Package loadtest drives an icthp server over HTTP and measures it. It is an
// HTTP client only and knows nothing of the server's internals: it posts
// SPEC §4 request bodies (/v1/score, /v1/rank, /v1/reward) built from a
// folder of images and a list of prompts (every file in turn, however many;
// the bodies are the api package's request types), through api.Client, and
// reports requests, errors (by status code, or "refused" / "transport" /
// "timeout" / "invalid_response"), throughput and latency percentiles from
// a log-linear histogram (Histogram), those of 429 answers apart. A client
// whose connection is refused backs off (5 ms doubling to 500 ms) instead
// of spinning.
//
// Two ways to generate load:
//
//   - Closed loop (Config.Concurrency = N): N clients, each sending its next
//     request as soon as the previous one is answered. The offered load
//     adapts to the server, so this measures the throughput it can sustain at
//     that concurrency; latency is measured from the send. A closed loop
//     suffers from coordinated omission: while the server stalls, the clients
//     wait with it and send nothing, so the stall shows in few samples and
//     the tail percentiles look better than what a user arriving at a random
//     time would see.
//
//   - Open loop (Config.Rate = R): requests arrive as a Poisson process of
//     rate R (exponential inter-arrival times), independent of the answers,
//     with at most Config.MaxInflight in flight; an arrival that finds the cap
//     reached is not sent and is counted in Report.Dropped (never silently
//     skipped). To avoid coordinated omission, each request's latency is
//     measured from its scheduled arrival time, not from when it was
//     actually sent, so that delays on the client side (a late timer, a busy
//     scheduler) count as latency too.
//
// Runs are bounded by Config.Duration and/or Config.Requests (10 s when
// neither is set); in-flight requests at the end are waited for, each at most
// Config.Timeout. Cancelling the context stops a run early: Run abandons the
// requests in flight (Report.Canceled) and still returns the report.
package loadtest
