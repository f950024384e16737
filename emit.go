package telegraphy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// Emit publishes a custom event: name is the event name (and, when no
// channels are given, its only channel), eventType its meta.event_type,
// data anything encoding/json accepts.
//
// Given a *gorm.DB inside a transaction (the tx of db.Transaction, or one
// from db.Begin), the event joins that transaction: it is published after
// the outermost commit, in order with the transaction's model events, and
// dropped on rollback (or when the savepoint it followed is rolled back).
// Given a *gorm.DB outside a transaction, or nil, it is published at once
// and a publish failure is returned (in outbox mode: written to the outbox
// at once, and a write failure is returned). A DB whose connection the
// plugin does not follow gives ErrUntracked. A DB whose context carries
// an origin (WithOrigin, OriginMiddleware) stamps the event with it, as
// for model events.
func (p *Plugin) Emit(db *gorm.DB, name, eventType string, data any, channels ...string) error {
	if name == "" || eventType == "" {
		return ErrEmptyName
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("telegraphy: encode data of %s event: %w", name, err)
	}
	if len(channels) == 0 {
		channels = []string{name}
	}
	for _, c := range channels {
		if c == "" {
			return broker.ErrEmptyChannel
		}
	}
	msg, err := newMessage(name, events.Meta{EventType: eventType}, raw, append([]string(nil), channels...))
	if err != nil {
		return err
	}
	ctx := context.Background()
	if db != nil {
		if db.Error != nil {
			return db.Error
		}
		if db.Plugins[p.Name()] != p {
			return ErrNotInitialized
		}
		msg.Origin, _ = OriginFrom(db.Statement.Context)
		tx, state, err := p.track(db)
		switch state {
		case inTx:
			tx.add(p, []broker.Message{msg}, false)
			return nil
		case untracked:
			return fmt.Errorf("telegraphy: emitting %s: %w", name, err)
		}
		if db.Statement.Context != nil {
			ctx = db.Statement.Context
		}
	}
	if p.outbox != nil {
		return p.outbox.WriteNow(ctx, msg) // in order with the model events
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
	defer cancel()
	return p.cfg.Broker.Publish(ctx, msg)
}
