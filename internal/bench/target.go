package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// target is what the load runs against: it hands out client endpoints and
// publishes the bench's events.
type target interface {
	// name describes the target in the summary.
	name() string
	// endpoint returns where client i, subscribed to channel, connects.
	// Each call may mint a fresh (single-use) token.
	endpoint(i int, channel string) (endpoint, error)
	// publish sends one event.
	publish(ctx context.Context, e event) error
	// inProcess is true when the hub runs in this process, so that its
	// memory can be measured here.
	inProcess() bool
	// close stops the target and waits for its goroutines.
	close(ctx context.Context) error
}

// event is one published bench event.
type event struct {
	Seq     int64  // -1 during warm-up
	Channel string // full channel name
	SentNS  int64  // nanoseconds since the run's clock origin
}

// server is an HTTP server on a free loopback port.
type server struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

func serve(h http.Handler) (*server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute},
		addr: l.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(l)
	}()
	return s, nil
}

// close stops accepting; hijacked WebSocket connections are the handler's
// to close.
func (s *server) close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// bareServer is a server without the Telegraphy protocol: the bare
// broadcaster or the direct writer. A client names its channel in the URL
// (?channel=...) and gets every message published to it.
type bareServer interface {
	http.Handler
	publish(channel string, msg []byte)
	close()
}

// bareTarget is a bareServer on a loopback port.
type bareTarget struct {
	desc string
	s    bareServer
	srv  *server
}

func newBareTarget(desc string, s bareServer) (*bareTarget, error) {
	srv, err := serve(s)
	if err != nil {
		s.close()
		return nil, err
	}
	return &bareTarget{desc: desc, s: s, srv: srv}, nil
}

// newBaselineTarget is the bare broadcaster on a loopback port.
func newBaselineTarget() (*bareTarget, error) {
	return newBareTarget("baseline (bare gorilla/websocket broadcaster)", newBroadcaster())
}

// newDirectTarget is the direct writer on a loopback port.
func newDirectTarget() (*bareTarget, error) {
	return newBareTarget("direct writer (each socket written in turn, in one frame, every event since its last write; a goroutine per core)", newDirectWriter())
}

func (t *bareTarget) name() string    { return t.desc }
func (t *bareTarget) inProcess() bool { return true }

func (t *bareTarget) endpoint(i int, channel string) (endpoint, error) {
	return endpoint{URL: "ws://" + t.srv.addr + "/ws?channel=" + url.QueryEscape(channel), Channel: channel}, nil
}

func (t *bareTarget) publish(ctx context.Context, e event) error {
	// The same envelope a hub sends, built once and shared by every client.
	t.s.publish(e.Channel, eventMessage(e))
	return nil
}

func (t *bareTarget) close(ctx context.Context) error {
	err := t.srv.close(ctx)
	t.s.close()
	return err
}

// upgrade answers a bare server's WebSocket request: it returns the
// connection and the channel the client named, or false once it has
// answered the request with an error.
func upgrade(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request) (*websocket.Conn, string, bool) {
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		http.Error(w, "channel missing", http.StatusBadRequest)
		return nil, "", false
	}
	conn, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, "", false
	}
	return conn, channel, true
}

// eventMessage is the message a hub sends for e: the event in the hub's
// envelope.
func eventMessage(e event) []byte {
	_, data := encodeEvent(e)
	msg := make([]byte, 0, len(data)+len(e.Channel)+64)
	msg = append(msg, `{"type":"event","channel":`...)
	msg = strconv.AppendQuote(msg, e.Channel)
	msg = append(msg, `,"offset":`...)
	msg = strconv.AppendInt(msg, e.Seq+1, 10)
	msg = append(msg, `,"event":`...)
	msg = append(msg, data...)
	return append(msg, '}')
}
