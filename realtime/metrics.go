package realtime

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the realtime side's Prometheus series. Labels are bounded:
// never a user, room or tenant id.
type Metrics struct {
	Sessions           prometheus.Gauge
	Tenants            prometheus.Gauge
	Rooms              prometheus.Gauge
	Subscriptions      prometheus.Gauge
	PresenceMembers    prometheus.Gauge
	EventsReceived     prometheus.Counter
	Deliveries         prometheus.Counter
	BytesOut           prometheus.Counter
	SlowCloses         prometheus.Counter
	Rejected           *prometheus.CounterVec
	FanoutLatency      prometheus.Histogram
	ListenerReconnects prometheus.Counter
	CaughtUp           prometheus.Counter
	Replayed           prometheus.Counter
	ReplayedFromMemory prometheus.Counter
	HistoryQueries     *prometheus.CounterVec
	RecentBytes        prometheus.Gauge
}

// historyQuery counts one call the hub made to History.
func (m *Metrics) historyQuery(kind string) { m.HistoryQueries.WithLabelValues(kind).Inc() }

// NewMetrics creates the series and registers them with reg (nil: keep
// them unregistered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_ws_sessions", Help: "Open WebSocket sessions."}),
		Tenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_ws_tenants", Help: "Tenants with at least one open WebSocket session (a count, not a label per tenant)."}),
		Rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_ws_rooms", Help: "Rooms with at least one local subscriber."}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_ws_subscriptions", Help: "Session-room subscriptions."}),
		PresenceMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_presence_members", Help: "Users present in rooms through this instance (per room)."}),
		EventsReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_listener_events_total", Help: "Event notifications received from Postgres."}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_ws_deliveries_total", Help: "Events handed to sessions (one per event per session)."}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_ws_sent_bytes_total", Help: "Bytes of frames handed to sessions."}),
		SlowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_ws_slow_consumer_closes_total", Help: "Sessions closed with 1013 because their send queue was full."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_ws_inbound_rejected_total", Help: "Client messages or upgrades refused, by reason."}, []string{"reason"}),
		FanoutLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "agora_fanout_latency_seconds",
			Help:    "From the event's commit-time timestamp to its frame being handed to the sessions.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		ListenerReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_listener_reconnects_total", Help: "Times the LISTEN connection was lost and re-established."}),
		CaughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_listener_caught_up_events_total", Help: "Events delivered that no notification had announced (found after a reconnect or by the sweep)."}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_ws_replayed_events_total", Help: "Events replayed from history on subscribe with since."}),
		ReplayedFromMemory: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agora_ws_replayed_from_memory_events_total", Help: "Of the events replayed, those served from the rooms' recent events in memory."}),
		HistoryQueries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_realtime_history_queries_total", Help: "Calls the realtime side made to the database, by kind."}, []string{"kind"}),
		RecentBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agora_ws_recent_events_bytes", Help: "Bytes of recent events kept in memory for resumes, all rooms."}),
	}
	if reg != nil {
		reg.MustRegister(m.Sessions, m.Tenants, m.Rooms, m.Subscriptions, m.PresenceMembers, m.EventsReceived,
			m.Deliveries, m.BytesOut, m.SlowCloses, m.Rejected, m.FanoutLatency, m.ListenerReconnects, m.CaughtUp, m.Replayed,
			m.ReplayedFromMemory, m.HistoryQueries, m.RecentBytes)
	}
	return m
}
