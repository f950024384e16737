package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/bench"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestBenchCommandURL drives two "telegraphy hub" processes with
// "telegraphy bench --mode url": events go through Redis, clients are split
// between the hubs and connect with tokens minted from TELEGRAPHY_SECRET,
// and the hubs' memory comes from their /metrics.
func TestBenchCommandURL(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := startHubProcess(t, r.URL), startHubProcess(t, r.URL)
	t.Setenv("TELEGRAPHY_SECRET", hubTestSecret)

	var stdout, stderr bytes.Buffer
	urls := "ws://" + a.addr + "/ws,ws://" + b.addr + "/ws"
	code := run(context.Background(), []string{"bench", "--mode", "url", "--url", urls,
		"--redis", r.URL, "--clients", "20", "--channels", "2", "--rate", "50", "--duration", "2s", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"2 hubs at", "deliveries", "latency ms", "lost", "memory/idle conn", "hub process"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "deliveries") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil {
		t.Fatalf("JSON summary: %v\n%s", err, out)
	}
	h := rep.Hub
	if h.Events != 100 || h.Expected != 1000 || h.Deliveries != 1000 || h.Lost != 0 || h.Duplicates != 0 {
		t.Errorf("events %d, deliveries %d of %d, lost %d, duplicates %d; want 100 events, 1000 deliveries, none lost",
			h.Events, h.Deliveries, h.Expected, h.Lost, h.Duplicates)
	}
	if h.Memory == nil || h.Memory.Connections != 20 {
		t.Errorf("memory %+v (%s); want it measured from the hub's /metrics", h.Memory, h.MemoryNote)
	}
}

func TestBenchCommandBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "cloud"}, "unknown mode"},
		{[]string{"--mode", "url"}, "url mode needs the hub's WebSocket URL"},
		{[]string{"--clients", "x"}, "invalid value"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want failure mentioning %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
