package hub

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
)

// channel is a channel with local subscribers. All fields are guarded by
// Hub.mu.
type channel struct {
	name    string
	quoted  []byte // the name as a JSON string, shared by its event messages
	members map[*conn]*member
	// epoch and offset are the newest position fanned out to every
	// member (pending ones included), used to drop duplicates and to
	// notice the broker's drops (offset gaps); "" until the first.
	epoch  string
	offset uint64
	// floor is, until then, the lowest position a subscribe has given
	// its client: the first publication fanned out is checked for a gap
	// from it. It never drops a publication: one subscribe's history can
	// run ahead of what the dispatcher has delivered to the others.
	floor broker.Position
}

// since is where a gap in the channel's publications counts from.
func (ch *channel) since() broker.Position {
	if ch.epoch == "" {
		return ch.floor
	}
	return broker.Position{Epoch: ch.epoch, Offset: ch.offset}
}

// member is one connection's subscription to a channel. Guarded by Hub.mu.
type member struct {
	// pending is set while the subscribe request reads the channel's
	// history; publications arriving meanwhile wait in buffered.
	pending  bool
	buffered []queuedEvent
	bufBytes int
	// epoch and offset are the position the client has been given.
	epoch  string
	offset uint64
}

// queuedEvent is an encoded event message with its position.
type queuedEvent struct {
	epoch  string
	offset uint64
	msg    outMsg
	// origin is the connection whose request made the event (see
	// broker.Origin): it is not delivered there.
	origin broker.Origin
}

// madeBy reports whether the request that made an event of origin o came
// from c: c's session id is o's and its token's subject is the one the
// application says made the request. The subject check keeps a forged
// session id (another user's) from hiding an event from that user.
func (c *conn) madeBy(o broker.Origin) bool {
	return o.Session != "" && o.Session == c.session && o.Subject == c.subject
}

// join adds c to the channel's members, and the channel to the broker
// subscription when c is its first local subscriber. The member is pending
// until completeSubscribe.
func (h *Hub) join(ctx context.Context, c *conn, name string) (*channel, *member, error) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.Lock()
	ch := h.channels[name]
	created := ch == nil
	if created {
		ch = &channel{name: name, quoted: quoteChannel(name), members: make(map[*conn]*member, 1)}
		h.channels[name] = ch
	}
	m := &member{pending: true}
	ch.members[c] = m
	h.mu.Unlock()
	if created {
		if err := h.sub.Add(ctx, name); err != nil {
			h.mu.Lock()
			delete(h.channels, name)
			h.mu.Unlock()
			return nil, nil, err
		}
		h.metrics.channels.Inc()
	}
	h.metrics.subscriptions.Inc()
	return ch, m, nil
}

// leave removes c from the channel's members, and the channel from the
// broker subscription when c was its last local subscriber.
func (h *Hub) leave(ctx context.Context, c *conn, name string) {
	h.presence.leave(ctx, c, name)
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.Lock()
	ch := h.channels[name]
	if ch == nil || ch.members[c] == nil {
		h.mu.Unlock()
		return
	}
	delete(ch.members, c)
	last := len(ch.members) == 0
	if last {
		delete(h.channels, name)
	}
	h.mu.Unlock()
	h.metrics.subscriptions.Dec()
	if last {
		h.metrics.channels.Dec()
		if err := h.sub.Remove(ctx, name); err != nil && !errors.Is(err, broker.ErrClosed) {
			h.log.Warn("hub: broker unsubscribe failed", "channel", name, "err", err)
		}
	}
}

// history reads the channel's position and, for since, the publications
// after it, within the limits of one recovery (MaxRecoveredEvents, and
// half of SendQueueBytes): a broker that can check them before reading
// (broker.BoundedHistory) answers a position too far behind with
// Recovered=false at the cost of the position alone.
func (h *Hub) history(ctx context.Context, name string, since *broker.Position) (broker.HistoryResult, error) {
	if since == nil {
		return h.cfg.Broker.History(ctx, name, nil)
	}
	if bh, ok := h.cfg.Broker.(broker.BoundedHistory); ok {
		return bh.HistoryWithin(ctx, name, since, broker.HistoryLimit{Publications: h.cfg.MaxRecoveredEvents, Bytes: h.cfg.SendQueueBytes / 2})
	}
	res, err := h.cfg.Broker.History(ctx, name, since)
	if err == nil && len(res.Publications) > h.cfg.MaxRecoveredEvents {
		res.Recovered, res.Publications = false, nil
	}
	return res, err
}

// completeSubscribe queues the subscribed reply, with the missed events
// when the request had since, then the publications that arrived while the
// history was read, each offset once and in order.
func (h *Hub) completeSubscribe(c *conn, ch *channel, m *member, req request, res broker.HistoryResult) {
	pos := res.Position
	reply := subscribedMsg{Type: typeSubscribed, ID: req.ID, Channel: ch.name, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: true}
	if req.Since != nil {
		reply.Recovered = res.Recovered
		if res.Recovered {
			size := 0
			for _, p := range res.Publications {
				if c.madeBy(p.Origin) {
					continue // the connection's own write, as live
				}
				data, ok := compactEvent(p.Data)
				if !ok {
					h.log.Warn("hub: dropped a publication that is not JSON", "channel", ch.name, "offset", p.Offset)
					continue
				}
				b := appendEvent(nil, ch.quoted, p.Offset, data)
				size += len(b) + 1
				reply.Missed = append(reply.Missed, json.RawMessage(b))
			}
			if size > h.cfg.SendQueueBytes/2 {
				// Too much to send at once without risking 4008: the
				// client refetches instead.
				reply.Recovered, reply.Missed = false, nil
			}
		}
	}
	data := encode(reply)

	h.mu.Lock()
	defer h.mu.Unlock()
	if ch.epoch == "" && (ch.floor.Epoch == "" || ch.floor.Epoch == pos.Epoch && pos.Offset < ch.floor.Offset) {
		ch.floor = pos
	}
	m.pending = false
	m.epoch, m.offset = pos.Epoch, pos.Offset
	c.enqueue(outMsg{data: data, events: len(reply.Missed)})
	buffered := m.buffered
	m.buffered, m.bufBytes = nil, 0
	for _, e := range buffered {
		h.deliverLocked(c, ch, m, e, nil)
	}
}

// deliverLocked queues one event to one member, skipping offsets the
// client already has and telling it (subscribed without id, recovered
// false) when offsets were lost before this one. A connection to hand to
// the write pool goes to *batch, unless batch is nil (see conn.enqueueTo).
func (h *Hub) deliverLocked(c *conn, ch *channel, m *member, e queuedEvent, batch *[]*conn) {
	if m.pending {
		m.bufBytes += len(e.msg.data)
		if m.bufBytes > h.cfg.SendQueueBytes {
			if c.closeWith(closeSlowConsumer, "slow consumer", false) {
				h.metrics.slowConsumers.Inc()
			}
			return
		}
		m.buffered = append(m.buffered, e)
		return
	}
	if e.offset != 0 {
		if e.epoch == m.epoch {
			if e.offset <= m.offset {
				return
			}
			if e.offset > m.offset+1 {
				c.send(encode(subscribedMsg{Type: typeSubscribed, Channel: ch.name, Epoch: e.epoch, Offset: e.offset - 1}))
			}
		} else if m.epoch != "" {
			c.send(encode(subscribedMsg{Type: typeSubscribed, Channel: ch.name, Epoch: e.epoch, Offset: e.offset - 1}))
		}
		m.epoch, m.offset = e.epoch, e.offset
	}
	if e.origin.Session != "" && c.madeBy(e.origin) {
		return // its position moved on: the next event is no gap
	}
	c.enqueueTo(e.msg, batch)
}

// dispatch fans the broker subscription's publications out to the
// connections. It is the only reader of the subscription.
func (h *Hub) dispatch() {
	defer h.loops.Done()
	var lastDrops uint64
	needSweep := false
	noteDrops := func() {
		if d := h.sub.Dropped(); d != lastDrops {
			h.metrics.brokerDrops.Add(float64(d - lastDrops))
			lastDrops = d
			needSweep = true
		}
	}
	check := time.NewTicker(time.Second)
	defer check.Stop()
	c := h.sub.C()
loop:
	for {
		if needSweep && len(c) == 0 {
			// Publications dropped at the end of a burst leave no gap
			// for a later one to reveal: once the burst is over, every
			// channel is checked against its history.
			needSweep = false
			h.sweep()
		}
		select {
		case p, ok := <-c:
			if !ok {
				break loop
			}
			noteDrops()
			if p.Channel == ControlChannel {
				h.control(p)
				continue
			}
			if strings.HasPrefix(p.Channel, PresencePrefix) {
				h.presence.notice(p)
				continue
			}
			h.publish(p)
		case <-check.C:
			noteDrops()
		}
	}
	h.mu.Lock()
	closed := h.closed
	h.subEnded = true
	h.mu.Unlock()
	h.metrics.brokerUp.Set(0)
	if !closed {
		h.log.Error("hub: the broker closed the hub's subscription; no more events will be delivered")
	}
}

func (h *Hub) control(p broker.Publication) {
	if p.Offset != 0 {
		h.ctlPos = broker.Position{Epoch: p.Epoch, Offset: p.Offset}
	}
	var msg controlMsg
	if err := json.Unmarshal(p.Data, &msg); err != nil {
		h.log.Warn("hub: bad control message", "err", err)
		return
	}
	if msg.Revoke != "" {
		h.revokeLocal(msg.Revoke)
	}
}

// publish fans one publication out to the channel's members, first
// recovering from history any offsets the broker dropped before it.
func (h *Hub) publish(p broker.Publication) {
	h.metrics.received.Inc()
	data, ok := compactEvent(p.Data)
	if !ok {
		h.log.Warn("hub: dropped a publication that is not JSON", "channel", p.Channel, "offset", p.Offset)
		return
	}
	h.mu.Lock()
	ch := h.channels[p.Channel]
	if ch == nil {
		h.mu.Unlock()
		return
	}
	if since := ch.since(); p.Offset != 0 && since.Epoch != "" && p.Epoch == since.Epoch && p.Offset > since.Offset+1 {
		h.mu.Unlock()
		fill := h.fillGap(p, since)
		h.mu.Lock()
		if ch = h.channels[p.Channel]; ch == nil {
			h.mu.Unlock()
			return
		}
		for _, f := range fill {
			if fd, ok := compactEvent(f.Data); ok {
				h.fanoutLocked(ch, f, fd)
			}
		}
	}
	h.fanoutLocked(ch, p, data)
	h.mu.Unlock()
}

// fillGap reads from history the publications between since and p.
// Without them, members see the gap and are told they lost events.
func (h *Hub) fillGap(p broker.Publication, since broker.Position) []broker.Publication {
	ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
	defer cancel()
	res, err := h.cfg.Broker.History(ctx, p.Channel, &since)
	if err != nil || !res.Recovered {
		h.metrics.gaps.WithLabelValues("lost").Inc()
		h.log.Warn("hub: events lost on a channel; its subscribers are told to refetch",
			"channel", p.Channel, "from", since.Offset+1, "to", p.Offset-1, "err", err)
		return nil
	}
	h.metrics.gaps.WithLabelValues("recovered").Inc()
	var fill []broker.Publication
	for _, f := range res.Publications {
		if f.Epoch == p.Epoch && f.Offset < p.Offset {
			fill = append(fill, f)
		}
	}
	return fill
}

// sweep brings every channel up to date with its history after the broker
// dropped publications: it fans out the ones the channel has not seen, or
// tells its members that they lost events when the history cannot say.
func (h *Hub) sweep() {
	h.sweepControl()
	type check struct {
		name string
		pos  broker.Position
	}
	h.mu.Lock()
	checks := make([]check, 0, len(h.channels))
	for name, ch := range h.channels {
		checks = append(checks, check{name, ch.since()})
	}
	h.mu.Unlock()
	for _, k := range checks {
		ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
		res, err := h.cfg.Broker.History(ctx, k.name, &k.pos)
		cancel()
		if err != nil {
			h.log.Warn("hub: checking a channel after broker drops failed", "channel", k.name, "err", err)
			continue
		}
		if res.Recovered && len(res.Publications) == 0 {
			continue
		}
		h.mu.Lock()
		ch := h.channels[k.name]
		if ch == nil || ch.since() != k.pos {
			h.mu.Unlock() // moved on meanwhile: later publications show any gap
			continue
		}
		if res.Recovered {
			h.metrics.gaps.WithLabelValues("recovered").Inc()
			for _, p := range res.Publications {
				if data, ok := compactEvent(p.Data); ok {
					h.fanoutLocked(ch, p, data)
				}
			}
		} else {
			h.metrics.gaps.WithLabelValues("lost").Inc()
			h.log.Warn("hub: events lost on a channel; its subscribers are told to refetch", "channel", k.name)
			pos := res.Position
			ch.epoch, ch.offset = pos.Epoch, pos.Offset
			notice := encode(subscribedMsg{Type: typeSubscribed, Channel: ch.name, Epoch: pos.Epoch, Offset: pos.Offset})
			for c, m := range ch.members {
				if m.pending {
					continue // its subscribe reads the history itself
				}
				m.epoch, m.offset = pos.Epoch, pos.Offset
				c.send(notice)
			}
		}
		h.mu.Unlock()
	}
}

// sweepControl applies the control messages (revocations) published
// since the last one the dispatcher saw, which the broker may have
// dropped with other publications.
func (h *Hub) sweepControl() {
	ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
	defer cancel()
	since := h.ctlPos
	res, err := h.cfg.Broker.History(ctx, ControlChannel, &since)
	if err != nil {
		h.log.Warn("hub: checking the control channel after broker drops failed", "err", err)
		return
	}
	// A position the history no longer holds lost what was published
	// after it, unless the channel has started anew (its history expired)
	// and nothing was published since.
	if !res.Recovered && (res.Position.Epoch == since.Epoch || res.Position.Offset > 0) {
		h.log.Warn("hub: control messages (revocations) may have been lost with the broker's drops")
	}
	for _, p := range res.Publications {
		h.control(p)
	}
	h.ctlPos = res.Position
}

// fanoutLocked encodes the event message once and queues the shared bytes
// to every member.
func (h *Hub) fanoutLocked(ch *channel, p broker.Publication, data []byte) {
	if p.Offset != 0 {
		if p.Epoch == ch.epoch && p.Offset <= ch.offset {
			return // already fanned out (from history, after a gap)
		}
		ch.epoch, ch.offset = p.Epoch, p.Offset
	}
	b := appendEvent(make([]byte, 0, len(data)+len(ch.quoted)+48), ch.quoted, p.Offset, data)
	var at int64
	if !p.Time.IsZero() {
		at = p.Time.UnixNano()
	}
	e := queuedEvent{epoch: p.Epoch, offset: p.Offset, msg: outMsg{data: b, at: at, events: 1}, origin: p.Origin}
	batch := h.toPool[:0]
	for c, m := range ch.members {
		h.deliverLocked(c, ch, m, e, &batch)
	}
	h.pool.pushAll(batch)
	clear(batch)
	if cap(batch) > maxToPool {
		batch = nil
	}
	h.toPool = batch
}

// maxToPool bounds the array Hub.toPool keeps between fan-outs, in
// connections.
const maxToPool = 1 << 16
