package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// dialer is shared by every load client. Small buffers keep the client
// side's memory low; messages larger than a buffer are still read whole.
var dialer = websocket.Dialer{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   4096,
	WriteBufferSize:  1024,
}

// endpoint is where one client connects and what it asks for.
type endpoint struct {
	URL     string `json:"url"`
	Token   string `json:"token,omitempty"`
	Channel string `json:"channel"`
	// Protocol is true for a Telegraphy hub (hello, then subscribe), false
	// for the bare broadcaster, which takes the channel from the URL.
	Protocol bool `json:"protocol"`
}

// handshakeTimeout bounds hello/welcome and subscribe/subscribed.
const handshakeTimeout = 15 * time.Second

// connect dials e and, for a Telegraphy hub, says hello and subscribes,
// returning once the hub has confirmed the subscription.
func connect(ctx context.Context, e endpoint) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	conn, resp, err := dialer.DialContext(ctx, e.URL, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", e.URL, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", e.URL, err)
	}
	if !e.Protocol {
		return conn, nil
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	_ = conn.SetWriteDeadline(deadline)
	fail := func(err error) (*websocket.Conn, error) {
		conn.Close()
		return nil, err
	}
	hello, _ := json.Marshal(map[string]string{"type": "hello", "token": e.Token})
	if err := conn.WriteMessage(websocket.TextMessage, hello); err != nil {
		return fail(fmt.Errorf("hello: %w", err))
	}
	if err := expect(conn, "welcome", 0); err != nil {
		return fail(err)
	}
	sub, _ := json.Marshal(map[string]any{"type": "subscribe", "id": 1, "channel": e.Channel})
	if err := conn.WriteMessage(websocket.TextMessage, sub); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if err := expect(conn, "subscribed", 1); err != nil {
		return fail(err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// reply is the part of a hub message the handshake looks at.
type reply struct {
	Type    string `json:"type"`
	ID      int    `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// expect reads messages until one of type want (with the given request id,
// when not zero) arrives; an error message or a close fails.
func expect(conn *websocket.Conn, want string, id int) error {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", want, err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r reply
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("waiting for %s: bad message %q: %w", want, line, err)
			}
			switch {
			case r.Type == "error":
				return fmt.Errorf("waiting for %s: hub error %s: %s", want, r.Code, r.Message)
			case r.Type == want && (id == 0 || r.ID == id):
				return nil
			}
		}
	}
}

// client is one load-generating connection. Its read loop owns seen and
// dups; the counters others read while it runs are atomic.
type client struct {
	channel int // index of the channel it subscribed to
	conn    *websocket.Conn
	hist    *histogram
	// sentAt, when not nil, says when an event was published; otherwise
	// its sent_ns does.
	sentAt func(seq int64) (int64, bool)
	tr     *tracker // nil at a fixed rate

	seen seenSet
	dups uint64 // measured events received more than once

	unique    atomic.Uint64 // measured events received once
	closeCode int           // close code the hub sent, 0 if none
	readErr   error         // why the read loop ended, if not our own close
	done      chan struct{}
}

// handleFrame handles the messages of one frame, received at now.
func (c *client) handleFrame(data []byte, now int64) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		c.handle(line, now)
	}
}

var (
	keySeq    = []byte(`"seq":`)
	keySentNS = []byte(`"sent_ns":`)
)

// handle looks at one message. Event payloads are found by key rather
// than decoded: a full JSON decode per delivery would make the clients,
// which share the machine with the hub, the bottleneck being measured.
func (c *client) handle(msg []byte, now int64) {
	seq, ok := intField(msg, keySeq)
	if !ok || seq < 0 {
		return // not a bench event, or a warm-up one
	}
	sent, ok := int64(0), false
	if c.sentAt != nil {
		sent, ok = c.sentAt(seq)
	}
	if !ok {
		sent, ok = intField(msg, keySentNS)
	}
	if ok {
		c.hist.Record(time.Duration(now - sent))
	}
	if !c.seen.add(seq) {
		c.dups++
		return
	}
	c.unique.Add(1)
	if c.tr != nil {
		c.tr.received(seq, c.channel)
	}
}

// seenWords sizes a client's memory of the events it received: the last
// seenWords*64 sequence numbers (41 s at 200 events/s), in a fixed 2 KiB, so
// that a long run does not grow the clients.
const seenWords = 128

// seenSet remembers which recent sequence numbers arrived.
type seenSet struct {
	bits [seenWords]uint64
	base [seenWords]int64 // seq/64 that each word holds, plus one (0: unused)
}

// add records seq and reports whether it is new. A seq older than the
// window counts as new: it cannot be told from a duplicate any more.
func (s *seenSet) add(seq int64) bool {
	block := seq/64 + 1
	w := block % seenWords
	switch {
	case s.base[w] < block:
		s.base[w], s.bits[w] = block, 0
	case s.base[w] > block:
		return true
	}
	bit := uint64(1) << (seq % 64)
	if s.bits[w]&bit != 0 {
		return false
	}
	s.bits[w] |= bit
	return true
}

// intField returns the integer after the first occurrence of key.
func intField(msg, key []byte) (int64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(key):]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	neg := len(rest) > 0 && rest[0] == '-'
	if neg {
		rest = rest[1:]
	}
	var v int64
	n := 0
	for ; n < len(rest) && n < 18 && rest[n] >= '0' && rest[n] <= '9'; n++ {
		v = v*10 + int64(rest[n]-'0')
	}
	if n == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// connectAll connects every endpoint, a few at a time, and returns the
// connections in the same order. On error it closes what it opened.
func connectAll(ctx context.Context, eps []endpoint, parallel int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, len(eps))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(eps) || ctx.Err() != nil {
					return
				}
				conn, err := connect(ctx, eps[i])
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("client %d: %w", i, err)
						cancel()
					})
					return
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

// closeAll sends a normal close to each connection and closes it.
func closeAll(conns []*websocket.Conn) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, c := range conns {
		if c == nil {
			continue
		}
		_ = c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.Close()
	}
}

// discard reads and drops everything until the connection ends, so that
// pings are answered and the hub sees a live client.
func discard(conn *websocket.Conn) {
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}
