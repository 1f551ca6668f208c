package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"agora/api"
	"agora/realtime"
	"agora/store"
	"agora/web"
)

// app is a running server: everything serve builds, so tests can start the
// whole program in-process.
type app struct {
	log  zerolog.Logger
	db   *store.DB
	hub  *realtime.Hub
	http *http.Server
	lis  net.Listener
	// closers are the shutdown steps in the order their parts were built;
	// each part registers its step once, where it is built.
	closers []func(context.Context)
	// instances is how many instances are live, this one included, as
	// the rate limits and tenant quotas see it.
	instances func() int
}

// serve runs the server until ctx ends or serving fails.
func (m *Main) serve(ctx context.Context) error {
	dbs, err := m.database(ctx)
	if err != nil {
		return err
	}
	tracer, flush, err := newTracing(ctx, m.Getenv)
	if err != nil {
		return err
	}
	m.onClose(flush)
	a, err := start(ctx, m.cfg, m.log, dbs, tracer)
	if err != nil {
		return err
	}
	m.onClose(func(context.Context) error { a.shutdown(); return nil })
	if m.cfg.SeedDemo {
		if err := seedDemo(ctx, a.db, m.cfg.DataDir, a.URL(), m.Stdout); err != nil {
			return err
		}
	}
	m.log.Info().Str("addr", a.lis.Addr().String()).Msg("serving")
	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(a.lis) }()
	select {
	case <-ctx.Done():
		m.log.Info().Msg("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

// start migrates (as the owner), connects (as the serving role) and wires
// the server, listening but not yet serving.
func start(ctx context.Context, cfg config, log zerolog.Logger, dbs databases, tracer trace.TracerProvider) (*app, error) {
	url, err := dbs.servingURL()
	if err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		if err := store.MigrateUp(ctx, dbs.OwnerURL, url); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(ctx, store.Config{URL: url, MaxConns: int32(cfg.DBMaxConns),
		AcquireTimeout: cfg.DBAcquireWait, HashConcurrency: cfg.HashSlots, Tracer: tracer})
	if err != nil {
		return nil, err
	}
	warnings, err := db.CheckSafety(ctx, cfg.AllowOwner)
	switch {
	case errors.Is(err, store.ErrRoleOwnsSchema):
		err = fmt.Errorf("%w. Give DATABASE_URL a role that owns nothing and AGORA_MIGRATE_DATABASE_URL the owner's URL (the migrations run as the owner and grant the serving role its rights), or set AGORA_ALLOW_OWNER=true to accept a single-role setup", err)
	case errors.Is(err, store.ErrRoleLacksRights):
		err = fmt.Errorf("%w. Run the migrations with AGORA_MIGRATE_DATABASE_URL set to the owner's URL and DATABASE_URL to this role's: they grant it its rights", err)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	a := &app{log: log, db: db}
	a.closers = append(a.closers, func(context.Context) { db.Close() })
	a.closers = append(a.closers, renderStaleBodies(db, log))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hub := realtime.New(realtime.Config{
		History:        db,
		Bus:            store.NewBus(db, url),
		Log:            log,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PongTimeout,
		AllowedOrigins: splitList(cfg.AllowedOrigins),
		Heartbeat:      cfg.Heartbeat,
		Metrics:        realtime.NewMetrics(reg),
		Tracer:         tracer,

		MaxTenantSessions:   cfg.TenantMaxSessions,
		HistoryMemoryEvents: memoryEvents(cfg.HistoryMemoryEvents),
		HistoryMemoryBytes:  int64(cfg.HistoryMemoryMB) << 20,
	})
	hub.Run()
	stopPruner := store.Pruner{DB: db, Log: log,
		Retention: store.Retention{PerRoom: cfg.HistoryEvents, MaxAge: cfg.HistoryAge}}.Start()
	a.closers = append(a.closers, func(context.Context) { stopPruner() })
	a.hub = hub
	// Sessions close with 1001 before the pool goes.
	a.closers = append(a.closers, func(ctx context.Context) {
		if err := hub.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("realtime shutdown")
		}
	})

	clientIP, err := clientIPExtractor(cfg.TrustedProxies)
	if err != nil {
		a.shutdown()
		return nil, err
	}
	reg.MustRegister(db.PoolCollector())
	httpMetrics := api.NewHTTPMetrics(reg)
	if cfg.AdminAddr != "" {
		stop, err := serveAdmin(cfg.AdminAddr, log)
		if err != nil {
			a.shutdown()
			return nil, err
		}
		a.closers = append(a.closers, stop)
	}
	instances, stopCounting := countInstances(hub)
	a.instances = instances
	a.closers = append(a.closers, stopCounting)
	limits := api.RateLimits{ClientIP: clientIP, Disabled: !cfg.RateLimits}
	if cfg.SplitLimits {
		limits.Instances = instances
	}
	apiCfg := api.Config{
		RateLimits: limits,
		Middleware: []echo.MiddlewareFunc{httpMetrics.Middleware},
		Store:      db,
		Log:        log,
		AdminToken: cfg.AdminToken,
		WebSocket:  hub,
		Ready:      map[string]api.Check{"listener": hub.Ready},
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Web:        web.Handler(),
		Tracer:     tracer,
	}
	apiCfg.TenantQuota = tenantQuota(cfg, instances)
	srv := api.New(apiCfg)
	a.http = api.NewHTTPServer(cfg.Addr, srv)
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.shutdown()
		return nil, err
	}
	a.lis = lis
	// Hijacked WebSocket connections are not the http.Server's: its
	// Shutdown stops accepting and waits for REST requests, and the hub's
	// step (run after it) closes the sessions with 1001.
	a.closers = append(a.closers, func(ctx context.Context) {
		if err := a.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn().Err(err).Msg("http shutdown")
		}
	})
	return a, nil
}

// countInstances keeps the number of live instances (this one and the
// peers its hub hears from) where the limits can read it on every request
// for the price of an atomic load; the hub's own count takes its presence
// lock, so it is read twice a second. Peers come and go at heartbeat
// pace (seconds), which this follows closely enough.
func countInstances(hub *realtime.Hub) (func() int, func(context.Context)) {
	var n atomic.Int64
	n.Store(1 + int64(hub.Peers()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				n.Store(1 + int64(hub.Peers()))
			}
		}
	}()
	return func() int { return int(n.Load()) }, func(context.Context) { cancel(); <-done }
}

// tenantQuota is the configured share of the write path per tenant: a
// budget of writes split across the instances, and a cap on its writes in
// flight on this instance's pool.
func tenantQuota(cfg config, instances func() int) api.TenantQuota {
	q := api.TenantQuota{Writes: api.Rate{N: -1}, Slots: cfg.TenantSlots, SlotWait: cfg.TenantWait, Instances: instances}
	if cfg.TenantWrites > 0 {
		burst := max(cfg.TenantBurst, 1)
		q.Writes = api.Rate{N: burst, Per: time.Duration(float64(burst) / float64(cfg.TenantWrites) * float64(time.Second))}
	}
	return q
}

// renderStaleBodies gives posts and comments written before formatting
// existed their real rendering, in the background: serving does not wait
// for it, and the returned closer stops it before the pool closes.
func renderStaleBodies(db *store.DB, log zerolog.Logger) func(context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := db.RenderStaleBodies(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Int("rendered", n).Msg("render bodies written before formatting (the next start goes on)")
		} else if n > 0 {
			log.Info().Int("rendered", n).Msg("rendered bodies written before formatting")
		}
	}()
	return func(context.Context) {
		cancel()
		<-done
	}
}

// URL is where the server can be reached from this machine.
func (a *app) URL() string {
	addr := a.lis.Addr().(*net.TCPAddr)
	host := "localhost"
	if !addr.IP.IsUnspecified() {
		host = addr.IP.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// shutdown stops accepting, lets requests finish, closes WebSocket
// sessions with 1001, then closes the rest in reverse order of creation,
// all within one deadline. A second call does nothing.
func (a *app) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i](ctx)
	}
	a.closers = nil
}

// seedDemo creates the demo tenant with an admin and a first board, once,
// and prints how to sign in. The generated password is kept in the data
// dir so later runs can print it again.
func seedDemo(ctx context.Context, db *store.DB, dataDir, url string, stdout io.Writer) error {
	credFile := filepath.Join(dataDir, "demo-admin.txt")
	t, err := db.TenantBySlug(ctx, "demo")
	if errors.Is(err, store.ErrNotFound) {
		if t, err = db.CreateTenant(ctx, "demo", "Demo community"); err != nil {
			return fmt.Errorf("seed demo tenant: %w", err)
		}
		raw := make([]byte, 12)
		_, _ = rand.Read(raw)
		password := base64.RawURLEncoding.EncodeToString(raw)
		u, _, err := db.Register(ctx, t.ID, store.Registration{Username: "admin", Password: password})
		if err != nil {
			return fmt.Errorf("seed demo admin: %w", err)
		}
		if _, err := db.CreateBoard(ctx, t.ID, store.ActorOf(u), store.NewBoard{
			Name: "General", Description: "Say hello."}); err != nil {
			return fmt.Errorf("seed demo board: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(credFile, []byte("admin "+password+"\n"), 0o600); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	cred, err := os.ReadFile(credFile)
	user, pass, _ := strings.Cut(strings.TrimSpace(string(cred)), " ")
	if err != nil {
		user, pass = "admin", "(unknown: "+credFile+" is missing)"
	}
	fmt.Fprintf(stdout, "\nAgora is up: %s/t/%s/\n  demo admin: %s / %s\n\n", url, t.Slug, user, pass)
	return nil
}

// memoryEvents maps the setting's 0 (none) to the hub's negative.
func memoryEvents(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// clientIPExtractor decides whose word the client's address is: the TCP
// peer, or X-Forwarded-For when the peer is one of our own proxies.
func clientIPExtractor(trusted string) (echo.IPExtractor, error) {
	cidrs := splitList(trusted)
	if len(cidrs) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, usageError(fmt.Sprintf("trusted proxy %q: want a CIDR such as 10.0.0.0/8", c))
		}
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}

// serveAdmin serves pprof on its own address, loopback unless the operator
// names a host: profiles reveal internals and cost CPU.
func serveAdmin(addr string, log zerolog.Logger) (func(context.Context), error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageError(fmt.Sprintf("admin address %q: want host:port or :port", addr))
	}
	if host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("admin server")
		}
	}()
	log.Info().Str("addr", lis.Addr().String()).Msg("pprof on the admin address")
	return func(ctx context.Context) { _ = srv.Shutdown(ctx) }, nil
}
