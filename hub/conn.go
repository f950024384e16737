package hub

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// maxFrameBytes bounds the frames the writer builds by joining queued
// messages; a single larger message still goes out alone.
const maxFrameBytes = 32 << 10

// closeGrace is how long the hub waits, after sending a close frame, for
// the client to close its side before it drops the TCP connection.
const closeGrace = time.Second

var newline = []byte{'\n'}

// conn is one WebSocket connection. Its reader goroutine lives as long as
// the connection and owns the fields marked so. Its queue is written by
// the hub's write pool, or by a writer goroutine of its own when there is
// a ping, pong or close frame to write or the socket is full; that writer
// parks for one to two seconds after (see park), so an idle connection
// costs one goroutine.
type conn struct {
	h       *Hub
	ws      *websocket.Conn
	session string

	// Owned by the reader goroutine.
	authed  bool
	subject string
	grants  []string
	info    json.RawMessage // the token's info claim, shown by presence
	subs    map[string]*member
	// The request token bucket: tokens left at bucketAt; refused counts
	// the requests refused in a row.
	tokens   float64
	bucketAt time.Time
	refused  int
	// touched holds the channels subscribed to since minuteStart (by
	// hash), for MaxChannelsPerMinute.
	touched     map[uint64]struct{}
	minuteStart time.Time

	mu        sync.Mutex
	queue     []outMsg
	queued    int  // bytes in queue
	writing   bool // a writer goroutine runs; stays true once it has closed
	parked    bool // the writer waits on wake for work
	pingDue   bool
	closing   bool
	flush     bool // write the queue before the close frame
	closeCode int  // 0: drop without a close frame
	closeText string
	closeSent bool // the writer is done; the reader may drop the TCP connection

	// pooled is set while the connection waits in, or is written by, the
	// hub's write pool; its writer goroutine does not write meanwhile, and
	// a kick waits for the pool (afterPool).
	pooled    bool
	afterPool bool
	// inPart is set when the pool wrote a frame in part: the writer
	// goroutine finishes it (sock.finish) before anything else.
	inPart bool
	// pongDue and pongData: a ping from the client to answer.
	pongDue  bool
	pongData []byte
	// sock is the connection under ws.
	sock *socket
	// raw writes to the socket without blocking, for the pool; nil where
	// the platform or the connection has none (then the writer goroutine
	// writes everything).
	raw rawWriter

	// wake tells a parked writer there is work.
	wake chan struct{}
	// writeStart is when the frame being written began (Unix ns), 0
	// between frames: the hub's ticker closes a connection whose write
	// has lasted longer than WriteTimeout (see Hub.expireWrites).
	writeStart atomic.Int64

	readErr error // owned by the reader: why reading stopped, nil when the hub chose to
}

// outMsg is one queued message. Event bytes are shared by every
// connection they are queued to.
type outMsg struct {
	data   []byte
	at     int64 // publication time in Unix nanoseconds, for latency; 0 for replies
	events int   // event messages inside: 1 for an event, len(missed) for subscribed
}

func newConn(h *Hub, ws *websocket.Conn, sock *socket) *conn {
	c := &conn{h: h, ws: ws, sock: sock, session: newSessionID(), wake: make(chan struct{}, 1)}
	if h.pool != nil {
		c.raw = newRawWriter(sock.Conn)
	}
	return c
}

// enqueue queues m for the writer. Over SendQueueBytes the connection is
// closed with 4008 instead. It reports whether m was queued.
func (c *conn) enqueue(m outMsg) bool { return c.enqueueTo(m, nil) }

// enqueueTo is enqueue for a fan-out: a connection to hand to the write
// pool is marked pooled and added to *batch, for the fan-out to push with
// the others (writePool.pushAll). A nil batch pushes it at once.
func (c *conn) enqueueTo(m outMsg, batch *[]*conn) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.queued+len(m.data) > c.h.cfg.SendQueueBytes {
		queued := c.queued
		c.closeLocked(closeSlowConsumer, "slow consumer", false)
		c.mu.Unlock()
		c.h.metrics.slowConsumers.Inc()
		c.h.log.Info("hub: slow consumer closed", "session", c.session, "queued_bytes", queued)
		return false
	}
	c.queue = append(c.queue, m)
	c.queued += len(m.data)
	c.scheduleToLocked(batch)
	c.mu.Unlock()
	return true
}

// scheduleLocked gets the queue written: by the writer goroutine when it
// is at work, or else by the hub's write pool, unless the writer has
// something only it writes.
func (c *conn) scheduleLocked() { c.scheduleToLocked(nil) }

// scheduleToLocked is scheduleLocked for a fan-out: a connection for the
// pool goes to *batch when batch is not nil (see enqueueTo).
func (c *conn) scheduleToLocked(batch *[]*conn) {
	switch {
	case c.pooled, c.writing && !c.parked:
		// The pool or the writer will find the new message.
	case c.raw == nil || c.needsWriterLocked():
		c.kickLocked()
	case batch != nil:
		c.pooled = true
		*batch = append(*batch, c)
	case c.h.pool.push(c):
		c.pooled = true
	default:
		c.kickLocked() // the pool has stopped
	}
}

// needsWriterLocked reports whether the writer goroutine has work that
// the pool does not do: a close, a ping or pong, or the rest of a frame.
func (c *conn) needsWriterLocked() bool {
	return c.closing || c.pingDue || c.pongDue || c.inPart || c.afterPool
}

// send queues a reply.
func (c *conn) send(b []byte) bool { return c.enqueue(outMsg{data: b}) }

func (c *conn) sendError(e *protoError) bool {
	return c.send(encode(errorMsg{Type: typeError, ID: e.id, Code: e.code, Message: e.message}))
}

// closeWith closes the connection with a close frame carrying code (none
// when code is 0), after the queued messages when flush is set. Only the
// first call has an effect; it reports whether this was it.
func (c *conn) closeWith(code int, text string, flush bool) bool {
	c.mu.Lock()
	first := !c.closing
	if first {
		c.closeLocked(code, text, flush)
	}
	c.mu.Unlock()
	return first
}

// revoked reports whether c was closed because its subject was revoked.
func (c *conn) revoked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing && c.closeCode == closeRevoked
}

func (c *conn) closeLocked(code int, text string, flush bool) {
	c.closing, c.closeCode, c.closeText, c.flush = true, code, text, flush
	if !flush {
		c.queue, c.queued = nil, 0
	}
	c.kickLocked()
	label := "none"
	if code != 0 {
		label = strconv.Itoa(code)
	}
	c.h.metrics.closes.WithLabelValues(label).Inc()
}

// kickLocked gets the writer going: it starts one, or wakes the parked
// one. While the pool holds the connection, the pool does it when done.
func (c *conn) kickLocked() {
	if c.pooled {
		c.afterPool = true
		return
	}
	c.afterPool = false
	switch {
	case !c.writing:
		c.writing = true
		c.h.wg.Add(1)
		go c.writeLoop()
	case c.parked:
		c.parked = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// pingSoon asks the writer to send a ping.
func (c *conn) pingSoon() {
	c.mu.Lock()
	if !c.closing {
		c.pingDue = true
		c.kickLocked()
	}
	c.mu.Unlock()
}

// park waits, with c.parked set, until the writer has work or has been
// idle for between one and two writerIdle periods. It reports whether
// there is work; when not, the writer has stopped (c.writing is false).
// A writer that stays through bursts of traffic spares the connection a
// new goroutine, and the stack growth of its first write, per burst; one
// that leaves when idle keeps an idle connection at one goroutine.
func (c *conn) park() bool {
	ticks := 0
	for {
		select {
		case <-c.wake:
			c.mu.Lock()
			stale := c.parked
			c.mu.Unlock()
			if stale {
				// Sent by a kick that the tick below already saw: the
				// writer must stay parked, for the pool may hold the
				// connection now.
				continue
			}
			return true
		case <-c.h.writerIdleTick():
			if ticks++; ticks < 2 {
				continue
			}
			c.mu.Lock()
			if c.parked {
				c.parked, c.writing = false, false
				c.mu.Unlock()
				return false
			}
			c.mu.Unlock()
			return true // kicked meanwhile; its wake stays buffered
		}
	}
}

// writeLoop writes queued messages, several to a frame, until the queue is
// empty, or writes the close frame once the connection is closing. It
// first finishes a frame the pool wrote in part.
func (c *conn) writeLoop() {
	defer c.h.wg.Done()
	var batch []outMsg
	for {
		c.mu.Lock()
		if c.inPart {
			c.inPart = false
			c.mu.Unlock()
			if err := c.finishFrame(); err != nil {
				c.writeFailed(err)
				return
			}
			continue
		}
		if c.closing && (!c.flush || len(c.queue) == 0) {
			code, text := c.closeCode, c.closeText
			c.queue, c.queued = nil, 0
			c.mu.Unlock()
			c.writeClose(code, text)
			return
		}
		ping := c.pingDue
		c.pingDue = false
		var pong []byte // nil: no pong; a ping's payload may be empty
		if c.pongDue {
			pong = append([]byte{}, c.pongData...)
			c.pongDue = false
		}
		batch = c.takeLocked(batch[:0])
		if len(batch) == 0 && !ping && pong == nil {
			c.parked = true
			c.mu.Unlock()
			if !c.park() {
				return
			}
			continue
		}
		c.mu.Unlock()

		if err := c.writeBatch(batch, ping, pong); err != nil {
			c.writeFailed(err)
			return
		}
		clear(batch)
	}
}

// takeLocked moves the messages that fit in one frame from the queue to
// batch.
func (c *conn) takeLocked(batch []outMsg) []outMsg {
	n, size := 0, 0
	for n < len(c.queue) && (n == 0 || size+len(c.queue[n].data)+1 <= maxFrameBytes) {
		size += len(c.queue[n].data) + 1
		n++
	}
	batch = append(batch, c.queue[:n]...)
	clear(c.queue[:n])
	switch {
	case n < len(c.queue):
		c.queue = c.queue[n:]
	case cap(c.queue) <= keepQueue:
		// Emptied, the queue keeps a small array: the next message
		// reuses it instead of allocating one.
		c.queue = c.queue[:0]
	default:
		c.queue = nil // a burst's large array is not kept
	}
	c.queued -= size - n
	return batch
}

// keepQueue is the largest queue array, in messages, that a connection
// keeps once its queue is empty: 64 outMsg, 2.5 KiB, held only by a
// connection that once had that many messages waiting (an idle one holds
// the few its replies needed). A client that falls behind by a few dozen
// events gets them in one frame each time; with a smaller array kept, the
// array was allocated anew, and grown by doubling, for every such frame,
// which was most of the hub's allocations under load.
const keepQueue = 64

// finishFrame writes the end of a frame the pool wrote in part, unless a
// close frame from the reader goroutine has taken it along.
func (c *conn) finishFrame() error {
	c.writeStart.Store(time.Now().UnixNano())
	defer c.writeStart.Store(0)
	return c.sock.finish()
}

func (c *conn) writeBatch(batch []outMsg, ping bool, pong []byte) error {
	// Frames are written without a deadline on the connection: setting
	// one per frame updates a runtime timer under a lock that every
	// writer shares. The hub's ticker enforces WriteTimeout instead.
	// Control frames too: WriteControl leaves its deadline on the
	// socket, where the pool's raw writes would meet it once it passed.
	c.writeStart.Store(time.Now().UnixNano())
	defer c.writeStart.Store(0)
	if pong != nil {
		if err := c.ws.WriteControl(websocket.PongMessage, pong, time.Time{}); err != nil {
			return err
		}
	}
	if ping {
		if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Time{}); err != nil {
			return err
		}
	}
	if len(batch) == 0 {
		return nil
	}
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for i, m := range batch {
		if i > 0 {
			_, _ = w.Write(newline)
		}
		_, _ = w.Write(m.data)
	}
	if err := w.Close(); err != nil {
		return err
	}
	var t latencyTally
	delivered(&t, batch, time.Now().UnixNano())
	t.flush(c.h.metrics)
	return nil
}

// delivered counts the events of a batch just written, and their latency,
// in t.
func delivered(t *latencyTally, batch []outMsg, now int64) {
	for _, m := range batch {
		t.events += m.events
		if m.at != 0 {
			t.observe(now - m.at)
		}
	}
}

// writeClose sends the close frame, then lets the reader drain the
// client's answer for closeGrace before it drops the connection.
func (c *conn) writeClose(code int, text string) {
	grace := closeGrace
	if code != 0 {
		if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(c.h.cfg.WriteTimeout)); err != nil {
			grace = 0
		}
	} else {
		grace = 0
	}
	c.mu.Lock()
	c.closeSent = true
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(grace))
	c.mu.Unlock()
}

func (c *conn) writeFailed(err error) {
	c.mu.Lock()
	if !c.closing {
		c.closeLocked(0, "", false)
	}
	c.queue, c.queued = nil, 0
	c.closeSent = true
	_ = c.ws.NetConn().SetReadDeadline(time.Now())
	c.mu.Unlock()
	c.h.log.Debug("hub: write failed", "session", c.session, "err", err)
}

// extendDeadline moves the read deadline after a message or pong from an
// authenticated client. It reports false once the connection is closing,
// so that the reader stops.
func (c *conn) extendDeadline() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if c.authed {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.h.cfg.PingInterval + c.h.cfg.PongTimeout))
	}
	return true
}

// readLoop reads and answers the client's messages, then tears the
// connection down. It runs in its own goroutine for the connection's life.
func (c *conn) readLoop() {
	defer c.finish()
	h := c.h
	c.ws.SetReadLimit(h.cfg.MaxMessageSize)
	_ = c.ws.SetReadDeadline(time.Now().Add(h.cfg.HelloTimeout))
	c.ws.SetPongHandler(func(string) error {
		// A pong is a sign of life, but counts toward the request rate
		// (see frameToken): unsolicited pongs cost the hub as much to
		// read as pings.
		c.frameToken()
		c.extendDeadline()
		return nil
	})
	// A ping is answered by the writer goroutine, in order with the
	// frames: gorilla/websocket's own handler would write from here, and
	// could cut into a frame the pool wrote in part. Pings that come
	// before the writer answers get one pong, for the latest, as RFC 6455
	// allows.
	c.ws.SetPingHandler(func(data string) error {
		// Ping frames count toward the request rate, as ping messages do.
		if !c.frameToken() {
			return nil
		}
		c.mu.Lock()
		if !c.closing {
			c.pongData = append(c.pongData[:0], data...)
			c.pongDue = true
			c.kickLocked()
		}
		c.mu.Unlock()
		return nil
	})
	for {
		mt, frame, err := c.ws.ReadMessage()
		if err != nil {
			c.readErr = err
			c.readFailed(err)
			return
		}
		if mt != websocket.TextMessage {
			c.sendError(&protoError{code: codeBadRequest, message: "binary frames are not part of the protocol"})
			c.closeWith(closePolicy, "text frames only", true)
			return
		}
		if !utf8.Valid(frame) {
			// RFC 6455 8.1: a text frame that is not UTF-8 fails the
			// connection with 1007. encoding/json would have read it,
			// replacing the bad bytes.
			c.sendError(&protoError{code: codeBadRequest, message: "text frame is not valid UTF-8"})
			c.closeWith(closeInvalidData, "invalid UTF-8", true)
			return
		}
		keep, requests := true, false
		eachLine(frame, func(line []byte) bool {
			requests = true
			keep = c.handle(line)
			return keep
		})
		if !requests {
			// An empty or blank frame asks nothing, but costs a read
			// and an allocation: it counts toward the rate all the same.
			c.frameToken()
		}
		if !keep || !c.extendDeadline() {
			return
		}
	}
}

func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla/websocket has sent the 1009 close frame.
		c.mu.Lock()
		if !c.closing {
			c.closeLocked(0, "", false)
			c.h.metrics.closes.WithLabelValues(strconv.Itoa(closeTooBig)).Inc()
		}
		c.mu.Unlock()
	case errors.As(err, &ne) && ne.Timeout() && !c.authed:
		c.h.metrics.authFailures.WithLabelValues("no_hello").Inc()
		c.sendError(&protoError{code: codeUnauthorized, message: "no hello in time"})
		c.closeWith(closeUnauthorized, "hello timeout", true)
	default:
		// The client closed (gorilla answered its close frame), went
		// silent past the pong deadline, or the connection broke.
		c.closeWith(0, "", false)
	}
}

// finish waits for the close frame to be written and the client to close,
// then drops the connection and forgets it.
func (c *conn) finish() {
	h := c.h
	c.closeWith(0, "", false)
	c.mu.Lock()
	nc := c.ws.NetConn()
	if !c.closeSent {
		// Upper bound; the writer shortens it once the close frame is out.
		_ = nc.SetReadDeadline(time.Now().Add(h.cfg.WriteTimeout + closeGrace))
	}
	c.mu.Unlock()
	// Read until the client answers the close frame or goes, so that our
	// close does not reset the connection before it has read the frame.
	var ce *websocket.CloseError
	switch {
	case c.readErr == nil:
		for {
			if _, _, err := c.ws.NextReader(); err != nil {
				break
			}
		}
	case errors.As(c.readErr, &ce):
		// The client closed first and gorilla/websocket has answered.
	default:
		_, _ = io.Copy(io.Discard, nc)
	}
	_ = c.ws.Close()

	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	for name := range c.subs {
		h.leave(ctx, c, name)
	}
	h.mu.Lock()
	delete(h.conns, c)
	if set := h.subjects[c.subject]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.subjects, c.subject)
		}
	}
	h.mu.Unlock()
	h.metrics.connections.Dec()
	h.log.Debug("hub: disconnected", "session", c.session, "subject", c.subject, "read_err", c.readErr)
	h.wg.Done()
}

// handle answers one client message. It reports false when the connection
// is closing and the reader should stop.
func (c *conn) handle(line []byte) bool {
	req, perr := decodeRequest(line)
	if !c.authed {
		switch {
		case perr != nil && req.Type == "":
			c.sendError(perr)
			c.closeWith(closePolicy, "bad request", true)
			return false
		case req.Type != typeHello:
			c.h.metrics.authFailures.WithLabelValues("no_hello").Inc()
			c.sendError(&protoError{id: req.ID, code: codeUnauthorized, message: "send hello first"})
			c.closeWith(closeUnauthorized, "hello required", true)
			return false
		case perr != nil:
			return c.refuse("malformed", perr.message)
		}
		return c.hello(req)
	}
	if !c.takeToken(time.Now()) {
		if c.refused++; c.refused > c.h.cfg.RequestBurst {
			c.h.metrics.limited.WithLabelValues("rate_close").Inc()
			c.sendError(&protoError{code: codeLimit, message: "too many requests"})
			c.closeWith(closePolicy, "rate limit", true)
			return false
		}
		c.h.metrics.limited.WithLabelValues("rate").Inc()
		c.sendError(&protoError{id: req.ID, code: codeLimit, message: "too many requests: at most " +
			strconv.FormatFloat(c.h.cfg.RequestRate, 'g', -1, 64) + " per second"})
		return true
	}
	c.refused = 0
	if perr != nil {
		c.sendError(perr)
		return true
	}
	switch req.Type {
	case typeHello:
		c.sendError(&protoError{id: req.ID, code: codeBadRequest, message: "already authenticated"})
	case typeSubscribe:
		c.subscribe(req)
	case typeUnsubscribe:
		c.unsubscribe(req)
	case typePing:
		c.send(encode(idMsg{Type: typePong, ID: req.ID}))
	case typePresence:
		c.presenceRequest(req)
	}
	return true
}

// takeToken takes one request from the connection's token bucket, and
// reports false when it is empty.
func (c *conn) takeToken(now time.Time) bool {
	cfg := &c.h.cfg
	c.tokens = min(float64(cfg.RequestBurst), c.tokens+now.Sub(c.bucketAt).Seconds()*cfg.RequestRate)
	c.bucketAt = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// frameToken takes one request from the connection's token bucket for
// a frame that carries no request (a ping or pong frame, a text frame
// without a line), and reports false when the bucket is empty. Such a
// frame gets no error message; after RequestBurst refusals in a row the
// connection is closed with 1008, as for requests.
func (c *conn) frameToken() bool {
	if c.takeToken(time.Now()) {
		c.refused = 0
		return true
	}
	if c.refused++; c.refused > c.h.cfg.RequestBurst {
		c.h.metrics.limited.WithLabelValues("rate_close").Inc()
		c.closeWith(closePolicy, "rate limit", false)
	}
	return false
}

// touch counts name among the distinct channels subscribed to this
// minute, and reports false when that would exceed MaxChannelsPerMinute.
func (c *conn) touch(name string, now time.Time) bool {
	if c.touched == nil || now.Sub(c.minuteStart) >= time.Minute {
		c.touched = make(map[uint64]struct{})
		c.minuteStart = now
	}
	k := maphash.String(channelSeed, name)
	if _, ok := c.touched[k]; ok {
		return true
	}
	if len(c.touched) >= c.h.cfg.MaxChannelsPerMinute {
		return false
	}
	c.touched[k] = struct{}{}
	return true
}

// channelSeed hashes channel names for conn.touched.
var channelSeed = maphash.MakeSeed()

// refuse answers a failed hello and closes with 4001.
func (c *conn) refuse(reason, message string) bool {
	c.h.metrics.authFailures.WithLabelValues(reason).Inc()
	c.h.log.Debug("hub: hello refused", "session", c.session, "reason", reason)
	c.sendError(&protoError{code: codeUnauthorized, message: message})
	c.closeWith(closeUnauthorized, reason, true)
	return false
}

func (c *conn) hello(req request) bool {
	h := c.h
	if req.Token == "" {
		if len(h.cfg.PublicChannels) == 0 {
			return c.refuse("anonymous", "a token is required")
		}
	} else {
		if h.verifier == nil {
			return c.refuse("anonymous_only", "this hub accepts anonymous clients only")
		}
		ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
		claims, err := h.verifier.Verify(ctx, req.Token)
		cancel()
		if err != nil {
			reason := tokens.Reason(err)
			return c.refuse(reason, "token refused: "+reason)
		}
		c.subject, c.grants, c.info = claims.Subject, claims.Channels, claims.Info
	}
	h.mu.Lock()
	if c.subject != "" {
		set := h.subjects[c.subject]
		if len(set) >= h.cfg.MaxConnectionsPerSubject {
			h.mu.Unlock()
			h.metrics.limited.WithLabelValues("subject_connections").Inc()
			h.log.Info("hub: connection refused: too many for the subject", "session", c.session, "subject", c.subject)
			c.sendError(&protoError{code: codeLimit, message: "at most " + strconv.Itoa(h.cfg.MaxConnectionsPerSubject) + " connections per subject"})
			c.closeWith(closePolicy, "too many connections", true)
			return false
		}
		if set == nil {
			set = make(map[*conn]struct{}, 1)
			h.subjects[c.subject] = set
		}
		set[c] = struct{}{}
	}
	h.mu.Unlock()
	c.authed = true
	c.tokens, c.bucketAt, c.refused = float64(h.cfg.RequestBurst), time.Now(), 0
	h.log.Debug("hub: authenticated", "session", c.session, "subject", c.subject)
	return c.send(encode(welcomeMsg{Type: typeWelcome, Session: c.session, Subject: c.subject}))
}

func (c *conn) allowed(name string) bool {
	return tokens.Allowed(c.grants, name) || tokens.Allowed(c.h.cfg.PublicChannels, name)
}

func (c *conn) subscribe(req request) {
	h := c.h
	name := req.Channel
	fail := func(code, msg string) { c.sendError(&protoError{id: req.ID, code: code, message: msg}) }
	if strings.HasPrefix(name, "$") {
		fail(codeForbidden, "channels starting with \"$\" are reserved")
		return
	}
	if err := checkChannel(name); err != nil {
		fail(codeBadRequest, err.Error())
		return
	}
	if !c.allowed(name) {
		fail(codeForbidden, "channel not allowed by your token")
		return
	}
	if c.subs[name] != nil {
		fail(codeBadRequest, "already subscribed")
		return
	}
	if len(c.subs) >= h.cfg.MaxChannels {
		fail(codeLimit, "at most "+strconv.Itoa(h.cfg.MaxChannels)+" channels per connection")
		return
	}
	if !c.touch(name, time.Now()) {
		h.metrics.limited.WithLabelValues("channels_per_minute").Inc()
		fail(codeLimit, "at most "+strconv.Itoa(h.cfg.MaxChannelsPerMinute)+" distinct channels per minute")
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
	defer cancel()
	ch, m, err := h.join(ctx, c, name)
	if err != nil {
		h.log.Warn("hub: broker subscribe failed", "session", c.session, "channel", name, "err", err)
		fail(codeInternal, "could not subscribe")
		return
	}
	res, err := h.history(ctx, name, req.Since)
	if err != nil {
		h.leave(ctx, c, name)
		h.log.Warn("hub: broker history failed", "session", c.session, "channel", name, "err", err)
		fail(codeInternal, "could not read the channel's position")
		return
	}
	if c.subs == nil {
		c.subs = make(map[string]*member, 1)
	}
	c.subs[name] = m
	h.completeSubscribe(c, ch, m, req, res)
	c.presenceJoin(ctx, req)
}

func (c *conn) unsubscribe(req request) {
	if c.subs[req.Channel] == nil {
		c.sendError(&protoError{id: req.ID, code: codeNotFound, message: "not subscribed"})
		return
	}
	delete(c.subs, req.Channel)
	ctx, cancel := context.WithTimeout(c.h.ctx, brokerTimeout)
	defer cancel()
	c.h.leave(ctx, c, req.Channel)
	c.send(encode(idMsg{Type: typeUnsubscribed, ID: req.ID, Channel: req.Channel}))
}
