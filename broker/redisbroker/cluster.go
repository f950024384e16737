package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
)

// clusterSub is a Subscription on Redis Cluster: sharded pub/sub
// (SSUBSCRIBE), which must be made on the node that owns a channel's
// slot, so it holds one go-redis PubSub per node, each with its reader
// goroutine, all delivering to one buffer.
type clusterSub struct {
	b       *Broker
	cc      *redis.ClusterClient
	ch      chan broker.Publication
	dropped atomic.Uint64

	mu       sync.Mutex
	channels map[string]*nodeSub      // broker channel -> the node's PubSub
	nodes    map[string]*nodeSub      // node address -> its PubSub
	waiting  map[string]chan struct{} // pub/sub channel -> closed when confirmed
	leaving  map[string]chan struct{} // pub/sub channel -> closed when the unsubscribe is confirmed
	closed   bool

	readers   sync.WaitGroup
	quit      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

// nodeSub is the PubSub of one cluster node. ps is replaced (replace)
// when its connection goes silent; guarded by clusterSub.mu.
type nodeSub struct {
	addr string
	ps   *redis.PubSub
}

func (b *Broker) subscribeCluster() *clusterSub {
	s := &clusterSub{
		b:        b,
		cc:       b.client.(*redis.ClusterClient),
		ch:       make(chan broker.Publication, b.cfg.SubscriberBuffer),
		channels: make(map[string]*nodeSub),
		nodes:    make(map[string]*nodeSub),
		waiting:  make(map[string]chan struct{}),
		leaving:  make(map[string]chan struct{}),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	b.subsMu.Lock()
	b.subs[s] = struct{}{}
	b.subsMu.Unlock()
	return s
}

func (s *clusterSub) C() <-chan broker.Publication { return s.ch }
func (s *clusterSub) Dropped() uint64              { return s.dropped.Load() }

// Add implements broker.Subscription. It returns once each channel's node
// has confirmed the subscription.
func (s *clusterSub) Add(ctx context.Context, channels ...string) error {
	if err := broker.CheckChannels(channels...); err != nil {
		return err
	}
	for _, ch := range channels {
		if err := s.add(ctx, ch); err != nil {
			_ = s.Remove(context.WithoutCancel(ctx), channels...)
			return fmt.Errorf("redisbroker: subscribe: %w", err)
		}
	}
	return nil
}

func (s *clusterSub) add(ctx context.Context, ch string) error {
	name := s.b.pubChannel(ch)
	node, err := s.cc.MasterForKey(ctx, name)
	if err != nil {
		return err
	}
	addr := node.Options().Addr
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return broker.ErrClosed
	}
	if _, ok := s.channels[ch]; ok {
		s.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	s.waiting[name] = w
	n := s.nodes[addr]
	if n == nil {
		// A sharded PubSub connects to the node of its first channel's
		// slot (and reconnects there): make it with name, so that it
		// never connects before it has a channel. Dialing under s.mu is
		// acceptable: hubs add channels at human rates.
		n = &nodeSub{addr: addr, ps: s.cc.SSubscribe(ctx, name)}
		s.nodes[addr] = n
		s.readers.Add(1)
		go s.read(n)
	} else {
		err = n.ps.SSubscribe(ctx, name)
	}
	s.channels[ch] = n
	s.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return broker.ErrClosed
	}
}

// Remove implements broker.Subscription. Once the node has confirmed the
// unsubscribe, it has the channels that were never published to and that
// no other subscription watches forgotten after Config.UnwatchedTTL (see
// releaseScript).
func (s *clusterSub) Remove(ctx context.Context, channels ...string) error {
	var firstErr error
	for _, ch := range channels {
		name := s.b.pubChannel(ch)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return broker.ErrClosed
		}
		n := s.channels[ch]
		delete(s.channels, ch)
		delete(s.waiting, name)
		if n == nil {
			s.mu.Unlock()
			continue
		}
		empty := !s.usedLocked(n)
		if empty {
			// An empty sharded PubSub would reconnect to a random node:
			// it is closed below; the next channel of that node makes a
			// new one.
			delete(s.nodes, n.addr)
		}
		w := make(chan struct{})
		s.leaving[name] = w
		ps := n.ps
		s.mu.Unlock()
		err := ps.SUnsubscribe(ctx, name)
		if err != nil && !errors.Is(err, redis.ErrClosed) && firstErr == nil {
			firstErr = fmt.Errorf("redisbroker: unsubscribe: %w", err)
		}
		// The rest waits for the confirmation in the background, so that
		// Remove costs the caller no round trip.
		s.readers.Add(1)
		go func() {
			defer s.readers.Done()
			confirmed := err == nil && awaitAll([]chan struct{}{w}, s.quit)
			s.mu.Lock()
			delete(s.leaving, name)
			s.mu.Unlock()
			if empty {
				_ = ps.Close()
			}
			if confirmed {
				s.b.release(ch)
			}
		}()
	}
	return firstErr
}

// replace gives n a new PubSub subscribed to n's channels, in place of
// old, whose connection went silent. The new connection is dialed with
// s.mu released (the other nodes' readers take it), and its channels are
// subscribed one by one: one SSUBSCRIBE must stay within a slot.
func (s *clusterSub) replace(n *nodeSub, old *redis.PubSub) {
	names := s.namesOn(n, old)
	if len(names) == 0 {
		return
	}
	ctx := context.Background()
	ps := s.cc.SSubscribe(ctx, names[0])
	for _, name := range names[1:] {
		// A failure is retried by go-redis at the next read: the
		// channel is recorded in ps either way.
		_ = ps.SSubscribe(ctx, name)
	}
	s.mu.Lock()
	if s.closed || n.ps != old || s.nodes[n.addr] != n {
		s.mu.Unlock()
		_ = ps.Close()
		return
	}
	// Channels added or removed meanwhile went to old: carry them over.
	now := make(map[string]bool, len(names))
	for ch, m := range s.channels {
		if m == n {
			now[s.b.pubChannel(ch)] = true
		}
	}
	var add, drop []string
	for name := range now {
		if !slices.Contains(names, name) {
			add = append(add, name)
		}
	}
	for _, name := range names {
		if !now[name] {
			drop = append(drop, name)
		}
	}
	n.ps = ps
	s.mu.Unlock()
	for _, name := range add {
		_ = ps.SSubscribe(ctx, name)
	}
	for _, name := range drop {
		_ = ps.SUnsubscribe(ctx, name)
	}
	_ = old.Close()
	s.b.cfg.Logger.Warn("redisbroker: cluster subscription connection silent, reconnecting", "node", n.addr, "channels", len(now))
}

// namesOn returns the pub/sub channels on n, none when n no longer uses
// old (replaced, removed, closed).
func (s *clusterSub) namesOn(n *nodeSub, old *redis.PubSub) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || n.ps != old || s.nodes[n.addr] != n {
		return nil
	}
	var names []string
	for ch, m := range s.channels {
		if m == n {
			names = append(names, s.b.pubChannel(ch))
		}
	}
	return names
}

// usedLocked reports whether any channel is on n.
func (s *clusterSub) usedLocked(n *nodeSub) bool {
	for _, m := range s.channels {
		if m == n {
			return true
		}
	}
	return false
}

// Close implements broker.Subscription. It waits until C is closed.
func (s *clusterSub) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		pss := make([]*redis.PubSub, 0, len(s.nodes))
		for _, n := range s.nodes {
			pss = append(pss, n.ps)
		}
		s.mu.Unlock()
		close(s.quit)
		for _, ps := range pss {
			_ = ps.Close()
		}
		s.readers.Wait()
		close(s.ch)
		close(s.done)
		s.b.subsMu.Lock()
		delete(s.b.subs, s)
		s.b.subsMu.Unlock()
	})
	<-s.done
	return nil
}

// read is the reader of one node's PubSub. go-redis reconnects it, to the
// node that owns its first channel's slot, and resubscribes; a connection
// silent for idleCheck is pinged, and replaced when the pong does not
// come either (go-redis keeps a connection after a read timeout). As in
// subscription.run, a lost or replaced connection counts in Dropped once
// messages flow again.
func (s *clusterSub) read(n *nodeSub) {
	defer s.readers.Done()
	ctx := context.Background()
	delay := 50 * time.Millisecond
	idle, lost := false, false
	for {
		select {
		case <-s.quit:
			return
		default:
		}
		s.mu.Lock()
		ps := n.ps
		s.mu.Unlock()
		msg, err := ps.ReceiveTimeout(ctx, s.b.idleCheck)
		if errors.Is(err, redis.ErrClosed) {
			s.mu.Lock()
			replaced := n.ps != ps
			s.mu.Unlock()
			if replaced {
				continue
			}
			return // closed by Close, or by Remove of its last channel
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !idle {
					idle = true
					_ = ps.Ping(ctx)
					continue
				}
				idle, lost = false, true
				s.replace(n, ps)
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
			lost = false
			s.dropped.Add(1)
		}
		switch m := msg.(type) {
		case *redis.Message:
			s.deliver(m)
		case *redis.Subscription:
			s.b.cfg.Logger.Debug("redisbroker: cluster subscription", "kind", m.Kind, "channel", m.Channel, "node", n.addr)
			switch m.Kind {
			case "ssubscribe":
				s.mu.Lock()
				if w, ok := s.waiting[m.Channel]; ok {
					close(w)
					delete(s.waiting, m.Channel)
				}
				s.mu.Unlock()
			case "sunsubscribe":
				s.mu.Lock()
				w, asked := s.leaving[m.Channel]
				if asked {
					close(w)
					delete(s.leaving, m.Channel)
				}
				s.mu.Unlock()
				if !asked {
					s.moved(n, m.Channel)
				}
			}
		}
	}
}

// moved handles an sunsubscribe the subscription did not ask for: the
// node no longer owns the channel's slot (resharding). The channel is
// subscribed again wherever its slot now lives; what was published in
// between shows as an offset gap that the hub recovers from history.
func (s *clusterSub) moved(n *nodeSub, name string) {
	ch, ok := s.b.channelOf(name)
	if !ok {
		return
	}
	s.mu.Lock()
	still := s.channels[ch] == n && !s.closed
	if still {
		delete(s.channels, ch)
	}
	empty := still && !s.usedLocked(n)
	if empty {
		// An empty sharded PubSub would reconnect to a random node.
		delete(s.nodes, n.addr)
	}
	ps := n.ps
	s.mu.Unlock()
	if !still {
		return
	}
	if empty {
		_ = ps.Close()
	} else {
		_ = ps.SUnsubscribe(context.Background(), name)
	}
	s.readers.Add(1) // the caller, a reader, holds the count above zero
	go func() {
		defer s.readers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The client's slot map is stale until it reloads: wait until it
		// names another owner.
		for {
			s.cc.ReloadState(ctx)
			owner, err := s.cc.MasterForKey(ctx, name)
			if err == nil && owner.Options().Addr != n.addr {
				break
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-s.quit:
				return
			case <-ctx.Done():
				s.b.report(fmt.Errorf("redisbroker: %q left node %s and no other node owns it", ch, n.addr))
				return
			}
		}
		if err := s.add(ctx, ch); err != nil && !errors.Is(err, broker.ErrClosed) {
			s.b.report(fmt.Errorf("redisbroker: resubscribing %q after a slot moved: %w", ch, err))
		}
	}()
}

func (s *clusterSub) deliver(m *redis.Message) {
	ch, ok := s.b.channelOf(m.Channel)
	if !ok {
		return
	}
	s.mu.Lock()
	_, wanted := s.channels[ch]
	closed := s.closed
	s.mu.Unlock()
	if !wanted || closed {
		return
	}
	s.b.offer(ch, m.Payload, s.ch, &s.dropped)
}
