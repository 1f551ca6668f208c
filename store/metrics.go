package store

import "github.com/prometheus/client_golang/prometheus"

// poolCollector reports pgxpool's statistics and password hashing at
// scrape time.
type poolCollector struct {
	db                                      *DB
	total, idle, acquired, maxConns         *prometheus.Desc
	acquires, waits, waitSeconds, emptyWait *prometheus.Desc
	acquireTimeouts                         *prometheus.Desc
	hashes, hashRefusals, hashRunning       *prometheus.Desc
	cacheHits, cacheMisses, cacheEntries    *prometheus.Desc
	sessionCacheOn                          *prometheus.Desc
}

// PoolCollector exposes the connection pool's state as agora_db_pool_*,
// password hashing as agora_password_hash* and the tenant and session
// caches as agora_auth_cache_* (label cache="tenant" or "session").
func (db *DB) PoolCollector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("agora_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		db:          db,
		total:       d("connections", "Open connections."),
		idle:        d("idle_connections", "Idle connections."),
		acquired:    d("acquired_connections", "Connections in use."),
		maxConns:    d("max_connections", "Pool size limit."),
		acquires:    d("acquires_total", "Connections acquired from the pool."),
		waits:       d("empty_acquires_total", "Acquires that had to wait for a connection."),
		waitSeconds: d("acquire_wait_seconds_total", "Time spent waiting for connections."),
		emptyWait:   d("canceled_acquires_total", "Acquires cancelled while waiting."),
		acquireTimeouts: d("acquire_timeouts_total",
			"Acquires that gave up after the acquire timeout (answered 503)."),
		hashes: prometheus.NewDesc("agora_password_hashes_total",
			"Password hashes computed (registrations and login checks).", nil, nil),
		hashRefusals: prometheus.NewDesc("agora_password_hash_refusals_total",
			"Registrations and logins refused (503) because no hashing slot came free in time.", nil, nil),
		hashRunning: prometheus.NewDesc("agora_password_hashes_running",
			"Password hashes running now (at most one per hashing slot).", nil, nil),
		cacheHits: prometheus.NewDesc("agora_auth_cache_hits_total",
			"Tenant and session lookups answered from memory.", []string{"cache"}, nil),
		cacheMisses: prometheus.NewDesc("agora_auth_cache_misses_total",
			"Tenant and session lookups that went to the database (for sessions, also while the cache is off).", []string{"cache"}, nil),
		cacheEntries: prometheus.NewDesc("agora_auth_cache_entries",
			"Entries held in the tenant and session caches.", []string{"cache"}, nil),
		sessionCacheOn: prometheus.NewDesc("agora_auth_session_cache_enabled",
			"1 while the bus listener is connected and the session cache is used, else 0.", nil, nil),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.maxConns, c.acquires, c.waits, c.waitSeconds, c.emptyWait,
		c.acquireTimeouts, c.hashes, c.hashRefusals, c.hashRunning, c.cacheHits, c.cacheMisses, c.cacheEntries, c.sessionCacheOn} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.pool.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.total, float64(s.TotalConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.maxConns, float64(s.MaxConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.waits, float64(s.EmptyAcquireCount()))
	n(c.waitSeconds, s.AcquireDuration().Seconds())
	n(c.emptyWait, float64(s.CanceledAcquireCount()))
	n(c.acquireTimeouts, float64(c.db.pool.timeouts.Load()))
	h := c.db.HashStats()
	n(c.hashes, float64(h.Hashes))
	n(c.hashRefusals, float64(h.Refused))
	g(c.hashRunning, float64(h.Running))
	t, ss := c.db.tenants, c.db.sessions
	for _, m := range []struct {
		cache               string
		hits, misses, items int64
	}{
		{"tenant", t.hits.Load(), t.misses.Load(), int64(t.len())},
		{"session", ss.hits.Load(), ss.misses.Load(), int64(ss.len())},
	} {
		ch <- prometheus.MustNewConstMetric(c.cacheHits, prometheus.CounterValue, float64(m.hits), m.cache)
		ch <- prometheus.MustNewConstMetric(c.cacheMisses, prometheus.CounterValue, float64(m.misses), m.cache)
		ch <- prometheus.MustNewConstMetric(c.cacheEntries, prometheus.GaugeValue, float64(m.items), m.cache)
	}
	on := 0.0
	if ss.enabled() {
		on = 1
	}
	g(c.sessionCacheOn, on)
}
