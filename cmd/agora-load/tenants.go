package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The tenants scenario (issue 12, item 8): tenant A floods the write path
// while tenant B writes at a modest rate, and B's REST latency is compared
// with B's alone, in interleaved rounds on the same server with its
// default tenant quota. Each round also runs the same flood against a
// server with the quota off, to show what the quota is protecting from.
//
//	agora-load tenants [flags]

type tenantsOptions struct {
	ServerBin    string        `json:"-"`
	Rounds       int           `json:"rounds"`
	Cycles       int           `json:"cycles"`
	Phase        time.Duration `json:"phase_ns"`
	Head         time.Duration `json:"flood_head_start_ns"`
	BRate        float64       `json:"b_rate"`
	BPosts       int           `json:"b_posts"`
	FloodRate    float64       `json:"flood_rate"`
	FloodWriters int           `json:"flood_writers"`
	FloodPosts   int           `json:"flood_posts"`
	NoQuota      bool          `json:"no_quota_comparison"`
	DBConns      int           `json:"db_max_conns"`
	QuotaRate    int           `json:"quota_rate"`
	QuotaBurst   int           `json:"quota_burst"`
	JSON         bool          `json:"-"`
}

func defaultTenantsOptions() tenantsOptions {
	return tenantsOptions{ServerBin: defaultOptions().ServerBin, Rounds: 3, Cycles: 3, Phase: 15 * time.Second, Head: 2 * time.Second,
		BRate: 40, BPosts: 10, FloodRate: 1000, FloodWriters: 64, FloodPosts: 50, NoQuota: true, DBConns: 16,
		QuotaRate: 100, QuotaBurst: 500}
}

func (o *tenantsOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.ServerBin, "server-bin", o.ServerBin, "agora binary to start")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "rounds, each on a fresh server, each giving one ratio")
	fs.IntVar(&o.Cycles, "cycles", o.Cycles, "alternations of B alone and B during the flood in each round")
	fs.DurationVar(&o.Phase, "phase", o.Phase, "how long B's latency is measured alone, and during the flood, in each round (over all cycles)")
	fs.DurationVar(&o.Head, "flood-head-start", o.Head, "how long each segment runs before B's latencies count (during the flood: while A spends the burst it saved; reported apart, as the onset)")
	fs.Float64Var(&o.BRate, "b-rate", o.BRate, "tenant B's comments per second (open loop)")
	fs.IntVar(&o.BPosts, "b-posts", o.BPosts, "posts tenant B's comments are spread over")
	fs.Float64Var(&o.FloodRate, "flood-rate", o.FloodRate, "comments per second tenant A offers (0: as fast as its writers go)")
	fs.IntVar(&o.FloodWriters, "flood-writers", o.FloodWriters, "tenant A's concurrent writers")
	fs.IntVar(&o.FloodPosts, "flood-posts", o.FloodPosts, "posts tenant A's comments are spread over (one post's row lock would serialise them)")
	fs.BoolVar(&o.NoQuota, "no-quota-comparison", o.NoQuota, "also run each round's flood against a server with the tenant quota off")
	fs.IntVar(&o.DBConns, "db-max-conns", o.DBConns, "the servers' database pool (the quota's slots are half of it)")
	fs.IntVar(&o.QuotaRate, "quota-rate", o.QuotaRate, "the quota server's --tenant-write-rate (serve's default)")
	fs.IntVar(&o.QuotaBurst, "quota-burst", o.QuotaBurst, "the quota server's --tenant-write-burst (serve's default: five seconds of the rate)")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON")
}

func (o tenantsOptions) validate() error {
	switch {
	case o.Rounds < 1 || o.Rounds > 10 || o.Cycles < 1 || o.Cycles > 20:
		return usageError("--rounds must be 1 to 10, --cycles 1 to 20")
	case o.Phase <= 0 || o.Phase > 2*time.Minute || o.Head < 0 || o.Head > time.Minute:
		return usageError("--phase must be positive and at most 2m, --flood-head-start 0 to 1m")
	case o.BRate <= 0 || o.BRate > 500 || o.FloodRate < 0:
		return usageError("--b-rate must be positive and at most 500, --flood-rate not negative")
	case o.FloodWriters < 1 || o.FloodWriters > 512 || o.BPosts < 1 || o.FloodPosts < 1 || o.DBConns < 2:
		return usageError("--flood-writers 1 to 512, --b-posts and --flood-posts positive, --db-max-conns at least 2")
	case o.QuotaRate < 1 || o.QuotaBurst < 1:
		return usageError("--quota-rate and --quota-burst must be positive")
	}
	return nil
}

func (o tenantsOptions) commandLine() string {
	d := defaultTenantsOptions()
	var b strings.Builder
	b.WriteString(".agora/bin/agora-load tenants")
	add := func(changed bool, name, v string) {
		if changed {
			fmt.Fprintf(&b, " --%s %s", name, v)
		}
	}
	add(o.ServerBin != d.ServerBin, "server-bin", o.ServerBin)
	add(true, "rounds", strconv.Itoa(o.Rounds))
	add(o.Cycles != d.Cycles, "cycles", strconv.Itoa(o.Cycles))
	add(true, "phase", o.Phase.String())
	add(o.Head != d.Head, "flood-head-start", o.Head.String())
	add(true, "b-rate", strconv.FormatFloat(o.BRate, 'f', -1, 64))
	add(true, "flood-rate", strconv.FormatFloat(o.FloodRate, 'f', -1, 64))
	add(o.FloodWriters != d.FloodWriters, "flood-writers", strconv.Itoa(o.FloodWriters))
	add(o.BPosts != d.BPosts, "b-posts", strconv.Itoa(o.BPosts))
	add(o.FloodPosts != d.FloodPosts, "flood-posts", strconv.Itoa(o.FloodPosts))
	add(!o.NoQuota, "no-quota-comparison", "false")
	add(o.DBConns != d.DBConns, "db-max-conns", strconv.Itoa(o.DBConns))
	add(o.QuotaRate != d.QuotaRate, "quota-rate", strconv.Itoa(o.QuotaRate))
	add(o.QuotaBurst != d.QuotaBurst, "quota-burst", strconv.Itoa(o.QuotaBurst))
	return b.String()
}

// TenantsPhase is B's latency in one phase, and what A's flood got.
type TenantsPhase struct {
	Round int    `json:"round"`
	Kind  string `json:"kind"` // alone, flood, flood without quota
	// B is tenant B's REST latency over the measured window; Onset over
	// the flood's head start, before it.
	B       Latency        `json:"b_rest"`
	Onset   Latency        `json:"b_rest_onset"`
	BFailed map[string]int `json:"b_failed,omitempty"`
	// A's flood over head start and window.
	ASeconds float64        `json:"a_seconds"`
	AOK      int            `json:"a_ok"`
	ARefused map[string]int `json:"a_refused,omitempty"`
	// CPU over the phase, in cores: the machine is shared, and a phase
	// other processes crowded shows it here.
	BusyPct     float64 `json:"machine_busy_pct"`
	ServerCores float64 `json:"server_cores"`
	PgCores     float64 `json:"postgres_cores"`
	ToolCores   float64 `json:"tool_cores"`
	OthersCores float64 `json:"others_cores"`
}

// TenantsReport is the scenario's outcome.
type TenantsReport struct {
	Command string         `json:"command"`
	Options tenantsOptions `json:"options"`
	Phases  []TenantsPhase `json:"phases"`
	// Ratios: per round, B's p99 during the flood / alone.
	Ratios        []float64 `json:"p99_ratios"`
	NoQuotaRatios []float64 `json:"p99_ratios_without_quota,omitempty"`
	// P95Ratios: the same at p95, steadier on a shared machine.
	P95Ratios []float64 `json:"p95_ratios"`
}

const targetTenantP99 = 1.5

func tenantsMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := defaultTenantsOptions()
	fs := flag.NewFlagSet("agora-load tenants", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.flags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if err := o.validate(); err != nil {
		return err
	}
	raiseFileLimit()
	e, err := newEnv(ctx, stderr)
	if err != nil {
		return err
	}
	defer e.close(stderr)
	rep, err := runTenants(ctx, o, e, stderr)
	if rep != nil {
		if o.JSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintln(stdout, string(b))
		} else {
			writeTenants(stdout, rep)
		}
	}
	return err
}

func runTenants(ctx context.Context, o tenantsOptions, e *env, logw io.Writer) (*TenantsReport, error) {
	rep := &TenantsReport{Command: o.commandLine(), Options: o}
	withQuota, without := tenantsServers(o)
	a, b, err := tenantsSetup(ctx, o, e, withQuota, logw)
	if err != nil {
		return nil, err
	}
	for round := 1; round <= o.Rounds; round++ {
		if err := tenantsRound(ctx, o, e, rep, round, a, b, withQuota, without, logw); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// tenantsServers are the options of the scenario's servers: with the
// quota it measures, and without it for comparison. Both keep serve's
// quota settings (TenantQuota) and set theirs with flags, so the other
// scenarios' lifted quota never reaches them.
func tenantsServers(o tenantsOptions) (withQuota, without options) {
	pool := "--db-max-conns=" + strconv.Itoa(o.DBConns)
	withQuota = defaultOptions()
	withQuota.ServerBin, withQuota.Label, withQuota.TenantQuota = o.ServerBin, "tenants", true
	withQuota.ServerFlags = []string{pool, "--tenant-write-rate=" + strconv.Itoa(o.QuotaRate),
		"--tenant-write-burst=" + strconv.Itoa(o.QuotaBurst), "--tenant-write-slots=" + strconv.Itoa(o.DBConns/2)}
	without = withQuota
	without.ServerFlags = []string{pool, "--tenant-write-rate=0", "--tenant-write-slots=" + strconv.Itoa(o.DBConns)}
	return withQuota, without
}

// tenantsSetup creates the two tenants, their users and posts on a server
// of their own: registration's argon2id garbage stays out of the rounds.
func tenantsSetup(ctx context.Context, o tenantsOptions, e *env, srvOpts options, logw io.Writer) (a, b *forum, err error) {
	srv, err := startAgora(ctx, srvOpts, e, logw)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = srv.stop() }()
	if a, err = setupForum(ctx, srv, 8, o.FloodPosts, logw); err != nil {
		return nil, nil, err
	}
	if b, err = setupForum(ctx, srv, 4, o.BPosts, logw); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// tenantsRound measures B alone and during A's flood on one fresh server
// with the quota, in short segments that alternate (the order flips every
// cycle and every round), so that both see the same shared machine; then
// the flood on a fresh server without the quota.
func tenantsRound(ctx context.Context, o tenantsOptions, e *env, rep *TenantsReport, round int, a, b *forum,
	withQuota, without options, logw io.Writer) error {
	var order []string
	for c := range o.Cycles {
		pair := []string{"alone", "flood"}
		if (c+round)%2 == 1 {
			slices.Reverse(pair)
		}
		order = append(order, pair...)
	}
	phases := map[string]*phaseAcc{}
	run := func(srvOpts options, kinds []string) error {
		srv, err := startAgora(ctx, srvOpts, e, logw)
		if err != nil {
			return err
		}
		defer func() { _ = srv.stop() }()
		a.base, b.base = srv.base, srv.base
		pgPID := e.postmaster()
		fmt.Fprintf(logw, "[tenants] round %d: %s\n", round, strings.Join(kinds, ", "))
		for _, k := range kinds {
			acc := phases[k]
			if acc == nil {
				acc = &phaseAcc{ph: TenantsPhase{Round: round, Kind: k, BFailed: map[string]int{}, ARefused: map[string]int{}}}
				phases[k] = acc
			}
			cpu0 := snapCPU(srv.pid, pgPID)
			tenantsSegment(ctx, o, a, b, k != "alone", acc)
			acc.cpu(cpu0, snapCPU(srv.pid, pgPID))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return nil
	}
	if err := run(withQuota, order); err != nil {
		return err
	}
	kinds := []string{"alone", "flood"}
	if o.NoQuota {
		if err := run(without, slices.Repeat([]string{"flood without quota"}, o.Cycles)); err != nil {
			return err
		}
		kinds = append(kinds, "flood without quota")
	}
	for _, k := range kinds {
		rep.Phases = append(rep.Phases, phases[k].done())
	}
	p := func(k string) Latency { return phases[k].ph.B }
	rep.Ratios = append(rep.Ratios, ratio(p("flood").P99, p("alone").P99))
	rep.P95Ratios = append(rep.P95Ratios, ratio(p("flood").P95, p("alone").P95))
	if o.NoQuota {
		rep.NoQuotaRatios = append(rep.NoQuotaRatios, ratio(p("flood without quota").P99, p("alone").P99))
	}
	return nil
}

// phaseAcc pools one kind of segment of a round.
type phaseAcc struct {
	ph            TenantsPhase
	window, onset []int32
	// CPU clocks summed over the segments.
	wall, busy, total, server, pg, tool time.Duration
}

func (acc *phaseAcc) cpu(from, to cpuSnap) {
	acc.wall += to.at.Sub(from.at)
	acc.busy += to.busy - from.busy
	acc.total += to.total - from.total
	acc.server += to.server - from.server
	acc.pg += to.pg - from.pg
	acc.tool += to.tool - from.tool
}

// done is the pooled phase; its latencies are ready once this is called.
func (acc *phaseAcc) done() TenantsPhase {
	slices.Sort(acc.onset)
	slices.Sort(acc.window)
	acc.ph.Onset, acc.ph.B = latencyMS(acc.onset), latencyMS(acc.window)
	if w := acc.wall.Seconds(); w > 0 && acc.total > 0 {
		acc.ph.BusyPct = 100 * acc.busy.Seconds() / acc.total.Seconds()
		acc.ph.ServerCores, acc.ph.PgCores, acc.ph.ToolCores = acc.server.Seconds()/w, acc.pg.Seconds()/w, acc.tool.Seconds()/w
		acc.ph.OthersCores = max(acc.busy-acc.server-acc.pg-acc.tool, 0).Seconds() / w
	}
	return acc.ph
}

// tenantsSegment runs B's writes for the head start and one cycle's share
// of the window, with or without A's flood over the same time, and pools
// B's latencies (split at the end of the head start) into acc.
func tenantsSegment(ctx context.Context, o tenantsOptions, a, b *forum, flood bool, acc *phaseAcc) {
	var wg sync.WaitGroup
	total := o.Head + o.Phase/time.Duration(o.Cycles)
	if flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := httpClient(nil, o.FloodWriters)
			defer c.CloseIdleConnections()
			users := newUserPool(a.users, math.Inf(1), math.Inf(1))
			wr := runWriters(ctx, o.FloodWriters, len(a.posts), len(a.posts), o.FloodRate, total, math.MaxInt32, 300,
				time.Now(), agoraWriter(a, users, c), nil)
			acc.ph.ASeconds += wr.elapsed.Seconds()
			acc.ph.AOK += wr.ok
			for k, n := range wr.errs {
				acc.ph.ARefused[k] += n
			}
		}()
	}
	c := httpClient(nil, 64)
	defer c.CloseIdleConnections()
	write := agoraWriter(b, newUserPool(b.users, math.Inf(1), math.Inf(1)), c)
	samples := paced(ctx, o.BRate, total, func(ctx context.Context, i int) (time.Duration, error) {
		return write(ctx, i%len(b.posts), i, func() []byte { return body(i%len(b.posts), i, 0, 300) })
	})
	wg.Wait()
	for _, s := range samples {
		if s.err != nil {
			acc.ph.BFailed[errKind(s.err)]++
			continue
		}
		us := int32(min(s.took.Microseconds(), math.MaxInt32))
		if s.at < o.Head {
			acc.onset = append(acc.onset, us)
		} else {
			acc.window = append(acc.window, us)
		}
	}
}

type sample struct {
	at, took time.Duration // start, since the phase's; duration
	err      error
}

// paced starts write number i at i/rate for d, each on its own goroutine:
// an open loop, so a slow answer does not hold back the next request and
// queueing shows in the latencies instead of in fewer requests.
func paced(ctx context.Context, rate float64, d time.Duration, write func(context.Context, int) (time.Duration, error)) []sample {
	var (
		mu  sync.Mutex
		out []sample
		wg  sync.WaitGroup
	)
	start := time.Now()
	for i := 0; ; i++ {
		at := time.Duration(float64(i) / rate * float64(time.Second))
		if at >= d {
			break
		}
		sleepCtx(ctx, time.Until(start.Add(at)))
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := write(ctx, i)
			mu.Lock()
			out = append(out, sample{at: at, took: took, err: err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchTenants is the scenario as a case of `agora-load bench`, on every
// core like the write path in production.
func benchTenants(ctx context.Context, bo options, e *env, logw io.Writer) (*Report, error) {
	o := benchTenantsOptions(bo)
	unpinSelf()
	defer pinSelf(logw)
	tr, err := runTenants(ctx, o, e, logw)
	if tr == nil {
		return nil, err
	}
	return &Report{Label: bo.Label, Command: tr.Command, Options: bo, Tenants: tr}, err
}

// benchTenantsOptions is the bench's tenants scenario: the defaults;
// --quick shortens its phases to the matrix's.
func benchTenantsOptions(bo options) tenantsOptions {
	o := defaultTenantsOptions()
	o.ServerBin = bo.ServerBin
	if bo.Duration < defaultOptions().Duration {
		o.Phase = bo.Duration
	}
	return o
}

func writeTenantsRuns(w io.Writer, runs []benchRun) {
	if r := find(runs, "tenants"); r != nil && r.Tenants != nil {
		writeTenants(w, r.Tenants)
	}
}

// writeTenants is the report's section, for BENCHMARKS.md or the terminal.
func writeTenants(w io.Writer, r *TenantsReport) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	o := r.Options
	p("## Tenant write quota (issue 12, item 8)\n\n")
	flood := fmt.Sprintf("offers %s comments/s", strconv.FormatFloat(o.FloodRate, 'f', -1, 64))
	if o.FloodRate == 0 {
		flood = "writes as fast as its writers go"
	}
	p("Tenant A %s (%d writers over %d posts) while tenant B writes %s comments/s over %d posts, open loop (each request on time, however slow the last); per-user rate limits off, `agora serve` unpinned with a tenant quota of %d writes/s and a burst of %d per tenant (serve's defaults) and %d of its %d database connections per tenant. ",
		flood, o.FloodWriters, o.FloodPosts, strconv.FormatFloat(o.BRate, 'f', -1, 64), o.BPosts, o.QuotaRate, o.QuotaBurst, o.DBConns/2, o.DBConns)
	p("Each round starts a fresh server and measures B for %s alone and %s during A's flood, in %d alternating segments of each (the order flips every segment pair and every round), so both see the same shared machine; every segment runs %s before B's latencies count (during the flood: while A spends the burst its quota saved up, shown apart as the onset). A round gives one ratio of B's pooled p99s. ",
		o.Phase, o.Phase, o.Cycles, o.Head)
	if o.NoQuota {
		p("Then the same flood, in the same segments, runs against a fresh server with the quota off (`--tenant-write-rate=0 --tenant-write-slots=%d`).", o.DBConns)
	}
	p("\n\n```sh\n%s\n```\n\n", r.Command)
	p("| Round | Phase | B p50 / p95 / p99 (ms) | B onset p50 / p99 (ms) | B failed | A writes ok/s | A refused | machine busy | cores: server / PostgreSQL / tool / others |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, ph := range r.Phases {
		onset, aRate, refused := "-", "-", "-"
		if ph.Kind != "alone" {
			onset = fmt.Sprintf("%.1f / %.1f", ph.Onset.P50, ph.Onset.P99)
			if ph.ASeconds > 0 {
				aRate = fmt.Sprintf("%.0f", float64(ph.AOK)/ph.ASeconds)
			}
			refused = counts(ph.ARefused)
		}
		p("| %d | %s | %.1f / %.1f / %.1f | %s | %s | %s | %s | %.0f%% | %.2f / %.2f / %.2f / %.2f |\n", ph.Round, ph.Kind, ph.B.P50, ph.B.P95, ph.B.P99,
			onset, counts(ph.BFailed), aRate, refused, ph.BusyPct, ph.ServerCores, ph.PgCores, ph.ToolCores, ph.OthersCores)
	}
	if len(r.Ratios) == 0 {
		p("\nNo round finished.\n\n")
		return
	}
	m := median(r.Ratios)
	p("\n| Target | Threshold | Measured (median of %d rounds, spread) | Result |\n|---|---|---|---|\n", len(r.Ratios))
	p("| B's REST p99 during A's flood / B's alone | ≤ %.1f× | %.2f× (%.2f× to %.2f×) | %s |\n",
		targetTenantP99, m, slices.Min(r.Ratios), slices.Max(r.Ratios), verdict(m > 0 && m <= targetTenantP99))
	if len(r.P95Ratios) > 0 {
		p("| the same at p95 (for comparison) | - | %.2f× (%.2f× to %.2f×) | - |\n",
			median(r.P95Ratios), slices.Min(r.P95Ratios), slices.Max(r.P95Ratios))
	}
	if len(r.NoQuotaRatios) > 0 {
		p("| the same without the tenant quota (for comparison) | - | %.2f× (%.2f× to %.2f×) | - |\n",
			median(r.NoQuotaRatios), slices.Min(r.NoQuotaRatios), slices.Max(r.NoQuotaRatios))
	}
	// What the flood takes from the machine, whoever else is on it: the
	// server's and PostgreSQL's CPU during the flood above B's alone.
	taken := map[string][]float64{}
	alone := map[int]float64{}
	for _, ph := range r.Phases {
		if ph.Kind == "alone" {
			alone[ph.Round] = ph.ServerCores + ph.PgCores
		}
	}
	for _, ph := range r.Phases {
		if ph.Kind != "alone" {
			taken[ph.Kind] = append(taken[ph.Kind], ph.ServerCores+ph.PgCores-alone[ph.Round])
		}
	}
	if f, n := taken["flood"], taken["flood without quota"]; len(f) > 0 {
		p("| server + PostgreSQL CPU A's flood adds to B's alone, in cores (median) | - | %.2f with the quota", median(f))
		if len(n) > 0 {
			p(", %.2f without", median(n))
		}
		p(" | - |\n")
	}
	var others []float64
	for _, ph := range r.Phases {
		if ph.Kind != "flood without quota" {
			others = append(others, ph.OthersCores)
		}
	}
	p("\nOther processes on the machine used %.2f cores on average (%.2f to %.2f) during the phases with the quota, of %d: B's p99 measures them as much as A's flood. The CPU row is the figure they do not swamp.\n\n",
		mean(others), slices.Min(others), slices.Max(others), runtime.NumCPU())
	p("\n")
}
