package broker

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"time"
)

// ErrBadPresence is wrapped by the error UpdatePresence returns for a bad
// argument: an empty node or subject, or a non-positive TTL or cap.
var ErrBadPresence = errors.New("broker: invalid presence update")

// PresenceMember is one subject present on a channel, with the info object
// its token carried (nil when none).
type PresenceMember struct {
	Subject string          `json:"subject"`
	Info    json.RawMessage `json:"info,omitempty"`
}

// PresenceLease says how long an UpdatePresence lasts and how many members
// a channel may hold.
type PresenceLease struct {
	// TTL is how long the entries added or refreshed stay without another
	// UpdatePresence from their node: a node that stops refreshing (a
	// dead hub) loses its members TTL after its last update.
	TTL time.Duration
	// MaxMembers is the most distinct subjects a channel holds; a subject
	// beyond it is not added, and is returned in PresenceChange.Full.
	MaxMembers int
}

// PresenceChange is what an UpdatePresence changed in the channel's
// membership, across every node.
type PresenceChange struct {
	// Joined are the subjects that were not present on any node before
	// (including ones restored after the service lost them).
	Joined []PresenceMember
	// Left are the subjects present on no node any more: removed by this
	// update, or whose entries on other nodes expired.
	Left []string
	// Full are the subjects of add that were not added: the channel holds
	// MaxMembers subjects.
	Full []string
}

// Presencer is implemented by brokers that keep who is present on a
// channel for the hubs that share them (broker.Memory in one process,
// redisbroker.Broker across processes). A hub is a node: it adds a
// subject when its first local connection to the channel comes and
// removes it when its last one goes, and it re-announces its members
// every heartbeat, well within the lease's TTL. A subject is present
// while any node holds a live entry for it.
//
// Only UpdatePresence with something to add creates state; Presence never
// does.
type Presencer interface {
	// UpdatePresence adds (or refreshes, for entries node already holds)
	// the members in add, removes node's entries for the subjects in
	// remove, and expires the entries of every node whose TTL has passed.
	// With nothing to add or remove it only expires.
	UpdatePresence(ctx context.Context, channel, node string, add []PresenceMember, remove []string, lease PresenceLease) (PresenceChange, error)
	// Presence returns the subjects present on channel, at most max
	// (ordered by subject), leaving out expired entries.
	Presence(ctx context.Context, channel string, max int) ([]PresenceMember, error)
}

// CheckPresenceUpdate returns an error wrapping ErrBadPresence, or
// ErrEmptyChannel/ErrBadChannel, when an UpdatePresence call is invalid:
// the check every Presencer makes.
func CheckPresenceUpdate(channel, node string, add []PresenceMember, remove []string, lease PresenceLease) error {
	if err := CheckChannels(channel); err != nil {
		return err
	}
	switch {
	case node == "" || hasControl(node):
		return errors.Join(ErrBadPresence, errors.New("empty node or control character in it"))
	case lease.TTL <= 0 || lease.MaxMembers <= 0:
		return errors.Join(ErrBadPresence, errors.New("lease TTL and MaxMembers must be positive"))
	}
	for _, m := range add {
		if m.Subject == "" {
			return errors.Join(ErrBadPresence, errors.New("empty subject"))
		}
	}
	for _, s := range remove {
		if s == "" {
			return errors.Join(ErrBadPresence, errors.New("empty subject"))
		}
	}
	return nil
}

// memPresence is broker.Memory's presence: channel -> its members.
type memPresence struct {
	mu       sync.Mutex
	channels map[string]*memPresenceChannel
}

// memPresenceChannel holds the subjects on one channel. next is no later
// than the earliest expiry of an entry: before it, nothing has expired and
// an update does not scan the members.
type memPresenceChannel struct {
	members map[string]*memPresent
	next    time.Time
}

// memPresent is one subject on one channel: its info and, per node, when
// that node's entry expires.
type memPresent struct {
	info  json.RawMessage
	nodes map[string]time.Time
}

// UpdatePresence implements Presencer.
func (m *Memory) UpdatePresence(ctx context.Context, channel, node string, add []PresenceMember, remove []string, lease PresenceLease) (PresenceChange, error) {
	var ch PresenceChange
	if err := CheckPresenceUpdate(channel, node, add, remove, lease); err != nil {
		return ch, err
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return ch, ErrClosed
	}
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	pc := p.channels[channel]
	if pc != nil && !now.Before(pc.next) {
		pc.next = time.Time{}
		for s, e := range pc.members {
			for n, until := range e.nodes {
				if !until.After(now) {
					delete(e.nodes, n)
				} else if pc.next.IsZero() || until.Before(pc.next) {
					pc.next = until
				}
			}
			if len(e.nodes) == 0 {
				delete(pc.members, s)
				ch.Left = append(ch.Left, s)
			}
		}
	}
	for _, s := range remove {
		if pc == nil {
			break
		}
		e := pc.members[s]
		if e == nil || e.nodes[node].IsZero() {
			continue
		}
		delete(e.nodes, node)
		if len(e.nodes) == 0 {
			delete(pc.members, s)
			ch.Left = append(ch.Left, s)
		}
	}
	until := now.Add(lease.TTL)
	for _, a := range add {
		if pc == nil {
			if p.channels == nil {
				p.channels = make(map[string]*memPresenceChannel)
			}
			pc = &memPresenceChannel{members: make(map[string]*memPresent), next: until}
			p.channels[channel] = pc
		}
		e := pc.members[a.Subject]
		if e == nil {
			if len(pc.members) >= lease.MaxMembers {
				ch.Full = append(ch.Full, a.Subject)
				continue
			}
			e = &memPresent{nodes: make(map[string]time.Time, 1)}
			pc.members[a.Subject] = e
			ch.Joined = append(ch.Joined, PresenceMember{Subject: a.Subject, Info: a.Info})
		}
		e.info = a.Info
		e.nodes[node] = until
		if pc.next.IsZero() || until.Before(pc.next) {
			pc.next = until
		}
	}
	if pc != nil && len(pc.members) == 0 {
		delete(p.channels, channel)
	}
	return ch, nil
}

// Presence implements Presencer.
func (m *Memory) Presence(ctx context.Context, channel string, max int) ([]PresenceMember, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	p := &m.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	out := []PresenceMember{}
	pc := p.channels[channel]
	if pc == nil {
		return out, nil
	}
	for s, e := range pc.members {
		for _, until := range e.nodes {
			if until.After(now) {
				out = append(out, PresenceMember{Subject: s, Info: e.info})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// PresenceChannels returns how many channels hold presence entries: tests
// use it to check that nothing is kept for a channel nobody is on.
func (m *Memory) PresenceChannels() int {
	m.presence.mu.Lock()
	defer m.presence.mu.Unlock()
	return len(m.presence.channels)
}
