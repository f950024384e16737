package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// TestHelpFormat: every subcommand's --help has one shape: the usage
// line, a description, then "flags:" and each flag as --name (with its
// environment variable, if any) over its indented help.
func TestHelpFormat(t *testing.T) {
	flagLine := regexp.MustCompile(`^  --[a-z-]+( \(TELEGRAPHY_[A-Z_]+\))?$`)
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{name, "--help"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit code %d; stderr %q", code, stderr.String())
			}
			help := stderr.String()
			head, flags, ok := strings.Cut(help, "\n\nflags:\n")
			if !ok || !strings.HasPrefix(head, "usage: telegraphy "+name) || !strings.Contains(head, "\n\n") {
				t.Fatalf("help does not open with the usage line, a description and \"flags:\":\n%s", help)
			}
			lines := strings.Split(strings.TrimSuffix(flags, "\n"), "\n")
			if len(lines) == 0 || len(lines)%2 != 0 {
				t.Fatalf("flags section of %d lines, want pairs:\n%s", len(lines), flags)
			}
			for i := 0; i < len(lines); i += 2 {
				if !flagLine.MatchString(lines[i]) || !strings.HasPrefix(lines[i+1], "    \t") {
					t.Errorf("flag lines %q, %q: want \"  --name\" then an indented help", lines[i], lines[i+1])
				}
			}
		})
	}
}
