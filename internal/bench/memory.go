package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// childEnv marks the helper process that holds idle clients while the
// parent measures its own memory.
const childEnv = "TELEGRAPHY_BENCH_CHILD"

// Memory is the hub's cost of idle connections.
type Memory struct {
	// Method says how the figure was taken.
	Method string `json:"method"`
	// Connections is how many idle clients were connected.
	Connections int `json:"connections"`
	// PerConnBytes is the growth of the hub process' heap and stack in
	// use (runtime.MemStats HeapInuse+StackInuse, after a GC) divided by
	// Connections.
	PerConnBytes float64 `json:"per_conn_bytes"`
	// GoroutinesPerConn is the growth of the goroutine count per connection.
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
}

// measureIdle connects the endpoints from a child process, so that only
// the hub's side of each connection is in this process, and returns the
// growth of this process' heap and stack per connection.
func measureIdle(ctx context.Context, eps []endpoint) (*Memory, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	heap0, g0 := inUse()

	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=idle-clients")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("memory: start client process: %w", err)
	}
	// The child exits when its stdin closes; it is killed if it does not.
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	if err := json.NewEncoder(stdin).Encode(eps); err != nil {
		stop()
		return nil, fmt.Errorf("memory: send endpoints to client process: %w", err)
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
	if strings.TrimSpace(line) != "ready" {
		stop()
		msg := strings.TrimSpace(line + " " + stderr.String())
		return nil, fmt.Errorf("memory: client process: %s", msg)
	}
	// Idle means no traffic for a while: let the hub finish whatever
	// follows a subscription, and end what it keeps only while busy.
	time.Sleep(idleSettle)
	heap1, g1 := inUse()
	stop()

	n := float64(len(eps))
	return &Memory{
		Method:            "idle clients (hello+subscribe) in a child process; the hub process' HeapInuse+StackInuse after GC",
		Connections:       len(eps),
		PerConnBytes:      float64(int64(heap1)-int64(heap0)) / n,
		GoroutinesPerConn: float64(g1-g0) / n,
	}, nil
}

// idleSettle is how long connections stay quiet before their memory is
// measured.
const idleSettle = 3 * time.Second

// inUse returns heap and stack in use after a full collection, and the
// number of goroutines.
func inUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// ChildMain runs the idle-client helper process of the memory measurement
// when the environment asks for it, and then exits; otherwise it returns at
// once. Call it first thing in main (or TestMain) of a binary that runs
// Run.
func ChildMain() {
	if os.Getenv(childEnv) != "idle-clients" {
		return
	}
	os.Exit(runChild(os.Stdin, os.Stdout))
}

func runChild(stdin io.Reader, stdout io.Writer) int {
	dec := json.NewDecoder(stdin)
	var eps []endpoint
	if err := dec.Decode(&eps); err != nil {
		fmt.Fprintf(stdout, "error: read endpoints: %v\n", err)
		return 1
	}
	if err := raiseFileLimit(len(eps) + 64); err != nil {
		fmt.Fprintf(stdout, "error: %v\n", err)
		return 1
	}
	conns, err := connectAll(context.Background(), eps, connectParallel)
	if err != nil {
		fmt.Fprintf(stdout, "error: %v\n", err)
		return 1
	}
	for _, c := range conns {
		go discard(c)
	}
	fmt.Fprintln(stdout, "ready")
	_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), stdin))
	closeAll(conns)
	return 0
}

// raiseFileLimit raises the soft limit on open files to at least need (up
// to the hard limit).
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	if lim.Cur >= uint64(need) {
		return nil
	}
	if lim.Max < uint64(need) {
		return fmt.Errorf("open files limit: need %d, hard limit is %d (raise it with ulimit -Hn)", need, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	return nil
}
