package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestMemoryJobsExpire: a job and an idempotency key are gone after their
// TTL, on a fake clock.
func TestMemoryJobsExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemoryJobs().(*memoryJobs)
	m.now = func() time.Time { return now }
	ctx := context.Background()
	if err := m.Put(ctx, &Job{ID: "a", Status: JobDone}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := m.Claim(ctx, "k", "d1", "a", time.Minute); id != "a" {
		t.Fatalf("claim: %q", id)
	}
	if id, dig, _ := m.Claim(ctx, "k", "d2", "b", time.Minute); id != "a" || dig != "d1" {
		t.Errorf("second claim: %q %q, want the first binding", id, dig)
	}
	now = now.Add(59 * time.Second)
	if j, err := m.Get(ctx, "a"); err != nil || j.Status != JobDone {
		t.Errorf("before the TTL: %v %v", j, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := m.Get(ctx, "a"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("after the TTL: %v, want ErrJobNotFound", err)
	}
	if id, _, _ := m.Claim(ctx, "k", "d2", "b", time.Minute); id != "b" {
		t.Errorf("claim after the TTL: %q, want the new job", id)
	}
	m.Put(ctx, &Job{ID: "c"}, time.Minute) // sweeps "a"
	if _, ok := m.jobs["a"]; ok {
		t.Error("an expired job was not swept")
	}
}

// TestMemoryJobsExpiryHeap: expiry pops only what is due — a job written
// again later keeps its later deadline, and after many jobs expire the heap
// holds only the live ones.
func TestMemoryJobsExpiryHeap(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemoryJobs().(*memoryJobs)
	m.now = func() time.Time { return now }
	ctx := context.Background()
	m.Put(ctx, &Job{ID: "a", Status: JobPending}, time.Minute)
	now = now.Add(50 * time.Second)
	m.Put(ctx, &Job{ID: "a", Status: JobDone}, time.Minute) // a's deadline moves to 1m50s
	now = now.Add(20 * time.Second)                         // past a's first deadline
	m.Put(ctx, &Job{ID: "b"}, time.Minute)
	if j, err := m.Get(ctx, "a"); err != nil || j.Status != JobDone {
		t.Fatalf("a rewritten at 50 s, read at 70 s: %v %v, want done", j, err)
	}
	for i := range 1000 {
		m.Put(ctx, &Job{ID: fmt.Sprint("j", i)}, time.Second)
		m.Claim(ctx, fmt.Sprint("k", i), "d", "x", time.Second)
	}
	now = now.Add(2 * time.Second)
	m.Put(ctx, &Job{ID: "c"}, time.Minute)
	if len(m.jobs) != 3 || len(m.keys) != 0 || len(m.expiry) != 3 {
		t.Errorf("after 1000 jobs and keys expired: %d jobs, %d keys, %d heap entries; want 3, 0, 3", len(m.jobs), len(m.keys), len(m.expiry))
	}
}

// TestRetryPolicy: attempts are bounded, each by its own timeout, and a
// success stops them.
func TestRetryPolicy(t *testing.T) {
	p := retryPolicy{attempts: 4, timeout: 20 * time.Millisecond, backoff: time.Millisecond}
	calls := 0
	err := p.do(context.Background(), func(ctx context.Context) error {
		calls++
		<-ctx.Done() // a stalled store: only the attempt's timeout ends it
		return ctx.Err()
	})
	if calls != 4 || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled: %d calls, %v; want 4 calls ending in DeadlineExceeded", calls, err)
	}
	calls = 0
	err = p.do(context.Background(), func(context.Context) error {
		if calls++; calls < 3 {
			return errors.New("down")
		}
		return nil
	})
	if calls != 3 || err != nil {
		t.Errorf("recovering: %d calls, %v; want 3 calls and nil", calls, err)
	}
}
