// Package bench is the load generator behind "telegraphy bench": N
// WebSocket clients spread over K channels, events published at R per second
// for a duration, against an in-process hub, an external hub, or a bare
// gorilla/websocket broadcaster for comparison.
//
// Publisher and clients share this process' clock: each event carries the
// time it was published ("sent_ns", nanoseconds since the run began, from
// the monotonic clock) and each client subtracts it from the time it read
// the frame, so latency is publish to receipt, whatever runs in between.
//
// Each client keeps a bitmap of the measured events it received, so a
// missing event and a duplicated one are counted separately, per client.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/telegraphy-go/telegraphy/events"
)

// Modes of Config.Mode.
const (
	ModeInProcess = "inprocess"
	ModeURL       = "url"
)

// Config is one bench run. Zero values mean the defaults noted.
type Config struct {
	// Clients is the number of WebSocket clients. Zero value means 1000.
	Clients int
	// Channels spreads the clients over this many channels, round robin;
	// events go round robin to the channels too. Zero value means 1.
	Channels int
	// Rate is the number of events published per second. Zero value means 200.
	Rate float64
	// Duration is how long the measured events are published. Zero value
	// means 10 s.
	Duration time.Duration
	// Window, when positive, replaces the fixed rate by a closed loop: the
	// measured events go out as fast as they are delivered, with at most
	// Window of them not yet received by every client. This finds the most
	// deliveries per second a target sustains without losing any. Warm-up
	// events still go out at Rate. Zero value means a fixed rate; at most
	// 1024.
	Window int
	// Warmup is how long events are published, and ignored, before the
	// measured ones. Zero value means none.
	Warmup time.Duration
	// Mode is ModeInProcess (a hub in this process) or ModeURL (a hub
	// elsewhere, at URL). Zero value means ModeInProcess.
	Mode string
	// URL is the external hub's WebSocket endpoint (ws://host:port/ws),
	// for ModeURL; several, separated by commas, split the clients between
	// hubs.
	URL string
	// RedisURL feeds the hub through Redis: in-process hubs get a
	// redisbroker, and in ModeURL it is how events reach the external hub.
	RedisURL string
	// Hubs is the number of in-process hubs sharing Redis, clients split
	// across them. Zero value means 1; more than 1 needs RedisURL.
	Hubs int
	// DB, when "sqlite", publishes each event by creating a row through
	// GORM with the Telegraphy plugin, so latency runs from before the
	// insert to receipt. Zero value publishes to the broker directly.
	DB string
	// Secret signs the clients' tokens. In ModeURL it must be the hub's
	// (TELEGRAPHY_SECRET); in-process a random one is used when empty.
	Secret []byte
	// Baseline runs the same load again against the bare broadcaster and
	// reports the ratios.
	Baseline bool
	// Direct runs the same load again against the direct writer, the
	// least a Go hub can do per delivery on this machine (see
	// directWriter), and reports its figures.
	Direct bool
	// SkipMemory skips the idle-connection memory measurement (which
	// starts a child process holding Clients idle connections).
	SkipMemory bool
	// Progress receives a line per second while events are published. Nil
	// means none.
	Progress io.Writer
	// CPUProfile, when set, is the file that receives a CPU profile of
	// the hub run's publishing phase (not the baseline's).
	CPUProfile string
	// Log receives the warnings and errors of in-process hubs and brokers.
	// Nil means they are discarded.
	Log io.Writer
}

func (c *Config) setDefaults() error {
	if c.Clients == 0 {
		c.Clients = 1000
	}
	if c.Channels == 0 {
		c.Channels = 1
	}
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mode == "" {
		c.Mode = ModeInProcess
	}
	if c.Hubs == 0 {
		c.Hubs = 1
	}
	switch {
	case c.Clients < 0 || c.Channels < 0 || c.Duration < 0 || c.Warmup < 0 || c.Hubs < 0:
		return errors.New("bench: clients, channels, duration, warmup and hubs must not be negative")
	case !(c.Rate >= 0 && c.Rate <= 1e9):
		return fmt.Errorf("bench: rate must be between 0 and 1e9 events per second, got %g", c.Rate)
	case c.Window < 0 || c.Window > 1024:
		return errors.New("bench: window must be between 0 and 1024")
	case c.Channels > c.Clients:
		return fmt.Errorf("bench: %d channels for %d clients leaves channels without clients", c.Channels, c.Clients)
	case c.Mode != ModeInProcess && c.Mode != ModeURL:
		return fmt.Errorf("bench: unknown mode %q (want %s or %s)", c.Mode, ModeInProcess, ModeURL)
	case c.Mode == ModeURL && c.URL == "":
		return errors.New("bench: url mode needs the hub's WebSocket URL")
	case c.Mode == ModeURL && c.RedisURL == "":
		return errors.New("bench: url mode needs the Redis URL the hub is fed from")
	case c.Mode == ModeURL && len(c.Secret) == 0:
		return errors.New("bench: url mode needs the hub's secret (TELEGRAPHY_SECRET)")
	case c.Hubs > 1 && c.RedisURL == "":
		return errors.New("bench: several hubs need Redis to share events")
	case c.Hubs > 1 && c.Mode == ModeURL:
		return errors.New("bench: --hubs applies to in-process hubs")
	case c.DB != "" && c.DB != "sqlite":
		return fmt.Errorf("bench: unknown db %q (want sqlite)", c.DB)
	}
	return nil
}

// Report is the outcome of Run.
type Report struct {
	Hub      *Result `json:"hub"`
	Baseline *Result `json:"baseline,omitempty"`
	// Direct is the direct writer's run, with Config.Direct.
	Direct *Result `json:"direct,omitempty"`
	// Floor is the least that any hub could do with this load on this
	// machine, from the cost of loopback writes and reads.
	Floor *Floor `json:"floor,omitempty"`
	// Ratios compare the hub with the baseline: deliveries per second
	// (hub / baseline, higher is better) and latency (hub / baseline,
	// lower is better).
	Ratios *Ratios `json:"ratios,omitempty"`
}

// Ratios of the hub's figures to the baseline's.
type Ratios struct {
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// DeliveriesPerCPUSec is the ratio of deliveries per CPU second.
	DeliveriesPerCPUSec float64 `json:"deliveries_per_cpu_sec"`
	P50                 float64 `json:"latency_p50"`
	P99                 float64 `json:"latency_p99"`
}

// Result is one target's figures.
type Result struct {
	Target   string  `json:"target"`
	Clients  int     `json:"clients"`
	Channels int     `json:"channels"`
	Rate     float64 `json:"rate"`
	// Window is Config.Window: when not zero, Rate applied to warm-up only.
	Window int `json:"window,omitempty"`
	// DurationSec is how long the measured events took to publish (with a
	// window: until the last was delivered).
	DurationSec float64 `json:"duration_sec"`
	Events      int64   `json:"events"`
	// Expected is the number of deliveries the events call for: each
	// event once to each client of its channel.
	Expected int64 `json:"deliveries_expected"`
	// Deliveries counts distinct (client, event) receipts.
	Deliveries       int64   `json:"deliveries"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Latency          Latency `json:"latency_ms"`
	// CPUSec is the CPU time (user+system) this process used while the
	// measured events were published and delivered: hub, publisher and
	// clients together. DeliveriesPerCPUSec divides the deliveries by it,
	// a figure that other load on the machine disturbs less.
	CPUSec              float64 `json:"cpu_sec"`
	DeliveriesPerCPUSec float64 `json:"deliveries_per_cpu_sec"`
	// LoadAvg is the machine's one-minute load average before and after
	// publishing: a busy machine explains slow figures.
	LoadAvg [2]float64 `json:"load_avg"`
	// Lost is Expected - Deliveries, summed per client.
	Lost int64 `json:"lost"`
	// Duplicates counts receipts of an event a client already had.
	Duplicates int64 `json:"duplicates"`
	// Disconnected counts clients whose connection ended during the run,
	// by close code ("4008") or "error".
	Disconnected map[string]int `json:"disconnected,omitempty"`
	Memory       *Memory        `json:"memory,omitempty"`
	// MemoryNote says why Memory is missing, when it is.
	MemoryNote string `json:"memory_note,omitempty"`
	// Start and End are the hub process' heap and stack in use (no forced
	// GC) and goroutines when the measured events began and when the last
	// was published: flat figures over a long run mean nothing leaks. An
	// in-process hub shares its process with the clients, which count too.
	Start *Sample `json:"start,omitempty"`
	End   *Sample `json:"end,omitempty"`
	// Goroutines is this process' goroutine count with every client
	// connected, after the events were delivered.
	Goroutines int `json:"goroutines"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// connectParallel is how many clients connect at once.
const connectParallel = 32

// Run runs the load described by cfg (and the baseline after it, if asked)
// and reports the figures.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	// Each in-process connection costs two descriptors, the child's one.
	if err := raiseFileLimit(2*cfg.Clients + 256); err != nil {
		return nil, err
	}
	// The floor is measured first, while nothing else of the run is
	// busy. A channel name as long as the run's gives the frame its size.
	floor, err := measureFloor(eventFrameBytes("bench.00000000.0"))
	if err != nil {
		return nil, err
	}
	t, err := newTarget(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res, err := runTarget(ctx, cfg, t)
	if err != nil {
		return nil, err
	}
	cfg.CPUProfile = ""
	floor.apply((cfg.Clients+cfg.Channels-1)/cfg.Channels, res.DeliveriesPerSec)
	rep := &Report{Hub: res, Floor: floor}
	if cfg.Direct {
		dt, err := newDirectTarget()
		if err != nil {
			return nil, err
		}
		if rep.Direct, err = runTarget(ctx, cfg, dt); err != nil {
			return nil, fmt.Errorf("direct writer: %w", err)
		}
	}
	if !cfg.Baseline {
		return rep, nil
	}
	bt, err := newBaselineTarget()
	if err != nil {
		return nil, err
	}
	base, err := runTarget(ctx, cfg, bt)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rep.Baseline = base
	rep.Ratios = &Ratios{
		DeliveriesPerSec:    ratio(res.DeliveriesPerSec, base.DeliveriesPerSec),
		DeliveriesPerCPUSec: ratio(res.DeliveriesPerCPUSec, base.DeliveriesPerCPUSec),
		P50:                 ratio(res.Latency.P50, base.Latency.P50),
		P99:                 ratio(res.Latency.P99, base.Latency.P99),
	}
	return rep, nil
}

// RunBaseline runs the load against the bare broadcaster alone.
func RunBaseline(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := raiseFileLimit(2*cfg.Clients + 256); err != nil {
		return nil, err
	}
	t, err := newBaselineTarget()
	if err != nil {
		return nil, err
	}
	return runTarget(ctx, cfg, t)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// runTarget measures idle memory, connects the clients, publishes, waits
// for deliveries and closes t.
func runTarget(ctx context.Context, cfg Config, t target) (res *Result, err error) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cerr := t.close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", t.name(), cerr)
		}
	}()
	// Channel names are fresh for each run, so that history left in a
	// shared Redis by an earlier run is never delivered.
	run := make([]byte, 4)
	_, _ = rand.Read(run)
	channels := make([]string, cfg.Channels)
	for i := range channels {
		channels[i] = "bench." + hex.EncodeToString(run) + "." + strconv.Itoa(i)
	}
	endpoints := func() ([]endpoint, error) {
		eps := make([]endpoint, cfg.Clients)
		for i := range eps {
			ep, err := t.endpoint(i, channels[i%len(channels)])
			if err != nil {
				return nil, err
			}
			eps[i] = ep
		}
		return eps, nil
	}

	res = &Result{Target: t.name(), Clients: cfg.Clients, Channels: cfg.Channels, Rate: cfg.Rate, Window: cfg.Window}
	if !cfg.SkipMemory && t.inProcess() {
		eps, err := endpoints()
		if err != nil {
			return nil, err
		}
		if res.Memory, err = measureIdle(ctx, eps); err != nil {
			return nil, err
		}
	}

	eps, err := endpoints()
	if err != nil {
		return nil, err
	}
	remote, _ := t.(remoteMemory)
	if t.inProcess() {
		remote = nil // measured above, better
	}
	var remoteBefore uint64
	var remoteG int
	if remote != nil && !cfg.SkipMemory {
		if remoteBefore, remoteG, err = remote.sampleMemory(ctx); err != nil {
			res.MemoryNote = "not measured: " + err.Error()
			remote = nil
		}
	}
	conns, err := connectAll(ctx, eps, connectParallel)
	if err != nil {
		return nil, err
	}
	if remote != nil && !cfg.SkipMemory {
		time.Sleep(500 * time.Millisecond)
		if after, g, err := remote.sampleMemory(ctx); err != nil {
			res.MemoryNote = "not measured: " + err.Error()
		} else {
			n := float64(len(conns))
			res.Memory = &Memory{
				Method:            "the hub's /metrics, go_memstats heap+stack in use, no forced GC: an estimate",
				Connections:       len(conns),
				PerConnBytes:      (float64(after) - float64(remoteBefore)) / n,
				GoroutinesPerConn: float64(g-remoteG) / n,
			}
		}
	}
	hist := new(histogram)
	var sentAt func(seq int64) (int64, bool)
	if r, ok := t.(publishRecorder); ok && cfg.DB != "" {
		sentAt = r.publishedAt
	}
	var tr *tracker
	if cfg.Window > 0 {
		tr = &tracker{need: make([]int32, len(channels)), done: make(chan struct{}, trackerRing)}
		for i := range conns {
			tr.need[i%len(channels)]++
		}
	}
	var stopping atomic.Bool
	clients := make([]*client, len(conns))
	for i, conn := range conns {
		clients[i] = &client{channel: i % len(channels), conn: conn, hist: hist, sentAt: sentAt, tr: tr, done: make(chan struct{})}
	}
	stopReaders, err := startReaders(clients, &stopping)
	if err != nil {
		closeAll(conns)
		return nil, fmt.Errorf("clients: %w", err)
	}
	stopClients := func() {
		stopping.Store(true)
		stopReaders()
		closeAll(conns)
		for _, c := range clients {
			<-c.done
		}
	}

	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			stopClients()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			stopClients()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	load0, cpu0 := loadAverage(), cpuTime()
	perChannel := make([]int64, len(channels))
	sampler := localSample
	if !t.inProcess() {
		sampler = func() (Sample, bool) {
			r, ok := t.(remoteMemory)
			if !ok {
				return Sample{}, false
			}
			b, g, err := r.sampleMemory(ctx)
			return Sample{Bytes: b, Goroutines: g}, err == nil
		}
	}
	published, start, err := publish(ctx, cfg, t, channels, perChannel, clients, tr, sampler, res)
	elapsed := time.Since(start)
	if s, ok := sampler(); ok && err == nil {
		res.End = &s
	}
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		stopClients()
		return nil, err
	}
	var expected int64
	for _, c := range clients {
		expected += perChannel[c.channel]
	}
	waitDelivered(ctx, clients, expected)
	if tr != nil {
		// A windowed run is over when the last event has arrived.
		elapsed = time.Since(start)
	}
	res.CPUSec = (cpuTime() - cpu0).Seconds()
	res.LoadAvg = [2]float64{load0, loadAverage()}
	res.Goroutines = runtime.NumGoroutine()
	stopClients()

	res.DurationSec = elapsed.Seconds()
	res.Events = published
	res.Expected = expected
	for _, c := range clients {
		n := int64(c.unique.Load())
		res.Deliveries += n
		res.Duplicates += int64(c.dups)
		res.Lost += perChannel[c.channel] - n
		if c.readErr != nil {
			if res.Disconnected == nil {
				res.Disconnected = make(map[string]int)
			}
			key := "error"
			if c.closeCode != 0 {
				key = strconv.Itoa(c.closeCode)
			}
			res.Disconnected[key]++
		}
	}
	if elapsed > 0 {
		res.DeliveriesPerSec = float64(res.Deliveries) / elapsed.Seconds()
	}
	if res.CPUSec > 0 {
		res.DeliveriesPerCPUSec = float64(res.Deliveries) / res.CPUSec
	}
	res.Latency = Latency{
		P50: ms(hist.Quantile(0.50)),
		P90: ms(hist.Quantile(0.90)),
		P99: ms(hist.Quantile(0.99)),
		Max: ms(hist.Max()),
	}
	return res, nil
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the one-minute load average, or 0 where
// /proc/loadavg is missing.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// measuredEvents is how many measured events cfg publishes, at most.
func measuredEvents(cfg Config) int64 {
	if cfg.Window > 0 {
		return maxWindowEvents
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	return max(int64(cfg.Duration/interval), 1)
}

// maxWindowEvents caps a windowed run.
const maxWindowEvents = 1 << 20

// origin is the clock every latency is measured on: publisher and clients
// share it, and it is monotonic.
var origin = time.Now()

// clock returns nanoseconds since origin.
func clock() int64 { return int64(time.Since(origin)) }

// remoteMemory is a target whose hub runs elsewhere but reports its
// memory: heap+stack in use and goroutines.
type remoteMemory interface {
	sampleMemory(ctx context.Context) (uint64, int, error)
}

// publishRecorder is a target that knows when each measured event was
// published better than the event's sent_ns does (--db: the moment after
// commit, when the plugin publishes).
type publishRecorder interface {
	publishedAt(seq int64) (int64, bool)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// publish sends warm-up events, then the measured ones at cfg.Rate for
// cfg.Duration, printing progress each second. It returns how many
// measured events it published and how long that took.
func publish(ctx context.Context, cfg Config, t target, channels []string,
	perChannel []int64, clients []*client, tr *tracker, sampler func() (Sample, bool), res *Result) (published int64, start time.Time, err error) {
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	warm := int64(cfg.Warmup / interval)
	total := measuredEvents(cfg)

	var (
		progressWG sync.WaitGroup
		stop       = make(chan struct{})
	)
	if cfg.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			progress(cfg.Progress, clients, sampler, stop)
		}()
	}
	defer func() {
		close(stop)
		progressWG.Wait()
	}()

	// At a fixed rate, event k (warm-up first) is due at begin +
	// k*interval; a late one goes out at once, so the schedule catches up
	// without drifting. With a window, a measured event goes out as soon
	// as fewer than Window are in flight.
	begin := time.Now()
	var end time.Time
	inflight := 0
	for k := int64(0); k < warm+total; k++ {
		i := k - warm
		if i == 0 {
			start = time.Now()
			end = start.Add(cfg.Duration)
			if s, ok := sampler(); ok {
				res.Start = &s
			}
		}
		switch {
		case i >= 0 && tr != nil:
			if time.Now().After(end) {
				return published, start, nil
			}
			for inflight >= cfg.Window {
				select {
				case <-tr.done:
					inflight--
				case <-time.After(stallTimeout):
					// A client lost an event (it was closed, say): the
					// window would never open again.
					return published, start, nil
				case <-ctx.Done():
					return 0, start, ctx.Err()
				}
			}
		default:
			if d := time.Until(begin.Add(time.Duration(k) * interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return 0, start, ctx.Err()
				}
			}
		}
		if ctx.Err() != nil {
			return 0, start, ctx.Err()
		}
		seq, ch := i, int(k%int64(len(channels)))
		if i < 0 {
			seq = -1
		}
		if tr != nil && i >= 0 {
			tr.counts[i%trackerRing].Store(0)
			inflight++
		}
		e := event{Seq: seq, Channel: channels[ch], SentNS: clock()}
		if err := t.publish(ctx, e); err != nil {
			return 0, start, fmt.Errorf("publish event %d: %w", i, err)
		}
		if i >= 0 {
			perChannel[ch]++
			published++
		}
	}
	return published, start, nil
}

// stallTimeout is how long a windowed run waits for an event to reach
// every client before it stops publishing.
const stallTimeout = 2 * time.Second

// trackerRing bounds Config.Window: the tracker counts receipts of the
// last trackerRing events.
const trackerRing = 4096

// tracker tells a windowed publisher when an event has reached every
// client of its channel.
type tracker struct {
	need   []int32 // clients per channel
	counts [trackerRing]atomic.Int32
	done   chan struct{}
}

// received counts one client's first receipt of event seq on channel ch.
func (t *tracker) received(seq int64, ch int) {
	if t.counts[seq%trackerRing].Add(1) == t.need[ch] {
		t.done <- struct{}{} // never blocks: at most Window events are in flight
	}
}

// progress prints the deliveries so far, the last second's rate, and the
// hub process' memory and goroutines, until stop closes.
func progress(w io.Writer, clients []*client, sample func() (Sample, bool), stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	var last uint64
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			var n uint64
			for _, c := range clients {
				n += c.unique.Load()
			}
			fmt.Fprintf(w, "%4.0fs  deliveries %10d  %9d/s", now.Sub(start).Seconds(), n, n-last)
			if s, ok := sample(); ok {
				fmt.Fprintf(w, "  heap+stack %7.1f MiB  goroutines %6d", float64(s.Bytes)/(1<<20), s.Goroutines)
			}
			fmt.Fprintln(w)
			last = n
		}
	}
}

// Sample is a process' heap and stack in use and its goroutines.
type Sample struct {
	Bytes      uint64 `json:"heap_stack_bytes"`
	Goroutines int    `json:"goroutines"`
}

// localSample reads this process' figures, without forcing a GC.
func localSample() (Sample, bool) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return Sample{Bytes: ms.HeapInuse + ms.StackInuse, Goroutines: runtime.NumGoroutine()}, true
}

// waitDelivered waits until the clients have every expected delivery, or
// until nothing has arrived for two seconds (what is missing then is lost),
// at most 30 s.
func waitDelivered(ctx context.Context, clients []*client, expected int64) {
	deadline := time.Now().Add(30 * time.Second)
	var last int64 = -1
	lastChange := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var n int64
		for _, c := range clients {
			n += int64(c.unique.Load())
		}
		if n >= expected {
			return
		}
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > 2*time.Second {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// encodeEvent returns the JSON of the bench's event for e, as the plugin
// would publish it: data carries seq and sent_ns.
func encodeEvent(e event) (id string, encoded []byte) {
	data := make([]byte, 0, 48)
	data = append(data, `{"seq":`...)
	data = strconv.AppendInt(data, e.Seq, 10)
	data = append(data, `,"sent_ns":`...)
	data = strconv.AppendInt(data, e.SentNS, 10)
	data = append(data, '}')
	id = events.NewID()
	ev := events.Event{
		Name: "bench.Event",
		Meta: events.Meta{
			EventType: "bench",
			Timestamp: events.Timestamp(time.Now()),
			ID:        id,
		},
		Data: json.RawMessage(data),
	}
	b, err := ev.Encode()
	if err != nil {
		panic(err) // only a RawMessage that is not JSON fails, and data is
	}
	return id, b
}

// Print writes a human-readable summary of rep.
func Print(w io.Writer, rep *Report) {
	printResult(w, rep.Hub)
	if rep.Direct != nil {
		fmt.Fprintln(w)
		printResult(w, rep.Direct)
	}
	if rep.Baseline != nil {
		fmt.Fprintln(w)
		printResult(w, rep.Baseline)
	}
	if f := rep.Floor; f != nil {
		fmt.Fprintf(w, "\nmachine floor: a loopback write of a %d-byte frame costs %.1f µs and its read %.1f µs here (measured alone);\n",
			f.FrameBytes, f.WriteUS, f.ReadUS)
		fmt.Fprintf(w, "  one event to %d clients takes at least %.2f ms of all %d cores; an event per frame at %.0f deliveries/s would take %.2f of %d cores\n",
			f.ClientsPerChannel, f.FanoutMS, f.Cores, rep.Hub.DeliveriesPerSec, f.UnbatchedCores, f.Cores)
	}
	if rep.Ratios != nil {
		fmt.Fprintf(w, "\nhub / baseline: deliveries/s %.2f×, deliveries/CPU-s %.2f×, latency p50 %.2f×, p99 %.2f×\n",
			rep.Ratios.DeliveriesPerSec, rep.Ratios.DeliveriesPerCPUSec, rep.Ratios.P50, rep.Ratios.P99)
	}
}

func printResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%s\n", r.Target)
	if r.Window > 0 {
		fmt.Fprintf(w, "  clients %d on %d channel(s), closed loop with %d events in flight, %.1fs: %d events\n",
			r.Clients, r.Channels, r.Window, r.DurationSec, r.Events)
	} else {
		fmt.Fprintf(w, "  clients %d on %d channel(s), %g events/s for %.1fs: %d events\n",
			r.Clients, r.Channels, r.Rate, r.DurationSec, r.Events)
	}
	fmt.Fprintf(w, "  deliveries     %d of %d expected, %.0f/s\n", r.Deliveries, r.Expected, r.DeliveriesPerSec)
	fmt.Fprintf(w, "  latency ms     p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(w, "  cpu            %.2fs (hub+publisher+clients), %.0f deliveries/CPU-s; load average %.2f → %.2f\n",
		r.CPUSec, r.DeliveriesPerCPUSec, r.LoadAvg[0], r.LoadAvg[1])
	fmt.Fprintf(w, "  lost           %d   duplicates %d\n", r.Lost, r.Duplicates)
	if len(r.Disconnected) > 0 {
		keys := make([]string, 0, len(r.Disconnected))
		for k := range r.Disconnected {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "  disconnected  ")
		for _, k := range keys {
			fmt.Fprintf(w, " %s×%d", k, r.Disconnected[k])
		}
		fmt.Fprintln(w)
	}
	if r.Memory != nil {
		fmt.Fprintf(w, "  memory/idle conn %.1f KiB, goroutines/conn %.2f, over %d connections (%s)\n",
			r.Memory.PerConnBytes/1024, r.Memory.GoroutinesPerConn, r.Memory.Connections, r.Memory.Method)
	}
	if r.MemoryNote != "" {
		fmt.Fprintf(w, "  memory/idle conn %s\n", r.MemoryNote)
	}
	if r.Start != nil && r.End != nil {
		fmt.Fprintf(w, "  hub process    heap+stack %.1f → %.1f MiB, goroutines %d → %d (start → end of the measured events)\n",
			float64(r.Start.Bytes)/(1<<20), float64(r.End.Bytes)/(1<<20), r.Start.Goroutines, r.End.Goroutines)
	}
	fmt.Fprintf(w, "  goroutines     %d (with %d clients in this process)\n", r.Goroutines, r.Clients)
}
