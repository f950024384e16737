package demo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/examples/demo"
)

// TestNewDir: New creates a missing database directory, and a directory
// it cannot use is an error that names it, not a panic.
func TestNewDir(t *testing.T) {
	t.Run("missing directory is created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		a, err := demo.New(demo.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "demo.db")); err != nil {
			t.Errorf("no database in the created directory: %v", err)
		}
	})

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	blocked := t.TempDir()
	// A directory where the database file should be: SQLite cannot open it.
	if err := os.Mkdir(filepath.Join(blocked, "demo.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir, want string }{
		{"directory is a file", file, "demo: database directory: mkdir " + file + ": not a directory"},
		{"directory under a file", filepath.Join(file, "sub"), "demo: database directory: mkdir " + file + ": not a directory"},
		{"database file is a directory", blocked, "demo: open " + filepath.Join(blocked, "demo.db") + ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := demo.New(demo.Config{Dir: tc.dir})
			if err == nil {
				_ = a.Close(context.Background())
				t.Fatalf("New with Dir %s: no error", tc.dir)
			}
			if a != nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("New: %v, %v; want nil and an error starting %q", a, err, tc.want)
			}
		})
	}
}
