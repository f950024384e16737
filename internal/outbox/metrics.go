package outbox

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the relay's Prometheus metrics.
type metrics struct {
	rows      prometheus.Gauge
	age       prometheus.Gauge
	published prometheus.Counter
	rejected  prometheus.Counter
	leader    prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_backlog_rows",
			Help: "Events waiting in the outbox table, as last measured by this process's relay."}),
		age: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_oldest_age_seconds",
			Help: "Age of the oldest event waiting in the outbox table, as last measured; 0 when empty."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "telegraphy_outbox_published_total",
			Help: "Outbox events this process's relay published and deleted."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "telegraphy_outbox_rejected_total",
			Help: "Outbox rows this process's relay dropped because no broker would take them (see the error log)."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_relay_leader",
			Help: "1 while this process's relay holds the outbox lease."}),
	}
	for _, c := range []prometheus.Collector{m.rows, m.age, m.published, m.rejected, m.leader} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("telegraphy: register outbox metrics: %w", err)
		}
	}
	return m, nil
}
