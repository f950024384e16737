package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// confirmer hands a batch to the broker and returns once the broker
// really has it, so that the relay may delete its rows.
type confirmer interface {
	publish(ctx context.Context, msgs []broker.Message) error
}

// newConfirmer returns the confirmation the broker allows: at once for a
// synchronous broker (broker.Synchronous), through a marker otherwise.
// keep is called while a marker is awaited; an error from it fails the
// batch.
func newConfirmer(cfg *Config, relayID string, keep func(context.Context) error) confirmer {
	if broker.PublishesSynchronously(cfg.Broker) {
		return syncConfirm{b: cfg.Broker, timeout: cfg.PublishTimeout}
	}
	return &markerConfirm{b: cfg.Broker, timeout: cfg.PublishTimeout, log: cfg.Logger, keep: keep,
		ch: "telegraphy.outbox.relay:" + relayID}
}

// syncConfirm: Publish returning nil means delivered (the broker
// implements broker.Synchronous and reports true, as broker.Memory does,
// and broker.Recorder when it wraps one).
type syncConfirm struct {
	b       broker.Broker
	timeout time.Duration
}

func (c syncConfirm) publish(ctx context.Context, msgs []broker.Message) error {
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.b.Publish(pctx, msgs...); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// markerConfirm: the relay publishes a marker message after the batch on
// a channel of its own and waits until the marker is in that channel's
// history. Brokers write in order, so everything before the marker has
// been written (or reported dropped) by then.
type markerConfirm struct {
	b       broker.Broker
	timeout time.Duration
	log     *slog.Logger
	keep    func(context.Context) error
	ch      string

	pos   broker.Position // the marker channel's position before the last marker
	known bool
}

func (c *markerConfirm) publish(ctx context.Context, msgs []broker.Message) error {
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if !c.known {
		res, err := c.b.History(pctx, c.ch, nil)
		if err != nil {
			return fmt.Errorf("broker history: %w", err)
		}
		c.pos, c.known = res.Position, true
	}
	marker := broker.Message{EventID: events.NewID(), Channels: []string{c.ch}, Data: []byte("null"), Time: time.Now()}
	if err := c.b.Publish(pctx, append(msgs, marker)...); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return c.wait(ctx, marker.EventID)
}

// ours reports whether the marker id is among the marker channel's
// publications after c.pos; sure is false when the history cannot say
// (an error, a new epoch, history trimmed past c.pos), and the position
// having moved must do.
func (c *markerConfirm) ours(ctx context.Context, id string) (found, sure bool) {
	if c.pos.Offset == 0 {
		return false, false
	}
	since := c.pos
	res, err := c.b.History(ctx, c.ch, &since)
	if err != nil || !res.Recovered {
		return false, false
	}
	for _, p := range res.Publications {
		if p.EventID == id {
			return true, true
		}
	}
	return false, true
}

// wait waits until the marker id published after a batch is in the
// marker channel's history: a marker of an earlier attempt that arrives
// late (its attempt timed out while the broker's queue was long) does not
// confirm this one. While the broker is unreachable it waits (the batch
// is queued in the broker and goes out when it is back), keeping the
// lease; once the broker has answered for the publish timeout without the
// marker, the marker is taken as lost and the batch as failed.
func (c *markerConfirm) wait(ctx context.Context, id string) error {
	var reachable time.Time // since when History has answered
	delay := time.Millisecond
	start := time.Now()
	warned := false
	for {
		hctx, cancel := context.WithTimeout(ctx, c.timeout)
		res, err := c.b.History(hctx, c.ch, nil)
		cancel()
		now := time.Now()
		switch {
		case err == nil && res.Position.Offset > 0 && res.Position != c.pos:
			octx, ocancel := context.WithTimeout(ctx, c.timeout)
			found, sure := c.ours(octx, id)
			ocancel()
			c.pos = res.Position
			if found || !sure {
				return nil
			}
			// Only earlier markers came: wait on for this one.
			if reachable.IsZero() {
				reachable = now
			}
		case err == nil:
			if reachable.IsZero() {
				reachable = now
			} else if now.Sub(reachable) > c.timeout {
				return fmt.Errorf("broker did not confirm the batch within %s", c.timeout)
			}
		default:
			reachable = time.Time{}
		}
		if !warned && now.Sub(start) > c.timeout {
			warned = true
			c.log.Warn("telegraphy: outbox relay waiting for the broker; events stay in the outbox until it confirms them",
				"waited", now.Sub(start).Round(time.Millisecond), "err", err)
		}
		if err := c.keep(ctx); err != nil {
			return fmt.Errorf("waiting for the broker: %w", err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}
