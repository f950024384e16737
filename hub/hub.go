package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/jsclient"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// brokerTimeout bounds each broker call made for a client request or a
// health check.
const brokerTimeout = 10 * time.Second

// Hub is the WebSocket gateway: an http.Handler serving /ws, /healthz,
// /metrics and /telegraphy.js (paths as seen after http.StripPrefix). Create
// it with New; it is safe for concurrent use.
type Hub struct {
	cfg      Config
	log      *slog.Logger
	verifier *tokens.Verifier // nil for an anonymous-only hub
	sub      broker.Subscription
	upgrader websocket.Upgrader
	metrics  *metrics
	metricsH http.Handler
	jsH      http.Handler

	ctx    context.Context // cancelled by Close: aborts broker calls
	cancel context.CancelFunc

	// subMu orders channel joins and leaves with their broker Add and
	// Remove calls; it is taken before mu.
	subMu sync.Mutex

	mu        sync.Mutex
	closed    bool
	subEnded  bool                          // the broker closed our subscription
	conns     map[*conn]struct{}            // every upgraded connection
	upgrading int                           // upgrades in progress, counted toward MaxConnections
	subjects  map[string]map[*conn]struct{} // authenticated connections by subject
	channels  map[string]*channel           // channels with local subscribers

	presence *presence // see presence.go

	// ctlPos is the position of the newest ControlChannel publication
	// the dispatcher has applied: after the broker dropped publications,
	// sweep reads the revocations published since from the channel's
	// history. Owned by the dispatcher.
	ctlPos broker.Position

	// pool writes the queued messages of connections whose writer
	// goroutine is idle (see writePool).
	pool *writePool
	// toPool collects, under mu, the connections one fan-out hands to
	// the pool (see fanoutLocked).
	toPool []*conn

	wg         sync.WaitGroup // connection goroutines
	loops      sync.WaitGroup // dispatcher and ticker
	stopTicker chan struct{}
	// idleTick is closed, and replaced, every writerIdle: parked writers
	// count these ticks to leave when idle (see conn.park).
	idleTick  atomic.Pointer[chan struct{}]
	closeOnce sync.Once
	closeDone chan struct{}
}

// writeBufferPool shares write buffers between all connections of all
// hubs: a connection holds one only while it writes a frame.
var writeBufferPool sync.Pool

// New returns a Hub serving cfg.Broker's publications. It subscribes to
// the broker's control channel at once; Close releases everything.
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:        cfg,
		log:        cfg.Logger,
		conns:      make(map[*conn]struct{}),
		subjects:   make(map[string]map[*conn]struct{}),
		channels:   make(map[string]*channel),
		stopTicker: make(chan struct{}),
		closeDone:  make(chan struct{}),
	}
	h.verifier = cfg.Verifier
	if h.verifier == nil && len(cfg.Secret) > 0 {
		h.verifier, err = tokens.NewVerifier(tokens.VerifierConfig{Secret: cfg.Secret, Store: cfg.ReplayStore, Leeway: cfg.TokenLeeway})
		if err != nil {
			return nil, fmt.Errorf("hub: Config.Secret: %w", err)
		}
	}

	reg, gath := cfg.Registerer, cfg.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg = r
		if gath == nil {
			gath = r
		}
	}
	if gath == nil {
		gath, _ = reg.(prometheus.Gatherer)
	}
	if h.metrics, err = newMetrics(reg); err != nil {
		return nil, err
	}
	if h.presence, err = newPresence(h, reg); err != nil {
		return nil, err
	}
	if gath != nil {
		h.metricsH = promhttp.HandlerFor(gath, promhttp.HandlerOpts{})
	}
	h.jsH = jsclient.Handler()

	h.upgrader = websocket.Upgrader{
		ReadBufferSize:  512,
		WriteBufferSize: 8 << 10,
		WriteBufferPool: &writeBufferPool,
		CheckOrigin:     h.checkOrigin,
	}

	h.ctx, h.cancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(h.ctx, brokerTimeout)
	defer cancel()
	h.sub, err = cfg.Broker.Subscribe(ctx)
	if err != nil {
		h.cancel()
		return nil, fmt.Errorf("hub: subscribing to the broker: %w", err)
	}
	if err := h.sub.Add(ctx, ControlChannel); err != nil {
		_ = h.sub.Close()
		h.cancel()
		return nil, fmt.Errorf("hub: subscribing to %s: %w", ControlChannel, err)
	}
	// Where the control channel stands, so that revocations dropped by
	// the broker can be read back (see Hub.sweepControl). Without it,
	// the first sweep reports them lost.
	if res, err := cfg.Broker.History(ctx, ControlChannel, nil); err == nil {
		h.ctlPos = res.Position
	}
	h.metrics.brokerUp.Set(1)

	idle := make(chan struct{})
	h.idleTick.Store(&idle)
	h.pool = newWritePool(runtime.GOMAXPROCS(0), cfg.WriteDelay, h.metrics)
	h.loops.Add(2)
	go h.dispatch()
	go h.tick()
	if len(cfg.Presence) > 0 {
		h.presence.work.Add(1)
		go h.presence.heartbeat()
	}
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ws", "ws":
		h.serveWS(w, r)
	case "/healthz", "healthz":
		h.serveHealth(w, r)
	case "/metrics", "metrics":
		if !h.cfg.ServeMetrics {
			http.NotFound(w, r)
			return
		}
		h.MetricsHandler().ServeHTTP(w, r)
	case "/telegraphy.js", "telegraphy.js", "/telegraphy.d.ts", "telegraphy.d.ts":
		h.jsH.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// MetricsHandler returns the handler of the hub's Prometheus metrics
// (Config.Gatherer), to mount where only monitoring reaches it; it
// answers 404 when there is nothing to serve.
func (h *Hub) MetricsHandler() http.Handler {
	if h.metricsH == nil {
		return http.NotFoundHandler()
	}
	return h.metricsH
}

// serveHealth answers "ok", or 503 "unavailable": the reason goes to the
// log, not to whoever asks (it may name the broker's address).
func (h *Hub) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.health(r.Context()); err != nil {
		h.log.Warn("hub: health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "unavailable")
		return
	}
	fmt.Fprintln(w, "ok")
}

// health reports why the hub cannot deliver, or nil, and updates the
// broker_up gauge.
func (h *Hub) health(ctx context.Context) error {
	h.mu.Lock()
	closed, ended := h.closed, h.subEnded
	h.mu.Unlock()
	var err error
	switch {
	case closed:
		err = errors.New("hub closed")
	case ended:
		err = errors.New("broker subscription closed")
	default:
		if p, ok := h.cfg.Broker.(broker.Pinger); ok {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if perr := p.Ping(ctx); perr != nil {
				err = fmt.Errorf("broker: %w", perr)
			}
		}
	}
	if err != nil {
		h.metrics.brokerUp.Set(0)
	} else {
		h.metrics.brokerUp.Set(1)
	}
	return err
}

func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range h.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (h *Hub) serveWS(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "hub: shutting down", http.StatusServiceUnavailable)
		return
	}
	if len(h.conns)+h.upgrading >= h.cfg.MaxConnections {
		h.mu.Unlock()
		h.metrics.limited.WithLabelValues("connections").Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "hub: too many connections", http.StatusServiceUnavailable)
		return
	}
	h.upgrading++
	h.wg.Add(1) // released by the connection's reader, or below
	h.mu.Unlock()

	hw := &hijacker{ResponseWriter: w}
	ws, err := h.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		// The upgrader has answered (403 for a refused origin).
		h.log.Debug("hub: upgrade refused", "err", err, "origin", r.Header.Get("Origin"))
		h.mu.Lock()
		h.upgrading--
		h.mu.Unlock()
		h.wg.Done()
		return
	}
	if h.cfg.SendBufferBytes > 0 {
		setSendBuffer(hw.sock.Conn, h.cfg.SendBufferBytes)
	}
	c := newConn(h, ws, hw.sock)
	h.mu.Lock()
	h.upgrading--
	closed := h.closed
	if !closed {
		h.conns[c] = struct{}{}
	}
	h.mu.Unlock()
	h.metrics.connections.Inc()
	if closed {
		c.closeWith(closeGoingAway, "shutdown", false)
	}
	h.log.Debug("hub: connected", "session", c.session, "remote", r.RemoteAddr)
	// A fresh goroutine, so that the HTTP server's goroutine (and its
	// larger stack and buffers) is released now.
	go c.readLoop()
}

// setSendBuffer sets the kernel send buffer of nc's socket (under TLS,
// of the connection beneath), where it has one.
func setSendBuffer(nc net.Conn, n int) {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn()
	}
	if sc, ok := nc.(interface{ SetWriteBuffer(int) error }); ok {
		_ = sc.SetWriteBuffer(n)
	}
}

// Revoke closes the connections authenticated as subject with 4010, on
// this hub and on every hub sharing its broker (a hub whose broker
// subscription dropped the revocation reads it from the control channel's
// history once it notices the drop). It does not invalidate
// tokens already issued: stop issuing them to the subject first.
func (h *Hub) Revoke(ctx context.Context, subject string) error {
	if subject == "" {
		return ErrEmptySubject
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	h.revokeLocal(subject)
	data, _ := json.Marshal(controlMsg{Revoke: subject})
	// Kept in the channel's history: a hub whose subscription dropped it
	// reads it back there (Hub.sweepControl).
	if err := h.cfg.Broker.Publish(ctx, broker.Message{Channels: []string{ControlChannel}, Data: data}); err != nil {
		return fmt.Errorf("hub: publishing revocation: %w", err)
	}
	return nil
}

// controlMsg is the payload of messages on ControlChannel.
type controlMsg struct {
	Revoke string `json:"revoke,omitempty"`
}

func (h *Hub) revokeLocal(subject string) {
	h.mu.Lock()
	var cs []*conn
	for c := range h.subjects[subject] {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		if c.closeWith(closeRevoked, "revoked", false) {
			h.log.Info("hub: connection revoked", "session", c.session, "subject", subject)
		}
	}
}

// Close stops accepting connections (new upgrades get 503), closes every
// connection with 1001 so that clients reconnect elsewhere, and waits until
// every goroutine of the hub has returned or ctx is done; then it drops the
// connections that are left. It is idempotent: later calls wait the same
// way. It does not close the Broker.
func (h *Hub) Close(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		cs := make([]*conn, 0, len(h.conns))
		for c := range h.conns {
			cs = append(cs, c)
		}
		h.mu.Unlock()
		h.presence.shutdown()
		for _, c := range cs {
			c.closeWith(closeGoingAway, "shutdown", false)
		}
		close(h.stopTicker)
		h.presence.stopHeartbeat()
		h.cancel() // abort broker calls made for clients
		// The pool hands the connections it holds back to their writers,
		// which write the close frames.
		h.pool.stop()
		go func() {
			h.wg.Wait()
			h.presence.finish()
			_ = h.sub.Close()
			h.loops.Wait()
			close(h.closeDone)
		}()
	})
	select {
	case <-h.closeDone:
		return nil
	case <-ctx.Done():
	}
	// Out of time: drop what is left without waiting for close frames.
	h.cancel()
	h.mu.Lock()
	for c := range h.conns {
		_ = c.ws.NetConn().Close()
	}
	h.mu.Unlock()
	return ctx.Err()
}

// writerIdle is the period of Hub.idleTick: a connection's writer
// goroutine leaves after one to two of them without work.
const writerIdle = time.Second

// writerIdleTick returns the channel closed at the next idle tick.
func (h *Hub) writerIdleTick() <-chan struct{} { return *h.idleTick.Load() }

// tick pings every connection each PingInterval, checks the broker, and
// ticks parked writers every writerIdle.
func (h *Hub) tick() {
	defer h.loops.Done()
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	idle := time.NewTicker(writerIdle)
	defer idle.Stop()
	for {
		select {
		case <-h.stopTicker:
			return
		case now := <-idle.C:
			next := make(chan struct{})
			close(*h.idleTick.Swap(&next))
			h.expireWrites(now)
			continue
		case <-t.C:
		}
		h.mu.Lock()
		for c := range h.conns {
			c.pingSoon()
		}
		h.mu.Unlock()
		_ = h.health(h.ctx)
	}
}

// expireWrites drops the connections whose current write began more than
// WriteTimeout ago: closing the TCP connection ends the blocked write, and
// the writer then ends the connection. It runs every writerIdle, so a
// write is given between WriteTimeout and WriteTimeout+writerIdle.
func (h *Hub) expireWrites(now time.Time) {
	cutoff := now.Add(-h.cfg.WriteTimeout).UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		if s := c.writeStart.Load(); s != 0 && s < cutoff {
			h.log.Debug("hub: write timed out", "session", c.session)
			_ = c.ws.NetConn().Close()
		}
	}
}

// newSessionID returns a random session id.
func newSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
