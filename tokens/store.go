package tokens

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"
)

// ReplayStore remembers which token IDs (jti) were used, so that each token
// connects once. The Redis broker provides one shared by every hub;
// MemoryStore serves a single process.
type ReplayStore interface {
	// Use reports whether jti was unused and marks it used until `until`
	// (the token's expiry plus the verifier's leeway), after which the
	// token is refused as expired anyway and the mark may be forgotten.
	// An error means the store could not tell; the token is then refused.
	// Safe for concurrent use: of many concurrent calls with one jti, at
	// most one reports fresh.
	Use(ctx context.Context, jti string, until time.Time) (fresh bool, err error)
}

// DefaultMaxEntries is the number of unexpired marks a MemoryStore holds
// when MemoryStoreConfig.MaxEntries is zero. At the default 60 s lifetime
// it allows about 16,000 connections a second, in roughly 150 MB.
const DefaultMaxEntries = 1_000_000

// MemoryStoreConfig configures a MemoryStore.
type MemoryStoreConfig struct {
	// MaxEntries bounds the unexpired marks held at once; when it is
	// reached, Use refuses new IDs with ErrStoreFull instead of growing.
	// Zero value means DefaultMaxEntries.
	MaxEntries int
	// Now tells the time; it must agree with the verifier's clock. Zero
	// value means time.Now.
	Now func() time.Time
}

// MemoryStore is the in-process ReplayStore. Marks are forgotten once
// their until time passes: each Use first drops the expired ones, oldest
// first, so memory follows the number of live tokens and no goroutine is
// needed. It is safe for concurrent use.
type MemoryStore struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
	queue expiryQueue
}

// NewMemoryStore returns a MemoryStore configured by cfg, or by the zero
// MemoryStoreConfig (every default) when cfg is left out. Only the first
// cfg counts. NewMemoryStore cannot fail: a negative MaxEntries counts as
// zero.
func NewMemoryStore(cfg ...MemoryStoreConfig) *MemoryStore {
	var c MemoryStoreConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	return newMemoryStore(c)
}

// NewMemoryStoreWith returns a MemoryStore configured by cfg.
//
// Deprecated: use NewMemoryStore(cfg).
func NewMemoryStoreWith(cfg MemoryStoreConfig) *MemoryStore { return newMemoryStore(cfg) }

func newMemoryStore(cfg MemoryStoreConfig) *MemoryStore {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryStore{max: cfg.MaxEntries, now: cfg.Now, until: make(map[string]time.Time)}
}

// Use implements ReplayStore. It returns ErrStoreFull when MaxEntries
// unexpired marks are held, and ctx's error when ctx is done.
func (s *MemoryStore) Use(ctx context.Context, jti string, until time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if _, used := s.until[jti]; used {
		return false, nil
	}
	if !until.After(now) {
		// Already past its expiry: a verifier refuses such a token before
		// asking, so there is nothing to remember.
		return true, nil
	}
	if len(s.until) >= s.max {
		return false, fmt.Errorf("%w (%d entries)", ErrStoreFull, s.max)
	}
	s.until[jti] = until
	heap.Push(&s.queue, expiryItem{jti: jti, until: until})
	return true, nil
}

// Len returns the number of marks held, expired ones included until the
// next Use drops them.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.until)
}

// expire drops the marks whose until is not after now. Each mark has
// exactly one queue item, because a jti is only added when absent.
func (s *MemoryStore) expire(now time.Time) {
	for len(s.queue) > 0 && !s.queue[0].until.After(now) {
		it := heap.Pop(&s.queue).(expiryItem)
		delete(s.until, it.jti)
	}
}

type expiryItem struct {
	jti   string
	until time.Time
}

// expiryQueue is a min-heap of marks by until.
type expiryQueue []expiryItem

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].until.Before(q[j].until) }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiryItem)) }
func (q *expiryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = expiryItem{}
	*q = old[:len(old)-1]
	return it
}
