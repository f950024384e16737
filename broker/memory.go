package broker

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryConfig configures the in-process broker. The zero value is valid.
type MemoryConfig struct {
	// SubscriberBuffer is the number of publications a subscription may
	// hold before new ones are dropped for it. Zero value means 1024.
	SubscriberBuffer int
	// HistorySize is how many publications each channel keeps for
	// recovery. Zero value means 1000; a negative value keeps none.
	// A channel keeps history from the first time it has a subscriber or
	// is asked for its History (as a hub does when a client subscribes,
	// and jsclient when it renders a position into a page); publications
	// before that reach nobody, are not kept and take no offset, since no
	// client can hold a position in the channel yet. A channel that was
	// never published to is forgotten UnwatchedTTL after its last
	// subscriber leaves (see UnwatchedTTL).
	HistorySize int
	// HistoryTTL is how long a publication stays in a channel's history,
	// from when it was published (not from its event's Time, which can be
	// older: an outbox relay catching up).
	// A channel neither published to nor asked for its History for that
	// long is forgotten entirely, and its epoch changes when it is used
	// again. Zero value means 10 minutes.
	HistoryTTL time.Duration
	// UnwatchedTTL is how long a channel that has never been published to
	// keeps its position once its last subscriber has left: long enough
	// for a client that lost its connection to come back and recover from
	// the position it was given, short enough that subscribing to name
	// after name costs nothing for long. A client that comes back later
	// gets recovered=false, since a publication nobody watched may have
	// gone unkept meanwhile. Zero value means 30 seconds.
	UnwatchedTTL time.Duration
	// MaxChannels bounds how many channels without subscribers keep
	// history at once; when a new channel would exceed it, the least
	// recently used channel without subscribers is forgotten (in constant
	// time). A channel with subscribers is never forgotten, nor its
	// history trimmed other than by HistorySize and HistoryTTL: a flood of
	// other channel names cannot make its subscribers lose their
	// position. Zero value means 100,000.
	MaxChannels int
}

func (c *MemoryConfig) setDefaults() {
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = 1024
	}
	if c.HistorySize == 0 {
		c.HistorySize = 1000
	}
	if c.HistorySize < 0 {
		c.HistorySize = 0
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = 10 * time.Minute
	}
	if c.UnwatchedTTL <= 0 {
		c.UnwatchedTTL = 30 * time.Second
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = 100_000
	}
}

// NewMemoryWith returns an in-process broker configured by cfg.
//
// Deprecated: use NewMemory(cfg).
func NewMemoryWith(cfg MemoryConfig) *Memory { return NewMemory(cfg) }

// Memory is the in-process Broker: publishers and subscribers share one
// process. Publish delivers synchronously to every subscription's buffer and
// never blocks on a slow subscriber: when a subscription's buffer is full the
// publication is dropped for that subscription alone and counted in its
// Dropped. Offsets let the consumer see the gap and recover from History.
type Memory struct {
	cfg MemoryConfig

	mu       sync.Mutex
	closed   bool
	channels map[string]*memChannel
	// lru orders the channels without subscribers by last use, most
	// recent at the front, so the age sweep and the MaxChannels eviction
	// only look at the back. A channel with subscribers is not in it.
	lru list.List
	// unwatched holds the channels never published to whose last
	// subscriber has left, oldest first: each is forgotten at its
	// forgetAt, UnwatchedTTL after.
	unwatched list.List
	subs      map[string]map[*memSub]struct{}
	lastTrim  time.Time

	// Epochs are epochBase plus a count of the channels created, so each
	// is new without reading the OS's random source per channel.
	epochBase uint64
	epochs    uint64

	presence memPresence // see presence.go
}

type memChannel struct {
	name string
	elem *list.Element // in Memory.lru, or in Memory.unwatched when forgetAt is set; nil while the channel has subscribers
	// forgetAt is when a channel in Memory.unwatched is forgotten.
	forgetAt time.Time
	epoch    string
	offset   uint64
	last     time.Time // last publish or History call; lru is in this order
	// ring holds the history, oldest first from head, n entries, in a
	// circular buffer that grows by doubling up to HistorySize and is
	// then overwritten in place: a publish allocates nothing.
	ring    []stored
	head, n int
	// ids holds the event ids in ring once it has more than smallRing
	// entries; until then (most record channels) ring is searched.
	ids map[string]struct{}
}

// stored is a publication in a channel's history and when it was
// published, from which HistoryTTL counts (the publication's Time is the
// event's, which can be much older: an outbox relay catching up).
type stored struct {
	pub Publication
	at  time.Time
}

// smallRing is the history length up to which a channel finds duplicate
// event ids by scanning its ring instead of keeping a map.
const smallRing = 16

// at returns the i-th oldest publication in the history.
func (c *memChannel) at(i int) *Publication { return &c.slot(i).pub }

// slot returns the i-th oldest entry of the ring.
func (c *memChannel) slot(i int) *stored {
	i += c.head
	if i >= len(c.ring) {
		i -= len(c.ring)
	}
	return &c.ring[i]
}

// has reports whether the channel's history holds the event id.
func (c *memChannel) has(id string) bool {
	if c.ids != nil {
		_, ok := c.ids[id]
		return ok
	}
	for i := 0; i < c.n; i++ {
		if c.at(i).EventID == id {
			return true
		}
	}
	return false
}

// dropOldest removes the oldest publication from the history.
func (c *memChannel) dropOldest() {
	old := c.slot(0)
	delete(c.ids, old.pub.EventID)
	*old = stored{}
	c.head++
	if c.head == len(c.ring) {
		c.head = 0
	}
	c.n--
}

// push appends pub to the history, dropping the oldest publication when
// it already holds size.
func (c *memChannel) push(pub Publication, now time.Time, size int) {
	if c.n == size {
		c.dropOldest()
	} else if c.n == len(c.ring) {
		grown := make([]stored, min(max(2*len(c.ring), 1), size))
		for i := 0; i < c.n; i++ {
			grown[i] = *c.slot(i)
		}
		c.ring, c.head = grown, 0
	}
	*c.slot(c.n) = stored{pub: pub, at: now}
	c.n++
	switch {
	case c.ids != nil:
		if pub.EventID != "" {
			c.ids[pub.EventID] = struct{}{}
		}
	case c.n > smallRing:
		c.ids = make(map[string]struct{}, 2*c.n)
		for i := 0; i < c.n; i++ {
			if id := c.at(i).EventID; id != "" {
				c.ids[id] = struct{}{}
			}
		}
	}
}

// NewMemory returns an in-process broker configured by cfg, or by the
// zero MemoryConfig (every default) when cfg is left out:
// NewMemory() and NewMemory(MemoryConfig{HistorySize: 100}). Only the
// first cfg counts. NewMemory cannot fail: a negative value in a field
// that does not give negative values a meaning counts as zero.
func NewMemory(cfgs ...MemoryConfig) *Memory {
	var cfg MemoryConfig
	if len(cfgs) > 0 {
		cfg = cfgs[0]
	}
	cfg.setDefaults()
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	return &Memory{
		cfg:       cfg,
		channels:  make(map[string]*memChannel),
		subs:      make(map[string]map[*memSub]struct{}),
		epochBase: binary.LittleEndian.Uint64(seed[:]),
	}
}

// newEpochLocked returns an epoch no channel of this broker had: 12 hex
// digits, random per broker.
func (m *Memory) newEpochLocked() string {
	m.epochs++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], m.epochBase+m.epochs)
	return hex.EncodeToString(b[2:])
}

// Publish implements Broker. It never waits (a full subscription drops
// the publication) and does not use ctx.
func (m *Memory) Publish(ctx context.Context, msgs ...Message) error {
	if err := CheckMessages(msgs...); err != nil {
		return err
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.trimLocked(now)
	for _, msg := range msgs {
		t := msg.Time
		if t.IsZero() {
			t = now
		}
		for _, ch := range msg.Channels {
			pub := Publication{Channel: ch, EventID: msg.EventID, Data: msg.Data, Time: t, Origin: msg.Origin}
			subs := m.subs[ch]
			var c *memChannel
			if !msg.NoHistory && m.cfg.HistorySize > 0 {
				c = m.channelLocked(ch, now, len(subs) > 0)
			}
			if c != nil {
				if msg.EventID != "" && c.has(msg.EventID) {
					continue
				}
				c.offset++
				pub.Epoch, pub.Offset = c.epoch, c.offset
				c.push(pub, now, m.cfg.HistorySize)
			}
			for s := range subs {
				s.deliver(pub)
			}
		}
	}
	return nil
}

// channelLocked returns the channel's history, marks it as just used
// and drops its publications older than HistoryTTL. A channel without
// history gets one (with a new epoch) when create is set, and nil
// otherwise: a channel that has never had a subscriber nor been asked
// for its History keeps none, since no client can hold a position in it
// (most record channels are never watched).
func (m *Memory) channelLocked(ch string, now time.Time, create bool) *memChannel {
	if c := m.channels[ch]; c != nil {
		c.last = now
		switch {
		case c.elem == nil:
		case !c.forgetAt.IsZero():
			// Used again (a publication, or History as jsclient asks
			// when it renders a position): an ordinary channel again.
			m.unlinkLocked(c)
			c.elem = m.lru.PushFront(c)
		default:
			m.lru.MoveToFront(c.elem)
		}
		c.trim(now.Add(-m.cfg.HistoryTTL))
		return c
	}
	if !create {
		return nil
	}
	for len(m.channels) >= m.cfg.MaxChannels {
		if e := m.unwatched.Front(); e != nil {
			m.forgetLocked(e.Value.(*memChannel))
		} else if e := m.lru.Back(); e != nil {
			m.forgetLocked(e.Value.(*memChannel))
		} else {
			break // every channel has subscribers
		}
	}
	c := &memChannel{name: ch, epoch: m.newEpochLocked(), last: now}
	if len(m.subs[ch]) == 0 {
		c.elem = m.lru.PushFront(c)
	}
	m.channels[ch] = c
	return c
}

func (m *Memory) forgetLocked(c *memChannel) {
	m.unlinkLocked(c)
	delete(m.channels, c.name)
}

// unlinkLocked takes c out of the list it is in, if any.
func (m *Memory) unlinkLocked(c *memChannel) {
	switch {
	case c.elem == nil:
	case !c.forgetAt.IsZero():
		m.unwatched.Remove(c.elem)
	default:
		m.lru.Remove(c.elem)
	}
	c.elem, c.forgetAt = nil, time.Time{}
}

// Channels returns the number of channels keeping a history (or a
// position), with or without subscribers, after forgetting those due.
func (m *Memory) Channels() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetUnwatchedLocked(time.Now())
	return len(m.channels)
}

// forgetUnwatchedLocked forgets the unwatched channels whose time is up.
func (m *Memory) forgetUnwatchedLocked(now time.Time) {
	for e := m.unwatched.Front(); e != nil; e = m.unwatched.Front() {
		c := e.Value.(*memChannel)
		if c.forgetAt.After(now) {
			return
		}
		m.forgetLocked(c)
	}
}

// trim drops the publications published before cutoff.
func (c *memChannel) trim(cutoff time.Time) {
	for c.n > 0 && c.slot(0).at.Before(cutoff) {
		c.dropOldest()
	}
}

// trimLocked forgets the channels unused for HistoryTTL, at most once a
// second. It walks the least recently used end of the list only; a used
// channel drops its own expired publications in channelLocked.
func (m *Memory) trimLocked(now time.Time) {
	if now.Sub(m.lastTrim) < time.Second {
		return
	}
	m.lastTrim = now
	m.forgetUnwatchedLocked(now)
	cutoff := now.Add(-m.cfg.HistoryTTL)
	for e := m.lru.Back(); e != nil; e = m.lru.Back() {
		c := e.Value.(*memChannel)
		if !c.last.Before(cutoff) {
			break
		}
		m.forgetLocked(c)
	}
}

// History implements Broker.
func (m *Memory) History(ctx context.Context, channel string, since *Position) (HistoryResult, error) {
	return m.HistoryWithin(ctx, channel, since, HistoryLimit{})
}

// HistoryWithin implements BoundedHistory: it counts the publications and
// their bytes before it copies any.
func (m *Memory) HistoryWithin(ctx context.Context, channel string, since *Position, limit HistoryLimit) (HistoryResult, error) {
	if err := CheckChannels(channel); err != nil {
		return HistoryResult{}, err
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return HistoryResult{}, ErrClosed
	}
	m.trimLocked(now)
	c := m.channelLocked(channel, now, true)
	res := HistoryResult{Position: Position{Epoch: c.epoch, Offset: c.offset}}
	if since == nil {
		res.Recovered = true
		return res, nil
	}
	if since.Epoch != c.epoch || since.Offset > c.offset {
		return res, nil
	}
	if since.Offset == c.offset {
		res.Recovered = true
		return res, nil
	}
	// The ring holds offsets (c.offset-n .. c.offset]; since.Offset+1
	// must be among them.
	first := c.offset - uint64(c.n) + 1
	if c.n == 0 || since.Offset+1 < first {
		return res, nil
	}
	start := int(since.Offset + 1 - first)
	if limit.Publications > 0 && c.n-start > limit.Publications {
		return res, nil
	}
	if limit.Bytes > 0 {
		size := 0
		for i := start; i < c.n; i++ {
			if size += len(c.at(i).Data); size > limit.Bytes {
				return res, nil
			}
		}
	}
	res.Publications = make([]Publication, 0, c.n-start)
	for i := start; i < c.n; i++ {
		res.Publications = append(res.Publications, *c.at(i))
	}
	res.Recovered = true
	return res, nil
}

// Subscribe implements Broker.
func (m *Memory) Subscribe(ctx context.Context) (Subscription, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return &memSub{m: m, ch: make(chan Publication, m.cfg.SubscriberBuffer), channels: make(map[string]struct{})}, nil
}

// Close implements Broker. It closes every subscription.
func (m *Memory) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*memSub
	seen := make(map[*memSub]struct{})
	for _, set := range m.subs {
		for s := range set {
			if _, ok := seen[s]; !ok {
				seen[s] = struct{}{}
				all = append(all, s)
			}
		}
	}
	m.mu.Unlock()
	for _, s := range all {
		_ = s.Close()
	}
	return nil
}

var (
	_ Broker         = (*Memory)(nil)
	_ BoundedHistory = (*Memory)(nil)
	_ Synchronous    = (*Memory)(nil)
)

// PublishSynchronous implements Synchronous: Publish delivers to every
// subscriber (or counts the message dropped) and keeps it in history under
// a mutex before it returns, and never waits for anything else. It reports
// true.
func (m *Memory) PublishSynchronous() bool { return true }

type memSub struct {
	m        *Memory
	ch       chan Publication
	dropped  atomic.Uint64
	channels map[string]struct{} // guarded by m.mu
	closed   bool                // guarded by m.mu
}

// deliver runs with m.mu held, so it never races with Close.
func (s *memSub) deliver(p Publication) {
	select {
	case s.ch <- p:
	default:
		s.dropped.Add(1)
	}
}

func (s *memSub) C() <-chan Publication { return s.ch }
func (s *memSub) Dropped() uint64       { return s.dropped.Load() }

func (s *memSub) Add(ctx context.Context, channels ...string) error {
	if err := CheckChannels(channels...); err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed || s.m.closed {
		return ErrClosed
	}
	for _, ch := range channels {
		set := s.m.subs[ch]
		if set == nil {
			set = make(map[*memSub]struct{})
			s.m.subs[ch] = set
			// Subscribed, the channel leaves the LRU list: it is
			// neither aged out nor evicted while it has subscribers.
			if c := s.m.channels[ch]; c != nil {
				s.m.unlinkLocked(c)
			}
		}
		set[s] = struct{}{}
		s.channels[ch] = struct{}{}
	}
	return nil
}

func (s *memSub) Remove(ctx context.Context, channels ...string) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, ch := range channels {
		s.removeLocked(ch)
	}
	return nil
}

func (s *memSub) removeLocked(ch string) {
	if set := s.m.subs[ch]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(s.m.subs, ch)
			s.m.unsubscribedLocked(ch)
		}
	}
	delete(s.channels, ch)
}

// unsubscribedLocked handles a channel's last subscriber leaving. A
// channel never published to was only looked at: it is forgotten
// UnwatchedTTL from now, so that subscribing to channel after channel
// leaves nothing behind for long. Any other channel returns to the front
// of the LRU list, to age out from now.
func (m *Memory) unsubscribedLocked(ch string) {
	c := m.channels[ch]
	if c == nil || c.elem != nil {
		return
	}
	now := time.Now()
	c.last = now
	if c.offset == 0 {
		c.forgetAt = now.Add(m.cfg.UnwatchedTTL)
		c.elem = m.unwatched.PushBack(c)
		return
	}
	c.elem = m.lru.PushFront(c)
}

func (s *memSub) Close() error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for ch := range s.channels {
		s.removeLocked(ch)
	}
	close(s.ch)
	return nil
}
