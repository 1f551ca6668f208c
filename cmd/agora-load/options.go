package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// options is one run's configuration.
type options struct {
	// Label names the scenario in logs, profiles and the bench report.
	Label string `json:"-"`

	ServerBin   string
	ServerFlags []string
	URL         string
	AdminToken  string
	ServerPID   int
	Pin         bool
	// RateLimits: the server limits registrations, posts and comments, so
	// the tool spreads them over source addresses and users. A server the
	// tool starts runs without them (AGORA_RATE_LIMITS=false) unless
	// --server-rate-limits; a --url server is assumed to have them.
	RateLimits bool
	// TenantQuota: the servers the tool starts keep serve's tenant write
	// quota (100 writes/s per tenant, 8 in flight), which holds with the
	// rate limits off too. Only the tenants scenario, which measures the
	// quota, wants it; every other run gets liftedQuotaEnv, or its one
	// tenant's writes would measure the quota (429s, writes queued).
	TenantQuota bool

	Subscribers int
	Rooms       int
	WriteRooms  int
	Writers     int
	Rate        float64
	Duration    time.Duration
	MaxComments int
	BodyBytes   int
	Users       int
	SubUsers    int
	SourceIPs   int
	ConnectConc int
	Settle      time.Duration
	Drain       time.Duration

	Baseline bool
	// Repeat measures Agora and the baseline this many times, in
	// interleaved pairs (with --baseline).
	Repeat     int
	JSON       bool
	ProfileDir string
	HeapOnly   bool // with ProfileDir: the idle heap profile, no CPU profile

	ToolProfile string

	// JoinStorm is "small,large": distinct users joining one room at once,
	// each size Pairs times, interleaved.
	JoinStorm string
	Pairs     int
	// Reconnect: N subscribers over R rooms lose their instance and all
	// resume on another at once, against one keeping no recent events.
	Reconnect bool
	// Idle: connect N to Agora and to bare melody, interleaved over
	// pairs, for memory per idle connection and connect time.
	Idle bool

	DB           bool
	Pgbench      string
	PgbenchTime  time.Duration
	PgbenchConns int

	// Tenants runs the tenants scenario (tenants.go) in the bench.
	Tenants bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func defaultOptions() options {
	return options{
		ServerBin:    ".agora/bin/agora",
		Subscribers:  1000,
		Rooms:        1,
		Writers:      8,
		Rate:         5,
		Duration:     10 * time.Second,
		MaxComments:  20000,
		BodyBytes:    300,
		ConnectConc:  64,
		Settle:       2 * time.Second,
		Drain:        15 * time.Second,
		Pgbench:      "/usr/lib/postgresql/15/bin/pgbench",
		PgbenchTime:  10 * time.Second,
		PgbenchConns: 32,
		Pairs:        3,
	}
}

func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.ServerBin, "server-bin", o.ServerBin, "agora binary to start (`task build` makes it)")
	fs.Var((*stringList)(&o.ServerFlags), "server-flag", "extra argument for `agora serve` (repeatable)")
	fs.StringVar(&o.URL, "url", o.URL, "target a running server at this loopback URL instead of starting one")
	fs.StringVar(&o.AdminToken, "admin-token", o.AdminToken, "the running server's operator token (with --url)")
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "PID of the --url server, for its RSS and CPU figures")
	fs.BoolVar(&o.RateLimits, "server-rate-limits", o.RateLimits, "start the server with its rate limits on (the tool then spreads its writes over enough users)")
	fs.BoolVar(&o.TenantQuota, "server-tenant-quota", o.TenantQuota, "start the server with serve's tenant write quota (otherwise it gets one the writers cannot reach)")
	fs.BoolVar(&o.Pin, "pin", o.Pin, "pin the servers to CPU 0 (taskset -c 0) and this tool to the other CPUs")
	fs.IntVar(&o.Subscribers, "subscribers", o.Subscribers, "WebSocket subscribers (N)")
	fs.IntVar(&o.Rooms, "rooms", o.Rooms, "rooms (posts) the subscribers are spread over (R)")
	fs.IntVar(&o.WriteRooms, "write-rooms", o.WriteRooms, "write only to the first K rooms; the rest are bystanders (0: all)")
	fs.IntVar(&o.Writers, "writers", o.Writers, "concurrent REST writers (W)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "total comments per second (0: as fast as the writers go)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "length of the write phase")
	fs.IntVar(&o.MaxComments, "max-comments", o.MaxComments, "most comments the write phase posts")
	fs.IntVar(&o.BodyBytes, "body-bytes", o.BodyBytes, "comment body size in bytes")
	fs.IntVar(&o.Users, "users", o.Users, "users to register (0: enough for the writers' rate limits and the rooms)")
	fs.IntVar(&o.SubUsers, "subscriber-users", o.SubUsers, "distinct users the subscribers sign in as (0: 50, or enough for the server's 20 WebSockets per user)")
	fs.IntVar(&o.SourceIPs, "source-ips", o.SourceIPs, "loopback source addresses 127.0.0.1..k for the subscribers (0: one per 2,500)")
	fs.IntVar(&o.ConnectConc, "connect-concurrency", o.ConnectConc, "WebSocket handshakes in flight at once")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "pause after connecting, before the idle RSS reading")
	fs.DurationVar(&o.Drain, "drain-timeout", o.Drain, "longest wait for deliveries after the last write")
	fs.BoolVar(&o.Baseline, "baseline", o.Baseline, "also measure a bare melody broadcast server and print ratios")
	fs.IntVar(&o.Repeat, "repeat", o.Repeat, "with --baseline: this many interleaved pairs of Agora and bare melody (median and spread in the bench report)")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON")
	fs.StringVar(&o.ProfileDir, "profile-dir", o.ProfileDir, "save CPU profiles of the write phase here (servers with a pprof endpoint)")
	fs.StringVar(&o.ToolProfile, "tool-cpuprofile", o.ToolProfile, "write this tool's own CPU profile here (is the load generator the bottleneck?)")
	fs.StringVar(&o.JoinStorm, "join-storm", o.JoinStorm, "join storms of `small,large` distinct signed-in users in one room (e.g. 1500,3000): presence bytes per client, interleaved over --pairs")
	fs.BoolVar(&o.Reconnect, "reconnect-storm", o.Reconnect, "a reconnect storm: the subscribers' instance is killed and they all resume with since on another, against one keeping no recent events in memory, interleaved over --pairs")
	fs.BoolVar(&o.Idle, "idle", o.Idle, "connect --subscribers to Agora and to bare melody, interleaved over --pairs: memory per idle connection and connect time")
	fs.IntVar(&o.Pairs, "pairs", o.Pairs, "interleaved pairs of measurements for --join-storm, --reconnect-storm, --idle and --db (median and spread; --db's default is 1)")
	fs.BoolVar(&o.DB, "db", o.DB, "measure REST comment writes/s (no subscribers) against pgbench on the same cluster")
	fs.StringVar(&o.Pgbench, "pgbench", o.Pgbench, "pgbench binary (with --db)")
	fs.DurationVar(&o.PgbenchTime, "pgbench-duration", o.PgbenchTime, "pgbench run length (with --db, at most 20s)")
	fs.IntVar(&o.PgbenchConns, "pgbench-clients", o.PgbenchConns, "pgbench clients (with --db)")
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("agora-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs)
	dbSet, pairsSet := false, false
	if err := fs.Parse(args); err != nil {
		return o, usageError(err.Error())
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "writers" || f.Name == "rooms" || f.Name == "rate" {
			dbSet = true
		}
		pairsSet = pairsSet || f.Name == "pairs"
	})
	if fs.NArg() > 0 {
		return o, usageError("unexpected arguments: " + strings.Join(fs.Args(), " "))
	}
	if o.DB && !dbSet {
		// The DB comparison's standard shape: 32 writers as fast as they
		// go over 100 posts.
		o.Writers, o.Rooms, o.Rate = 32, 100, 0
	}
	if o.DB && !pairsSet {
		// One REST run and one pgbench run, unless asked for pairs.
		o.Pairs = 1
	}
	return o, o.validate()
}

// validate bounds every run and keeps it on loopback.
func (o *options) validate() error {
	if o.WriteRooms == 0 {
		o.WriteRooms = o.Rooms
	}
	switch {
	case o.Subscribers < 0 || (o.Subscribers == 0 && !o.DB):
		return usageError("--subscribers must be positive")
	case o.Rooms < 1:
		return usageError("--rooms must be positive")
	case o.WriteRooms < 0 || o.WriteRooms > o.Rooms:
		return usageError("--write-rooms must be 0 (all) to --rooms")
	case o.Writers < 1:
		return usageError("--writers must be positive")
	case o.Rate < 0:
		return usageError("--rate must not be negative")
	case o.Duration <= 0 || o.Duration > 10*time.Minute:
		return usageError("--duration must be positive and at most 10m")
	case o.MaxComments < 1:
		return usageError("--max-comments must be positive")
	case o.BodyBytes < 64 || o.BodyBytes > 20000:
		return usageError("--body-bytes must be 64 to 20000 (the comment limit)")
	case o.Drain <= 0 || o.Drain > 5*time.Minute:
		return usageError("--drain-timeout must be positive and at most 5m")
	case o.ConnectConc < 1:
		return usageError("--connect-concurrency must be positive")
	case o.PgbenchTime <= 0 || o.PgbenchTime > 20*time.Second:
		return usageError("--pgbench-duration must be positive and at most 20s")
	case o.SubUsers < 0:
		return usageError("--subscriber-users must not be negative")
	case o.SubUsers > 0 && o.SubUsers < perUserNeed(o.Subscribers):
		return usageError(fmt.Sprintf("--subscriber-users %d: the server lets a user hold %d WebSockets, so %d subscribers need at least %d users",
			o.SubUsers, maxSocketsPerUser, o.Subscribers, perUserNeed(o.Subscribers)))
	case o.Repeat < 0 || o.Repeat > 9:
		return usageError("--repeat must be 0 to 9")
	case o.Pairs < 1 || o.Pairs > 9:
		return usageError("--pairs must be 1 to 9")
	}
	if o.Idle && (o.URL != "" || o.JoinStorm != "" || o.DB || o.Reconnect) {
		return usageError("--idle needs the servers the tool starts, and goes alone")
	}
	if o.Reconnect && (o.URL != "" || o.JoinStorm != "" || o.DB) {
		return usageError("--reconnect-storm needs the servers the tool starts, and goes alone")
	}
	if o.JoinStorm != "" {
		sizes := o.stormSizes()
		if len(sizes) != 2 || sizes[0] < 1 || sizes[1] <= sizes[0] || sizes[1] > min(maxSubscribers(), 20000) {
			return usageError(fmt.Sprintf("--join-storm %q: want small,large with 0 < small < large <= %d", o.JoinStorm, min(maxSubscribers(), 20000)))
		}
		if o.URL != "" {
			return usageError("--join-storm needs the server the tool starts; it does not take --url")
		}
	}
	if o.URL != "" {
		o.RateLimits = true
		if err := checkLoopbackURL(o.URL); err != nil {
			return err
		}
		if o.AdminToken == "" {
			return usageError("--url needs --admin-token to create the run's tenant")
		}
		if o.DB {
			return usageError("--db needs the cluster the tool starts; it does not take --url")
		}
	}
	if o.Subscribers > maxSubscribers() {
		return usageError(fmt.Sprintf("--subscribers %d: this process may open %d files; the practical top is %d",
			o.Subscribers, fileLimit(), maxSubscribers()))
	}
	return nil
}

// maxSocketsPerUser is the server's quota of WebSockets per user and
// tenant (API.md).
const maxSocketsPerUser = 20

func perUserNeed(subscribers int) int {
	return (subscribers + maxSocketsPerUser - 1) / maxSocketsPerUser
}

// subUsers is how many distinct users the subscribers sign in as.
func (o options) subUsers() int {
	if o.SubUsers > 0 {
		return o.SubUsers
	}
	return max(50, perUserNeed(o.Subscribers))
}

// stormSizes parses --join-storm; nil if it does not parse.
func (o options) stormSizes() []int {
	var out []int
	for _, f := range strings.Split(o.JoinStorm, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// checkLoopbackURL refuses anything but http(s) to 127.0.0.0/8 or localhost.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError(fmt.Sprintf("--url %q: want http://127.0.0.1:PORT", raw))
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return usageError(fmt.Sprintf("--url %q: this tool only talks to 127.0.0.0/8", raw))
	}
	return nil
}

// commandLine renders the options as the flags that reproduce them.
func (o options) commandLine() string {
	d := defaultOptions()
	var b strings.Builder
	b.WriteString(".agora/bin/agora-load")
	add := func(name, v string) { fmt.Fprintf(&b, " --%s %s", name, v) }
	if o.DB {
		b.WriteString(" --db")
	}
	if o.Idle {
		b.WriteString(" --idle")
		add("subscribers", strconv.Itoa(o.Subscribers))
		add("rooms", strconv.Itoa(o.Rooms))
		add("pairs", strconv.Itoa(o.Pairs))
		if o.Pin {
			b.WriteString(" --pin")
		}
		return b.String()
	}
	if o.Reconnect {
		b.WriteString(" --reconnect-storm")
		add("subscribers", strconv.Itoa(o.Subscribers))
		add("rooms", strconv.Itoa(o.Rooms))
		add("pairs", strconv.Itoa(o.Pairs))
		if o.Pin {
			b.WriteString(" --pin")
		}
		return b.String()
	}
	if o.JoinStorm != "" {
		add("join-storm", o.JoinStorm)
		add("pairs", strconv.Itoa(o.Pairs))
		if o.Pin {
			b.WriteString(" --pin")
		}
		return b.String()
	}
	if o.URL != "" {
		// The token is a secret: the command names it, never shows it.
		add("url", o.URL)
		add("admin-token", `"$AGORA_ADMIN_TOKEN"`)
		if o.ServerPID > 0 {
			add("server-pid", strconv.Itoa(o.ServerPID))
		}
	} else if o.ServerBin != d.ServerBin {
		add("server-bin", o.ServerBin)
	}
	for _, f := range o.ServerFlags {
		add("server-flag", f)
	}
	if o.Pin {
		b.WriteString(" --pin")
	}
	if o.RateLimits && o.URL == "" {
		b.WriteString(" --server-rate-limits")
	}
	if o.TenantQuota && o.URL == "" {
		b.WriteString(" --server-tenant-quota")
	}
	if !o.DB {
		add("subscribers", strconv.Itoa(o.Subscribers))
	}
	add("rooms", strconv.Itoa(o.Rooms))
	if o.WriteRooms > 0 && o.WriteRooms != o.Rooms {
		add("write-rooms", strconv.Itoa(o.WriteRooms))
	}
	add("writers", strconv.Itoa(o.Writers))
	add("rate", strconv.FormatFloat(o.Rate, 'f', -1, 64))
	add("duration", o.Duration.String())
	add("max-comments", strconv.Itoa(o.MaxComments))
	if o.BodyBytes != d.BodyBytes {
		add("body-bytes", strconv.Itoa(o.BodyBytes))
	}
	if o.Users != 0 {
		add("users", strconv.Itoa(o.Users))
	}
	if o.DB {
		add("pgbench-duration", o.PgbenchTime.String())
		add("pgbench-clients", strconv.Itoa(o.PgbenchConns))
		if o.Pairs > 1 {
			add("pairs", strconv.Itoa(o.Pairs))
		}
	}
	if o.Baseline {
		b.WriteString(" --baseline")
	}
	if o.Repeat > 1 {
		add("repeat", strconv.Itoa(o.Repeat))
	}
	return b.String()
}
