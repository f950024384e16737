package hub

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the hub's Prometheus collectors, all named telegraphy_hub_*.
type metrics struct {
	connections     prometheus.Gauge
	subscriptions   prometheus.Gauge
	channels        prometheus.Gauge
	received        prometheus.Counter
	delivered       prometheus.Counter
	brokerDrops     prometheus.Counter
	gaps            *prometheus.CounterVec
	slowConsumers   prometheus.Counter
	closes          *prometheus.CounterVec
	authFailures    *prometheus.CounterVec
	limited         *prometheus.CounterVec
	deliveryLatency *latencyHistogram
	brokerUp        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_connections",
			Help: "Open WebSocket connections, authenticated or not.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_subscriptions",
			Help: "Channel subscriptions of all connections.",
		}),
		channels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_channels",
			Help: "Channels with at least one local subscriber (added to the broker subscription).",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegraphy_hub_events_received_total",
			Help: "Publications received from the broker on subscribed channels.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegraphy_hub_events_delivered_total",
			Help: "Event messages written to clients (live and recovered).",
		}),
		brokerDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegraphy_hub_broker_drops_total",
			Help: "Publications the broker dropped for this hub because its subscription buffer was full.",
		}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegraphy_hub_gaps_total",
			Help: "Offset gaps seen on a channel, by result: recovered from history, or lost (clients told recovered:false).",
		}, []string{"result"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telegraphy_hub_slow_consumer_closes_total",
			Help: "Connections closed with 4008 because their send queue overflowed.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegraphy_hub_closes_total",
			Help: "Connections closed by the hub, by close code (\"none\" when the connection was dropped without a close frame).",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegraphy_hub_auth_failures_total",
			Help: "Refused hellos, by reason (the tokens package's reasons, \"anonymous\", \"no_hello\").",
		}, []string{"reason"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telegraphy_hub_limited_total",
			Help: "Requests or connections refused by a limit, by limit (\"rate\", \"rate_close\", \"channels_per_minute\", \"subject_connections\", \"connections\").",
		}, []string{"limit"}),
		deliveryLatency: newLatencyHistogram(),
		brokerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telegraphy_hub_broker_up",
			Help: "1 when the broker answered its last health check and the hub's subscription is open, else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{
		m.connections, m.subscriptions, m.channels, m.received, m.delivered,
		m.brokerDrops, m.gaps, m.slowConsumers, m.closes, m.authFailures, m.limited,
		m.deliveryLatency, m.brokerUp,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("hub: registering metrics (give each hub its own Registerer): %w", err)
		}
	}
	return m, nil
}
