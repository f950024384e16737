package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// appBin is the faultapp binary, built once by TestMain.
var appBin string

func TestMain(m *testing.M) {
	if flag.Parse(); testing.Short() {
		os.Exit(m.Run()) // every test here skips in short mode: no faultapp to build
	}
	dir, err := os.MkdirTemp("", "faultapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	appBin = filepath.Join(dir, "faultapp")
	args := []string{"build", "-o", appBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./faultapp")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build faultapp:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running faultapp process.
type proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	lines chan string // stdout, closed at EOF
	done  chan struct{}
	back  []string // lines read by latest that waitLine has not seen
}

// start runs faultapp with args; stderr goes to the test log.
func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(appBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t, name}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	return p
}

// waitLine returns the first stdout line starting with prefix.
func (p *proc) waitLine(prefix string, timeout time.Duration) string {
	p.t.Helper()
	for len(p.back) > 0 {
		l := p.back[0]
		p.back = p.back[1:]
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s exited before printing %q", p.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("%s did not print %q within %s", p.name, prefix, timeout)
		}
	}
}

// latest returns the newest stdout line printed so far that starts with
// prefix, waiting for one if none is pending.
func (p *proc) latest(prefix string, timeout time.Duration) string {
	p.t.Helper()
	last := p.waitLine(prefix, timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return last
			}
			if strings.HasPrefix(l, prefix) {
				last = l
			} else {
				p.back = append(p.back, l)
			}
		default:
			return last
		}
	}
}

// kill sends SIGKILL and waits for the process to go.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	go func() {
		for range p.lines {
		}
	}()
	<-p.done
}

// term sends SIGTERM and waits for a clean exit.
func (p *proc) term() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	go func() {
		for range p.lines {
		}
	}()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s did not exit after SIGTERM", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("%s exited with %d after SIGTERM", p.name, code)
	}
}

type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.t.Logf("%s: %s", w.name, l)
	}
	return len(b), nil
}

// startHub starts a hub process and returns its WebSocket URL.
func startHub(t testing.TB, name, redisURL string) (*proc, string) {
	t.Helper()
	h := start(t, name, "hub", "-redis", redisURL)
	addr := strings.TrimPrefix(h.waitLine("listening ", 30*time.Second), "listening ")
	return h, "ws://" + addr + "/ws"
}

// client is a WebSocket client subscribed to one channel. It records every
// event it receives, and when its connection breaks it reconnects (to the
// next hub in urls) and resubscribes from the last position it saw.
type client struct {
	t       testing.TB
	urls    []string
	channel string

	mu         sync.Mutex
	seqs       []int          // Item.Seq of each event received, in order
	ids        map[string]int // meta.id -> times received
	pos        *position      // last position seen
	notRecov   int            // subscribed replies with recovered:false
	reconnects int
	errs       []string
	trace      []string      // subscribed replies and events out of offset order, for a failure's report
	cond       chan struct{} // closed and replaced on every change
}

// note keeps the gist of the last 40 subscribed replies and events out of
// offset order, for waitCount's report. c.mu held.
func (c *client) note(format string, args ...any) {
	if len(c.trace) == 40 {
		c.trace = c.trace[1:]
	}
	c.trace = append(c.trace, fmt.Sprintf(format, args...))
}

type position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

type wireMsg struct {
	Type      string            `json:"type"`
	Channel   string            `json:"channel"`
	Epoch     string            `json:"epoch"`
	Offset    uint64            `json:"offset"`
	Recovered bool              `json:"recovered"`
	Missed    []json.RawMessage `json:"missed"`
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Event     *struct {
		Meta struct {
			ID string `json:"id"`
		} `json:"meta"`
		Data struct {
			Seq int `json:"seq"`
		} `json:"data"`
	} `json:"event"`
}

func newClient(ctx context.Context, t testing.TB, channel string, urls ...string) *client {
	t.Helper()
	c := &client{t: t, urls: urls, channel: channel, ids: map[string]int{}, cond: make(chan struct{})}
	ready := make(chan error, 1)
	go c.run(ctx, ready)
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("client: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("client did not subscribe")
	}
	return c
}

func (c *client) changed() {
	close(c.cond)
	c.cond = make(chan struct{})
}

// run connects, subscribes and reads until ctx ends, moving to the next
// URL whenever the connection breaks.
func (c *client) run(ctx context.Context, ready chan<- error) {
	for i := 0; ctx.Err() == nil; i++ {
		url := c.urls[i%len(c.urls)]
		err := c.session(ctx, url, ready)
		ready = nil
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.reconnects++
		c.errs = append(c.errs, fmt.Sprintf("%s: %v", url, err))
		c.mu.Unlock()
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (c *client) session(ctx context.Context, url string, ready chan<- error) error {
	fail := func(err error) error {
		if ready != nil {
			ready <- err
		}
		return err
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return fail(err)
	}
	defer ws.Close()
	go func() {
		<-ctx.Done()
		ws.Close()
	}()
	if err := ws.WriteJSON(map[string]any{"type": "hello"}); err != nil {
		return fail(err)
	}
	c.mu.Lock()
	sub := map[string]any{"type": "subscribe", "id": 1, "channel": c.channel}
	if c.pos != nil {
		sub["since"] = *c.pos
	}
	c.mu.Unlock()
	if err := ws.WriteJSON(sub); err != nil {
		return fail(err)
	}
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return fail(err)
		}
		for _, line := range strings.Split(string(frame), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var m wireMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				return fail(fmt.Errorf("bad message %q: %v", line, err))
			}
			switch m.Type {
			case "subscribed":
				c.mu.Lock()
				c.note("%s subscribed %s/%d recovered=%v missed=%d", url, m.Epoch, m.Offset, m.Recovered, len(m.Missed))
				if !m.Recovered {
					c.notRecov++
				}
				c.mu.Unlock()
				for _, raw := range m.Missed {
					var e wireMsg
					if err := json.Unmarshal(raw, &e); err != nil {
						return fail(err)
					}
					c.event(e)
				}
				c.mu.Lock()
				if c.pos == nil || m.Epoch != c.pos.Epoch || m.Offset > c.pos.Offset {
					c.pos = &position{Epoch: m.Epoch, Offset: m.Offset}
				}
				c.changed()
				c.mu.Unlock()
				if ready != nil {
					ready <- nil
					ready = nil
				}
			case "event":
				c.event(m)
			case "error":
				return fail(fmt.Errorf("hub error %s: %s", m.Code, m.Message))
			}
		}
	}
}

func (c *client) event(m wireMsg) {
	if m.Event == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pos == nil || m.Offset != c.pos.Offset+1 || m.Epoch != "" && m.Epoch != c.pos.Epoch {
		c.note("event seq=%d at %s/%d after %+v", m.Event.Data.Seq, m.Epoch, m.Offset, c.pos)
	}
	c.seqs = append(c.seqs, m.Event.Data.Seq)
	c.ids[m.Event.Meta.ID]++
	if c.pos == nil || c.pos.Epoch != m.Epoch && m.Epoch != "" || m.Offset > c.pos.Offset {
		ep := m.Epoch
		if ep == "" && c.pos != nil {
			ep = c.pos.Epoch
		}
		c.pos = &position{Epoch: ep, Offset: m.Offset}
	}
	c.changed()
}

// count returns how many events the client has received.
func (c *client) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seqs)
}

// waitCount waits until the client has received at least n events.
func (c *client) waitCount(n int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got, ch := len(c.seqs), c.cond
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			c.mu.Lock()
			errs := c.errs
			seen := make(map[int]bool, len(c.seqs))
			for _, s := range c.seqs {
				seen[s] = true
			}
			var missing []int
			for s := 1; s <= n && len(missing) < 20; s++ {
				if !seen[s] {
					missing = append(missing, s)
				}
			}
			c.mu.Unlock()
			c.t.Fatalf("client received %d events within %s, want %d; missing seqs %v (connection errors: %v); last messages:\n%s",
				got, timeout, n, missing, errs, strings.Join(c.trace, "\n"))
		}
	}
}

// check asserts the client received Seq 1..n, each once, in order, and
// never had to be told that events were lost.
func (c *client) check(name string, n int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range c.ids {
		if k != 1 {
			c.t.Errorf("%s: event %s received %d times", name, id, k)
		}
	}
	if len(c.seqs) != n {
		c.t.Errorf("%s: received %d events, want %d", name, len(c.seqs), n)
	}
	for i, s := range c.seqs {
		if s != i+1 {
			c.t.Errorf("%s: event %d has seq %d, want %d (commit order); first 20: %v", name, i, s, i+1, c.seqs[:min(20, len(c.seqs))])
			break
		}
	}
	if c.notRecov != 0 {
		c.t.Errorf("%s: told recovered:false %d times", name, c.notRecov)
	}
}
