package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
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
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
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

// baselineTarget is the bare broadcaster on a loopback port.
type baselineTarget struct {
	b   *broadcaster
	srv *server
}

func newBaselineTarget() (*baselineTarget, error) {
	b := newBroadcaster()
	srv, err := serve(b)
	if err != nil {
		return nil, err
	}
	return &baselineTarget{b: b, srv: srv}, nil
}

func (t *baselineTarget) name() string    { return "baseline (bare gorilla/websocket broadcaster)" }
func (t *baselineTarget) inProcess() bool { return true }

func (t *baselineTarget) endpoint(i int, channel string) (endpoint, error) {
	return endpoint{URL: "ws://" + t.srv.addr + "/ws?channel=" + url.QueryEscape(channel), Channel: channel}, nil
}

func (t *baselineTarget) publish(ctx context.Context, e event) error {
	// The same envelope a hub sends, built once and shared by every client.
	t.b.publish(e.Channel, eventMessage(e))
	return nil
}

func (t *baselineTarget) close(ctx context.Context) error {
	err := t.srv.close(ctx)
	t.b.close()
	return err
}
