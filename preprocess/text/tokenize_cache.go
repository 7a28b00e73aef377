package text

import (
	"hash/maphash"
	"sync"
)

// lruCache is a bounded, concurrency-safe least-recently-used map from
// strings to values, split into independently locked shards. Values are
// shared between callers and must not be modified after put.
type lruCache[V any] struct {
	seed   maphash.Seed
	shards []lruShard[V]
}

type lruShard[V any] struct {
	mu   sync.Mutex
	cap  int
	m    map[string]*lruEntry[V]
	root lruEntry[V] // sentinel of a circular list, most recent first
}

type lruEntry[V any] struct {
	key        string
	val        V
	prev, next *lruEntry[V]
}

// newLRUCache returns a cache holding at most capacity entries in total
// (rounded up to a multiple of the shard count), or nil for capacity <= 0.
// A nil *lruCache is a valid, always-empty cache.
func newLRUCache[V any](capacity int) *lruCache[V] {
	if capacity <= 0 {
		return nil
	}
	n := 1
	for n < 16 && capacity/(n*2) >= 32 {
		n *= 2
	}
	c := &lruCache[V]{seed: maphash.MakeSeed(), shards: make([]lruShard[V], n)}
	per := (capacity + n - 1) / n
	for i := range c.shards {
		s := &c.shards[i]
		s.cap = per
		s.m = make(map[string]*lruEntry[V])
		s.root.next, s.root.prev = &s.root, &s.root
	}
	return c
}

func (c *lruCache[V]) shard(key string) *lruShard[V] {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&uint64(len(c.shards)-1)]
}

func (s *lruShard[V]) unlink(e *lruEntry[V]) {
	e.prev.next = e.next
	e.next.prev = e.prev
}

func (s *lruShard[V]) pushFront(e *lruEntry[V]) {
	e.prev = &s.root
	e.next = s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (c *lruCache[V]) get(key string) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return zero, false
	}
	if s.root.next != e {
		s.unlink(e)
		s.pushFront(e)
	}
	return e.val, true
}

func (c *lruCache[V]) put(key string, val V) {
	if c == nil {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.val = val
		s.unlink(e)
		s.pushFront(e)
		return
	}
	var e *lruEntry[V]
	if len(s.m) >= s.cap {
		// Reuse the least recently used entry.
		e = s.root.prev
		s.unlink(e)
		delete(s.m, e.key)
	} else {
		e = new(lruEntry[V])
	}
	e.key, e.val = key, val
	s.m[key] = e
	s.pushFront(e)
}

func (c *lruCache[V]) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
