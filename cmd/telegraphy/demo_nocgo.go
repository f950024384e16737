//go:build !cgo

package main

import (
	"context"
	"errors"
	"flag"
	"io"
)

func init() {
	commands["demo"] = command{
		summary: "a live task board on SQLite (needs a build with cgo)",
		run:     runDemo,
	}
}

// errDemoNeedsCgo: the demo's SQLite driver (github.com/mattn/go-sqlite3)
// is C, and this binary was built without cgo.
var errDemoNeedsCgo = errors.New("this binary was built without cgo, and the demo's SQLite driver needs it: " +
	"install a C compiler (gcc or clang) and build with CGO_ENABLED=1")

// runDemo says what the demo needs.
func runDemo(_ context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("telegraphy demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("addr", "127.0.0.1:8080", "address to serve the demo on")
	fs.String("dir", "", "directory for the SQLite database, kept between runs (default: a temporary one)")
	setUsage(fs, stderr, "telegraphy demo [--addr 127.0.0.1:8080] [--dir DIR]", `
Serves a shared task board on SQLite. This binary was built without
cgo, which the demo's SQLite driver needs (a C compiler, CGO_ENABLED=1).`, nil)
	if ok, err := parseArgs(fs, args); !ok {
		return err
	}
	return errDemoNeedsCgo
}
