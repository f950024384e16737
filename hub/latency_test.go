package hub

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestLatencyHistogram checks that latencies land in the bucket of the
// first bound they do not exceed, the rest in +Inf, and that the
// collected histogram is cumulative with the sum in seconds.
func TestLatencyHistogram(t *testing.T) {
	h := newLatencyHistogram()
	m := &metrics{deliveryLatency: h, delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})}
	var tally latencyTally
	for _, ns := range []int64{1, 500_000, 500_001, 2_500_000_000, 2_500_000_001, 9e9} {
		tally.observe(ns)
	}
	tally.flush(m)
	ch := make(chan prometheus.Metric, 1)
	h.Collect(ch)
	var got dto.Metric
	if err := (<-ch).Write(&got); err != nil {
		t.Fatal(err)
	}
	hist := got.GetHistogram()
	if hist.GetSampleCount() != 6 {
		t.Fatalf("count %d, want 6", hist.GetSampleCount())
	}
	if want := (1 + 500_000 + 500_001 + 2_500_000_000 + 2_500_000_001 + 9e9) / 1e9; hist.GetSampleSum() != want {
		t.Errorf("sum %v, want %v", hist.GetSampleSum(), want)
	}
	want := map[float64]uint64{.0005: 2, .001: 3, 1: 3, 2.5: 4}
	if len(hist.GetBucket()) != len(latencyBounds) {
		t.Fatalf("%d buckets, want %d", len(hist.GetBucket()), len(latencyBounds))
	}
	for _, b := range hist.GetBucket() {
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
}
