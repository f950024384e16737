package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestBuildWithoutCgo: "CGO_ENABLED=0 go build" gives a binary that links
// no C, whose hub serves and whose token command works, and whose demo
// says what it needs.
func TestBuildWithoutCgo(t *testing.T) {
	r := testenv.StartRedis(t)
	env := append(os.Environ(), "CGO_ENABLED=0")
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = env
	deps, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(deps)) {
		if dep == "runtime/cgo" || strings.Contains(dep, "sqlite") {
			t.Errorf("without cgo the command still depends on %s", dep)
		}
	}
	bin := filepath.Join(t.TempDir(), "telegraphy")
	cmd = exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "token", "--help").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "usage: telegraphy token ") {
		t.Errorf("token --help: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "token", "--sub", "17")
	cmd.Env = append(os.Environ(), "TELEGRAPHY_SECRET="+hubTestSecret)
	if out, err := cmd.Output(); err != nil || strings.Count(string(out), ".") != 2 {
		t.Errorf("token: %v, printed %q, want a JWT", err, out)
	}

	var stderr bytes.Buffer
	cmd = exec.Command(bin, "demo")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "CGO_ENABLED=1") {
		t.Errorf("demo: %v, stderr %q; want it to name CGO_ENABLED=1", err, stderr.String())
	}

	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := &hubProcess{addr: addr, stderr: &testenv.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "hub")
	p.cmd.Env = append(os.Environ(), "TELEGRAPHY_SECRET="+hubTestSecret, "TELEGRAPHY_ADDR="+addr, "TELEGRAPHY_REDIS_URL="+r.URL)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	defer func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}()
	if code := p.waitHealth(t, http.StatusOK); code != http.StatusOK {
		t.Fatalf("hub built without cgo: /healthz %d\n%s", code, p.stderr.String())
	}
	c := dialHub(t, addr, issueToken(t, "17", "a"))
	c.expect("welcome")
	c.send(map[string]any{"type": "ping", "id": 1})
	c.expect("pong")
}
