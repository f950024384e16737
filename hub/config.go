package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// Defaults used when a Config field is zero.
const (
	DefaultMaxMessageSize = 64 << 10
	DefaultMaxChannels    = 128
	DefaultHelloTimeout   = 10 * time.Second
	DefaultSendQueueBytes = 1 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 25 * time.Second
	DefaultPongTimeout    = 10 * time.Second

	DefaultSendBufferBytes          = 64 << 10
	DefaultMaxRecoveredEvents       = 500
	DefaultRequestRate              = 20
	DefaultRequestBurst             = 200
	DefaultMaxChannelsPerMinute     = 256
	DefaultMaxConnectionsPerSubject = 64
	DefaultMaxConnections           = 50_000
)

// MaxChannelLength is the longest channel name, in bytes, a client may
// subscribe to.
const MaxChannelLength = 256

// ControlChannel is the broker channel hubs use to talk to each other (for
// Revoke). Clients can never subscribe to it, nor to any channel that
// starts with "$".
const ControlChannel = "$telegraphy.control"

// Sentinel errors returned by New, Revoke and Close.
var (
	// ErrNoBroker is returned by New when Config.Broker is nil.
	ErrNoBroker = errors.New("hub: Config.Broker is nil")
	// ErrNoSecret is returned by New when neither Config.Verifier nor
	// Config.Secret is set and no public channels are configured, so
	// nobody could ever connect.
	ErrNoSecret = errors.New("hub: Config.Secret is empty (set a secret of at least 32 bytes or a Verifier, or PublicChannels for an anonymous-only hub)")
	// ErrBadConfig is wrapped by New for an invalid Config value.
	ErrBadConfig = errors.New("hub: invalid config")
	// ErrClosed is returned by Revoke after Close.
	ErrClosed = errors.New("hub: closed")
	// ErrEmptySubject is returned by Revoke for an empty subject.
	ErrEmptySubject = errors.New("hub: empty subject")
)

// Config configures a Hub. Only Broker and a way to check tokens
// (Verifier or Secret) or PublicChannels are needed; every other field
// has a documented default.
type Config struct {
	// Broker delivers publications to the hub and keeps channel history.
	// Required.
	Broker broker.Broker
	// Verifier checks connection tokens and marks each one used
	// (tokens.NewVerifier: its secret, replay store, leeway and lifetime
	// limit). Hubs behind a load balancer give theirs the store they share,
	// such as the Redis broker's SharedReplayStore. When it is set,
	// Secret, ReplayStore and TokenLeeway must be zero. Zero value means
	// New builds one from Secret, ReplayStore and TokenLeeway.
	Verifier *tokens.Verifier
	// Secret, ReplayStore and TokenLeeway are a shorthand for Verifier:
	// New passes them to tokens.NewVerifier.
	//
	// Secret verifies connection tokens (HS256, at least 32 bytes). Zero
	// value is allowed only with PublicChannels: then every client is
	// anonymous and hellos that carry a token are refused.
	Secret []byte
	// ReplayStore remembers used token ids, so each token connects once.
	// Hubs behind a load balancer must share one. Zero value means the
	// broker's shared store when it has one (ReplayStoreSharer: the Redis
	// broker's, in Redis), else an in-memory store local to this hub.
	ReplayStore tokens.ReplayStore
	// TokenLeeway is the clock skew allowed when checking token times.
	// Zero value means the tokens package default (5 seconds); a negative
	// value means none.
	TokenLeeway time.Duration
	// PublicChannels are channel patterns (an exact name, or a prefix
	// ending in "*") anyone may subscribe to, with or without a token.
	// An anonymous hello (no token) is accepted only when it is not empty.
	// Zero value means none: every client needs a token.
	PublicChannels []string
	// Presence are the channel patterns (as PublicChannels) of the
	// channels with presence: a subscriber can ask who else is subscribed
	// (the subjects of their tokens, and the tokens' info claims) and get
	// join and leave notices (docs/protocol.md). A subject is one member
	// however many connections it holds; anonymous connections and tokens
	// without sub are not members. The broker must implement
	// broker.Presencer (broker.Memory and redisbroker.Broker do). Zero
	// value means no channel has presence, and the hub keeps nothing.
	Presence []string
	// PresenceTTL is how long the broker keeps a hub's members after its
	// last heartbeat: the members of a hub that died leave within
	// PresenceTTL plus one PresenceHeartbeat (of a live hub with
	// subscribers on the channel). At least 10ms. Zero value means 30
	// seconds.
	PresenceTTL time.Duration
	// PresenceHeartbeat is how often the hub refreshes its members of each
	// channel with presence it has subscribers on (one broker call per
	// channel), restoring those the broker lost and expiring those of dead
	// hubs, and retrying what the broker refused (a removal, the
	// subscription to a channel's notices). It must be shorter than
	// PresenceTTL, and at least 1ms. Zero value means 10 seconds, or a
	// third of PresenceTTL when that is shorter.
	PresenceHeartbeat time.Duration
	// MaxPresenceMembers is the most members a channel holds across every
	// hub; a subject beyond it stays subscribed but is not listed (the
	// hub retries it each heartbeat, and counts it in
	// telegraphy_hub_limited_total{limit="presence_members"}). A presence
	// reply is cut to fit half of SendQueueBytes ("truncated":true).
	// Zero value means 1000.
	MaxPresenceMembers int
	// PresenceLeaveDelay is how long a subject stays a member of a
	// channel after its last connection there unsubscribed or went: a
	// connection of it subscribing again meanwhile sends no notice. It
	// bounds what one member coming and going costs every watcher (at
	// most one join and one leave per PresenceLeaveDelay and hub), and
	// spares watchers the leave and join of a page reload. A closing hub
	// announces its leaves at once. At least 100ms (MinPresenceLeaveDelay).
	// Zero value means 2 seconds.
	PresenceLeaveDelay time.Duration
	// AllowedOrigins lists the browser origins ("https://app.example.com":
	// scheme, host, optional port; no path or trailing slash) allowed to
	// connect besides the hub's own; "*" allows any. Requests
	// without an Origin header (non-browser clients) are always allowed.
	// Zero value means same origin only.
	AllowedOrigins []string
	// MaxMessageSize is the largest frame, in bytes, a client may send;
	// a larger one closes the connection with 1009. Zero value means
	// 64 KiB.
	MaxMessageSize int64
	// MaxChannels is how many channels one connection may subscribe to;
	// beyond it subscribe answers error "limit". Zero value means 128.
	MaxChannels int
	// MaxRecoveredEvents is the most missed events one subscribe with
	// since may recover. The hub asks the broker for no more: a position
	// further behind is answered recovered:false (the client refetches)
	// without the history being read, and so is one whose missed events
	// would take more than half of SendQueueBytes. Zero value means 500.
	MaxRecoveredEvents int
	// RequestRate is how many requests (subscribe, unsubscribe, ping: every
	// message after hello; and WebSocket ping frames, which beyond it are
	// not answered, pong frames and text frames without a message) per
	// second a connection may send on average,
	// and RequestBurst how many it may send at once: a token bucket per
	// connection. A request beyond it is answered with error "limit"
	// unprocessed; a client that goes on sending, RequestBurst refused
	// requests in a row, is closed with 1008. Zero values mean 20 per
	// second and a burst of 200 (enough to resubscribe MaxChannels after
	// a reconnect).
	RequestRate  float64
	RequestBurst int
	// MaxChannelsPerMinute is how many distinct channels one connection
	// may subscribe to within a minute (counted from its first subscribe
	// of the minute); beyond it subscribe answers error "limit" until the
	// minute is over. Resubscribing to a channel already counted is free.
	// Zero value means 256.
	MaxChannelsPerMinute int
	// MaxConnectionsPerSubject is how many connections the same subject
	// (token sub) may hold on this hub at once; one more hello is answered
	// with error "limit" and closed with 1008. Anonymous connections and
	// tokens without sub count toward MaxConnections only. Zero value
	// means 64.
	MaxConnectionsPerSubject int
	// MaxConnections is how many WebSocket connections this hub serves at
	// once; beyond it the upgrade is refused with HTTP 503 and a
	// Retry-After header. Size it to the process's file-descriptor limit
	// and memory (see docs/scaling.md). Zero value means 50,000.
	MaxConnections int
	// HelloTimeout is how long a new connection has to authenticate with
	// hello; after it the connection is closed with 4001. Zero value means
	// 10 seconds.
	HelloTimeout time.Duration
	// SendQueueBytes bounds the bytes queued for one connection. A client
	// whose queue would grow past it is closed with 4008 (slow consumer);
	// nobody else waits for it. Zero value means 1 MiB.
	SendQueueBytes int
	// SendBufferBytes is the kernel send buffer (SO_SNDBUF) set on each
	// client's socket. The kernel keeps what a client has not read there
	// before anything counts toward SendQueueBytes; left to itself, it
	// grows the buffer up to megabytes per socket (Linux: the third
	// value of net.ipv4.tcp_wmem), so that a client that never reads
	// would hold that much before being closed with 4008. A client's
	// memory on the hub is then at most SendQueueBytes plus about twice
	// SendBufferBytes (Linux doubles the value set) and a TCP segment in
	// flight. Zero value means 64 KiB; a negative value leaves the
	// system's size.
	SendBufferBytes int
	// WriteTimeout bounds each write to a client: a connection whose
	// write has not completed after WriteTimeout (checked every second)
	// is dropped. Zero value means 10 seconds.
	WriteTimeout time.Duration
	// WriteDelay holds a connection's first queued message for this long
	// before writing it, so that the events that arrive meanwhile go out
	// in the same frame and system call: a trade of latency (up to
	// WriteDelay more per event) for CPU when clients get several events
	// a second. Zero value (the default) writes at once. At most one
	// second.
	WriteDelay time.Duration
	// PingInterval is how often the hub pings every client. Zero value
	// means 25 seconds.
	PingInterval time.Duration
	// PongTimeout is how long after a ping interval a silent client is
	// considered gone: a connection from which nothing (message or pong)
	// arrived for PingInterval+PongTimeout is dropped. Zero value means 10
	// seconds.
	PongTimeout time.Duration
	// ServeMetrics makes the hub's handler serve its Prometheus metrics at
	// /metrics. Zero value means /metrics answers 404: metrics tell
	// anyone who can read them how many users are connected and what the
	// hub is doing, so mount MetricsHandler where only your monitoring
	// reaches it (another port, or behind your authentication).
	ServeMetrics bool
	// Registerer receives the hub's Prometheus metrics. Zero value means a
	// private registry, served at /metrics.
	Registerer prometheus.Registerer
	// Gatherer is what MetricsHandler (and /metrics, with ServeMetrics)
	// serves. Zero value means Registerer when it is also a Gatherer (a
	// *prometheus.Registry), else the private registry; the handler
	// answers 404 when there is nothing to serve.
	Gatherer prometheus.Gatherer
	// Logger receives the hub's logs; connection logs carry the session
	// id. Zero value means slog.Default().
	Logger *slog.Logger
}

// ReplayStoreSharer is implemented by brokers whose service can hold the
// used-token marks of every hub that shares it (redisbroker.Broker). New
// uses its store when Config.ReplayStore is nil, so that two hubs on one
// Redis never both accept a token.
type ReplayStoreSharer interface {
	SharedReplayStore() tokens.ReplayStore
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	if c.Broker == nil {
		return c, ErrNoBroker
	}
	if c.Verifier != nil && (len(c.Secret) > 0 || c.ReplayStore != nil || c.TokenLeeway != 0) {
		return c, fmt.Errorf("%w: set Verifier or Secret (with ReplayStore and TokenLeeway), not both", ErrBadConfig)
	}
	if c.Verifier == nil && len(c.Secret) == 0 && len(c.PublicChannels) == 0 {
		return c, ErrNoSecret
	}
	for _, p := range c.PublicChannels {
		if err := checkPattern(p); err != nil {
			return c, fmt.Errorf("%w: PublicChannels: %w", ErrBadConfig, err)
		}
	}
	if err := c.checkPresenceConfig(); err != nil {
		return c, err
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !isOrigin(o) {
			return c, fmt.Errorf("%w: AllowedOrigins: %q is not an origin like \"https://app.example.com\" (scheme and host, optional port, no path or trailing slash) or \"*\"", ErrBadConfig, o)
		}
	}
	neg := func(name string, v int64) error {
		if v < 0 {
			return fmt.Errorf("%w: %s must not be negative (zero means the default)", ErrBadConfig, name)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxMessageSize", c.MaxMessageSize},
		{"MaxChannels", int64(c.MaxChannels)},
		{"MaxRecoveredEvents", int64(c.MaxRecoveredEvents)},
		{"RequestBurst", int64(c.RequestBurst)},
		{"MaxChannelsPerMinute", int64(c.MaxChannelsPerMinute)},
		{"MaxConnectionsPerSubject", int64(c.MaxConnectionsPerSubject)},
		{"MaxConnections", int64(c.MaxConnections)},
		{"HelloTimeout", int64(c.HelloTimeout)},
		{"SendQueueBytes", int64(c.SendQueueBytes)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"WriteDelay", int64(c.WriteDelay)},
		{"PingInterval", int64(c.PingInterval)},
		{"PongTimeout", int64(c.PongTimeout)},
	} {
		if err := neg(f.name, f.v); err != nil {
			return c, err
		}
	}
	if c.WriteDelay > time.Second {
		return c, fmt.Errorf("%w: WriteDelay must be at most one second", ErrBadConfig)
	}
	if !(c.RequestRate >= 0) || math.IsInf(c.RequestRate, 1) {
		return c, fmt.Errorf("%w: RequestRate must be a finite number, not negative (zero means the default), got %g", ErrBadConfig, c.RequestRate)
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.MaxRecoveredEvents == 0 {
		c.MaxRecoveredEvents = DefaultMaxRecoveredEvents
	}
	if c.SendBufferBytes == 0 {
		c.SendBufferBytes = DefaultSendBufferBytes
	}
	if c.RequestRate == 0 {
		c.RequestRate = DefaultRequestRate
	}
	if c.RequestBurst == 0 {
		c.RequestBurst = DefaultRequestBurst
	}
	if c.MaxChannelsPerMinute == 0 {
		c.MaxChannelsPerMinute = DefaultMaxChannelsPerMinute
	}
	if c.MaxConnectionsPerSubject == 0 {
		c.MaxConnectionsPerSubject = DefaultMaxConnectionsPerSubject
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ReplayStore == nil && c.Verifier == nil {
		if s, ok := c.Broker.(ReplayStoreSharer); ok {
			c.ReplayStore = s.SharedReplayStore()
		}
	}
	return c, nil
}

// checkPattern reports why p is not a usable channel pattern.
func checkPattern(p string) error {
	name := strings.TrimSuffix(p, "*")
	switch {
	case p == "":
		return errors.New("empty pattern")
	case strings.HasPrefix(p, "$"):
		return fmt.Errorf("pattern %q: channels starting with \"$\" are reserved", p)
	case strings.Contains(name, "*"):
		return fmt.Errorf("pattern %q: \"*\" is allowed only at the end", p)
	}
	if name == "" {
		return nil // "*": every channel
	}
	if err := checkChannel(name); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// checkChannel reports why name cannot be subscribed to.
func checkChannel(name string) error {
	if name == "" {
		return errors.New("empty channel name")
	}
	if len(name) > MaxChannelLength {
		return fmt.Errorf("channel name longer than %d bytes", MaxChannelLength)
	}
	if !utf8.ValidString(name) {
		return errors.New("channel name is not valid UTF-8")
	}
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return errors.New("control character in channel name")
		case r == '*':
			return errors.New("\"*\" in channel name (patterns are for tokens, not subscriptions)")
		}
	}
	return nil
}

// isOrigin reports whether o is an origin as browsers send it in the
// Origin header: scheme://host[:port], nothing after, no default port.
func isOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(o, "#") {
		return false
	}
	// Browsers leave the scheme's default port out, and never send ":".
	port := u.Port()
	return !strings.HasSuffix(u.Host, ":") &&
		!(port == "443" && strings.EqualFold(u.Scheme, "https")) && !(port == "80" && strings.EqualFold(u.Scheme, "http"))
}
