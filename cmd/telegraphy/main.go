// Command telegraphy runs the Telegraphy gateway and its tools.
//
//	telegraphy hub     the standalone WebSocket hub, fed through Redis
//	telegraphy token   mint a connection token for testing
//	telegraphy demo    a live demo app on SQLite and the in-process hub
//	telegraphy bench   a load generator for a hub
//
// Run "telegraphy <command> -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in its own file and registers itself
// in init.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "telegraphy: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "telegraphy %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: telegraphy <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-7s %s\n", name, commands[name].summary)
	}
}

// parseArgs parses a subcommand's flags; none takes other arguments. It
// reports false when the subcommand must stop: with nil after --help
// (the usage is printed), or with the error.
func parseArgs(fs *flag.FlagSet, args []string) (bool, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return true, nil
}

// setUsage gives fs the help every subcommand prints: the usage line, a
// description, then each flag as --name, with the environment variable
// env names for it, its help and its default.
func setUsage(fs *flag.FlagSet, w io.Writer, usage, description string, env map[string]string) {
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: %s\n\n%s\n\nflags:\n", usage, strings.TrimSpace(description))
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(w, "  --%s", f.Name)
			if name := env[f.Name]; name != "" {
				fmt.Fprintf(w, " (%s)", name)
			}
			fmt.Fprintf(w, "\n    \t%s", f.Usage)
			switch f.DefValue {
			case "", "0", "false":
			default:
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
}
