package telegraphy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// flusher is implemented by brokers whose Publish only queues and that can
// wait until everything queued before the call has been written.
type flusher interface {
	Flush(ctx context.Context) error
}

// confirmMode is how the relay learns that the broker really has a batch
// before it deletes the rows.
type confirmMode int

const (
	// confirmSync: Publish returning nil means delivered (broker.Memory,
	// broker.Recorder).
	confirmSync confirmMode = iota
	// confirmFlush: the broker's Flush waits for its queue.
	confirmFlush
	// confirmMarker: the relay publishes a marker message after the batch
	// on a channel of its own and waits until the marker is in that
	// channel's history. Brokers write in order, so everything before the
	// marker has been written (or reported dropped) by then.
	confirmMarker
)

// relay publishes outbox rows to the broker and deletes them. One
// goroutine, started by Initialize and stopped by Plugin.Close, does all
// the work; the fields from leader down are owned by it.
type relay struct {
	o     *outbox
	id    string
	mode  confirmMode
	nudge chan struct{} // capacity 1: a commit happened

	stop      chan struct{}      // closed by Close: drain, release, exit
	hard      context.Context    // cancelled when Close gives up waiting
	cancel    context.CancelFunc //
	done      chan struct{}      // closed when run returns
	closeOnce sync.Once

	leader      bool
	renewed     time.Time
	seenHolder  string
	seenVersion int64
	seenAt      time.Time
	checked     time.Time // last lease check while not leader
	measured    time.Time // last backlog measurement
	retryAt     time.Time // after a failure, no batch before this
	backoff     time.Duration
	failures    int
	markerCh    string
	markerPos   broker.Position
	markerKnown bool

	// Published rows are deleted in groups (see deleteDelay): pending are
	// their IDs, hi the highest.
	pending      []uint64
	pendingSince time.Time
	hi           uint64
	next         time.Time // no round before this (roundGap)
}

// roundGap is the least time between two rounds. A commit wakes an idle
// relay at once; under a stream of commits, each round publishes the rows
// of every commit of the last roundGap together, so the relay's work per
// commit shrinks as the rate grows.
const roundGap = 2 * time.Millisecond

// deleteDelay is how long published rows may wait before the relay
// deletes them, so that a busy outbox costs one DELETE per many commits
// rather than one each. While rows wait, the relay reads only IDs above
// the highest it published; once they are deleted it reads the table from
// the start again, which finds lower IDs whose transactions committed late.
// A crash republishes at most these rows (the brokers drop the copies).
const deleteDelay = 100 * time.Millisecond

func newRelay(o *outbox) *relay {
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &relay{
		o:     o,
		id:    hex.EncodeToString(b[:]),
		nudge: make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	r.hard, r.cancel = context.WithCancel(context.Background())
	r.markerCh = "telegraphy.outbox.relay:" + r.id
	switch o.p.cfg.Broker.(type) {
	case *broker.Memory, *broker.Recorder:
		r.mode = confirmSync
	case flusher:
		r.mode = confirmFlush
	default:
		r.mode = confirmMarker
	}
	return r
}

func (r *relay) start() { go r.run() }

// wake tells the relay that rows were committed. It never blocks.
func (r *relay) wake() {
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

func (r *relay) run() {
	defer close(r.done)
	defer r.cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.stop:
			r.drain()
			r.release()
			return
		case <-r.nudge:
			if wait := time.Until(r.next); wait > 0 {
				timer.Reset(wait)
				continue
			}
		case <-timer.C:
		}
		r.round()
		r.next = time.Now().Add(roundGap)
		wait := r.o.cfg.PollInterval
		if len(r.pending) > 0 {
			wait = min(wait, deleteDelay)
		}
		timer.Reset(wait)
	}
}

// round measures the backlog when it is time, then, holding the lease,
// publishes batches until the outbox is empty or a batch fails.
func (r *relay) round() {
	ctx := r.hard
	now := time.Now()
	if now.Sub(r.measured) >= r.o.cfg.BacklogInterval {
		r.measured = now
		if b, err := r.o.backlog(ctx); err == nil {
			r.o.logBacklog(b, r.leader)
		}
	}
	if now.Before(r.retryAt) {
		return
	}
	if !r.leader && now.Sub(r.checked) < r.o.cfg.PollInterval/2 {
		return // commits wake every relay; a standby checks the lease at its own pace
	}
	if !r.lead(ctx) {
		return
	}
	for ctx.Err() == nil {
		n, err := r.batch(ctx)
		if err != nil {
			r.failed(err)
			return
		}
		r.failures, r.backoff = 0, 0
		if n < r.o.cfg.BatchSize {
			return
		}
		select {
		case <-r.stop:
			return // run drains
		default:
		}
	}
}

// failed logs a failed batch (the first and every tenth in a row) and
// backs off: its rows stay in the outbox and are tried again.
func (r *relay) failed(err error) {
	r.failures++
	if r.failures == 1 || r.failures%10 == 0 {
		err = fmt.Errorf("telegraphy: outbox relay (attempt %d): %w", r.failures, err)
		r.o.logger().Error("telegraphy: outbox relay failed, rows kept for the next attempt", "err", err)
		if h := r.o.p.cfg.ErrorHandler; h != nil {
			h(err)
		}
	}
	r.backoff = min(max(2*r.backoff, 50*time.Millisecond), r.o.cfg.PollInterval)
	r.retryAt = time.Now().Add(r.backoff)
}

// drain publishes what is left before the relay stops, until the outbox
// is empty, a batch fails, or Close gives up.
func (r *relay) drain() {
	if !r.lead(r.hard) {
		return
	}
	for r.hard.Err() == nil {
		n, err := r.batch(r.hard)
		if err == nil && n == 0 {
			if len(r.pending) == 0 {
				return
			}
			err = r.deletePublished(r.hard)
		}
		if err != nil {
			if r.hard.Err() == nil {
				r.failed(err)
			}
			return
		}
	}
}

// lead reports whether this relay holds the lease, renewing it, or taking
// it when it is free or its holder stopped renewing it for LeaseTTL.
func (r *relay) lead(ctx context.Context) bool {
	now := time.Now()
	db := r.o.db.WithContext(ctx).Table(r.o.lease)
	if r.leader {
		if now.Sub(r.renewed) < r.o.cfg.LeaseTTL/4 {
			return true
		}
		if ok, err := r.renew(ctx); ok {
			return true
		} else if err != nil {
			r.o.logger().Warn("telegraphy: outbox relay could not renew its lease", "err", err)
		} else {
			r.o.logger().Warn("telegraphy: outbox relay lost its lease to another relay")
		}
		r.setLeader(false)
		// What this relay published is published: delete it if possible,
		// else the next leader publishes it again.
		_ = r.deletePublished(ctx)
		r.pending = nil
	}
	r.checked = now
	var l outboxLease
	if err := db.Where("name = ?", r.o.table).Take(&l).Error; err != nil {
		return false
	}
	if l.Holder != r.seenHolder || l.Version != r.seenVersion {
		r.seenHolder, r.seenVersion, r.seenAt = l.Holder, l.Version, now
	}
	free := l.Holder == "" || l.Holder == r.id || now.Sub(r.seenAt) >= r.o.cfg.LeaseTTL
	if !free {
		return false
	}
	res := r.o.db.WithContext(ctx).Table(r.o.lease).
		Where("name = ? AND holder = ? AND version = ?", r.o.table, l.Holder, l.Version).
		UpdateColumns(map[string]any{"holder": r.id, "version": gorm.Expr("version + 1")})
	if res.Error != nil || res.RowsAffected != 1 {
		return false
	}
	if l.Holder != "" && l.Holder != r.id {
		r.o.logger().Info("telegraphy: outbox relay took over the lease of a relay that stopped renewing it",
			"relay", r.id, "previous", l.Holder)
	}
	r.renewed = now
	r.setLeader(true)
	return true
}

// renew extends the lease; false when another relay has it now.
func (r *relay) renew(ctx context.Context) (bool, error) {
	now := time.Now()
	res := r.o.db.WithContext(ctx).Table(r.o.lease).
		Where("name = ? AND holder = ?", r.o.table, r.id).
		UpdateColumn("version", gorm.Expr("version + 1"))
	if res.Error != nil {
		return false, res.Error
	}
	if res.RowsAffected != 1 {
		return false, nil
	}
	r.renewed = now
	return true, nil
}

func (r *relay) setLeader(on bool) {
	r.leader = on
	if m := r.o.metrics; m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.leader.Set(v)
	}
}

// release gives the lease up so that another relay may take it at once.
func (r *relay) release() {
	if !r.leader {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.o.db.WithContext(ctx).Table(r.o.lease).
		Where("name = ? AND holder = ?", r.o.table, r.id).
		UpdateColumns(map[string]any{"holder": "", "version": gorm.Expr("version + 1")})
	r.setLeader(false)
}

// batch publishes the oldest rows, in ID order, and deletes them once the
// broker has them. It returns how many rows it published.
func (r *relay) batch(ctx context.Context) (int, error) {
	if len(r.pending) > 0 && (len(r.pending) >= r.o.cfg.BatchSize || time.Since(r.pendingSince) >= deleteDelay) {
		if err := r.deletePublished(ctx); err != nil {
			return 0, err
		}
	}
	q := r.o.db.WithContext(ctx).Table(r.o.table).Order("id").Limit(r.o.cfg.BatchSize)
	if len(r.pending) > 0 {
		q = q.Where("id > ?", r.hi)
	}
	var rows []outboxRow
	if err := q.Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	msgs := make([]broker.Message, len(rows), len(rows)+1)
	ids := make([]uint64, len(rows))
	for i, row := range rows {
		var channels []string
		if err := json.Unmarshal([]byte(row.Channels), &channels); err != nil || len(channels) == 0 {
			return 0, fmt.Errorf("outbox row %d: bad channels %q: %v", row.ID, row.Channels, err)
		}
		msgs[i] = broker.Message{EventID: row.EventID, Channels: channels, Data: row.Data, Time: time.Unix(0, row.CreatedNs),
			Origin: broker.DecodeOrigin(row.Origin)}
		ids[i] = row.ID
	}
	if err := r.publish(ctx, msgs); err != nil {
		return 0, err
	}
	if len(r.pending) == 0 {
		r.pendingSince = time.Now()
	}
	r.pending = append(r.pending, ids...)
	r.hi = max(r.hi, ids[len(ids)-1])
	if m := r.o.metrics; m != nil {
		m.published.Add(float64(len(rows)))
	}
	return len(rows), nil
}

// deletePublished deletes the rows published so far. It deletes exactly
// their IDs, never a range: a lower ID that was not visible when they were
// read (its transaction still running) must stay for a later batch.
func (r *relay) deletePublished(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	for len(r.pending) > 0 {
		n := min(len(r.pending), insertChunk)
		err := r.o.db.WithContext(ctx).Table(r.o.table).Where("id IN ?", r.pending[:n]).Delete(&outboxRow{}).Error
		if err != nil {
			return fmt.Errorf("delete published outbox rows (they will be published again if the relay stops now): %w", err)
		}
		r.pending = r.pending[n:]
	}
	r.pending, r.hi = nil, 0
	return nil
}

// publish hands msgs to the broker and returns once the broker has them
// (see confirmMode).
func (r *relay) publish(ctx context.Context, msgs []broker.Message) error {
	b := r.o.p.cfg.Broker
	pctx, cancel := context.WithTimeout(ctx, r.o.p.cfg.PublishTimeout)
	defer cancel()
	switch r.mode {
	case confirmFlush:
		if err := b.Publish(pctx, msgs...); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if err := b.(flusher).Flush(ctx); err != nil {
			return fmt.Errorf("flush broker: %w", err)
		}
		return nil
	case confirmMarker:
		if !r.markerKnown {
			res, err := b.History(pctx, r.markerCh, nil)
			if err != nil {
				return fmt.Errorf("broker history: %w", err)
			}
			r.markerPos, r.markerKnown = res.Position, true
		}
		marker := broker.Message{EventID: events.NewID(), Channels: []string{r.markerCh}, Data: []byte("null"), Time: time.Now()}
		if err := b.Publish(pctx, append(msgs, marker)...); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return r.waitMarker(ctx)
	}
	if err := b.Publish(pctx, msgs...); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// waitMarker waits until the marker published after a batch is in the
// marker channel's history. While the broker is unreachable it waits (the
// batch is queued in the broker and goes out when it is back), renewing the
// lease; once the broker has answered for PublishTimeout without the
// marker, the marker is taken as lost and the batch as failed.
func (r *relay) waitMarker(ctx context.Context) error {
	b := r.o.p.cfg.Broker
	timeout := r.o.p.cfg.PublishTimeout
	var reachable time.Time // since when History has answered
	delay := time.Millisecond
	start := time.Now()
	warned := false
	for {
		hctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := b.History(hctx, r.markerCh, nil)
		cancel()
		now := time.Now()
		switch {
		case err == nil && res.Position.Offset > 0 && res.Position != r.markerPos:
			r.markerPos = res.Position
			return nil
		case err == nil:
			if reachable.IsZero() {
				reachable = now
			} else if now.Sub(reachable) > timeout {
				return fmt.Errorf("broker did not confirm the batch within %s", timeout)
			}
		default:
			reachable = time.Time{}
		}
		if !warned && now.Sub(start) > timeout {
			warned = true
			r.o.logger().Warn("telegraphy: outbox relay waiting for the broker; events stay in the outbox until it confirms them",
				"waited", now.Sub(start).Round(time.Millisecond), "err", err)
		}
		if r.leader && now.Sub(r.renewed) >= r.o.cfg.LeaseTTL/4 {
			if ok, err := r.renew(ctx); !ok {
				r.setLeader(false)
				if err == nil {
					err = fmt.Errorf("lease lost")
				}
				return fmt.Errorf("waiting for the broker: %w", err)
			}
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// close stops the relay: it publishes what the outbox holds until ctx is
// done, gives up the lease and returns when the goroutine has exited.
func (r *relay) close(ctx context.Context) error {
	r.closeOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return fmt.Errorf("telegraphy: outbox relay stopped before the outbox was drained: %w", context.Cause(ctx))
	}
}

// Close stops the plugin's background work: in outbox mode, the relay
// publishes what the outbox holds until ctx is done, then gives up its
// lease and exits. Rows it could not publish stay in the table for the
// next relay. Close waits for the relay to exit and is idempotent; call it
// before closing the database. Without a relay it does nothing.
func (p *Plugin) Close(ctx context.Context) error {
	if p.outbox == nil || p.outbox.relay == nil {
		return nil
	}
	return p.outbox.relay.close(ctx)
}
