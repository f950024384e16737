//go:build cgo

package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/telegraphy-go/telegraphy/examples/demo"
)

func init() {
	commands["demo"] = command{
		summary: "a live task board on SQLite and the in-process hub",
		run:     runDemo,
	}
}

// runDemo serves the demo app (examples/demo) until interrupted.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("telegraphy demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to serve the demo on")
	dir := fs.String("dir", "", "directory for the SQLite database, kept between runs (default: a temporary one)")
	setUsage(fs, stderr, "telegraphy demo [--addr 127.0.0.1:8080] [--dir DIR]", `
Serves a shared task board: open it in two windows and watch changes
arrive live. No other service is needed; the --dir is created if missing.`, nil)
	if ok, err := parseArgs(fs, args); !ok {
		return err
	}
	return demo.Run(ctx, demo.Config{
		Addr:   *addr,
		Dir:    *dir,
		Stdout: stdout,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
