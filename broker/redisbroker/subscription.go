package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
)

// idleCheck is how long a subscription's connection may stay silent before
// it is pinged; when the ping is not answered within idleCheck either, the
// connection is taken for dead (a peer gone without a FIN, a frozen
// server) and replaced. Tests shorten it per Broker (Broker.idleCheck).
const idleCheck = 15 * time.Second

// Subscribe implements broker.Broker. The subscription holds one Redis
// pub/sub connection (on Redis Cluster, one per node), made when the first
// channel is added, and subscribes in Redis only to the channels added to
// it. After a lost connection it
// reconnects and resubscribes by itself; publications sent meanwhile are
// not delivered, and show as a jump in offsets that History recovers.
func (b *Broker) Subscribe(ctx context.Context) (broker.Subscription, error) {
	// Checking closed and registering under b.mu means Close's sweep of
	// b.subs sees every subscription made before it.
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, broker.ErrClosed
	}
	if b.cluster {
		return b.subscribeCluster(), nil
	}
	s := &subscription{
		b:        b,
		ps:       b.client.Subscribe(context.Background()),
		ch:       make(chan broker.Publication, b.cfg.SubscriberBuffer),
		channels: make(map[string]struct{}),
		waiting:  make(map[string]chan struct{}),
		leaving:  make(map[string]chan struct{}),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	go s.run()
	return s, nil
}

type subscription struct {
	b       *Broker
	ps      *redis.PubSub // replaced by run when its connection dies; guarded by mu
	ch      chan broker.Publication
	dropped atomic.Uint64

	mu       sync.Mutex
	channels map[string]struct{}      // broker channels added
	waiting  map[string]chan struct{} // pub/sub channel -> closed when Redis confirms
	leaving  map[string]chan struct{} // pub/sub channel -> closed when Redis confirms the unsubscribe
	closed   bool

	closeOnce sync.Once
	releases  sync.WaitGroup // Remove's background releases
	wake      chan struct{}  // poked by Add when run waits for a first channel
	quit      chan struct{}
	done      chan struct{} // closed when run has exited and closed ch
}

func (s *subscription) C() <-chan broker.Publication { return s.ch }
func (s *subscription) Dropped() uint64              { return s.dropped.Load() }

// Add implements broker.Subscription. It returns once Redis has confirmed
// the subscriptions, so a publication made after Add returns is delivered.
func (s *subscription) Add(ctx context.Context, channels ...string) error {
	if err := broker.CheckChannels(channels...); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return broker.ErrClosed
	}
	var names []string
	var waits []chan struct{}
	for _, ch := range channels {
		if _, ok := s.channels[ch]; ok {
			continue
		}
		s.channels[ch] = struct{}{}
		name := s.b.pubChannel(ch)
		w := make(chan struct{})
		s.waiting[name] = w
		names = append(names, name)
		waits = append(waits, w)
	}
	s.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	err := s.pubsub().Subscribe(ctx, names...)
	for _, w := range waits {
		if err != nil {
			break
		}
		select {
		case <-w:
		case <-ctx.Done():
			err = ctx.Err()
		case <-s.quit:
			err = broker.ErrClosed
		}
	}
	if err != nil {
		_ = s.Remove(context.WithoutCancel(ctx), channels...)
		return fmt.Errorf("redisbroker: subscribe: %w", err)
	}
	return nil
}

// Remove implements broker.Subscription. Once Redis has confirmed the
// unsubscribe, it has the channels that were never published to and that
// no other subscription watches forgotten after Config.UnwatchedTTL (see
// releaseScript).
func (s *subscription) Remove(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return broker.ErrClosed
	}
	var names, removed []string
	var waits []chan struct{}
	for _, ch := range channels {
		if _, ok := s.channels[ch]; !ok {
			continue
		}
		delete(s.channels, ch)
		name := s.b.pubChannel(ch)
		delete(s.waiting, name)
		w := make(chan struct{})
		s.leaving[name] = w
		names = append(names, name)
		removed = append(removed, ch)
		waits = append(waits, w)
	}
	s.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	// go-redis forgets the channels even when the command cannot be sent,
	// so a reconnect does not subscribe them again; publications already
	// in flight are filtered out in run.
	if err := s.pubsub().Unsubscribe(ctx, names...); err != nil {
		s.forgetLeaving(names)
		if errors.Is(err, redis.ErrClosed) {
			return nil
		}
		return fmt.Errorf("redisbroker: unsubscribe: %w", err)
	}
	// The release waits for the confirmation in the background, so that
	// Remove costs the caller no round trip.
	s.releases.Add(1)
	go func() {
		defer s.releases.Done()
		if awaitAll(waits, s.quit) {
			s.b.release(removed...)
		}
		s.forgetLeaving(names)
	}()
	return nil
}

// release runs releaseScript for each channel. A failure only leaves the
// channel's meta hash to expire after HistoryTTL: it is logged.
func (b *Broker) release(channels ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeWait)
	defer cancel()
	numsub := "NUMSUB"
	if b.cluster {
		numsub = "SHARDNUMSUB"
	}
	for _, ch := range channels {
		err := releaseScript.Run(ctx, b.client, []string{b.metaKey(ch)}, numsub, b.pubChannel(ch), b.cfg.UnwatchedTTL.Milliseconds()).Err()
		if err != nil && !errors.Is(err, redis.ErrClosed) {
			b.cfg.Logger.Debug("redisbroker: forgetting an unused channel failed", "channel", ch, "err", err)
		}
	}
}

// forgetLeaving drops the unsubscribe waiters of names.
func (s *subscription) forgetLeaving(names []string) {
	s.mu.Lock()
	for _, name := range names {
		delete(s.leaving, name)
	}
	s.mu.Unlock()
}

// unsubscribeWait bounds how long a release waits for Redis to confirm an
// unsubscribe before it gives up (a channel left behind then expires after
// HistoryTTL), and then how long its script may take.
const unsubscribeWait = 2 * time.Second

// awaitAll reports whether every channel in waits was closed within
// unsubscribeWait, before quit was.
func awaitAll(waits []chan struct{}, quit <-chan struct{}) bool {
	t := time.NewTimer(unsubscribeWait)
	defer t.Stop()
	for _, w := range waits {
		select {
		case <-w:
		case <-t.C:
			return false
		case <-quit:
			return false
		}
	}
	return true
}

// Close implements broker.Subscription. It waits until C is closed.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		ps := s.ps
		s.mu.Unlock()
		close(s.quit)
		_ = ps.Close()
		s.releases.Wait()
		s.b.subsMu.Lock()
		delete(s.b.subs, s)
		s.b.subsMu.Unlock()
	})
	<-s.done
	return nil
}

// run is the subscription's one reader: it owns ch and closes it.
func (s *subscription) run() {
	defer close(s.done)
	defer close(s.ch)
	ctx := context.Background()
	delay := 50 * time.Millisecond
	idle := false
	// lost: the connection was lost or replaced since the last message;
	// publications sent meanwhile were missed.
	lost := false
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		if !s.hasChannels() {
			// No channel yet: do not hold a connection open for nothing.
			select {
			case <-s.quit:
				return
			case <-s.wake:
			}
			continue
		}
		ps := s.pubsub()
		msg, err := ps.ReceiveTimeout(ctx, s.b.idleCheck)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !idle {
					// Silent for idleCheck: ask for a pong.
					idle = true
					_ = ps.Ping(ctx)
					continue
				}
				// No pong either: go-redis does not drop a connection
				// for a read timeout, so replace it.
				idle = false
				lost = true
				s.replace(ps)
				continue
			}
			idle, lost = false, true
			select {
			case <-s.quit:
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, time.Second)
			continue
		}
		idle, delay = false, 50*time.Millisecond
		if lost {
			// Back after a lost connection: count it as a drop, so that
			// the subscriber checks its channels against their history
			// (a hub does), the only way to find a publication missed
			// meanwhile that no later one follows.
			lost = false
			s.dropped.Add(1)
		}
		switch m := msg.(type) {
		case *redis.Message:
			s.deliver(m)
		case *redis.Subscription:
			waits := s.waiting
			if m.Kind == "unsubscribe" {
				waits = s.leaving
			}
			s.mu.Lock()
			if w, ok := waits[m.Channel]; ok {
				close(w)
				delete(waits, m.Channel)
			}
			s.mu.Unlock()
		}
	}
}

func (s *subscription) pubsub() *redis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

// replace swaps a PubSub whose connection is dead for a new one subscribed
// to the same channels.
func (s *subscription) replace(old *redis.PubSub) {
	s.mu.Lock()
	if s.closed || s.ps != old {
		s.mu.Unlock()
		return
	}
	names := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		names = append(names, s.b.pubChannel(ch))
	}
	s.ps = s.b.client.Subscribe(context.Background())
	ps := s.ps
	s.mu.Unlock()
	_ = old.Close()
	s.b.cfg.Logger.Warn("redisbroker: subscription connection silent, reconnecting", "channels", len(names))
	if len(names) > 0 {
		// A failure is retried by go-redis when run reads next: the
		// channels are recorded in ps either way.
		_ = ps.Subscribe(context.Background(), names...)
	}
}

func (s *subscription) hasChannels() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.channels) > 0
}

func (s *subscription) deliver(m *redis.Message) {
	ch, ok := s.b.channelOf(m.Channel)
	if !ok {
		return
	}
	s.mu.Lock()
	_, wanted := s.channels[ch]
	s.mu.Unlock()
	if !wanted {
		return
	}
	s.b.offer(ch, m.Payload, s.ch, &s.dropped)
}

// offer decodes a publication received on ch and hands it to out without
// waiting: when out is full it is dropped and counted in dropped, the
// drop-and-count policy of every subscription.
func (b *Broker) offer(ch, payload string, out chan<- broker.Publication, dropped *atomic.Uint64) {
	p, err := decodePub(ch, []byte(payload))
	if err != nil {
		b.report(err)
		return
	}
	select {
	case out <- p:
	default:
		dropped.Add(1)
	}
}
