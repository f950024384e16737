package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// Presence defaults (see Config).
const (
	DefaultPresenceTTL        = 30 * time.Second
	DefaultPresenceHeartbeat  = 10 * time.Second
	DefaultMaxPresenceMembers = 1000
	DefaultPresenceLeaveDelay = 2 * time.Second
	// MinPresenceLeaveDelay is the shortest PresenceLeaveDelay: it bounds
	// how often one member's join and leave reach every watcher.
	MinPresenceLeaveDelay = 100 * time.Millisecond
)

// PresencePrefix starts the broker channel that carries a channel's join
// and leave notices between hubs: "$telegraphy.presence:" + channel.
// Clients cannot subscribe to it ("$" is reserved).
const PresencePrefix = "$telegraphy.presence:"

// typePresence is the presence request and its reply; join and leave are
// the notices sent to subscribers that asked for them.
const (
	typePresence = "presence"
	typeJoin     = "join"
	typeLeave    = "leave"
)

// presence is the hub's side of presence: which subjects its connections
// hold on each channel with presence, announced to the broker
// (broker.Presencer) when a subject's first local connection comes and
// PresenceLeaveDelay after its last one went (unless one came back
// meanwhile), and refreshed every PresenceHeartbeat.
type presence struct {
	h     *Hub
	p     broker.Presencer
	node  string // this hub, in the broker's entries
	lease broker.PresenceLease

	// locks serialize the updates of one channel (by hash), so that the
	// broker sees a channel's adds and removes in the order of the local
	// state changes.
	locks [64]sync.Mutex

	mu       sync.Mutex
	channels map[string]*presenceChannel
	// gone are the subjects whose removal from a channel failed in the
	// broker, with the time it was asked: the heartbeat retries them
	// until the broker has taken them, or their lease has run out there.
	gone map[string]map[string]time.Time

	// closing: the hub is closing, a subject's last connection leaving
	// is announced at once. Guarded by mu.
	closing bool
	// work counts the heartbeat, the leave timers running and shutdown's
	// announcements: finish waits for them. Its Adds happen before
	// closing is set.
	work sync.WaitGroup

	members  prometheus.Gauge
	chans    prometheus.Gauge
	stop     chan struct{}
	stopOnce sync.Once
}

// presenceChannel is a channel with presence that has local subscribers,
// or subjects whose leave is delayed. Guarded by presence.mu.
type presenceChannel struct {
	conns    map[*conn]bool // subscribers; true for those that want join/leave
	watchers int            // conns that want join/leave
	subjects map[string]*localPresent
	// noticed: the hub's subscription to the channel's notices is made.
	// While there are watchers and it is not, every join and heartbeat
	// tries again.
	noticed bool
}

// localPresent is one subject on one channel of this hub. With no
// connection left it stays a member until its leave timer fires.
type localPresent struct {
	info  json.RawMessage
	conns int
	full  bool // refused for MaxPresenceMembers; retried every heartbeat
	// leaving is the timer of the delayed leave while conns is 0; gen
	// tells a timer that fired late from the current one.
	leaving *time.Timer
	gen     uint64
}

// presenceNotice is the payload of a message on PresencePrefix+channel.
type presenceNotice struct {
	Join  []broker.PresenceMember `json:"join,omitempty"`
	Leave []string                `json:"leave,omitempty"`
}

var presenceSeed = maphash.MakeSeed()

func newPresence(h *Hub, reg prometheus.Registerer) (*presence, error) {
	ps := &presence{
		h:        h,
		node:     newSessionID(),
		lease:    broker.PresenceLease{TTL: h.cfg.PresenceTTL, MaxMembers: h.cfg.MaxPresenceMembers},
		channels: make(map[string]*presenceChannel),
		gone:     make(map[string]map[string]time.Time),
		stop:     make(chan struct{}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_presence_members",
			Help: "Subjects on channels with presence through this hub's connections, summed over channels (those refused for MaxPresenceMembers, and those whose leave waits PresenceLeaveDelay, included).",
		}),
		chans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_presence_channels",
			Help: "Channels with presence that have subscribers on this hub, or members whose leave waits PresenceLeaveDelay.",
		}),
	}
	ps.p, _ = h.cfg.Broker.(broker.Presencer)
	for _, c := range []prometheus.Collector{ps.members, ps.chans} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// enabled reports whether channel has presence.
func (ps *presence) enabled(channel string) bool {
	return ps.p != nil && tokens.Allowed(ps.h.cfg.Presence, channel)
}

func (ps *presence) lock(channel string) *sync.Mutex {
	return &ps.locks[maphash.String(presenceSeed, channel)%uint64(len(ps.locks))]
}

// join registers a subscriber of channel: it is counted as a member when
// it has a subject, and gets join/leave notices when watch is set.
func (ps *presence) join(ctx context.Context, c *conn, channel string, info json.RawMessage, watch bool) {
	l := ps.lock(channel)
	l.Lock()
	defer l.Unlock()
	ps.mu.Lock()
	pc := ps.channels[channel]
	if pc == nil {
		pc = &presenceChannel{conns: make(map[*conn]bool, 1), subjects: make(map[string]*localPresent)}
		ps.channels[channel] = pc
		ps.chans.Inc()
	}
	pc.conns[c] = watch
	if watch {
		pc.watchers++
	}
	subscribe := watch && !pc.noticed
	var add []broker.PresenceMember
	if c.subject != "" {
		lp := pc.subjects[c.subject]
		if lp == nil {
			lp = &localPresent{info: info}
			pc.subjects[c.subject] = lp
			ps.members.Inc()
			add = []broker.PresenceMember{{Subject: c.subject, Info: info}}
		}
		if lp.conns == 0 && lp.leaving != nil {
			// Back before its leave was announced: nobody hears of it.
			lp.leaving.Stop()
			lp.leaving = nil
			lp.gen++
		}
		lp.conns++
	}
	ps.mu.Unlock()
	if subscribe {
		// Before the update, so that this hub hears the join it causes.
		ps.subscribeNotices(ctx, channel, pc)
	}
	if add != nil {
		ps.update(ctx, channel, add, nil)
	}
}

// subscribeNotices subscribes the hub to the channel's notices for pc,
// the channel's local state, and records whether it did. The caller holds
// the channel's lock.
func (ps *presence) subscribeNotices(ctx context.Context, channel string, pc *presenceChannel) {
	ps.h.subMu.Lock()
	err := ps.h.sub.Add(ctx, PresencePrefix+channel)
	ps.h.subMu.Unlock()
	if err != nil {
		ps.h.log.Warn("hub: subscribing to presence notices failed; the next heartbeat retries", "channel", channel, "err", err)
		return
	}
	ps.mu.Lock()
	pc.noticed = true
	ps.mu.Unlock()
}

// leave unregisters a subscriber of channel; nothing when it was not one.
// When it was its subject's last connection on the channel, the subject
// leaves PresenceLeaveDelay later unless one of its connections comes
// back meanwhile: a member coming and going sends every watcher at most
// one join and one leave per PresenceLeaveDelay, and a page reload is
// no notice at all. A closing hub, and a connection closed because its
// subject was revoked, announce the leave at once.
func (ps *presence) leave(ctx context.Context, c *conn, channel string) {
	revoked := c.revoked()
	l := ps.lock(channel)
	l.Lock()
	defer l.Unlock()
	ps.mu.Lock()
	pc := ps.channels[channel]
	if pc == nil {
		ps.mu.Unlock()
		return
	}
	watch, ok := pc.conns[c]
	if !ok {
		ps.mu.Unlock()
		return
	}
	delete(pc.conns, c)
	lastWatcher := false
	if watch {
		pc.watchers--
		lastWatcher = pc.watchers == 0 && pc.noticed
		if lastWatcher {
			pc.noticed = false
		}
	}
	var remove []string
	if lp := pc.subjects[c.subject]; lp != nil {
		if lp.conns--; lp.conns == 0 {
			if ps.closing || revoked {
				ps.dropSubject(channel, pc, c.subject)
				remove = []string{c.subject}
			} else {
				lp.gen++
				gen, subject := lp.gen, c.subject
				lp.leaving = time.AfterFunc(ps.h.cfg.PresenceLeaveDelay, func() { ps.leaveTimer(channel, subject, gen) })
			}
		}
	}
	ps.dropChannelIfIdle(channel, pc)
	ps.mu.Unlock()
	if remove != nil {
		ps.update(ctx, channel, nil, remove)
	}
	if lastWatcher {
		ps.h.subMu.Lock()
		err := ps.h.sub.Remove(ctx, PresencePrefix+channel)
		ps.h.subMu.Unlock()
		if err != nil && ctx.Err() == nil {
			ps.h.log.Debug("hub: unsubscribing from presence notices failed", "channel", channel, "err", err)
		}
	}
}

// dropSubject removes subject from the local members of channel. The
// caller holds ps.mu.
func (ps *presence) dropSubject(channel string, pc *presenceChannel, subject string) {
	delete(pc.subjects, subject)
	ps.members.Dec()
}

// dropChannelIfIdle forgets pc when it has neither subscribers nor
// subjects whose leave is delayed. The caller holds ps.mu.
func (ps *presence) dropChannelIfIdle(channel string, pc *presenceChannel) {
	if len(pc.conns) == 0 && len(pc.subjects) == 0 && ps.channels[channel] == pc {
		delete(ps.channels, channel)
		ps.chans.Dec()
	}
}

// leaveTimer is the leave timer of subject on channel for its leave
// number gen. It counts in work while it runs, so that Close waits for
// its broker update; once the hub is closing, shutdown announces the
// leave instead.
func (ps *presence) leaveTimer(channel, subject string, gen uint64) {
	ps.mu.Lock()
	if ps.closing {
		ps.mu.Unlock()
		return
	}
	ps.work.Add(1)
	ps.mu.Unlock()
	defer ps.work.Done()
	ps.leaveLater(channel, map[string]uint64{subject: gen}, true)
}

// leaveLater announces the delayed leaves of channel's subjects in gens
// (subject -> the number of its leave), those none of whose connections
// came back since, in one broker update. Timers that fire once the hub
// is closing leave it to shutdown.
func (ps *presence) leaveLater(channel string, gens map[string]uint64, timer bool) {
	l := ps.lock(channel)
	l.Lock()
	defer l.Unlock()
	ps.mu.Lock()
	pc := ps.channels[channel]
	if pc == nil || timer && ps.closing {
		ps.mu.Unlock()
		return
	}
	var remove []string
	for subject, gen := range gens {
		if lp := pc.subjects[subject]; lp != nil && lp.conns == 0 && lp.gen == gen {
			ps.dropSubject(channel, pc, subject)
			remove = append(remove, subject)
		}
	}
	ps.dropChannelIfIdle(channel, pc)
	ps.mu.Unlock()
	if remove == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	ps.update(ctx, channel, nil, remove)
}

// shutdown makes leaves immediate from now on, and announces the delayed
// ones (one broker update per channel) in a goroutine of work, which
// the hub's Close waits for (see finish): a closing hub does not leave
// them listed until their lease ends.
func (ps *presence) shutdown() {
	todo := make(map[string]map[string]uint64)
	ps.mu.Lock()
	ps.closing = true
	for name, pc := range ps.channels {
		for s, lp := range pc.subjects {
			if lp.conns == 0 && lp.leaving != nil {
				lp.leaving.Stop()
				if todo[name] == nil {
					todo[name] = make(map[string]uint64)
				}
				todo[name][s] = lp.gen
			}
		}
	}
	ps.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	ps.work.Add(1)
	go func() {
		defer ps.work.Done()
		for name, gens := range todo {
			ps.leaveLater(name, gens, false)
		}
	}()
}

// finish waits for the heartbeat, the leave timers and shutdown's
// announcements, then tries once more the removals the broker refused
// (gone), which the heartbeat no longer retries: a closed hub leaves
// none of its members in the broker, unless the broker fails again. The
// hub's Close calls it after shutdown and stopHeartbeat, once every
// connection has gone (their leaves were immediate).
func (ps *presence) finish() {
	ps.work.Wait()
	ps.mu.Lock()
	names := make([]string, 0, len(ps.gone))
	for name := range ps.gone {
		names = append(names, name)
	}
	ps.mu.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	for _, name := range names {
		ps.retryGone(ctx, name)
	}
}

// retryGone asks the broker again for the removals of channel it
// refused, of the subjects not back on the channel.
func (ps *presence) retryGone(ctx context.Context, channel string) {
	l := ps.lock(channel)
	l.Lock()
	defer l.Unlock()
	ps.mu.Lock()
	pc := ps.channels[channel]
	var remove []string
	for s := range ps.gone[channel] {
		if pc == nil || pc.subjects[s] == nil {
			remove = append(remove, s)
		}
	}
	ps.mu.Unlock()
	if remove != nil {
		ps.update(ctx, channel, nil, remove)
	}
}

// update sends one change of this hub's members of channel to the broker,
// and publishes what it changed to every hub. The caller holds the
// channel's lock.
func (ps *presence) update(ctx context.Context, channel string, add []broker.PresenceMember, remove []string) {
	h := ps.h
	res, err := ps.p.UpdatePresence(ctx, channel, ps.node, add, remove, ps.lease)
	if len(remove) > 0 {
		ps.mu.Lock()
		g := ps.gone[channel]
		if err != nil {
			if g == nil {
				g = make(map[string]time.Time, len(remove))
				ps.gone[channel] = g
			}
			now := time.Now()
			for _, s := range remove {
				if _, ok := g[s]; !ok {
					g[s] = now
				}
			}
		} else if g != nil {
			for _, s := range remove {
				delete(g, s)
			}
			if len(g) == 0 {
				delete(ps.gone, channel)
			}
		}
		ps.mu.Unlock()
	}
	if err != nil {
		h.log.Warn("hub: presence update failed; the next heartbeat retries", "channel", channel, "err", err)
		return
	}
	if len(add) > 0 {
		full := make(map[string]bool, len(res.Full))
		for _, s := range res.Full {
			full[s] = true
		}
		refused := 0
		ps.mu.Lock()
		if pc := ps.channels[channel]; pc != nil {
			for _, m := range add {
				if lp := pc.subjects[m.Subject]; lp != nil {
					if full[m.Subject] && !lp.full {
						refused++ // counted once, not at every retry
					}
					lp.full = full[m.Subject]
				}
			}
		}
		ps.mu.Unlock()
		if refused > 0 {
			h.metrics.limited.WithLabelValues("presence_members").Add(float64(refused))
		}
	}
	if len(res.Joined) == 0 && len(res.Left) == 0 {
		return
	}
	data, _ := json.Marshal(presenceNotice{Join: res.Joined, Leave: res.Left})
	if err := h.cfg.Broker.Publish(ctx, broker.Message{Channels: []string{PresencePrefix + channel}, Data: data, NoHistory: true}); err != nil {
		h.log.Warn("hub: publishing a presence notice failed", "channel", channel, "err", err)
	}
}

// heartbeat refreshes this hub's members of every channel with local
// subscribers each PresenceHeartbeat: it extends their lease, restores
// what the broker lost (a Redis restart), retries members refused for
// the cap, and expires the members of hubs that stopped refreshing.
func (ps *presence) heartbeat() {
	defer ps.work.Done()
	t := time.NewTicker(ps.h.cfg.PresenceHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ps.stop:
			return
		case <-t.C:
		}
		ps.mu.Lock()
		names := make([]string, 0, len(ps.channels)+len(ps.gone))
		for name := range ps.channels {
			names = append(names, name)
		}
		for name := range ps.gone {
			if ps.channels[name] == nil {
				names = append(names, name)
			}
		}
		ps.mu.Unlock()
		for _, name := range names {
			select {
			case <-ps.stop:
				return
			default:
			}
			ps.refresh(name)
		}
	}
}

// refresh renews this hub's members of channel, retries the removals the
// broker refused (those past PresenceTTL have expired there: dropped) and
// the subscription to the channel's notices while it has watchers.
func (ps *presence) refresh(channel string) {
	l := ps.lock(channel)
	l.Lock()
	defer l.Unlock()
	ps.mu.Lock()
	pc := ps.channels[channel]
	var add []broker.PresenceMember
	subscribe := false
	if pc != nil {
		add = make([]broker.PresenceMember, 0, len(pc.subjects))
		for s, lp := range pc.subjects {
			if lp.conns == 0 && lp.full {
				// Gone before it was listed: nobody is to hear of it.
				continue
			}
			add = append(add, broker.PresenceMember{Subject: s, Info: lp.info})
		}
		subscribe = pc.watchers > 0 && !pc.noticed
	}
	var remove []string
	if g := ps.gone[channel]; g != nil {
		expired := time.Now().Add(-ps.lease.TTL)
		for s, at := range g {
			if pc != nil && pc.subjects[s] != nil || at.Before(expired) {
				delete(g, s) // here again, or expired in the broker
				continue
			}
			remove = append(remove, s)
		}
		if len(g) == 0 {
			delete(ps.gone, channel)
		}
	}
	ps.mu.Unlock()
	ctx, cancel := context.WithTimeout(ps.h.ctx, brokerTimeout)
	defer cancel()
	if subscribe {
		ps.subscribeNotices(ctx, channel, pc)
	}
	if pc != nil || len(remove) > 0 {
		// Even with nothing to add: the update expires the members of
		// hubs that stopped refreshing, and announces their leave.
		ps.update(ctx, channel, add, remove)
	}
}

// stopHeartbeat ends the heartbeat; idempotent.
func (ps *presence) stopHeartbeat() {
	ps.stopOnce.Do(func() { close(ps.stop) })
}

// notice delivers a join/leave notice from the broker to the local
// subscribers of the channel that asked for them.
func (ps *presence) notice(p broker.Publication) {
	channel := strings.TrimPrefix(p.Channel, PresencePrefix)
	var n presenceNotice
	if err := json.Unmarshal(p.Data, &n); err != nil {
		ps.h.log.Warn("hub: bad presence notice", "channel", channel, "err", err)
		return
	}
	quoted := quoteChannel(channel)
	msgs := make([][]byte, 0, len(n.Leave)+len(n.Join))
	for _, s := range n.Leave {
		msgs = append(msgs, appendNotice(nil, typeLeave, quoted, broker.PresenceMember{Subject: s}))
	}
	for _, m := range n.Join {
		msgs = append(msgs, appendNotice(nil, typeJoin, quoted, m))
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pc := ps.channels[channel]
	if pc == nil {
		return
	}
	for c, watch := range pc.conns {
		if !watch {
			continue
		}
		for _, b := range msgs {
			c.send(b)
		}
	}
}

// appendNotice appends {"type":"join"|"leave","channel":..,"member":{..}}.
func appendNotice(dst []byte, typ string, quotedChannel []byte, m broker.PresenceMember) []byte {
	member, _ := json.Marshal(m) // info is a compact JSON object, checked by tokens
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","channel":`...)
	dst = append(dst, quotedChannel...)
	dst = append(dst, `,"member":`...)
	dst = append(dst, member...)
	return append(dst, '}')
}

// presenceMsg answers a presence request.
type presenceMsg struct {
	Type      string                  `json:"type"`
	ID        *uint64                 `json:"id,omitempty"`
	Channel   string                  `json:"channel"`
	Members   []broker.PresenceMember `json:"members"`
	Truncated bool                    `json:"truncated,omitempty"`
}

// presenceRequest answers who is on a channel the client is subscribed
// to. A channel without presence, and one the client is not subscribed
// to, get the same not_found: nothing tells them apart.
func (c *conn) presenceRequest(req request) {
	h := c.h
	if c.subs[req.Channel] == nil || !h.presence.enabled(req.Channel) {
		c.sendError(&protoError{id: req.ID, code: codeNotFound, message: "no presence on a channel you are subscribed to"})
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
	defer cancel()
	members, err := h.presence.p.Presence(ctx, req.Channel, h.cfg.MaxPresenceMembers)
	if err != nil {
		h.log.Warn("hub: reading presence failed", "session", c.session, "channel", req.Channel, "err", err)
		c.sendError(&protoError{id: req.ID, code: codeInternal, message: "could not read presence"})
		return
	}
	reply := presenceMsg{Type: typePresence, ID: req.ID, Channel: req.Channel, Members: members}
	data := encode(reply)
	// A reply never takes more than half the send queue (see
	// MaxPresenceMembers): the rest of the list is left out.
	for len(data) > h.cfg.SendQueueBytes/2 && len(reply.Members) > 0 {
		reply.Members = reply.Members[:len(reply.Members)/2]
		reply.Truncated = true
		data = encode(reply)
	}
	c.send(data)
}

// presenceJoin is called once a subscribe has been answered.
func (c *conn) presenceJoin(ctx context.Context, req request) {
	if ps := c.h.presence; ps.enabled(req.Channel) {
		ps.join(ctx, c, req.Channel, c.info, req.Presence)
	}
}

// checkPresenceConfig validates the presence fields of c and fills in
// their defaults.
func (c *Config) checkPresenceConfig() error {
	for _, p := range c.Presence {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("%w: Presence: %w", ErrBadConfig, err)
		}
	}
	if c.PresenceTTL < 0 || c.PresenceHeartbeat < 0 || c.MaxPresenceMembers < 0 {
		return fmt.Errorf("%w: PresenceTTL, PresenceHeartbeat and MaxPresenceMembers must not be negative (zero means the default)", ErrBadConfig)
	}
	if c.PresenceTTL == 0 {
		c.PresenceTTL = DefaultPresenceTTL
	}
	if c.PresenceHeartbeat == 0 {
		c.PresenceHeartbeat = min(DefaultPresenceHeartbeat, c.PresenceTTL/3)
	}
	if c.PresenceTTL < 10*time.Millisecond || c.PresenceHeartbeat < time.Millisecond {
		return fmt.Errorf("%w: PresenceTTL (%s) must be at least 10ms and PresenceHeartbeat (%s) at least 1ms", ErrBadConfig, c.PresenceTTL, c.PresenceHeartbeat)
	}
	if c.PresenceHeartbeat >= c.PresenceTTL {
		return fmt.Errorf("%w: PresenceHeartbeat (%s) must be shorter than PresenceTTL (%s)", ErrBadConfig, c.PresenceHeartbeat, c.PresenceTTL)
	}
	if c.MaxPresenceMembers == 0 {
		c.MaxPresenceMembers = DefaultMaxPresenceMembers
	}
	switch {
	case c.PresenceLeaveDelay == 0:
		c.PresenceLeaveDelay = DefaultPresenceLeaveDelay
	case c.PresenceLeaveDelay < MinPresenceLeaveDelay:
		return fmt.Errorf("%w: PresenceLeaveDelay (%s) must be at least %s (zero means the default, %s)", ErrBadConfig, c.PresenceLeaveDelay, MinPresenceLeaveDelay, DefaultPresenceLeaveDelay)
	}
	if len(c.Presence) > 0 {
		if _, ok := c.Broker.(broker.Presencer); !ok {
			return fmt.Errorf("%w: Presence needs a broker that keeps presence (broker.Presencer), which %T is not", ErrBadConfig, c.Broker)
		}
	}
	return nil
}
