//go:build cgo

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoCommand runs "telegraphy demo" on a free port, loads the board
// it names, and stops it as an interrupt would.
func TestDemoCommand(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	var stderr strings.Builder
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"demo", "--addr", "127.0.0.1:0", "--dir", dir}, w, &stderr)
		w.Close()
	}()

	var url string
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+/\?user=alice) `)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			url = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if url == "" {
		t.Fatalf("demo printed no URL to open; stderr:\n%s", stderr.String())
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="telegraphy-config"`) {
		t.Fatalf("GET %s: %d, page without the client config", url, res.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.db")); err != nil {
		t.Errorf("no database in --dir: %v", err)
	}

	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop on interrupt")
	}
	if _, err := os.Stat(filepath.Join(dir, "demo.db")); err != nil {
		t.Errorf("--dir database removed on exit: %v", err)
	}
}

// TestDemoCommandBadDir: a --dir the demo cannot use ends the command
// with a message naming it, not a panic.
func TestDemoCommandBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{"demo", "--addr", "127.0.0.1:0", "--dir", file}, &stdout, &stderr)
	want := "telegraphy demo: demo: database directory: mkdir " + file + ": not a directory\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), want)
	}
}
