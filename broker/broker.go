package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors shared by every Broker implementation.
var (
	// ErrClosed is returned by a Broker or Subscription used after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrEmptyChannel is returned when a message or subscription names an
	// empty channel.
	ErrEmptyChannel = errors.New("broker: empty channel name")
	// ErrBadChannel is wrapped by the error returned when a message or
	// subscription names a channel that is not valid UTF-8 or holds a
	// control character.
	ErrBadChannel = errors.New("broker: invalid channel name")
	// ErrBadEventID is wrapped by the error returned when a message's
	// EventID is longer than MaxEventIDLength or holds a control
	// character (a newline would shift the Redis broker's framing).
	ErrBadEventID = errors.New("broker: invalid event id")
	// ErrBadOrigin is wrapped by the error returned when a message's
	// Origin has a field longer than MaxOriginLength, holds a control
	// character, or has a Session without a Subject or the reverse.
	ErrBadOrigin = errors.New("broker: invalid origin")
)

// MaxEventIDLength is the longest Message.EventID, in bytes.
const MaxEventIDLength = 255

// CheckChannels returns ErrEmptyChannel when one of channels is empty, and
// an error wrapping ErrBadChannel when one is not valid UTF-8 or holds a
// control character: the check every Broker makes on Subscription.Add.
func CheckChannels(channels ...string) error {
	for _, ch := range channels {
		if ch == "" {
			return ErrEmptyChannel
		}
		if !utf8.ValidString(ch) {
			return fmt.Errorf("%w: %q is not valid UTF-8", ErrBadChannel, ch)
		}
		if hasControl(ch) {
			return fmt.Errorf("%w: %q holds a control character", ErrBadChannel, ch)
		}
	}
	return nil
}

// CheckMessages returns the error of CheckChannels for the channels of
// msgs, or one wrapping ErrBadEventID for a bad EventID: the check every
// Broker makes before Publish sends anything.
func CheckMessages(msgs ...Message) error {
	for _, m := range msgs {
		if err := CheckChannels(m.Channels...); err != nil {
			return err
		}
		if len(m.EventID) > MaxEventIDLength {
			return fmt.Errorf("%w: %d bytes, longer than %d", ErrBadEventID, len(m.EventID), MaxEventIDLength)
		}
		if hasControl(m.EventID) {
			return fmt.Errorf("%w: %q holds a control character", ErrBadEventID, m.EventID)
		}
		if err := m.Origin.Check(); err != nil {
			return err
		}
	}
	return nil
}

// MaxOriginLength is the longest Origin.Session and Origin.Subject, in
// bytes.
const MaxOriginLength = 255

// Origin says which connection's request made the write an event reports:
// the session id a hub gave the connection (its welcome message) and the
// subject (user) the application says made the request. A hub does not
// deliver the event to the one connection whose session id is Session
// and whose token subject is Subject; everybody else gets it. The zero
// Origin (no origin) hides the event from nobody.
type Origin struct {
	Session string
	Subject string
}

// IsZero reports whether o is the zero Origin.
func (o Origin) IsZero() bool { return o.Session == "" && o.Subject == "" }

// Check returns nil for the zero Origin and for one whose Session and
// Subject are both set, at most MaxOriginLength bytes long and free of
// control characters; otherwise an error wrapping ErrBadOrigin.
func (o Origin) Check() error {
	if o.IsZero() {
		return nil
	}
	if o.Session == "" || o.Subject == "" {
		return fmt.Errorf("%w: session and subject go together", ErrBadOrigin)
	}
	if len(o.Session) > MaxOriginLength || len(o.Subject) > MaxOriginLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadOrigin, MaxOriginLength)
	}
	if hasControl(o.Session) || hasControl(o.Subject) {
		return fmt.Errorf("%w: holds a control character", ErrBadOrigin)
	}
	return nil
}

// OriginSeparator separates the session from the subject in the one-string
// form of an Origin (EncodeOrigin); neither holds a control character.
const OriginSeparator = '\x1f'

// EncodeOrigin returns o as one string, "<session>\x1f<subject>", or ""
// for the zero Origin: the form in which brokers and the outbox store it.
func EncodeOrigin(o Origin) string {
	if o.IsZero() {
		return ""
	}
	return o.Session + string(OriginSeparator) + o.Subject
}

// DecodeOrigin reverses EncodeOrigin. Anything that is not a valid
// encoded Origin gives the zero Origin, which hides an event from nobody.
func DecodeOrigin(s string) Origin {
	session, subject, ok := strings.Cut(s, string(OriginSeparator))
	if !ok {
		return Origin{}
	}
	o := Origin{Session: session, Subject: subject}
	if o.Check() != nil {
		return Origin{}
	}
	return o
}

// hasControl reports whether s holds an ASCII control character (newline
// included) or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// Message is one encoded event handed to Publish. The same Data is
// published to every channel in Channels: it is encoded once.
type Message struct {
	// EventID is the event's meta.id. A broker keeps at most one copy of an
	// id in a channel's history, so a message published twice (after a
	// crash and a retry) reaches subscribers once per history window.
	EventID string
	// Channels are the channels the message goes to. At least one.
	Channels []string
	// Data is the encoded event JSON. Brokers never modify it.
	Data []byte
	// Time is when the event was produced, used for delivery-latency
	// metrics. Zero value means the time Publish is called.
	Time time.Time
	// NoHistory publishes to live subscribers only: no offset is assigned
	// and nothing is kept. Used for control messages such as revocations.
	NoHistory bool
	// Origin is the connection whose request made the write, when the
	// application said so (see Origin). It travels with the message to
	// every subscriber and into the history, never into Data.
	Origin Origin
}

// Position is a place in a channel's stream. Offsets grow by one per
// publication within a channel; the epoch changes whenever the channel's
// history is lost, or may have lost its last publications, which makes
// older positions unrecoverable.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Publication is one message as delivered on one channel.
type Publication struct {
	Channel string
	// Epoch and Offset place the publication in the channel's stream.
	// Offset is zero for NoHistory messages.
	Epoch   string
	Offset  uint64
	EventID string
	Data    []byte
	Time    time.Time
	// Origin is the message's Origin.
	Origin Origin
}

// HistoryResult answers a History call.
type HistoryResult struct {
	// Position is the channel's current position: the epoch and the offset
	// of the newest publication (zero for an empty channel).
	Position Position
	// Publications are those after the asked-for position, oldest first.
	Publications []Publication
	// Recovered is true when Publications holds every publication after
	// the asked-for position. It is false when the epoch differs or the
	// history no longer reaches back that far: the client must refetch.
	Recovered bool
}

// Broker carries encoded events from publishers (the GORM plugin, custom
// events) to subscribers (hubs), and keeps a bounded history per channel
// for recovery.
//
// Implementations are safe for concurrent use. Within one channel,
// publications are delivered in offset order.
type Broker interface {
	// Publish hands messages to the broker in order. An error means some
	// or all were not accepted; it never means they were half-written to
	// one channel.
	Publish(ctx context.Context, msgs ...Message) error
	// Subscribe opens a subscription with no channels yet; Add channels to
	// it. Its buffer and overflow policy are the implementation's.
	Subscribe(ctx context.Context) (Subscription, error)
	// History returns the channel's position and, when since is not nil,
	// the publications after it.
	History(ctx context.Context, channel string, since *Position) (HistoryResult, error)
	// Close releases the broker's resources. It is idempotent; a
	// publishing broker flushes what it has queued until ctx is done.
	Close(ctx context.Context) error
}

// Subscription receives the publications of the channels added to it.
type Subscription interface {
	// C delivers publications. It is closed when the subscription is.
	C() <-chan Publication
	// Add starts delivery of the channels' publications.
	Add(ctx context.Context, channels ...string) error
	// Remove stops delivery of the channels' publications.
	Remove(ctx context.Context, channels ...string) error
	// Dropped counts publications not delivered because C was full, and
	// (Redis) each time the subscription's connection came back after it
	// was lost, when publications may have been missed. A subscriber that
	// sees it grow checks its channels against History.
	Dropped() uint64
	// Close ends the subscription and closes C. It is idempotent.
	Close() error
}

// HistoryLimit bounds what one history read may return. A zero field
// means no bound.
type HistoryLimit struct {
	// Publications is the most publications the read may return.
	Publications int
	// Bytes is the most bytes of publication Data the read may return.
	Bytes int
}

// BoundedHistory is implemented by brokers that can refuse a recovery
// that would exceed a limit before they read it: HistoryWithin answers as
// History does, except that when more than limit.Publications follow
// since, or their Data exceeds limit.Bytes, it returns the channel's
// Position with Recovered=false and no Publications, having read at most
// about limit.Bytes. Hubs use it so that a client asking for a position
// far behind costs the broker the position only.
type BoundedHistory interface {
	HistoryWithin(ctx context.Context, channel string, since *Position, limit HistoryLimit) (HistoryResult, error)
}

// Pinger is implemented by brokers that depend on a remote service; hubs
// report its result in their health check and metrics.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Synchronous is implemented by brokers that can say whether their Publish
// is synchronous. When PublishSynchronous reports true, Publish returning
// nil means every message is in its channels' history and has been handed
// to (or counted dropped by) every subscriber, and Publish never waits on
// a network, a disk or a subscriber, so it needs no deadline. A broker
// whose Publish only queues (one that talks to a remote service) does not
// implement it, or reports false. The telegraphy outbox relay deletes
// outbox rows as soon as a synchronous Publish returns; for other brokers
// it first waits until the broker confirms it has written them.
//
// A broker that wraps another (such as Recorder) reports the answer of the
// one it wraps.
type Synchronous interface {
	PublishSynchronous() bool
}

// PublishesSynchronously reports whether b implements Synchronous and
// reports true.
func PublishesSynchronously(b Broker) bool {
	s, ok := b.(Synchronous)
	return ok && s.PublishSynchronous()
}
