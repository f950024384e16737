package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/telegraphy-go/telegraphy/events"
)

// Recorder is a Broker for tests: it records every message published
// through it and forwards it to an inner Broker. Because the telegraphy
// plugin publishes only after a commit, a Recorder never sees the events of
// a rolled-back transaction: asserting on Events after a rollback is a
// rollback test.
//
//	rec := broker.NewRecorder(nil)
//	p := telegraphy.New(telegraphy.Config{Broker: rec})
//	// ... write through GORM ...
//	evs := rec.Events()
//
// A Recorder is safe for concurrent use.
type Recorder struct {
	inner Broker

	mu   sync.Mutex
	msgs []Message
	err  error
}

// NewRecorder returns a Recorder forwarding to inner. A nil inner means a
// fresh in-process Memory broker, so Subscribe and History work as usual.
func NewRecorder(inner Broker) *Recorder {
	if inner == nil {
		inner = NewMemory()
	}
	return &Recorder{inner: inner}
}

// FailWith makes every later Publish fail with err, without recording or
// forwarding, until it is called with nil. It lets tests see how publish
// failures are handled.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Publish implements Broker: it records msgs, then forwards them.
func (r *Recorder) Publish(ctx context.Context, msgs ...Message) error {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return err
	}
	for _, m := range msgs {
		m.Channels = append([]string(nil), m.Channels...)
		r.msgs = append(r.msgs, m)
	}
	r.mu.Unlock()
	return r.inner.Publish(ctx, msgs...)
}

// Subscribe implements Broker by forwarding to the inner broker.
func (r *Recorder) Subscribe(ctx context.Context) (Subscription, error) {
	return r.inner.Subscribe(ctx)
}

// History implements Broker by forwarding to the inner broker.
func (r *Recorder) History(ctx context.Context, channel string, since *Position) (HistoryResult, error) {
	return r.inner.History(ctx, channel, since)
}

// PublishSynchronous implements Synchronous with the answer of the inner
// broker: a Recorder around broker.Memory is synchronous, one around a
// broker whose Publish only queues (such as Redis) is not.
func (r *Recorder) PublishSynchronous() bool { return PublishesSynchronously(r.inner) }

var (
	_ Broker      = (*Recorder)(nil)
	_ Synchronous = (*Recorder)(nil)
)

// Close implements Broker by closing the inner broker.
func (r *Recorder) Close(ctx context.Context) error { return r.inner.Close(ctx) }

// Messages returns a copy of the messages recorded so far, in publish
// order.
func (r *Recorder) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Events returns the recorded messages decoded, in publish order, with
// Channels set from each message. A message whose Data is not an event
// (published by something other than telegraphy) is skipped.
func (r *Recorder) Events() []events.Event {
	msgs := r.Messages()
	out := make([]events.Event, 0, len(msgs))
	for _, m := range msgs {
		var e events.Event
		if err := json.Unmarshal(m.Data, &e); err != nil {
			continue
		}
		e.Channels = m.Channels
		out = append(out, e)
	}
	return out
}

// Len returns the number of recorded messages.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Reset forgets every recorded message.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.msgs = nil
	r.mu.Unlock()
}

// String lists the recorded events, one a line, for test failure output.
func (r *Recorder) String() string {
	var s string
	for _, e := range r.Events() {
		s += fmt.Sprintf("%s %s pk=%v %s\n", e.Name, e.Meta.EventType, e.Meta.PK, e.Data)
	}
	return s
}
