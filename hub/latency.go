package hub

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBounds are the upper bounds of the delivery-latency histogram's
// buckets, in seconds; a last bucket, +Inf, counts the rest.
var latencyBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// latencyBuckets is the number of the histogram's buckets, +Inf included.
const latencyBuckets = len(latencyBounds) + 1

// latencyBoundsNs are latencyBounds in nanoseconds.
var latencyBoundsNs = func() []int64 {
	ns := make([]int64, len(latencyBounds))
	for i, b := range latencyBounds {
		ns[i] = int64(b * 1e9)
	}
	return ns
}()

// latencyHistogram is telegraphy_hub_delivery_latency_seconds, a
// Prometheus histogram that the pool's goroutines add to in bulk: each
// counts its deliveries in a latencyTally of its own and adds it here
// every few hundred deliveries and whenever it runs out of work. A
// prometheus.Histogram would take three atomic operations on shared
// counters per delivery; at a delivery per microsecond that showed in
// the profile.
type latencyHistogram struct {
	desc    *prometheus.Desc
	buckets [latencyBuckets]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNs   atomic.Int64
}

func newLatencyHistogram() *latencyHistogram {
	return &latencyHistogram{desc: prometheus.NewDesc("telegraphy_hub_delivery_latency_seconds",
		"Time from an event's publication to its write to a client.", nil, nil)}
}

func (h *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	cumulative := make(map[float64]uint64, len(latencyBounds))
	var n uint64
	for i, b := range latencyBounds {
		n += h.buckets[i].Load()
		cumulative[b] = n
	}
	n += h.buckets[len(latencyBounds)].Load()
	ch <- prometheus.MustNewConstHistogram(h.desc, n, float64(h.sumNs.Load())/1e9, cumulative)
}

// latencyTally counts deliveries and their latencies until it is added
// to the hub's metrics (flush). One goroutine owns it.
type latencyTally struct {
	buckets [latencyBuckets]uint64
	sumNs   int64
	seen    int // latencies counted since the last flush
	events  int // event messages written since the last flush
}

// tallyFlushEvery is how many latencies a pool goroutine counts before
// it adds them to the metrics while it has work.
const tallyFlushEvery = 256

func (t *latencyTally) observe(ns int64) {
	i := 0
	for i < len(latencyBoundsNs) && ns > latencyBoundsNs[i] {
		i++
	}
	t.buckets[i]++
	t.sumNs += ns
	t.seen++
}

// flush adds the tally to m and clears it.
func (t *latencyTally) flush(m *metrics) {
	if t.seen > 0 {
		for i, n := range t.buckets {
			if n > 0 {
				m.deliveryLatency.buckets[i].Add(n)
			}
		}
		m.deliveryLatency.sumNs.Add(t.sumNs)
	}
	if t.events > 0 {
		m.delivered.Add(float64(t.events))
	}
	*t = latencyTally{}
}
