package redisbroker

import (
	"errors"
	"fmt"
	"math/rand/v2"
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
	var linger *time.Timer
	if b.cfg.BatchWait > 0 {
		linger = time.NewTimer(b.cfg.BatchWait)
		defer linger.Stop()
	}
	for {
		m, ok := <-b.queue
		if !ok {
			return
		}
		batch = append(batch[:0], m)
		open := b.fill(&batch, nil)
		if open && linger != nil && len(batch) < b.cfg.BatchSize {
			linger.Reset(b.cfg.BatchWait)
			b.fill(&batch, linger.C)
		}
		b.send(batch)
	}
}

// fill adds queued messages to batch until it is full, the queue is empty
// (wait nil) or wait fires. It reports false once the queue is closed and
// drained.
func (b *Broker) fill(batch *[]broker.Message, wait <-chan time.Time) bool {
	for len(*batch) < b.cfg.BatchSize {
		if wait == nil {
			select {
			case m, ok := <-b.queue:
				if !ok {
					return false
				}
				*batch = append(*batch, m)
			default:
				return true
			}
			continue
		}
		select {
		case m, ok := <-b.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, m)
		case <-wait:
			return true
		}
	}
	return true
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
		entry := appendEntry(nil, m.EventID, m.Origin, m.Time, m.Data)
		if m.NoHistory || b.cfg.HistorySize == 0 {
			payload := append(append(make([]byte, 0, len(noPosition)+len(entry)), noPosition...), entry...)
			for _, ch := range j.channels {
				if b.cluster {
					cmds[i] = append(cmds[i], pipe.SPublish(ctx, b.pubChannel(ch), payload))
				} else {
					cmds[i] = append(cmds[i], pipe.Publish(ctx, b.pubChannel(ch), payload))
				}
			}
			continue
		}
		dedupe := "0"
		if m.EventID != "" {
			dedupe = "1"
		}
		head := []any{m.EventID, entry, b.cfg.HistorySize, ttl, dedupe, newEpoch()}
		if b.cluster {
			// A channel's keys share one slot, channels do not: one call
			// per channel, each routed to its slot's node.
			for _, ch := range j.channels {
				args := append(append(make([]any, 0, 8), head...), "SPUBLISH", b.pubChannel(ch))
				cmds[i] = append(cmds[i], publishScript.EvalSha(ctx, pipe,
					[]string{b.metaKey(ch), b.streamKey(ch), b.idsKey(ch)}, args...))
			}
			continue
		}
		// One script call per message writes all its channels: on a
		// single Redis the Lua call's fixed cost is paid once.
		keys := make([]string, 0, 3*len(j.channels))
		args := append(make([]any, 0, 7+len(j.channels)), head...)
		args = append(args, "PUBLISH")
		for _, ch := range j.channels {
			keys = append(keys, b.metaKey(ch), b.streamKey(ch), b.idsKey(ch))
			args = append(args, b.pubChannel(ch))
		}
		cmds[i] = []redis.Cmder{publishScript.EvalSha(ctx, pipe, keys, args...)}
	}
	_, _ = pipe.Exec(ctx)
	for i, j := range jobs {
		var err error
		for _, cmd := range cmds[i] {
			if err = cmd.Err(); err != nil {
				break
			}
		}
		if err == nil {
			b.count(cmds[i])
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
			b.report(fmt.Errorf("%w: event %q to %v: %w", ErrDropped, j.msg.EventID, j.channels, err))
			continue
		}
		// The whole message is retried: its channels already written
		// skip it as a duplicate (NoHistory messages may go out twice).
		retry = append(retry, j)
	}
	return retry, noScript, first
}

// count adds a written message's results to the Stats: the script answers
// each channel's offset, 0 for a duplicate and -1 for a channel published
// to without history; a PUBLISH is one channel.
func (b *Broker) count(cmds []redis.Cmder) {
	for _, cmd := range cmds {
		c, ok := cmd.(*redis.Cmd)
		if !ok {
			b.published.Add(1)
			continue
		}
		offsets, _ := c.Int64Slice()
		for _, off := range offsets {
			switch off {
			case 0:
				b.duplicates.Add(1)
			case -1:
				b.unwatched.Add(1)
				b.published.Add(1)
			default:
				b.published.Add(1)
			}
		}
	}
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
