package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// usageError is a mistake in the command line or the environment: main
// prints it with the usage text and exits 2.
type usageError string

func (e usageError) Error() string { return string(e) }

// config is everything the subcommands read from flags and environment.
type config struct {
	DatabaseURL    string
	MigrateURL     string
	AllowOwner     bool
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
	SplitLimits    bool
	TenantWrites   int
	TenantBurst    int
	TenantSlots    int
	TenantWait     time.Duration
	HistoryEvents  int64
	Heartbeat      time.Duration
	HistoryAge     time.Duration
	DBMaxConns     int
	DBAcquireWait  time.Duration
	HashSlots      int
	// TenantMaxSessions is each tenant's WebSocket quota on an instance.
	TenantMaxSessions int
	// HistoryMemoryEvents and HistoryMemoryMB bound the recent events each
	// instance keeps in memory for resumes, per room and in all.
	HistoryMemoryEvents int
	HistoryMemoryMB     int
	SeedDemo            bool
	AutoMigrate         bool
}

// parseConfig reads the flags of one subcommand, each defaulting to its
// environment variable. A variable that does not parse is a usage error
// naming it, never a silent fallback to the default.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	env := envReader{getenv: getenv}
	var c config
	fs := flag.NewFlagSet("agora "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Secrets take no default from the environment here: flag help and
	// usage errors print defaults, and must not print passwords.
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL of the serving role, which should own nothing (DATABASE_URL); empty with no migrate URL: a private cluster under the data dir")
	fs.StringVar(&c.MigrateURL, "migrate-database-url", "", "PostgreSQL URL of the role that owns the schema, for migrations; they grant the serving role its rights (AGORA_MIGRATE_DATABASE_URL); empty: DATABASE_URL")
	fs.BoolVar(&c.AllowOwner, "allow-owner", env.boolean("AGORA_ALLOW_OWNER", false), "serve even when the serving role owns the schema, for a single-role setup, with a warning (AGORA_ALLOW_OWNER)")
	fs.StringVar(&c.DataDir, "data-dir", env.str("AGORA_DATA_DIR", ".agora"), "where the private cluster lives (AGORA_DATA_DIR)")
	fs.StringVar(&c.Addr, "addr", env.str("AGORA_ADDR", ":8080"), "listen address (AGORA_ADDR)")
	fs.StringVar(&c.AdminAddr, "admin-addr", getenv("AGORA_ADMIN_ADDR"), "pprof listen address, loopback only by default; empty: off (AGORA_ADMIN_ADDR)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "operator token for /api/v1/tenants; empty: disabled (AGORA_ADMIN_TOKEN)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", getenv("AGORA_TRUSTED_PROXIES"), "CIDRs of reverse proxies whose X-Forwarded-For is believed, comma-separated; empty: the TCP peer is the client (AGORA_TRUSTED_PROXIES)")
	fs.StringVar(&c.LogLevel, "log-level", env.str("AGORA_LOG_LEVEL", "info"), "debug|info|warn|error (AGORA_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", getenv("AGORA_LOG_FORMAT"), "json|console; default: console on a terminal, else json (AGORA_LOG_FORMAT)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", getenv("AGORA_ALLOWED_ORIGINS"), "extra WebSocket origins, comma-separated (AGORA_ALLOWED_ORIGINS)")
	fs.DurationVar(&c.PingInterval, "ws-ping-interval", env.duration("AGORA_WS_PING_INTERVAL", 20*time.Second), "how often WebSocket clients are pinged (AGORA_WS_PING_INTERVAL)")
	fs.DurationVar(&c.PongTimeout, "ws-pong-timeout", env.duration("AGORA_WS_PONG_TIMEOUT", 30*time.Second), "a client silent this long after a ping is dropped (AGORA_WS_PONG_TIMEOUT)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", env.integer("AGORA_DB_MAX_CONNS", 16), "database connections per instance (AGORA_DB_MAX_CONNS)")
	fs.DurationVar(&c.DBAcquireWait, "db-acquire-timeout", env.duration("AGORA_DB_ACQUIRE_TIMEOUT", 3*time.Second), "longest wait for a free database connection before a request is answered 503 (AGORA_DB_ACQUIRE_TIMEOUT)")
	fs.IntVar(&c.HashSlots, "hash-concurrency", env.integer("AGORA_HASH_CONCURRENCY", runtime.NumCPU()), "password hashes (19 MiB each) running at once; more wait up to 3 s, then 503 (AGORA_HASH_CONCURRENCY)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", env.duration("AGORA_HEARTBEAT", 5*time.Second), "how often this instance tells the others it is alive; three missed ones and its users leave presence everywhere (AGORA_HEARTBEAT)")
	fs.Int64Var(&c.HistoryEvents, "history-events", int64(env.integer("AGORA_HISTORY_EVENTS", 10000)), "events kept per room for resume (AGORA_HISTORY_EVENTS)")
	fs.IntVar(&c.HistoryMemoryEvents, "history-memory-events", env.integer("AGORA_HISTORY_MEMORY_EVENTS", 1000), "recent events each room keeps in memory, so that most resumes need no query; 0: none (AGORA_HISTORY_MEMORY_EVENTS)")
	fs.IntVar(&c.HistoryMemoryMB, "history-memory-mb", env.integer("AGORA_HISTORY_MEMORY_MB", 64), "MiB of recent events all rooms keep in memory together (AGORA_HISTORY_MEMORY_MB)")
	fs.DurationVar(&c.HistoryAge, "history-age", env.duration("AGORA_HISTORY_AGE", 7*24*time.Hour), "oldest event kept for resume (AGORA_HISTORY_AGE)")
	fs.IntVar(&c.TenantMaxSessions, "tenant-max-sessions", env.integer("AGORA_TENANT_MAX_SESSIONS", 10000), "most WebSockets one tenant may hold open on this instance; past it upgrades get 429, with or without rate limits (AGORA_TENANT_MAX_SESSIONS)")
	fs.BoolVar(&c.RateLimits, "rate-limits", env.boolean("AGORA_RATE_LIMITS", true), "limit writes, logins and registrations per user and address; off only for load tests (AGORA_RATE_LIMITS)")
	fs.BoolVar(&c.SplitLimits, "split-rate-limits", env.boolean("AGORA_SPLIT_RATE_LIMITS", true), "divide each per-user and per-address limit by the number of live instances, so it holds across a load balancer that spreads a client's requests; false behind one that keeps each client on one instance (AGORA_SPLIT_RATE_LIMITS)")
	fs.IntVar(&c.TenantWrites, "tenant-write-rate", env.integer("AGORA_TENANT_WRITE_RATE", 100), "writes per second one tenant may make across all instances, whatever its users' own limits; past it 429; 0: no limit (AGORA_TENANT_WRITE_RATE)")
	fs.IntVar(&c.TenantBurst, "tenant-write-burst", env.integer("AGORA_TENANT_WRITE_BURST", 0), "writes one tenant may make at once above its rate; 0: five seconds of the rate (AGORA_TENANT_WRITE_BURST)")
	fs.IntVar(&c.TenantSlots, "tenant-write-slots", env.integer("AGORA_TENANT_WRITE_SLOTS", 0), "writes of one tenant running at once on this instance; 0: half of --db-max-conns (AGORA_TENANT_WRITE_SLOTS)")
	fs.DurationVar(&c.TenantWait, "tenant-write-wait", env.duration("AGORA_TENANT_WRITE_WAIT", time.Second), "longest a write waits for one of its tenant's slots; then 503 (AGORA_TENANT_WRITE_WAIT)")
	fs.BoolVar(&c.SeedDemo, "seed-demo", env.boolean("AGORA_SEED_DEMO", false), "create a demo tenant with an admin if missing (AGORA_SEED_DEMO)")
	fs.BoolVar(&c.AutoMigrate, "migrate", env.boolean("AGORA_AUTO_MIGRATE", true), "apply pending migrations at start (AGORA_AUTO_MIGRATE)")
	if env.err != nil {
		return c, nil, env.err
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, usageError(err.Error())
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = getenv("DATABASE_URL")
	}
	if c.MigrateURL == "" {
		c.MigrateURL = getenv("AGORA_MIGRATE_DATABASE_URL")
	}
	if c.AdminToken == "" {
		c.AdminToken = getenv("AGORA_ADMIN_TOKEN")
	}
	if c.HistoryMemoryEvents < 0 || c.HistoryMemoryMB < 1 {
		return c, nil, usageError("the recent events kept in memory must be 0 or more per room and at least 1 MiB in all")
	}
	if c.TenantMaxSessions < 1 {
		return c, nil, usageError("the tenant session quota must be at least 1")
	}
	if c.PingInterval <= 0 || c.PongTimeout <= c.PingInterval {
		return c, nil, usageError("the WebSocket pong timeout must be longer than the ping interval, both positive")
	}
	if err := c.resolveTenantQuota(); err != nil {
		return c, nil, err
	}
	return c, fs.Args(), nil
}

// resolveTenantQuota checks the tenant quota settings and fills in the
// defaults that depend on others.
func (c *config) resolveTenantQuota() error {
	switch {
	case c.TenantWrites < 0 || c.TenantBurst < 0 || c.TenantSlots < 0:
		return usageError("the tenant write rate, burst and slots must not be negative")
	case c.TenantWait <= 0:
		return usageError("the tenant write wait must be positive")
	}
	if c.TenantBurst == 0 {
		c.TenantBurst = 5 * c.TenantWrites
	}
	if c.TenantSlots == 0 {
		pool := c.DBMaxConns
		if pool <= 0 {
			pool = 16 // store.Open's default
		}
		c.TenantSlots = max(pool/2, 1)
	}
	return nil
}

// envReader reads typed environment variables and keeps the first one
// that does not parse, so a typo stops the program with its name.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

func (e *envReader) bad(key, v, want string) {
	if e.err == nil {
		e.err = usageError(fmt.Sprintf("%s=%q: want %s", key, v, want))
	}
}

func (e *envReader) integer(key string, def int) int {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.bad(key, v, "a whole number")
		return def
	}
	return n
}

func (e *envReader) duration(key string, def time.Duration) time.Duration {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.bad(key, v, "a duration such as 20s or 5m")
		return def
	}
	return d
}

func (e *envReader) boolean(key string, def bool) bool {
	v := e.getenv(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.bad(key, v, "true or false")
		return def
	}
	return b
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
