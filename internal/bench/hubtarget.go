package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// publisher sends bench events into a broker, directly or through GORM.
type publisher interface {
	publish(ctx context.Context, e event) error
	close(ctx context.Context) error
}

// brokerPublisher publishes encoded events straight to a broker.
type brokerPublisher struct {
	b   broker.Broker
	own bool // close b with the publisher
}

func (p *brokerPublisher) publish(ctx context.Context, e event) error {
	id, data := encodeEvent(e)
	return p.b.Publish(ctx, broker.Message{EventID: id, Channels: []string{e.Channel}, Data: data, Time: time.Now()})
}

func (p *brokerPublisher) close(ctx context.Context) error {
	if p.own {
		return p.b.Close(ctx)
	}
	return nil
}

// hubTarget is one or more Telegraphy hubs: in this process on loopback
// ports, or one elsewhere at a URL.
type hubTarget struct {
	desc    string
	local   bool
	urls    []string
	issuer  *tokens.Issuer
	pub     publisher
	hubs    []*hub.Hub
	servers []*server
	brokers []broker.Broker // the hubs' brokers, closed after the hubs
}

// tokenTTL covers connecting thousands of clients after their tokens were
// minted.
const tokenTTL = 5 * time.Minute

func newTarget(ctx context.Context, cfg Config) (target, error) {
	secret := cfg.Secret
	if cfg.Mode == ModeInProcess && len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: secret, TTL: tokenTTL})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	t := &hubTarget{issuer: issuer, local: cfg.Mode == ModeInProcess}
	fail := func(err error) (target, error) {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = t.close(cctx)
		return nil, err
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The broker the events are published to.
	var pubBroker broker.Broker
	switch {
	case cfg.RedisURL != "":
		rb, err := redisbroker.New(redisbroker.Config{URL: cfg.RedisURL, Logger: logger})
		if err != nil {
			return fail(fmt.Errorf("bench: publisher: %w", err))
		}
		pubBroker = rb
		t.pub = &brokerPublisher{b: rb, own: true}
	default:
		mem := broker.NewMemory()
		pubBroker = mem
		t.brokers = append(t.brokers, mem)
		t.pub = &brokerPublisher{b: mem}
	}
	if cfg.DB != "" {
		dp, err := newDBPublisher(cfg, pubBroker, t.pub.(*brokerPublisher).own)
		if err != nil {
			return fail(err)
		}
		t.pub = dp
	}

	if cfg.Mode == ModeURL {
		t.urls = strings.Split(cfg.URL, ",")
		t.desc = "hub at " + cfg.URL + " (fed through Redis)"
		if len(t.urls) > 1 {
			t.desc = strconv.Itoa(len(t.urls)) + " hubs at " + cfg.URL + " (fed through Redis)"
		}
		return t, nil
	}
	for i := range cfg.Hubs {
		b := pubBroker
		if cfg.RedisURL != "" {
			rb, err := redisbroker.New(redisbroker.Config{URL: cfg.RedisURL, Logger: logger})
			if err != nil {
				return fail(fmt.Errorf("bench: hub %d: %w", i, err))
			}
			t.brokers = append(t.brokers, rb)
			b = rb
		}
		h, err := hub.New(hub.Config{Broker: b, Secret: secret, Logger: logger})
		if err != nil {
			return fail(fmt.Errorf("bench: %w", err))
		}
		t.hubs = append(t.hubs, h)
		srv, err := serve(h)
		if err != nil {
			return fail(fmt.Errorf("bench: %w", err))
		}
		t.servers = append(t.servers, srv)
		t.urls = append(t.urls, "ws://"+srv.addr+"/ws")
	}
	via := "memory broker"
	if cfg.RedisURL != "" {
		via = "Redis"
	}
	t.desc = "in-process hub, " + via
	if cfg.Hubs > 1 {
		t.desc = strconv.Itoa(cfg.Hubs) + " in-process hubs, " + via
	}
	if cfg.DB != "" {
		t.desc += ", events from GORM creates on " + cfg.DB
	}
	return t, nil
}

func (t *hubTarget) name() string    { return t.desc }
func (t *hubTarget) inProcess() bool { return t.local }

func (t *hubTarget) endpoint(i int, channel string) (endpoint, error) {
	tok, err := t.issuer.Issue("bench-"+strconv.Itoa(i), []string{channel})
	if err != nil {
		return endpoint{}, fmt.Errorf("bench: token: %w", err)
	}
	return endpoint{URL: t.urls[i%len(t.urls)], Token: tok, Channel: channel, Protocol: true}, nil
}

func (t *hubTarget) publish(ctx context.Context, e event) error { return t.pub.publish(ctx, e) }

// publishedAt implements publishRecorder for --db: when the plugin
// published event seq, right after its commit.
func (t *hubTarget) publishedAt(seq int64) (int64, bool) {
	if dp, ok := t.pub.(*dbPublisher); ok {
		return dp.publishedAt(seq)
	}
	return 0, false
}

// close stops the servers, then the hubs (which close their clients),
// then the publisher (flushing it) and the brokers.
func (t *hubTarget) close(ctx context.Context) error {
	var errs []error
	for _, s := range t.servers {
		errs = append(errs, s.close(ctx))
	}
	for _, h := range t.hubs {
		errs = append(errs, h.Close(ctx))
	}
	if t.pub != nil {
		errs = append(errs, t.pub.close(ctx))
	}
	for _, b := range t.brokers {
		errs = append(errs, b.Close(ctx))
	}
	return errors.Join(errs...)
}

// sampleMemory reads the external hubs' /metrics (next to their /ws):
// heap and stack in use and goroutines, summed, from the Go collector when
// the hubs register it.
func (t *hubTarget) sampleMemory(ctx context.Context) (uint64, int, error) {
	var bytes uint64
	var goroutines int
	for _, u := range t.urls {
		b, g, err := hubMemory(ctx, u)
		if err != nil {
			return 0, 0, err
		}
		bytes += b
		goroutines += g
	}
	return bytes, goroutines, nil
}

func hubMemory(ctx context.Context, wsURL string) (uint64, int, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return 0, 0, err
	}
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	u.Path = strings.TrimSuffix(u.Path, "/ws") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines":
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				vals[f[0]] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	heap, ok1 := vals["go_memstats_heap_inuse_bytes"]
	stack, ok2 := vals["go_memstats_stack_inuse_bytes"]
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("%s has no go_memstats_heap_inuse_bytes/go_memstats_stack_inuse_bytes", u)
	}
	return uint64(heap + stack), int(vals["go_goroutines"]), nil
}
