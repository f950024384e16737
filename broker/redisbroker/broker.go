package redisbroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/telegraphy-go/telegraphy/broker"
)

// Sentinel errors. Errors returned or reported by the Broker wrap one of
// these, or broker.ErrClosed / broker.ErrEmptyChannel.
var (
	// ErrQueueFull is returned by Publish, and reported through
	// Config.ErrorHandler once per dropped message, when the publish queue
	// has no room: Redis has been unreachable or slower than the publishers
	// for longer than the queue lasts.
	ErrQueueFull = errors.New("redisbroker: publish queue full, message dropped")
	// ErrDropped is reported through Config.ErrorHandler for a message that
	// Redis refused for a reason retrying cannot fix, or that was still
	// queued when Close's context ended.
	ErrDropped = errors.New("redisbroker: message dropped")
	// ErrUnavailable wraps a failure to reach Redis, in New and Ping.
	ErrUnavailable = errors.New("redisbroker: Redis unavailable")
)

// Broker is the Redis implementation of broker.Broker and broker.Pinger.
// App processes Publish through it; hubs Subscribe and read History
// through it. Any number of each may share one Redis.
type Broker struct {
	cfg    Config
	client redis.UniversalClient
	own    bool // close client on Close
	addr   string
	// cluster is set for a *redis.ClusterClient: one script call per
	// channel, sharded pub/sub (SPUBLISH, SSUBSCRIBE).
	cluster bool

	idleCheck time.Duration // see the idleCheck constant

	mu     sync.RWMutex // guards closed and sending on queue
	closed bool
	queue  chan broker.Message
	// enqueue serialises Publish calls' sends, so that one call's
	// messages are queued all together or not at all.
	enqueue sync.Mutex

	stop      context.Context // cancelled when Close gives up flushing
	stopNow   context.CancelFunc
	done      chan struct{} // closed when the publisher has exited
	finished  chan struct{} // closed when Close has released everything
	closeOnce sync.Once
	unflushed atomic.Bool // Close gave up flushing

	subsMu sync.Mutex
	subs   map[io.Closer]struct{} // open subscriptions

	published  atomic.Uint64
	unwatched  atomic.Uint64
	duplicates atomic.Uint64
	dropped    atomic.Uint64
	retries    atomic.Uint64
}

// Stats are counters of a Broker's publishing side since New.
type Stats struct {
	// Queued is the number of messages waiting in the publish queue.
	Queued int
	// Published counts (message, channel) pairs written to Redis.
	Published uint64
	// Unwatched counts the Published pairs that went out without history
	// because nobody watched their channel: it had no history and no
	// subscriber (see History).
	Unwatched uint64
	// Duplicates counts (message, channel) pairs skipped because their
	// event id was already in the channel's history.
	Duplicates uint64
	// Dropped counts messages lost: queue full, refused by Redis, or still
	// queued when Close gave up.
	Dropped uint64
	// Retries counts failed attempts to write a batch to Redis.
	Retries uint64
}

// New connects to Redis, checks that it answers, and starts the
// background publisher. The error says which of a bad URL, an unreachable
// server or refused credentials stopped it.
func New(cfg Config) (*Broker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redisbroker: Config.Prefix %q holds \"{\" or \"}\", which would change the keys' hash tags", cfg.Prefix)
	}
	b := &Broker{cfg: cfg, client: cfg.Client, idleCheck: idleCheck}
	if b.client == nil {
		if cfg.URL == "" {
			return nil, errors.New("redisbroker: Config.URL or Config.Client is required")
		}
		if cfg.Cluster {
			opt, err := redis.ParseClusterURL(cfg.URL)
			if err != nil {
				return nil, fmt.Errorf("redisbroker: bad Redis Cluster URL: %w (want redis://host:port?addr=host2:port2, rediss:// for TLS)", urlError(err))
			}
			opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
			b.addr = strings.Join(opt.Addrs, ",")
			b.client = redis.NewClusterClient(opt)
		} else {
			opt, err := redis.ParseURL(cfg.URL)
			if err != nil {
				return nil, fmt.Errorf("redisbroker: bad Redis URL: %w (want redis://[user:password@]host:port/db, rediss:// for TLS, e.g. redis://127.0.0.1:6379/0)", urlError(err))
			}
			// The maintenance-notification handshake is for managed Redis
			// offerings; against a plain server it only adds a round trip.
			opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
			b.addr = opt.Addr
			b.client = redis.NewClient(opt)
		}
		b.own = true
	}
	_, b.cluster = b.client.(*redis.ClusterClient)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Ping(ctx); err != nil {
		if b.own {
			_ = b.client.Close()
		}
		return nil, err
	}
	// Load the scripts now, so the first batch is not refused with
	// NOSCRIPT. Redis forgets them on restart; the publisher reloads.
	for _, sc := range []*redis.Script{publishScript, historyScript} {
		if err := sc.Load(ctx, b.client).Err(); err != nil {
			if b.own {
				_ = b.client.Close()
			}
			return nil, fmt.Errorf("redisbroker: loading scripts: %w", err)
		}
	}
	b.queue = make(chan broker.Message, cfg.QueueSize)
	b.stop, b.stopNow = context.WithCancel(context.Background())
	b.done = make(chan struct{})
	b.finished = make(chan struct{})
	b.subs = make(map[io.Closer]struct{})
	go b.runPublisher()
	return b, nil
}

// Client returns the go-redis client the Broker uses.
func (b *Broker) Client() redis.UniversalClient { return b.client }

// Ping reports whether Redis answers. It implements broker.Pinger; hubs
// use it for their health check.
func (b *Broker) Ping(ctx context.Context) error {
	err := b.client.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	where := "Redis"
	if b.addr != "" {
		where = "Redis at " + b.addr
	}
	if redis.HasErrorPrefix(err, "WRONGPASS") || redis.HasErrorPrefix(err, "NOAUTH") || redis.HasErrorPrefix(err, "NOPERM") {
		return fmt.Errorf("%w: %s refused the credentials: %w", ErrUnavailable, where, err)
	}
	return fmt.Errorf("%w: cannot reach %s: %w", ErrUnavailable, where, err)
}

// Stats returns the publishing counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Queued:     len(b.queue),
		Published:  b.published.Load(),
		Unwatched:  b.unwatched.Load(),
		Duplicates: b.duplicates.Load(),
		Dropped:    b.dropped.Load(),
		Retries:    b.retries.Load(),
	}
}

// Publish implements broker.Broker. It queues msgs and returns without
// waiting for Redis; the background publisher writes them in order. The
// messages of one call are queued together or not at all: when the queue
// has no room for all of them, none is queued, each is reported through
// Config.ErrorHandler, and Publish returns an error wrapping
// ErrQueueFull, so that a caller retrying the call (the outbox relay)
// neither publishes a message twice nor puts one after a later one. A
// call of more messages than QueueSize is always refused. The Broker
// keeps each Message's Data until it is sent: callers must not modify
// it.
func (b *Broker) Publish(ctx context.Context, msgs ...broker.Message) error {
	if err := broker.CheckMessages(msgs...); err != nil {
		return err
	}
	now := time.Now()
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return broker.ErrClosed
	}
	b.enqueue.Lock()
	defer b.enqueue.Unlock()
	// Only the publisher takes from the queue meanwhile: the room seen
	// here can only grow, so the sends below never wait.
	if room := cap(b.queue) - len(b.queue); room < len(msgs) {
		for _, m := range msgs {
			b.dropped.Add(1)
			b.report(fmt.Errorf("%w (event %q to %v)", ErrQueueFull, m.EventID, m.Channels))
		}
		return fmt.Errorf("%w: %d messages, room for %d", ErrQueueFull, len(msgs), room)
	}
	for _, m := range msgs {
		if m.Time.IsZero() {
			m.Time = now
		}
		b.queue <- m
	}
	return nil
}

// QueueCapacity returns the publish queue's size in messages
// (Config.QueueSize): the most one Publish call can hand over.
func (b *Broker) QueueCapacity() int { return cap(b.queue) }

// KeepsHistory reports whether channels keep a history
// (Config.HistorySize not negative), which the outbox relay needs to
// confirm what it published.
func (b *Broker) KeepsHistory() bool { return b.cfg.HistorySize > 0 }

func (b *Broker) report(err error) {
	if b.cfg.ErrorHandler != nil {
		b.cfg.ErrorHandler(err)
		return
	}
	b.cfg.Logger.Error("redisbroker", "err", err)
}

func newEpoch() string {
	var e [6]byte
	_, _ = rand.Read(e[:])
	return hex.EncodeToString(e[:])
}

// History implements broker.Broker. It answers Recovered exactly as
// broker.Memory does: true when since is nil, or when since has the
// channel's epoch and the history still holds every publication after it.
// As in broker.Memory, a channel's history starts with its first History
// call or its first publication while a hub is subscribed to it: before,
// no client can hold a position in it, and its publications go out
// without one and are not kept. A channel that History made and that was
// never published to is forgotten Config.UnwatchedTTL after the last
// subscription watching it is removed (see releaseScript), else
// HistoryTTL after the last History call.
func (b *Broker) History(ctx context.Context, channel string, since *broker.Position) (broker.HistoryResult, error) {
	return b.HistoryWithin(ctx, channel, since, broker.HistoryLimit{})
}

var (
	_ broker.Broker         = (*Broker)(nil)
	_ broker.BoundedHistory = (*Broker)(nil)
	_ broker.Pinger         = (*Broker)(nil)
)

// HistoryWithin implements broker.BoundedHistory: the script compares the
// number of publications asked for with limit before it reads any, and
// stops reading once their data exceeds limit.Bytes.
func (b *Broker) HistoryWithin(ctx context.Context, channel string, since *broker.Position, limit broker.HistoryLimit) (broker.HistoryResult, error) {
	if err := broker.CheckChannels(channel); err != nil {
		return broker.HistoryResult{}, err
	}
	if b.isClosed() {
		return broker.HistoryResult{}, broker.ErrClosed
	}
	sinceEpoch, sinceOffset := "", ""
	if since != nil {
		sinceEpoch, sinceOffset = since.Epoch, strconv.FormatUint(since.Offset, 10)
	}
	v, err := historyScript.Run(ctx, b.client, []string{b.metaKey(channel), b.streamKey(channel), b.idsKey(channel)},
		newEpoch(), b.cfg.HistoryTTL.Milliseconds(), sinceEpoch, sinceOffset, max(limit.Publications, 0), max(limit.Bytes, 0)).Slice()
	if err != nil {
		return broker.HistoryResult{}, fmt.Errorf("redisbroker: history of %q: %w", channel, err)
	}
	if len(v) < 2 {
		return broker.HistoryResult{}, fmt.Errorf("redisbroker: history of %q: unexpected reply %v", channel, v)
	}
	epoch, _ := v[0].(string)
	offset, _ := v[1].(int64)
	res := broker.HistoryResult{Position: broker.Position{Epoch: epoch, Offset: uint64(offset)}}
	switch {
	case since == nil:
		res.Recovered = true
		return res, nil
	case since.Epoch != epoch || since.Offset > res.Position.Offset:
		return res, nil
	case since.Offset == res.Position.Offset:
		res.Recovered = true
		return res, nil
	case len(v) < 3:
		return res, nil
	}
	entries, _ := v[2].([]any)
	pubs := make([]broker.Publication, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		p, err := parseEntry(channel, epoch, entries[i])
		if err != nil {
			return broker.HistoryResult{}, fmt.Errorf("redisbroker: history of %q: %w", channel, err)
		}
		pubs = append(pubs, p)
	}
	// The stream holds contiguous offsets; check it, so that a stream
	// altered behind the broker's back answers recovered=false rather
	// than a silent gap.
	if uint64(len(pubs)) != res.Position.Offset-since.Offset || pubs[0].Offset != since.Offset+1 {
		return res, nil
	}
	res.Publications = pubs
	res.Recovered = true
	return res, nil
}

// parseEntry turns an XREVRANGE entry ([id, [field, value, ...]]) into a
// Publication: field p ("<offset>\n" and the entry of appendEntry), or,
// as written before, fields o, i, t, d and g.
func parseEntry(channel, epoch string, entry any) (broker.Publication, error) {
	e, ok := entry.([]any)
	if !ok || len(e) != 2 {
		return broker.Publication{}, fmt.Errorf("unexpected stream entry %v", entry)
	}
	fields, ok := e[1].([]any)
	if !ok {
		return broker.Publication{}, fmt.Errorf("unexpected stream entry %v", entry)
	}
	p := broker.Publication{Channel: channel, Epoch: epoch}
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].(string)
		val, _ := fields[i+1].(string)
		switch k {
		case "p":
			off, rest, ok := strings.Cut(val, "\n")
			if !ok {
				return broker.Publication{}, fmt.Errorf("malformed stream entry %v", entry)
			}
			var err error
			if p, err = decodeEntry(channel, epoch, off, []byte(rest)); err != nil {
				return broker.Publication{}, err
			}
		case "o":
			p.Offset, _ = strconv.ParseUint(val, 10, 64)
		case "i":
			p.EventID = val
		case "t":
			ns, _ := strconv.ParseInt(val, 10, 64)
			p.Time = time.Unix(0, ns)
		case "d":
			p.Data = []byte(val)
		case "g":
			p.Origin = broker.DecodeOrigin(val)
		}
	}
	if p.Offset == 0 {
		return broker.Publication{}, fmt.Errorf("stream entry without offset: %v", entry)
	}
	return p, nil
}

// noPosition starts the pub/sub payload of a publication without a
// position: version 1, no epoch, offset 0.
const noPosition = "1\n\n0\n"

// appendEntry appends a message's entry, the part of its pub/sub payload
// and of its stream entry that the publisher encodes:
// "<event id>[\x1f<origin>]\n<unix ns>\n<data>". The pub/sub payload is
// "1\n<epoch>\n<offset>\n<entry>" (noPosition and the entry for a
// NoHistory message); the stream keeps "<offset>\n<entry>". The origin
// (broker.EncodeOrigin) rides after the event id, which never holds a
// control character (broker.CheckMessages): a hub that predates origins
// reads it as part of an id it does not use, and delivers the event to
// everybody.
func appendEntry(buf []byte, id string, o broker.Origin, t time.Time, data []byte) []byte {
	if buf == nil {
		buf = make([]byte, 0, len(data)+len(id)+len(o.Session)+len(o.Subject)+24)
	}
	buf = append(buf, id...)
	if !o.IsZero() {
		buf = append(buf, broker.OriginSeparator)
		buf = append(buf, broker.EncodeOrigin(o)...)
	}
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, t.UnixNano(), 10)
	buf = append(buf, '\n')
	return append(buf, data...)
}

// cutLines splits the first len(parts) lines off b into parts and
// returns the rest; false when b has fewer lines.
func cutLines(b []byte, parts [][]byte) ([]byte, bool) {
	for i := range parts {
		n := bytes.IndexByte(b, '\n')
		if n < 0 {
			return nil, false
		}
		parts[i], b = b[:n], b[n+1:]
	}
	return b, true
}

func decodePub(channel string, payload []byte) (broker.Publication, error) {
	var parts [3][]byte
	rest, ok := cutLines(payload, parts[:])
	if !ok {
		return broker.Publication{}, errors.New("redisbroker: malformed publication")
	}
	if string(parts[0]) != "1" {
		return broker.Publication{}, fmt.Errorf("redisbroker: unknown publication version %q", parts[0])
	}
	return decodeEntry(channel, string(parts[1]), string(parts[2]), rest)
}

// decodeEntry reads the entry of appendEntry, published at offset off.
func decodeEntry(channel, epoch, off string, entry []byte) (broker.Publication, error) {
	offset, err := strconv.ParseUint(off, 10, 64)
	if err != nil {
		return broker.Publication{}, fmt.Errorf("redisbroker: malformed publication offset: %w", err)
	}
	var parts [2][]byte
	rest, ok := cutLines(entry, parts[:])
	if !ok {
		return broker.Publication{}, errors.New("redisbroker: malformed publication")
	}
	ns, err := strconv.ParseInt(string(parts[1]), 10, 64)
	if err != nil {
		return broker.Publication{}, fmt.Errorf("redisbroker: malformed publication time: %w", err)
	}
	id, origin := parts[0], broker.Origin{}
	if n := bytes.IndexByte(id, broker.OriginSeparator); n >= 0 {
		id, origin = id[:n], broker.DecodeOrigin(string(id[n+1:]))
	}
	return broker.Publication{
		Channel: channel,
		Epoch:   epoch,
		Offset:  offset,
		EventID: string(id),
		Time:    time.Unix(0, ns),
		Data:    rest,
		Origin:  origin,
	}, nil
}

func (b *Broker) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// Close implements broker.Broker. It stops accepting messages, lets the
// publisher flush the queue to Redis until ctx is done (then reports what
// is left as dropped), closes every subscription, and closes the Redis
// client when the Broker made it. It is idempotent; every call waits for
// the shutdown to finish or for its ctx.
func (b *Broker) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.queue)
		b.mu.Unlock()
		go func() {
			<-b.done
			b.subsMu.Lock()
			subs := make([]io.Closer, 0, len(b.subs))
			for s := range b.subs {
				subs = append(subs, s)
			}
			b.subsMu.Unlock()
			for _, s := range subs {
				_ = s.Close()
			}
			if b.own {
				_ = b.client.Close()
			}
			b.stopNow()
			close(b.finished)
		}()
	})
	select {
	case <-b.done:
	case <-ctx.Done():
		// Give up flushing: the publisher reports what is left as dropped.
		b.unflushed.Store(true)
		b.stopNow()
	}
	<-b.finished
	if b.unflushed.Load() {
		return fmt.Errorf("redisbroker: close: queue not flushed: %w", context.Cause(ctx))
	}
	return nil
}

// urlError is err of parsing a Redis URL without the URL it quotes, which
// may hold a password: *url.Error's own error, the rest as it is.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
