package outbox

import "time"

// backoff is the relay's wait after a failed batch: it doubles from 50ms
// up to a ceiling (the poll interval), and a success resets it.
type backoff struct {
	ceiling  time.Duration
	wait     time.Duration
	failures int       // failed batches in a row
	until    time.Time // no batch before this
}

// failed records a failure at now and returns how many in a row there
// have been.
func (b *backoff) failed(now time.Time) int {
	b.failures++
	b.wait = min(max(2*b.wait, 50*time.Millisecond), b.ceiling)
	b.until = now.Add(b.wait)
	return b.failures
}

// succeeded ends a run of failures.
func (b *backoff) succeeded() { b.failures, b.wait = 0, 0 }

// waiting reports whether the relay must not try a batch at now.
func (b *backoff) waiting(now time.Time) bool { return now.Before(b.until) }
