package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
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
	fs.StringVar(&cfg.URL, "url", "", "the hub's WebSocket endpoint for --mode url, e.g. ws://127.0.0.1:8765/ws")
	fs.StringVar(&cfg.RedisURL, "redis", "", "Redis URL: in-process hubs are fed through Redis; required with --mode url")
	fs.IntVar(&cfg.Hubs, "hubs", 1, "in-process hubs sharing Redis, clients split across them")
	fs.StringVar(&cfg.DB, "db", "", "sqlite: publish by creating rows through GORM with the plugin")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "also run the load against a bare gorilla/websocket broadcaster and print the ratios")
	fs.BoolVar(&cfg.SkipMemory, "no-memory", false, "skip the idle-connection memory measurement")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the hub run's publishing phase to this file")
	fs.BoolVar(&asJSON, "json", false, "also print the summary as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: telegraphy bench [flags]")
		fmt.Fprintln(stderr, "\nThe secret for --mode url comes from TELEGRAPHY_SECRET.")
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
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
