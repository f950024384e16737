package hub_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// clientProcEnv makes the test binary a client process for
// BenchmarkIdleConnectionMemory: "<url> <n>".
const clientProcEnv = "TELEGRAPHY_HUB_TEST_CLIENTS"

// runClientProc opens n authenticated connections, each subscribed to one
// channel, prints "ready", and holds them until stdin closes.
func runClientProc(spec string) int {
	var url string
	var n int
	if _, err := fmt.Sscan(spec, &url, &n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conns := make([]*websocket.Conn, 0, n)
	for i := 0; i < n; i++ {
		ch := "idle:" + strconv.Itoa(i%100)
		tok, err := iss.Issue(strconv.Itoa(i), []string{ch})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			return 2
		}
		hello := `{"type":"hello","token":"` + tok + `"}` + "\n" + `{"type":"subscribe","id":1,"channel":"` + ch + `"}`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(hello)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		got := 0
		for got < 2 {
			_, data, err := ws.ReadMessage()
			if err != nil {
				fmt.Fprintln(os.Stderr, "read:", err)
				return 2
			}
			got += strings.Count(string(data), "\n") + 1
		}
		conns = append(conns, ws)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		_ = ws.Close()
	}
	return 0
}

func hubMemory() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// BenchmarkIdleConnectionMemory reports the hub's memory per idle
// authenticated connection subscribed to one channel: heap and stack in
// use in this process before and after the connections, whose clients run
// in a separate process so that their cost is not counted. Run it with
// -benchtime=1x; TELEGRAPHY_HUB_BENCH_CONNS sets the number (default 2000).
func BenchmarkIdleConnectionMemory(b *testing.B) {
	n := 2000
	if s := os.Getenv("TELEGRAPHY_HUB_BENCH_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for i := 0; i < b.N; i++ {
		e := newEnv(b)
		heap0, stack0 := hubMemory()
		g0 := runtime.NumGoroutine()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), clientProcEnv+"="+e.url+" "+strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			b.Fatalf("client process: %q %v", line, err)
		}
		// Let the writers leave: a writer parks for one to two seconds
		// after its last write.
		time.Sleep(2500 * time.Millisecond)
		heap1, stack1 := hubMemory()
		g1 := runtime.NumGoroutine()
		conns := e.metric("telegraphy_hub_connections")

		_ = stdin.Close()
		_ = cmd.Wait()
		if conns != float64(n) {
			b.Fatalf("%v connections open, want %d", conns, n)
		}
		perConn := float64(heap1+stack1-heap0-stack0) / float64(n)
		b.ReportMetric(perConn, "B/conn")
		b.ReportMetric(float64(heap1-heap0)/float64(n), "heapB/conn")
		b.ReportMetric(float64(stack1-stack0)/float64(n), "stackB/conn")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/conn")
	}
}
