package demo_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/examples/demo"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// startDemo serves a fresh demo app on 127.0.0.1 until the test ends.
func startDemo(t *testing.T) (*demo.App, string) {
	t.Helper()
	app, err := demo.New(demo.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app.Handler()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := app.StopHub(ctx); err != nil {
			t.Errorf("stop hub: %v", err)
		}
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
		if err := app.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return app, "http://" + l.Addr().String()
}

// TestBrowser drives the demo in headless Chromium (test/browser.test.mjs,
// with playwright-core from the repository's node_modules) and saves a
// screenshot: in the test's temporary directory, or as docs/demo.png (the
// README's picture) with TELEGRAPHY_UPDATE_SCREENSHOT=1.
func TestBrowser(t *testing.T) {
	chromium := testenv.Chromium(t)
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node not on PATH")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "playwright-core")); err != nil {
		testenv.Missing(t, "node_modules/playwright-core (run npm ci)")
	}
	_, url := startDemo(t)
	shot := filepath.Join(t.TempDir(), "demo.png")
	if os.Getenv("TELEGRAPHY_UPDATE_SCREENSHOT") == "1" {
		shot = filepath.Join(root, "docs", "demo.png")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "test/browser.test.mjs")
	cmd.Env = append(os.Environ(),
		"DEMO_URL="+url,
		"CHROMIUM="+chromium,
		"SCREENSHOT="+shot,
		"NO_COLOR=1")
	// On timeout, SIGTERM the group: playwright closes Chromium on SIGTERM.
	// What is left after WaitDelay is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // nothing of the group outlives the test
	if err != nil || testing.Verbose() {
		t.Logf("node --test output:\n%s", out)
	}
	if ctx.Err() != nil {
		t.Fatalf("browser tests did not finish in time")
	}
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("no screenshot saved at %s: %v", shot, err)
	}
}
