package tokens_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/tokens"
)

func TestMemoryStoreExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := tokens.NewMemoryStore(tokens.MemoryStoreConfig{Now: clk.Now})
	ctx := context.Background()
	steps := []struct {
		name      string
		advance   time.Duration
		jti       string
		until     time.Duration // after epoch
		wantFresh bool
		wantLen   int // after the call
	}{
		{"first use of a", 0, "a", 10 * time.Second, true, 1},
		{"first use of b", 0, "b", 20 * time.Second, true, 2},
		{"reuse of a", 5 * time.Second, "a", 10 * time.Second, false, 2},
		{"reuse of a, until changed", 0, "a", time.Hour, false, 2},
		{"a forgotten at its until", 5 * time.Second, "a", 30 * time.Second, true, 2},
		{"b still marked", 9 * time.Second, "b", 20 * time.Second, false, 2},
		{"b forgotten", time.Second, "c", 25 * time.Second, true, 2},
		{"b usable again", 0, "b", 40 * time.Second, true, 3},
		{"an until already past is not kept", 0, "d", 0, true, 3},
		{"all expire", time.Minute, "e", 2 * time.Minute, true, 1},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		fresh, err := s.Use(ctx, st.jti, epoch.Add(st.until))
		if err != nil {
			t.Fatalf("%s: Use: %v", st.name, err)
		}
		if fresh != st.wantFresh {
			t.Errorf("%s: fresh = %v, want %v", st.name, fresh, st.wantFresh)
		}
		if got := s.Len(); got != st.wantLen {
			t.Errorf("%s: Len = %d, want %d", st.name, got, st.wantLen)
		}
	}
}

func TestMemoryStoreBound(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := tokens.NewMemoryStore(tokens.MemoryStoreConfig{MaxEntries: 3, Now: clk.Now})
	ctx := context.Background()
	for i := range 3 {
		if fresh, err := s.Use(ctx, strconv.Itoa(i), epoch.Add(time.Duration(i+1)*time.Second)); !fresh || err != nil {
			t.Fatalf("Use %d = %v, %v", i, fresh, err)
		}
	}
	fresh, err := s.Use(ctx, "over", epoch.Add(time.Minute))
	if fresh || !errors.Is(err, tokens.ErrStoreFull) {
		t.Fatalf("Use beyond MaxEntries = %v, %v; want ErrStoreFull", fresh, err)
	}
	// A known jti is still answered while full.
	if fresh, err := s.Use(ctx, "0", epoch.Add(time.Minute)); fresh || err != nil {
		t.Fatalf("reuse while full = %v, %v; want not fresh, no error", fresh, err)
	}
	clk.Advance(time.Second) // "0" expires, making room
	if fresh, err := s.Use(ctx, "over", epoch.Add(time.Minute)); !fresh || err != nil {
		t.Fatalf("Use after an expiry = %v, %v", fresh, err)
	}
	if got := s.Len(); got != 3 {
		t.Fatalf("Len = %d, want 3", got)
	}
}

func TestMemoryStoreConcurrentUse(t *testing.T) {
	t.Parallel()
	s := tokens.NewMemoryStore()
	until := time.Now().Add(time.Minute)
	const goroutines, ids = 32, 50
	var fresh [ids]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			<-start
			for id := range ids {
				ok, err := s.Use(context.Background(), "jti-"+strconv.Itoa(id), until)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					fresh[id]++
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for id, n := range fresh {
		if n != 1 {
			t.Errorf("jti-%d: %d of %d concurrent uses fresh, want exactly 1", id, n, goroutines)
		}
	}
}

func TestMemoryStoreCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tokens.NewMemoryStore().Use(ctx, "a", time.Now().Add(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Use = %v, want context.Canceled", err)
	}
}
