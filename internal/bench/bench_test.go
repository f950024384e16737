package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

func TestMain(m *testing.M) {
	ChildMain()
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		// Every run closes its hubs, servers, brokers and clients.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "goroutines leaked: %d before, %d after\n%s\n", before, n, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// small is a short load: a few dozen clients for two seconds.
func small() Config {
	return Config{Clients: 20, Channels: 2, Rate: 50, Duration: 2 * time.Second, Warmup: 200 * time.Millisecond}
}

func checkResult(t *testing.T, r *Result) {
	t.Helper()
	if r == nil {
		t.Fatal("no result")
	}
	if r.Events != 100 {
		t.Errorf("events = %d, want 100 (50/s for 2 s)", r.Events)
	}
	// Two channels of ten clients, 50 events each.
	if r.Expected != 1000 {
		t.Errorf("deliveries expected = %d, want 1000", r.Expected)
	}
	if r.Lost != 0 || r.Duplicates != 0 || r.Deliveries != r.Expected {
		t.Errorf("deliveries %d of %d, lost %d, duplicates %d; want all, none lost or duplicated",
			r.Deliveries, r.Expected, r.Lost, r.Duplicates)
	}
	if len(r.Disconnected) != 0 {
		t.Errorf("clients disconnected: %v", r.Disconnected)
	}
	if r.DeliveriesPerSec <= 0 {
		t.Errorf("deliveries/s = %v", r.DeliveriesPerSec)
	}
	l := r.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency percentiles out of order: %+v", l)
	}
	if r.Memory == nil || r.Memory.Connections != r.Clients {
		t.Errorf("memory = %+v, want a measurement over %d connections", r.Memory, r.Clients)
	}
}

func TestBaseline(t *testing.T) {
	testenv.SkipIfShort(t, "a benchmark run")
	cfg := small()
	var progress bytes.Buffer
	cfg.Progress = &progress
	r, err := RunBaseline(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r)
	if !bytes.Contains(progress.Bytes(), []byte("deliveries")) {
		t.Errorf("no progress lines printed: %q", progress.String())
	}
	var out bytes.Buffer
	Print(&out, &Report{Hub: r})
	for _, want := range []string{"deliveries", "latency ms", "p99", "lost", "memory/idle conn"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	js, err := json.Marshal(&Report{Hub: r})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"deliveries_per_sec", "latency_ms", "lost", "duplicates", "memory", "goroutines"} {
		if _, ok := m["hub"][k]; !ok {
			t.Errorf("JSON summary lacks hub.%s: %s", k, js)
		}
	}
}

func TestInProcessHub(t *testing.T) {
	testenv.SkipIfShort(t, "a benchmark run")
	cfg := small()
	cfg.Baseline = true
	cfg.Direct = true
	var log bytes.Buffer
	cfg.Log = &log
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, rep.Hub)
	checkResult(t, rep.Baseline)
	checkResult(t, rep.Direct)
	var out bytes.Buffer
	Print(&out, rep)
	if !strings.Contains(out.String(), "direct writer (each socket written in turn") {
		t.Errorf("summary lacks the direct writer's run:\n%s", out.String())
	}
	if rep.Ratios == nil || rep.Ratios.DeliveriesPerSec <= 0 {
		t.Errorf("ratios = %+v", rep.Ratios)
	}
	checkFloor(t, rep)
	if log.Len() > 0 {
		t.Logf("hub log:\n%s", log.String())
	}
}

// checkFloor checks the machine floor of a run of small(): ten clients on
// each channel.
func checkFloor(t *testing.T, rep *Report) {
	t.Helper()
	f := rep.Floor
	if f == nil {
		t.Fatal("no machine floor in the report")
	}
	if f.WriteUS <= 0 || f.ReadUS <= 0 || f.FrameBytes < 100 {
		t.Errorf("floor = %+v, want positive costs of a frame of an event's size", f)
	}
	if f.Cores != runtime.GOMAXPROCS(0) || f.ClientsPerChannel != 10 {
		t.Errorf("floor for %d clients per channel on %d cores, want 10 on %d", f.ClientsPerChannel, f.Cores, runtime.GOMAXPROCS(0))
	}
	perDelivery := (f.WriteUS + f.ReadUS) / 1e6
	if want := perDelivery * 1e3 * 10 / float64(f.Cores); !near(f.FanoutMS, want) {
		t.Errorf("fan-out floor %.4f ms, want %.4f", f.FanoutMS, want)
	}
	if want := perDelivery * rep.Hub.DeliveriesPerSec; !near(f.UnbatchedCores, want) {
		t.Errorf("unbatched cores %.4f, want %.4f", f.UnbatchedCores, want)
	}
	var out bytes.Buffer
	Print(&out, rep)
	if !strings.Contains(out.String(), "machine floor: a loopback write of a") || !strings.Contains(out.String(), "one event to 10 clients takes at least") {
		t.Errorf("summary lacks the machine floor:\n%s", out.String())
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestLoopbackCost(t *testing.T) {
	for _, size := range []int{0, floorMaxFrame + 1} {
		if _, _, err := loopbackCost(size); err == nil || !strings.Contains(err.Error(), "frame size") {
			t.Errorf("loopbackCost(%d) = %v, want an error naming the frame size", size, err)
		}
	}
	w, r, err := loopbackCost(floorMaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	small, _, err := loopbackCost(256)
	if err != nil {
		t.Fatal(err)
	}
	if w <= 0 || r <= 0 || small <= 0 {
		t.Errorf("costs write %v, read %v, small write %v; want positive", w, r, small)
	}
}

// TestRedisTwoHubs runs the load through Redis with the clients split
// over two in-process hubs, events coming from GORM creates on SQLite.
func TestRedisTwoHubsSQLite(t *testing.T) {
	cfg := small()
	cfg.RedisURL = testenv.RedisURL(t)
	cfg.Hubs = 2
	cfg.DB = "sqlite"
	var log bytes.Buffer
	cfg.Log = &log
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, rep.Hub)
	if log.Len() > 0 {
		t.Logf("hub log:\n%s", log.String())
	}
}

// TestWindow runs the closed loop: events as fast as they are delivered.
func TestWindow(t *testing.T) {
	testenv.SkipIfShort(t, "a benchmark run")
	cfg := small()
	cfg.Window = 4
	cfg.Duration = time.Second
	cfg.SkipMemory = true
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Hub
	if r.Events == 0 || r.Expected != r.Events*10 {
		t.Errorf("events %d, deliveries expected %d; want some, ten clients each", r.Events, r.Expected)
	}
	if r.Lost != 0 || r.Duplicates != 0 || r.Deliveries != r.Expected {
		t.Errorf("deliveries %d of %d, lost %d, duplicates %d", r.Deliveries, r.Expected, r.Lost, r.Duplicates)
	}
}

func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"url without url", Config{Mode: ModeURL, RedisURL: "redis://x", Secret: []byte("s")}, "url"},
		{"url without redis", Config{Mode: ModeURL, URL: "ws://x/ws", Secret: []byte("s")}, "Redis"},
		{"url without secret", Config{Mode: ModeURL, URL: "ws://x/ws", RedisURL: "redis://x"}, "secret"},
		{"two hubs without redis", Config{Hubs: 2}, "Redis"},
		{"unknown mode", Config{Mode: "cloud"}, "unknown mode"},
		{"unknown db", Config{DB: "oracle"}, "unknown db"},
		{"more channels than clients", Config{Clients: 2, Channels: 3}, "channels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.9, 900 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/64) {
			t.Errorf("q%.2f = %v, want %v within 1.6%% above", tc.q, got, tc.want)
		}
	}
	if h.Max() != time.Millisecond {
		t.Errorf("max = %v", h.Max())
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		if b := bucketOf(v); bucketHigh(b) < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d in bucket %d [.., %d]", v, b, bucketHigh(b))
		}
	}
}

func TestIntField(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want int64
		ok   bool
	}{
		{`{"data":{"seq":42,"sent_ns":7}}`, 42, true},
		{`{"seq": -1}`, -1, true},
		{`{"seq":"x"}`, 0, false},
		{`{"other":1}`, 0, false},
	} {
		got, ok := intField([]byte(tc.msg), keySeq)
		if got != tc.want || ok != tc.ok {
			t.Errorf("intField(%s) = %d, %v; want %d, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSeenSet(t *testing.T) {
	var s seenSet
	for seq := int64(0); seq < 3*seenWords*64; seq += 3 {
		if !s.add(seq) {
			t.Fatalf("seq %d reported as a duplicate the first time", seq)
		}
		if s.add(seq) {
			t.Fatalf("seq %d not reported as a duplicate the second time", seq)
		}
		if old := seq - seenWords*64/2; old >= 0 && old%3 == 0 && s.add(old) {
			t.Fatalf("seq %d, within the window, not reported as a duplicate", old)
		}
	}
}
