package server

import (
	"context"
	"errors"
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
