package redisbroker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
)

// runPublisher is the one goroutine that writes queued messages to Redis.
// It exits when the queue is closed and drained, or, once Close gives up,
// after reporting what is left as dropped.
func (b *Broker) runPublisher() {
	defer close(b.done)
	batch := make([]broker.Message, 0, b.cfg.BatchSize)
	for {
		m, ok := <-b.queue
		if !ok {
			return
		}
		batch = append(batch[:0], m)
	fill:
		for len(batch) < b.cfg.BatchSize {
			select {
			case m, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		b.send(batch)
	}
}

// job is a message and the channels it still has to reach.
type job struct {
	msg      broker.Message
	channels []string
}

// send writes batch to Redis, retrying what failed for a reason that may
// pass (connection lost, server loading) with jittered exponential backoff,
// in order, until it succeeds or Close gives up. Retrying is safe: a
// message's event id is kept per channel, so a write that reached Redis
// before the connection broke is not applied twice.
func (b *Broker) send(batch []broker.Message) {
	pending := make([]job, len(batch))
	for i, m := range batch {
		pending[i] = job{msg: m, channels: m.Channels}
	}
	delay := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if b.stop.Err() != nil {
			b.drop(pending, broker.ErrClosed)
			return
		}
		var err error
		var noScript bool
		pending, noScript, err = b.write(pending)
		if len(pending) == 0 {
			return
		}
		b.retries.Add(1)
		if noScript {
			// Redis restarted and forgot the script: load it and go on
			// at once.
			if lerr := publishScript.Load(b.stop, b.client).Err(); lerr == nil {
				continue
			}
		}
		if attempt == 1 || attempt%20 == 0 {
			b.report(fmt.Errorf("redisbroker: publishing %d messages failed (attempt %d), retrying: %w", len(pending), attempt, err))
		}
		// Full jitter keeps many publishers from reconnecting in step.
		wait := delay/2 + rand.N(delay/2+1)
		select {
		case <-time.After(wait):
		case <-b.stop.Done():
		}
		delay = min(delay*2, b.cfg.MaxRetryDelay)
	}
}

// write pipelines one attempt and returns the jobs to retry, whether a
// script was missing, and the first error met.
func (b *Broker) write(jobs []job) (retry []job, noScript bool, first error) {
	ctx := b.stop
	pipe := b.client.Pipeline()
	cmds := make([][]redis.Cmder, len(jobs))
	ttl := b.cfg.HistoryTTL.Milliseconds()
	for i, j := range jobs {
		m := j.msg
		if m.NoHistory || b.cfg.HistorySize == 0 {
			payload := encodePub(m.EventID, m.Time, m.Data)
			for _, ch := range j.channels {
				cmds[i] = append(cmds[i], pipe.Publish(ctx, b.pubChannel(ch), payload))
			}
			continue
		}
		ns := strconv.FormatInt(m.Time.UnixNano(), 10)
		for _, ch := range j.channels {
			keys := []string{b.metaKey(ch), b.streamKey(ch)}
			if m.EventID != "" {
				keys = append(keys, b.idKey(ch, m.EventID))
			}
			cmds[i] = append(cmds[i], publishScript.EvalSha(ctx, pipe, keys,
				newEpoch(), m.EventID, ns, m.Data, b.cfg.HistorySize, ttl, b.pubChannel(ch)))
		}
	}
	_, _ = pipe.Exec(ctx)
	for i, j := range jobs {
		var failed []string
		for k, cmd := range cmds[i] {
			err := cmd.Err()
			if err == nil {
				if c, ok := cmd.(*redis.Cmd); ok {
					if n, _ := c.Int64(); n == 0 {
						b.duplicates.Add(1)
						continue
					}
				}
				b.published.Add(1)
				continue
			}
			if first == nil {
				first = err
			}
			if redis.HasErrorPrefix(err, "NOSCRIPT") {
				noScript = true
			}
			if !retryable(err) {
				b.dropped.Add(1)
				b.report(fmt.Errorf("%w: event %q to %q: %w", ErrDropped, j.msg.EventID, j.channels[k], err))
				continue
			}
			failed = append(failed, j.channels[k])
		}
		if len(failed) > 0 {
			retry = append(retry, job{msg: j.msg, channels: failed})
		}
	}
	return retry, noScript, first
}

// retryable reports whether a failed write may succeed later: network and
// pool errors, and the server errors of a server that is starting, failing
// over or out of memory.
func retryable(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	for _, p := range []string{"NOSCRIPT", "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// drop reports every pending job as lost.
func (b *Broker) drop(jobs []job, reason error) {
	for _, j := range jobs {
		b.dropped.Add(1)
		b.report(fmt.Errorf("%w: event %q to %v: %w", ErrDropped, j.msg.EventID, j.channels, reason))
	}
}
