package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
)

func init() {
	commands["hub"] = command{
		summary: "the standalone WebSocket hub, fed through Redis",
		run:     runHub,
	}
}

// hubEnv maps each flag of "telegraphy hub" to its environment variable.
// A flag given on the command line wins over the variable.
var hubEnv = map[string]string{
	"addr":                        "TELEGRAPHY_ADDR",
	"redis":                       "TELEGRAPHY_REDIS_URL",
	"redis-cluster":               "TELEGRAPHY_REDIS_CLUSTER",
	"secret-file":                 "TELEGRAPHY_SECRET_FILE",
	"allowed-origins":             "TELEGRAPHY_ALLOWED_ORIGINS",
	"public-channels":             "TELEGRAPHY_PUBLIC_CHANNELS",
	"presence":                    "TELEGRAPHY_PRESENCE",
	"presence-ttl":                "TELEGRAPHY_PRESENCE_TTL",
	"presence-heartbeat":          "TELEGRAPHY_PRESENCE_HEARTBEAT",
	"max-presence-members":        "TELEGRAPHY_MAX_PRESENCE_MEMBERS",
	"presence-leave-delay":        "TELEGRAPHY_PRESENCE_LEAVE_DELAY",
	"max-message-size":            "TELEGRAPHY_MAX_MESSAGE_SIZE",
	"max-channels":                "TELEGRAPHY_MAX_CHANNELS",
	"send-queue-bytes":            "TELEGRAPHY_SEND_QUEUE_BYTES",
	"send-buffer-bytes":           "TELEGRAPHY_SEND_BUFFER_BYTES",
	"write-delay":                 "TELEGRAPHY_WRITE_DELAY",
	"max-recovered-events":        "TELEGRAPHY_MAX_RECOVERED_EVENTS",
	"request-rate":                "TELEGRAPHY_REQUEST_RATE",
	"request-burst":               "TELEGRAPHY_REQUEST_BURST",
	"max-channels-per-minute":     "TELEGRAPHY_MAX_CHANNELS_PER_MINUTE",
	"max-connections-per-subject": "TELEGRAPHY_MAX_CONNECTIONS_PER_SUBJECT",
	"max-connections":             "TELEGRAPHY_MAX_CONNECTIONS",
	"idle-timeout":                "TELEGRAPHY_IDLE_TIMEOUT",
	"metrics-addr":                "TELEGRAPHY_METRICS_ADDR",
	"history-size":                "TELEGRAPHY_HISTORY_SIZE",
	"history-ttl":                 "TELEGRAPHY_HISTORY_TTL",
	"shutdown-timeout":            "TELEGRAPHY_SHUTDOWN_TIMEOUT",
	"log-format":                  "TELEGRAPHY_LOG_FORMAT",
	"log-level":                   "TELEGRAPHY_LOG_LEVEL",
}

// runHub serves the hub until ctx is cancelled (SIGTERM or SIGINT), then
// closes every client connection with 1001 and exits.
func runHub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telegraphy hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8765", "address to listen on")
	redisURL := fs.String("redis", "", "Redis URL, e.g. redis://:password@127.0.0.1:6379/0 (required)")
	redisCluster := fs.Bool("redis-cluster", false, "--redis names a Redis Cluster: redis://host1:6379?addr=host2:6379&addr=host3:6379")
	secretFile := fs.String("secret-file", "", "file holding the shared token secret (default: $TELEGRAPHY_SECRET)")
	origins := fs.String("allowed-origins", "", "comma-separated browser origins allowed besides the hub's own, or *")
	public := fs.String("public-channels", "", "comma-separated channel patterns anyone may subscribe to without a token")
	presence := fs.String("presence", "", "comma-separated channel patterns with presence (who is subscribed; docs/protocol.md)")
	presenceTTL := fs.Duration("presence-ttl", hub.DefaultPresenceTTL, "how long Redis keeps a hub's presence members after its last heartbeat (a dead hub's members leave within this plus one heartbeat)")
	presenceHeartbeat := fs.Duration("presence-heartbeat", hub.DefaultPresenceHeartbeat, "how often the hub refreshes its presence members in Redis; shorter than --presence-ttl")
	maxPresence := fs.Int("max-presence-members", hub.DefaultMaxPresenceMembers, "most presence members a channel holds across every hub")
	presenceLeaveDelay := fs.Duration("presence-leave-delay", hub.DefaultPresenceLeaveDelay, "how long a subject stays a presence member after its last connection left a channel (a return meanwhile sends no notice); at least 100ms")
	maxMsg := fs.Int64("max-message-size", hub.DefaultMaxMessageSize, "largest frame a client may send, in bytes")
	maxChannels := fs.Int("max-channels", hub.DefaultMaxChannels, "channels one connection may subscribe to")
	sendQueue := fs.Int("send-queue-bytes", hub.DefaultSendQueueBytes, "bytes queued for one client before it is closed as a slow consumer (4008)")
	sendBuffer := fs.Int("send-buffer-bytes", hub.DefaultSendBufferBytes, "kernel send buffer (SO_SNDBUF) of each client socket; -1 keeps the system's")
	writeDelay := fs.Duration("write-delay", 0, "hold each client's first queued event this long (at most 1s) so that later ones share its frame: less CPU, more latency; 0 writes at once")
	maxRecovered := fs.Int("max-recovered-events", hub.DefaultMaxRecoveredEvents, "most missed events one subscribe may recover; further behind answers recovered:false unread")
	requestRate := fs.Float64("request-rate", hub.DefaultRequestRate, "requests per second one connection may send on average (error \"limit\" beyond, 1008 if it goes on)")
	requestBurst := fs.Int("request-burst", hub.DefaultRequestBurst, "requests one connection may send at once")
	channelsPerMinute := fs.Int("max-channels-per-minute", hub.DefaultMaxChannelsPerMinute, "distinct channels one connection may subscribe to per minute")
	perSubject := fs.Int("max-connections-per-subject", hub.DefaultMaxConnectionsPerSubject, "connections one subject (token sub) may hold at once")
	maxConns := fs.Int("max-connections", hub.DefaultMaxConnections, "connections this hub serves at once (HTTP 503 beyond)")
	idleTimeout := fs.Duration("idle-timeout", defaultIdleTimeout, "how long an idle HTTP keep-alive connection stays open")
	metricsAddr := fs.String("metrics-addr", "", "serve /metrics on this address only (e.g. 127.0.0.1:9765) instead of --addr")
	historySize := fs.Int("history-size", 1000, "publications kept per channel; give the apps' redisbroker the same value")
	historyTTL := fs.Duration("history-ttl", 10*time.Minute, "how long publications stay in history; give the apps' redisbroker the same value")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long shutdown waits for clients to take their close frame")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telegraphy hub --redis URL [flags]")
		fmt.Fprintln(stderr, "\nServes /ws, /telegraphy.js, /healthz and /metrics (on --metrics-addr when set).")
		fmt.Fprintln(stderr, "Every flag can also be")
		fmt.Fprintln(stderr, "set by its environment variable; a flag on the command line wins. The token")
		fmt.Fprintln(stderr, "secret comes from --secret-file or TELEGRAPHY_SECRET (at least 32 bytes).")
		fmt.Fprintln(stderr, "\nflags:")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stderr, "  --%s (%s)\n    \t%s", f.Name, hubEnv[f.Name], f.Usage)
			if f.DefValue != "" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if ok, err := parseArgs(fs, args); !ok {
		return err
	}
	if err := flagsFromEnv(fs, hubEnv); err != nil {
		return err
	}

	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	// go-redis logs every failed redial while Redis is down; the hub's own
	// health check and logs already say so.
	redis.SetLogger(redisLogger{logger})
	if *redisURL == "" {
		return errors.New("no Redis: pass --redis or set TELEGRAPHY_REDIS_URL")
	}
	publicChannels := splitCommaList(*public)
	var secret []byte
	if *secretFile != "" || os.Getenv("TELEGRAPHY_SECRET") != "" || len(publicChannels) == 0 {
		if secret, err = secretFromFileOrEnv(*secretFile); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"--max-message-size", *maxMsg}, {"--max-channels", int64(*maxChannels)}, {"--send-queue-bytes", int64(*sendQueue)},
		{"--shutdown-timeout", int64(*shutdownTimeout)}, {"--max-recovered-events", int64(*maxRecovered)},
		{"--request-burst", int64(*requestBurst)}, {"--max-channels-per-minute", int64(*channelsPerMinute)},
		{"--max-connections-per-subject", int64(*perSubject)}, {"--max-connections", int64(*maxConns)},
		{"--idle-timeout", int64(*idleTimeout)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", f.name, f.v)
		}
	}
	if !(*requestRate > 0) || math.IsInf(*requestRate, 1) {
		return fmt.Errorf("--request-rate must be a positive number, got %g", *requestRate)
	}
	if *writeDelay < 0 || *writeDelay > time.Second {
		return fmt.Errorf("--write-delay must be between 0 and 1s, got %s", *writeDelay)
	}
	if *sendBuffer == 0 || *sendBuffer < -1 {
		return fmt.Errorf("--send-buffer-bytes must be positive, or -1 for the system's size, got %d", *sendBuffer)
	}
	if *historyTTL <= 0 {
		return fmt.Errorf("--history-ttl must be positive, got %s", *historyTTL)
	}

	bus, err := redisbroker.New(redisbroker.Config{
		URL:         *redisURL,
		Cluster:     *redisCluster,
		HistorySize: *historySize,
		HistoryTTL:  *historyTTL,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		_ = bus.Close(ctx)
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := hub.New(hub.Config{
		Broker:                   bus,
		Secret:                   secret,
		ReplayStore:              bus.ReplayStore(),
		PublicChannels:           publicChannels,
		Presence:                 splitCommaList(*presence),
		PresenceTTL:              *presenceTTL,
		PresenceHeartbeat:        *presenceHeartbeat,
		MaxPresenceMembers:       *maxPresence,
		PresenceLeaveDelay:       *presenceLeaveDelay,
		AllowedOrigins:           splitCommaList(*origins),
		MaxMessageSize:           *maxMsg,
		MaxChannels:              *maxChannels,
		SendQueueBytes:           *sendQueue,
		SendBufferBytes:          *sendBuffer,
		WriteDelay:               *writeDelay,
		MaxRecoveredEvents:       *maxRecovered,
		RequestRate:              *requestRate,
		RequestBurst:             *requestBurst,
		MaxChannelsPerMinute:     *channelsPerMinute,
		MaxConnectionsPerSubject: *perSubject,
		MaxConnections:           *maxConns,
		ServeMetrics:             *metricsAddr == "",
		Registerer:               reg,
		Logger:                   logger,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = h.Close(context.Background())
		return err
	}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	srv := newServer(h, *idleTimeout, errLog)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	var msrv *http.Server
	if *metricsAddr != "" {
		mln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			_ = h.Close(context.Background())
			_ = srv.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", h.MetricsHandler())
		msrv = newServer(mux, *idleTimeout, errLog)
		go func() { served <- msrv.Serve(mln) }()
		logger.Info("telegraphy hub metrics listening", "addr", mln.Addr().String())
	}
	logger.Info("telegraphy hub listening", "addr", ln.Addr().String(), "redis", redactURL(*redisURL),
		"public_channels", publicChannels, "anonymous_only", len(secret) == 0)

	select {
	case <-ctx.Done():
	case err := <-served:
		_ = h.Close(context.Background())
		_ = srv.Close()
		if msrv != nil {
			_ = msrv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("telegraphy hub shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	// The hub first, so every client gets 1001 and new upgrades 503; then
	// the listener and the plain HTTP requests still running.
	herr := h.Close(sctx)
	serr := srv.Shutdown(sctx)
	<-served
	var merr error
	if msrv != nil {
		merr = msrv.Shutdown(sctx)
		<-served
	}
	if err := errors.Join(herr, serr, merr); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("telegraphy hub stopped")
	return nil
}

// defaultIdleTimeout is how long the hub's HTTP server keeps an idle
// keep-alive connection open.
const defaultIdleTimeout = 60 * time.Second

// newServer returns the HTTP server for handler with every timeout set, so
// that neither a slow request nor an idle keep-alive connection holds a
// goroutine and a descriptor for long. The read and write timeouts bound
// plain HTTP requests only: a WebSocket connection is hijacked, its
// deadlines cleared, and the hub enforces its own (HelloTimeout,
// PingInterval, WriteTimeout).
func newServer(handler http.Handler, idle time.Duration, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
}

// flagsFromEnv sets every flag not given on the command line from its
// environment variable, when that is set.
func flagsFromEnv(fs *flag.FlagSet, env map[string]string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := env[f.Name]
		if err != nil || given[f.Name] || name == "" {
			return
		}
		if v, ok := os.LookupEnv(name); ok && v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("invalid value %q for %s: %w", v, name, serr)
			}
		}
	})
	return err
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// redactURL hides the password of a Redis URL for the log.
func redactURL(s string) string {
	i := strings.Index(s, "://")
	at := strings.LastIndex(s, "@")
	if i < 0 || at < i {
		return s
	}
	userinfo := s[i+3 : at]
	if c := strings.Index(userinfo, ":"); c >= 0 {
		return s[:i+3] + userinfo[:c] + ":xxxxx" + s[at:]
	}
	return s
}

// redisLogger passes go-redis' log lines to the hub's logger at debug level.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
