package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/bench"
)

func init() {
	// The memory measurement re-runs this binary as its idle-client helper.
	bench.ChildMain()
	commands["bench"] = command{summary: "a load generator for a hub", run: runBench}
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telegraphy bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	var asJSON bool
	fs.IntVar(&cfg.Clients, "clients", 1000, "number of WebSocket clients")
	fs.IntVar(&cfg.Channels, "channels", 1, "spread the clients (and the events) over this many channels")
	fs.Float64Var(&cfg.Rate, "rate", 200, "events published per second")
	fs.IntVar(&cfg.Window, "window", 0, "instead of --rate, publish as fast as events are delivered with this many in flight (max throughput)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long measured events are published")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "publish (and ignore) events for this long first")
	fs.StringVar(&cfg.Mode, "mode", bench.ModeInProcess, "inprocess: a hub in this process; url: the hub at --url, fed through --redis")
	fs.StringVar(&cfg.URL, "url", "", "the hub's WebSocket endpoint for --mode url, e.g. ws://127.0.0.1:8765/ws; several, comma-separated, split the clients")
	fs.StringVar(&cfg.RedisURL, "redis", "", "Redis URL: in-process hubs are fed through Redis; required with --mode url")
	fs.IntVar(&cfg.Hubs, "hubs", 1, "in-process hubs sharing Redis, clients split across them")
	fs.StringVar(&cfg.DB, "db", "", "sqlite: publish by creating rows through GORM with the plugin")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "also run the load against a bare gorilla/websocket broadcaster and print the ratios")
	fs.BoolVar(&cfg.Direct, "direct", false, "also run the load against the direct writer: each socket written in turn, in one frame, every event since its last write; the least a Go hub can do here")
	fs.BoolVar(&cfg.SkipMemory, "no-memory", false, "skip the idle-connection memory measurement")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the hub run's publishing phase to this file")
	fs.BoolVar(&asJSON, "json", false, "also print the summary as JSON")
	setUsage(fs, stderr, "telegraphy bench [flags]", `
Connects --clients WebSocket clients (spread over --channels channels),
publishes --rate events per second for --duration, then prints deliveries
per second, latency from publish to receipt (p50/p90/p99/max), events lost
and duplicated (per client), CPU time, the hub's memory per idle connection
and goroutines. Progress goes to stderr once a second. The clients run in
this process; on Linux a few epoll loops read all of them, so that their
reads neither cost a goroutine wake-up each nor wait behind the hub's
goroutines.

Targets: an in-process hub on a memory broker (default); with --redis, one or
--hubs in-process hubs fed through Redis; with --db sqlite, events come from
GORM creates through the plugin (latency from the publish after commit);
--mode url drives an external "telegraphy hub" at --url, publishing through
--redis with tokens signed by TELEGRAPHY_SECRET. --baseline repeats the load
against a bare gorilla/websocket broadcaster in this process; --direct
repeats it against a direct writer: one goroutine per core goes round its
share of the sockets and writes each, in one frame, every event published
since its last write, with no queue per connection and no protocol: the
least a Go hub can do per delivery here.

Memory per idle connection (in-process): idle clients are connected from a
child process, so only the hub's side is counted: the growth of heap and
stack in use after a GC, divided by the clients. With --mode url it comes
from the hub's /metrics (no forced GC: an estimate).

Machine floor: before the run, one event's frame is written to a loopback
TCP connection and read back, alone, a thousand times; the best mean costs
give the least time one event takes to reach every client of a channel
with all cores at work, and the CPU the run's deliveries would take with
each event in a frame of its own. When that nears the cores there are,
no hub can send each event alone: events share frames, and wait.`, nil)
	if ok, err := parseArgs(fs, args); !ok {
		return err
	}
	if s := os.Getenv("TELEGRAPHY_SECRET"); s != "" {
		cfg.Secret = []byte(s)
	}
	cfg.Progress = stderr
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	bench.Print(stdout, rep)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}
