package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"agora/api"
	"agora/realtime"
	"agora/store"
	"agora/store/devdb"
	"agora/web"
)

const usage = `usage:
  agora serve [flags]
  agora migrate up | down [N] | version | create NAME
  agora tenant create SLUG NAME
Run "agora serve -h" for the flags; every flag also reads an environment variable.
`

type usageError string

func (e usageError) Error() string { return string(e) }

// config is everything the subcommands read from flags and environment.
type config struct {
	DatabaseURL    string
	DataDir        string
	Addr           string
	AdminAddr      string
	AdminToken     string
	LogLevel       string
	LogFormat      string
	AllowedOrigins string
	TrustedProxies string
	PingInterval   time.Duration
	PongTimeout    time.Duration
	RateLimits     bool
	HistoryEvents  int64
	Heartbeat      time.Duration
	HistoryAge     time.Duration
	DBMaxConns     int
	DBAcquireWait  time.Duration
	HashSlots      int
	SeedDemo       bool
	AutoMigrate    bool
}

func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("agora "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Secrets take no default from the environment here: flag help and
	// usage errors print defaults, and must not print passwords.
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (DATABASE_URL); empty: a private cluster under the data dir")
	fs.StringVar(&c.DataDir, "data-dir", env("AGORA_DATA_DIR", ".agora"), "where the private cluster lives (AGORA_DATA_DIR)")
	fs.StringVar(&c.Addr, "addr", env("AGORA_ADDR", ":8080"), "listen address (AGORA_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", getenv("AGORA_ADMIN_ADDR"), "pprof listen address, loopback only by default; empty: off (AGORA_ADMIN_ADDR)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "operator token for /api/v1/tenants; empty: disabled (AGORA_ADMIN_TOKEN)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", getenv("AGORA_TRUSTED_PROXIES"), "CIDRs of reverse proxies whose X-Forwarded-For is believed, comma-separated; empty: the TCP peer is the client (AGORA_TRUSTED_PROXIES)")
	fs.StringVar(&c.LogLevel, "log-level", env("AGORA_LOG_LEVEL", "info"), "debug|info|warn|error (AGORA_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", getenv("AGORA_LOG_FORMAT"), "json|console; default: console on a terminal, else json (AGORA_LOG_FORMAT)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", getenv("AGORA_ALLOWED_ORIGINS"), "extra WebSocket origins, comma-separated (AGORA_ALLOWED_ORIGINS)")
	fs.DurationVar(&c.PingInterval, "ws-ping-interval", envDuration(getenv, "AGORA_WS_PING_INTERVAL", 20*time.Second), "how often WebSocket clients are pinged (AGORA_WS_PING_INTERVAL)")
	fs.DurationVar(&c.PongTimeout, "ws-pong-timeout", envDuration(getenv, "AGORA_WS_PONG_TIMEOUT", 30*time.Second), "a client silent this long after a ping is dropped (AGORA_WS_PONG_TIMEOUT)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", envInt(getenv, "AGORA_DB_MAX_CONNS", 16), "database connections per instance (AGORA_DB_MAX_CONNS)")
	fs.DurationVar(&c.DBAcquireWait, "db-acquire-timeout", envDuration(getenv, "AGORA_DB_ACQUIRE_TIMEOUT", 3*time.Second), "longest wait for a free database connection before a request is answered 503 (AGORA_DB_ACQUIRE_TIMEOUT)")
	fs.IntVar(&c.HashSlots, "hash-concurrency", envInt(getenv, "AGORA_HASH_CONCURRENCY", runtime.NumCPU()), "password hashes (19 MiB each) running at once; more wait up to 3 s, then 503 (AGORA_HASH_CONCURRENCY)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", envDuration(getenv, "AGORA_HEARTBEAT", 5*time.Second), "how often this instance tells the others it is alive; three missed ones and its users leave presence everywhere (AGORA_HEARTBEAT)")
	fs.Int64Var(&c.HistoryEvents, "history-events", int64(envInt(getenv, "AGORA_HISTORY_EVENTS", 10000)), "events kept per room for resume (AGORA_HISTORY_EVENTS)")
	fs.DurationVar(&c.HistoryAge, "history-age", envDuration(getenv, "AGORA_HISTORY_AGE", 7*24*time.Hour), "oldest event kept for resume (AGORA_HISTORY_AGE)")
	fs.BoolVar(&c.RateLimits, "rate-limits", envBool(getenv, "AGORA_RATE_LIMITS", true), "limit writes, logins and registrations per user and address; off only for load tests (AGORA_RATE_LIMITS)")
	fs.BoolVar(&c.SeedDemo, "seed-demo", envBool(getenv, "AGORA_SEED_DEMO", false), "create a demo tenant with an admin if missing (AGORA_SEED_DEMO)")
	fs.BoolVar(&c.AutoMigrate, "migrate", envBool(getenv, "AGORA_AUTO_MIGRATE", true), "apply pending migrations at start (AGORA_AUTO_MIGRATE)")
	if err := fs.Parse(args); err != nil {
		return c, nil, usageError(err.Error())
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = getenv("DATABASE_URL")
	}
	if c.AdminToken == "" {
		c.AdminToken = getenv("AGORA_ADMIN_TOKEN")
	}
	if c.PingInterval <= 0 || c.PongTimeout <= c.PingInterval {
		return c, nil, usageError("the WebSocket pong timeout must be longer than the ping interval, both positive")
	}
	return c, fs.Args(), nil
}

func envInt(getenv func(string) string, key string, def int) int {
	if n, err := strconv.Atoi(getenv(key)); err == nil {
		return n
	}
	return def
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(key)); err == nil {
		return d
	}
	return def
}

func envBool(getenv func(string) string, key string, def bool) bool {
	if b, err := strconv.ParseBool(getenv(key)); err == nil {
		return b
	}
	return def
}

func newLogger(c config, stderr io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || c.LogLevel == "" {
		return zerolog.Logger{}, usageError(fmt.Sprintf("log level %q: want debug, info, warn or error", c.LogLevel))
	}
	format := c.LogFormat
	if format == "" {
		format = "json"
		if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	}
	var w io.Writer
	switch format {
	case "json":
		w = stderr
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Logger{}, usageError(fmt.Sprintf("log format %q: want json or console", format))
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("missing command")
	}
	cmd, rest := args[0], args[1:]
	cfg, rest, err := parseConfig(cmd, rest, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return usageError("serve takes no arguments")
		}
		return serve(ctx, cfg, log, stdout)
	case "migrate":
		return migrateCmd(ctx, cfg, log, rest, stdout)
	case "tenant":
		return tenantCmd(ctx, cfg, log, rest, stdout)
	}
	return usageError(fmt.Sprintf("unknown command %q", cmd))
}

// database returns a URL to use, starting the private cluster when no
// DATABASE_URL is set. stop is never nil.
func database(ctx context.Context, cfg config, log zerolog.Logger) (url string, stop func(), err error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, func() {}, nil
	}
	dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "pg"))
	if err != nil {
		return "", nil, err
	}
	log.Info().Str("dir", dir).Msg("no DATABASE_URL: starting the private PostgreSQL cluster")
	cl, err := devdb.Start(ctx, devdb.Options{Dir: dir, Log: log})
	if err != nil {
		return "", nil, err
	}
	stop = func() {
		if !cl.StartedHere() {
			return // another agora process runs it (say, `task up`): leave it be
		}
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cl.Stop(sctx); err != nil {
			log.Error().Err(err).Msg("stop private PostgreSQL")
		}
	}
	url, err = cl.EnsureApp(ctx, "agora", "agora")
	if err != nil {
		stop()
		return "", nil, err
	}
	return url, stop, nil
}

func migrateCmd(ctx context.Context, cfg config, log zerolog.Logger, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("migrate needs up, down [N], version or create NAME")
	}
	if args[0] == "create" {
		if len(args) != 2 {
			return usageError("migrate create takes one NAME")
		}
		return createMigration("migrations", args[1], stdout)
	}
	url, stop, err := database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	mg, err := store.NewMigrator(url)
	if err != nil {
		return err
	}
	defer mg.Close()
	switch {
	case args[0] == "up" && len(args) == 1:
		err = mg.Up()
	case args[0] == "down" && len(args) <= 2:
		n := 0 // all
		if len(args) == 2 {
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return usageError("migrate down N: N must be a positive number")
			}
		}
		err = mg.Down(n)
	case args[0] == "version" && len(args) == 1:
	default:
		return usageError(fmt.Sprintf("migrate %s: unknown form", strings.Join(args, " ")))
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", args[0], err)
	}
	v, dirty, err := mg.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: a migration failed halfway; fix it and force the version)")
	}
	fmt.Fprintln(stdout)
	return nil
}

var migrationFile = regexp.MustCompile(`^(\d+)_.*\.(up|down)\.sql$`)

// createMigration writes the next numbered pair of empty migration files.
func createMigration(dir, name string, stdout io.Writer) error {
	stem := store.MigrationName(name)
	if stem == "" {
		return usageError("migration NAME needs letters or digits")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s (run this from the repository root): %w", dir, err)
	}
	next := 1
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		if m := migrationFile.FindStringSubmatch(n); m != nil {
			if v, _ := strconv.Atoi(m[1]); v >= next {
				next = v + 1
			}
		}
	}
	for _, dir2 := range []string{"up", "down"} {
		path := filepath.Join(dir, fmt.Sprintf("%04d_%s.%s.sql", next, stem, dir2))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "-- %s (%s)\n", name, dir2)
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

func tenantCmd(ctx context.Context, cfg config, log zerolog.Logger, args []string, stdout io.Writer) error {
	if len(args) != 3 || args[0] != "create" {
		return usageError("usage: agora tenant create SLUG NAME")
	}
	url, stop, err := database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	if cfg.AutoMigrate {
		if err := store.MigrateUp(ctx, url); err != nil {
			return err
		}
	}
	db, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		return err
	}
	defer db.Close()
	t, err := db.CreateTenant(ctx, args[1], args[2])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s created (id %d)\n", t.Slug, t.ID)
	return nil
}

// app is a running server: everything serve builds, so tests can start the
// whole program in-process.
type app struct {
	log    zerolog.Logger
	db     *store.DB
	hub    *realtime.Hub
	http   *http.Server
	lis    net.Listener
	closer []func(context.Context)
}

func serve(ctx context.Context, cfg config, log zerolog.Logger, stdout io.Writer) error {
	url, stopDB, err := database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopDB()
	a, err := start(ctx, cfg, log, url)
	if err != nil {
		return err
	}
	if cfg.SeedDemo {
		if err := seedDemo(ctx, a.db, cfg.DataDir, a.URL(), stdout); err != nil {
			a.shutdown()
			return err
		}
	}
	log.Info().Str("addr", a.lis.Addr().String()).Msg("serving")
	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(a.lis) }()
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		a.shutdown()
		return nil
	case err := <-errc:
		a.shutdown()
		return err
	}
}

// start migrates, connects and wires the server, listening but not yet
// serving.
func start(ctx context.Context, cfg config, log zerolog.Logger, url string) (*app, error) {
	if cfg.AutoMigrate {
		if err := store.MigrateUp(ctx, url); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(ctx, store.Config{URL: url, MaxConns: int32(cfg.DBMaxConns),
		AcquireTimeout: cfg.DBAcquireWait, HashConcurrency: cfg.HashSlots})
	if err != nil {
		return nil, err
	}
	if err := db.CheckSafety(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a := &app{log: log, db: db}
	a.closer = append(a.closer, func(context.Context) { db.Close() })

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hub := realtime.New(realtime.Config{
		Store:          db,
		Log:            log,
		ListenURL:      url,
		PingInterval:   cfg.PingInterval,
		PongTimeout:    cfg.PongTimeout,
		AllowedOrigins: splitList(cfg.AllowedOrigins),
		Retention:      store.Retention{PerRoom: cfg.HistoryEvents, MaxAge: cfg.HistoryAge},
		Heartbeat:      cfg.Heartbeat,
		Metrics:        realtime.NewMetrics(reg),
	})
	hub.Run()
	a.hub = hub
	// Sessions close with 1001 before the pool goes.
	a.closer = append(a.closer, func(ctx context.Context) {
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
		a.closer = append(a.closer, stop)
	}
	srv := api.New(api.Config{
		RateLimits: api.RateLimits{ClientIP: clientIP, Disabled: !cfg.RateLimits},
		Middleware: []echo.MiddlewareFunc{httpMetrics.Middleware},
		Store:      db,
		Log:        log,
		AdminToken: cfg.AdminToken,
		WebSocket:  hub,
		Ready:      map[string]api.Check{"listener": hub.Ready},
		Metrics:    promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Web:        web.Handler(),
	})
	a.http = api.NewHTTPServer(cfg.Addr, srv)
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.shutdown()
		return nil, err
	}
	a.lis = lis
	return a, nil
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

// shutdown stops accepting, closes WebSocket sessions with 1001, lets
// requests finish, then closes the rest in reverse order of creation, all
// within one deadline.
func (a *app) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if a.http != nil && a.lis != nil {
		// Hijacked WebSocket connections are not the http.Server's to
		// close: end them first, or Shutdown would wait on nothing.
		if a.hub != nil {
			if err := a.hub.Shutdown(ctx); err != nil {
				a.log.Warn().Err(err).Msg("realtime shutdown")
			}
		}
		if err := a.http.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn().Err(err).Msg("http shutdown")
		}
	}
	for i := len(a.closer) - 1; i >= 0; i-- {
		a.closer[i](ctx)
	}
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
