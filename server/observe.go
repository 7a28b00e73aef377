package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type serverMetrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	refusal     prometheus.Histogram
	rejected    *prometheus.CounterVec
	items       *prometheus.HistogramVec
	inflight    prometheus.Gauge
	inflightNow atomic.Int64
}

// ready is read at each scrape for icthp_ready, so the gauge shows the same
// state /readyz answers from, with nothing to keep in step.
func newServerMetrics(reg prometheus.Registerer, models []ModelInfo, ready func() bool) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_http_requests_total",
			Help: "HTTP requests by route, method and status code."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_http_request_duration_seconds",
			Help:    "Time from reading a request's headers to writing its answer, by route.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 17)}, []string{"route", "method"}),
		// Apart from latency: a refusal must cost microseconds whatever
		// the scored requests take, and mixed into one histogram the 429s
		// of an overload vanish under the seconds of the answered requests.
		refusal: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "icthp_http_refusal_duration_seconds",
			Help:    "Time from reading a request's headers to writing its 429 (overloaded or deadline), any route.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 17)}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "icthp_http_rejected_total",
			Help: "Requests answered with an error before or instead of scoring, by reason (the error code, or queue_full / deadline for 429s)."},
			[]string{"reason"}),
		items: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "icthp_http_request_items",
			Help:    "Images, reward items or texts per request.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "icthp_http_in_flight_requests",
			Help: "Requests being served now."}),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "icthp_model_info",
		Help: "Loaded models (value 1), with their version and execution provider."},
		[]string{"model", "version", "kind", "provider", "device"})
	for _, mi := range models {
		info.With(prometheus.Labels{"model": mi.Name, "version": mi.Version, "kind": mi.Kind, "provider": mi.Provider, "device": mi.Device}).Set(1)
	}
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "icthp_ready",
		Help: "1 when /readyz answers 200 (models loaded and warm, not draining), else 0."},
		func() float64 {
			if ready() {
				return 1
			}
			return 0
		})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.refusal, m.rejected, m.items, m.inflight, info, readyGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server metrics: %w", err)
		}
	}
	return m, nil
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)})
}

// Context keys of what handlers tell observe.
const (
	keyItems = "icthp.items"
	keyError = "icthp.error"
)

// requestID returns the client's id when it is a short token of safe
// characters, else a new random one.
func requestID(h string) string {
	if len(h) > 0 && len(h) <= 128 {
		ok := true
		for i := range len(h) {
			b := h[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.' || b == ':') {
				ok = false
				break
			}
		}
		if ok {
			return h
		}
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// observe assigns the request id, and records each request's metrics and
// its JSON log line.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	id := requestID(c.GetHeader(RequestIDHeader))
	c.Header(RequestIDHeader, id)
	s.m.inflight.Inc()
	s.m.inflightNow.Add(1)
	defer func() {
		s.m.inflight.Dec()
		s.m.inflightNow.Add(-1)
	}()

	c.Next()

	status := c.Writer.Status()
	if c.Request.Context().Err() != nil && status >= 500 {
		status = statusClientClosed // nobody read the answer
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	took := time.Since(start)
	s.m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	s.m.latency.WithLabelValues(route, c.Request.Method).Observe(took.Seconds())
	if status == http.StatusTooManyRequests {
		s.m.refusal.Observe(took.Seconds())
	}
	attrs := []slog.Attr{
		slog.String("request_id", id),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", math.Round(took.Seconds()*1e6)/1e3),
		slog.Int64("bytes_in", c.Request.ContentLength),
		slog.Int("bytes_out", c.Writer.Size()),
		slog.String("remote", c.ClientIP()),
	}
	if n, ok := c.Get(keyItems); ok {
		attrs = append(attrs, slog.Int("items", n.(int)))
		s.m.items.WithLabelValues(route).Observe(float64(n.(int)))
	}
	level := slog.LevelInfo
	if v, ok := c.Get(keyError); ok {
		e := v.(*apiError)
		attrs = append(attrs, slog.String("error_code", e.code), slog.String("error", e.msg))
		if e.detail != "" {
			attrs = append(attrs, slog.String("error_detail", e.detail))
		}
		if e.status >= 500 && e.status != statusClientClosed {
			level = slog.LevelError
		}
	}
	s.log.LogAttrs(c.Request.Context(), level, "request", attrs...)
}

// recover turns a panic in a handler into a 500 instead of a dropped
// connection.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(r)
			}
			s.log.Error("panic", "panic", fmt.Sprint(r), "path", c.Request.URL.Path)
			s.fail(c, newError(http.StatusInternalServerError, CodeInternal, "internal error"))
		}
	}()
	c.Next()
}

// fail answers with the SPEC §4 error body and stops the handler chain.
func (s *Server) fail(c *gin.Context, err error) {
	e := classify(err)
	c.Set(keyError, e)
	if e.status != http.StatusInternalServerError {
		reason := e.reason
		if reason == "" {
			reason = e.code
		}
		s.m.rejected.WithLabelValues(reason).Inc()
	}
	if e.retryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(e.retryAfter.Seconds()))))
	}
	status := e.status
	if status == statusClientClosed {
		c.Abort() // the client is gone: nothing to write
		c.Status(status)
		return
	}
	s.writeJSON(c, status, gin.H{"error": errorJSON{Code: e.code, Message: e.msg}})
	c.Abort()
}

// writeJSON encodes v before writing anything, so that an encoding failure
// (a NaN, say) becomes a 500 instead of half a body.
func (s *Server) writeJSON(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e := newError(http.StatusInternalServerError, CodeInternal, "encoding the answer: "+err.Error())
		c.Set(keyError, e)
		b, _ = json.Marshal(gin.H{"error": errorJSON{Code: e.code, Message: e.msg}})
		status = e.status
	}
	c.Data(status, "application/json; charset=utf-8", b)
}
