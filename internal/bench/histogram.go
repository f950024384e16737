package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the histogram's precision: 2^subBits buckets per power of
// two, so a reported percentile is at most 1/64 (1.6%) above the true value.
const subBits = 6

// numBuckets covers every non-negative int64.
const numBuckets = (64-subBits)<<subBits + 1<<subBits

// histogram is a log-linear latency histogram safe for concurrent Record
// calls from every client goroutine. It keeps counts, not samples, so its
// size does not grow with the run.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v uint64) int {
	if v < 1<<(subBits+1) {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return shift<<subBits + int(v>>shift)
}

// bucketHigh returns the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < 1<<(subBits+1) {
		return uint64(i)
	}
	shift := i>>subBits - 1
	m := uint64(i - shift<<subBits)
	return (m+1)<<shift - 1
}

// Record adds one latency. Negative values count as zero.
func (h *histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the value at or below which a fraction q of the
// recorded values lie, rounded up to its bucket's upper bound; zero when
// nothing was recorded. Call it once recording has stopped.
func (h *histogram) Quantile(q float64) time.Duration {
	total := h.total.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(bucketHigh(i))
			if m := h.Max(); v > m {
				v = m
			}
			return v
		}
	}
	return h.Max()
}
