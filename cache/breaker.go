package cache

import (
	"sync"
	"time"
)

// State is the circuit breaker's state in front of Redis.
type State int32

// Breaker states; the values are what the circuit-state gauge reports.
const (
	Closed   State = iota // Redis is used
	Open                  // Redis is skipped until the cool-down has passed
	HalfOpen              // one probe is in flight; everyone else skips Redis
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// breaker opens after threshold consecutive failures, so that requests stop
// waiting on a Redis that is down or slow. After cooldown one operation is
// let through as a probe: its success closes the circuit, its failure opens
// it for another cooldown.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	// onChange is called, outside the lock, for every transition.
	onChange func(from, to State)

	mu       sync.Mutex
	state    State
	fails    int
	openedAt time.Time
}

// allow says whether an operation may use Redis now. probe is true for the
// one operation that tests a half-open circuit; it must report back with
// done.
func (b *breaker) allow() (ok, probe bool) {
	b.mu.Lock()
	switch b.state {
	case Closed:
		b.mu.Unlock()
		return true, false
	case Open:
		if b.now().Sub(b.openedAt) >= b.cooldown {
			b.state = HalfOpen
			b.mu.Unlock()
			b.changed(Open, HalfOpen)
			return true, true
		}
	}
	b.mu.Unlock()
	return false, false
}

// done records an operation's outcome. An operation abandoned by its caller
// (its context ended) is no verdict on Redis: pass ok=false, verdict=false.
func (b *breaker) done(probe, ok, verdict bool) {
	b.mu.Lock()
	from := b.state
	var to State
	switch {
	case !verdict:
		if probe && b.state == HalfOpen {
			// Let the next operation probe again at once.
			b.state = Open
		}
	case ok:
		b.fails = 0
		if probe && b.state == HalfOpen {
			b.state = Closed
		}
	default:
		b.fails++
		if (b.state == Closed && b.fails >= b.threshold) || (probe && b.state == HalfOpen) {
			b.state, b.openedAt = Open, b.now()
		}
	}
	to = b.state
	b.mu.Unlock()
	if from != to {
		b.changed(from, to)
	}
}

func (b *breaker) changed(from, to State) {
	if b.onChange != nil {
		b.onChange(from, to)
	}
}

// State is the current state.
func (b *breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
