package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond, every few milliseconds, until it reports true, and
// fails the test (naming what it waited for) when timeout passes first.
// Tests wait for the condition they need rather than sleep a fixed time:
// a fixed sleep is slow on an idle machine and too short on a loaded one.
// cond runs on the test's goroutine and may call t.Fatal.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}
