package cache

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lookups      *prometheus.CounterVec
	computed     *prometheus.CounterVec
	shared       *prometheus.CounterVec
	corrupt      *prometheus.CounterVec
	redisSeconds *prometheus.HistogramVec
	redisErrors  *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	redisBytes   prometheus.Counter
	circuit      prometheus.GaugeFunc
	transitions  *prometheus.CounterVec
	localBytes   prometheus.GaugeFunc
	localEntries prometheus.GaugeFunc
}

func newMetrics(c *Cache) *metrics {
	const ns, sub = "icthp", "cache"
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lookups_total",
			Help: "Cache lookups by tier (local, redis), kind (text, image, hp) and result (hit, miss)."},
			[]string{"tier", "kind", "result"}),
		computed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "computed_total",
			Help: "Keys missing from every tier and handed to the encoders, by kind."}, []string{"kind"}),
		shared: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "shared_total",
			Help: "Keys another request was already computing, waited for instead of computed again, by kind."}, []string{"kind"}),
		corrupt: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "corrupt_entries_total",
			Help: "Redis entries that failed to decode (truncated, bad header or checksum); they are recomputed and overwritten."},
			[]string{"kind"}),
		redisSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "redis_seconds",
			Help:    "Duration of one pipelined Redis round trip, by operation (get, set).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}}, []string{"op"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_errors_total",
			Help: "Redis round trips that failed or timed out, by operation."}, []string{"op"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_skipped_total",
			Help: "Redis round trips not attempted because the circuit was open, by operation."}, []string{"op"}),
		redisBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_written_bytes_total",
			Help: "Bytes of encoded values written to Redis."}),
		// Read when scraped: a Cluster's state is the worst of its
		// masters', which no one transition knows.
		circuit: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "redis_circuit_state",
			Help: "The Redis circuit breaker: 0 closed (Redis used), 1 open (skipped), 2 half-open (probing); for a Cluster the worst of its masters'."},
			func() float64 { return float64(c.Circuit()) }),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "redis_circuit_transitions_total",
			Help: "Circuit breaker transitions, by the state entered."}, []string{"to"}),
		localBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "local_bytes",
			Help: "Bytes the in-process tier holds (keys, vectors, per-entry overhead)."},
			func() float64 { return float64(c.Stats().LocalBytes) }),
		localEntries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "local_entries",
			Help: "Entries in the in-process tier."},
			func() float64 {
				if c.local == nil {
					return 0
				}
				return float64(c.local.EstimatedSize())
			}),
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, col := range []prometheus.Collector{m.lookups, m.computed, m.shared, m.corrupt, m.redisSeconds, m.redisErrors,
		m.skipped, m.redisBytes, m.circuit, m.transitions, m.localBytes, m.localEntries} {
		if err := r.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("cache: metrics already registered (one cache per registry): %w", err)
			}
			return fmt.Errorf("cache: %w", err)
		}
	}
	return nil
}
