package testenv

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Leaked waits up to limit for goroutines to end and returns the stacks of
// those that did not. With markers, only goroutines whose stack contains
// one of them count; without, every goroutine but the caller's and the
// runtime's signal handler does.
func Leaked(limit time.Duration, markers ...string) string {
	deadline := time.Now().Add(limit)
	for {
		buf := make([]byte, 1<<20)
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		var leaked []string
		for _, g := range stacks[1:] { // stacks[0] is the caller's
			if counts(g, markers) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counts(stack string, markers []string) bool {
	if len(markers) == 0 {
		return !strings.Contains(stack, "os/signal.signal_recv")
	}
	for _, m := range markers {
		if strings.Contains(stack, m) {
			return true
		}
	}
	return false
}

// RunCheckingLeaks runs the tests of m, for TestMain, and turns a passing
// run into a failing one when goroutines (as Leaked counts them) outlive
// the tests by more than 5 seconds. It returns the exit code.
func RunCheckingLeaks(m *testing.M, markers ...string) int {
	code := m.Run()
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if leaked := Leaked(5*time.Second, markers...); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", leaked)
			code = 1
		}
	}
	return code
}
