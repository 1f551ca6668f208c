package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency is a distribution in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// latencyMS summarises sorted microsecond samples (nearest rank).
func latencyMS(sorted []int32) Latency {
	if len(sorted) == 0 {
		return Latency{}
	}
	q := func(p float64) float64 {
		i := int(p*float64(len(sorted))+0.999999) - 1
		i = min(max(i, 0), len(sorted)-1)
		return float64(sorted[i]) / 1000
	}
	return Latency{N: len(sorted), P50: q(.50), P95: q(.95), P99: q(.99), Max: float64(sorted[len(sorted)-1]) / 1000}
}

// Phase is one server's figures in one scenario.
type Phase struct {
	Target           string            `json:"target"`
	Subscribers      int               `json:"subscribers"`
	Rooms            int               `json:"rooms"`
	ConnectSeconds   float64           `json:"connect_seconds"`
	ConnectFailed    int               `json:"connect_failed"`
	CommentsSent     int               `json:"comments_sent"`
	CommentsOK       int               `json:"comments_ok"`
	CommentsFailed   int               `json:"comments_failed"`
	WriteErrors      map[string]int    `json:"write_errors,omitempty"`
	WriteErrorSample map[string]string `json:"write_error_samples,omitempty"`
	WriteSeconds     float64           `json:"write_seconds"`
	WriteRate        float64           `json:"write_rate_per_s"`
	StarvedSeconds   float64           `json:"writers_waiting_for_rate_limit_s"`
	REST             Latency           `json:"rest_latency"`
	E2E              Latency           `json:"e2e_latency"`

	Expected      int64          `json:"expected_deliveries"`
	Deliveries    int64          `json:"deliveries"`
	Lost          int64          `json:"lost"`
	Duplicated    int64          `json:"duplicated"`
	Misrouted     int64          `json:"misrouted"`
	Unexpected    int64          `json:"unexpected"`
	Ended         map[string]int `json:"subscribers_ended_early,omitempty"`
	DrainTimedOut bool           `json:"drain_timed_out"`
	Dropped       int64          `json:"server_dropped,omitempty"` // bare melody's full-queue drops

	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	Frames           int64   `json:"frames"`
	Messages         int64   `json:"messages"`
	ErrorMessages    int64   `json:"error_messages"`
	AvgEventBytes    int     `json:"avg_event_bytes"`

	GCForced          bool    `json:"gc_forced_before_rss"`
	RSSBeforeKB       int64   `json:"rss_before_kb"`
	RSSIdleKB         int64   `json:"rss_idle_kb"`
	RSSLoadKB         int64   `json:"rss_load_kb"`
	KBPerConn         float64 `json:"kb_per_connection"`
	HeapKBPerConn     float64 `json:"heap_kb_per_connection"`
	StackKBPerConn    float64 `json:"stack_kb_per_connection"`
	GoroutinesPerConn float64 `json:"goroutines_per_connection"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	CPUPerMDeliveries float64 `json:"cpu_s_per_million_deliveries"`
	CPUMsPerComment   float64 `json:"cpu_ms_per_comment"`
	// PublishCPUMsPerComment leaves out what the server spends idle with
	// N connections (pings, timers), measured just before.
	PublishCPUMsPerComment float64 `json:"publish_cpu_ms_per_comment"`
	IdleCPUPercent         float64 `json:"idle_cpu_percent"`
	ServerWindowSeconds    float64 `json:"server_cpu_window_seconds"`
	Profile                string  `json:"profile,omitempty"`
	HeapProfile            string  `json:"heap_profile,omitempty"`
	ConnectProfile         string  `json:"connect_profile,omitempty"`

	// The machine during the write phase: how busy all its CPUs were, and
	// who used them. Other processes' share is what this run could not
	// control (the machine is shared).
	CPUWindowSeconds float64 `json:"cpu_window_seconds"`
	MachineBusyPct   float64 `json:"machine_busy_pct"`
	ToolCPUSeconds   float64 `json:"tool_cpu_seconds"`
	PgCPUSeconds     float64 `json:"postgres_cpu_seconds"`
	OthersCPUSeconds float64 `json:"other_processes_cpu_seconds"`
}

// ok: nothing lost, duplicated or misrouted, every subscriber stayed.
func (p *Phase) ok() bool {
	return p.Lost == 0 && p.Duplicated == 0 && p.Misrouted == 0 && len(p.Ended) == 0 && p.ConnectFailed == 0
}

// DBResult is one pair of the write-throughput comparison: a REST run on
// a fresh server and a pgbench run, REST first unless PgbenchFirst.
type DBResult struct {
	Writers      int     `json:"writers"`
	Posts        int     `json:"posts"`
	PgbenchFirst bool    `json:"pgbench_first,omitempty"`
	Seconds      float64 `json:"seconds"`
	Comments     int     `json:"comments"`
	Failed       int     `json:"failed"`
	// Errors counts the failed writes by kind ("HTTP 429", "timeout",
	// ...), ErrorSample has the first of each.
	Errors         map[string]int    `json:"write_errors,omitempty"`
	ErrorSample    map[string]string `json:"write_error_samples,omitempty"`
	WritesPerSec   float64           `json:"rest_writes_per_s"`
	REST           Latency           `json:"rest_latency"`
	Starved        float64           `json:"writers_waiting_for_rate_limit_s"`
	ServerCPU      float64           `json:"server_cpu_seconds"`
	PgCPU          float64           `json:"postgres_cpu_seconds"`
	ToolCPU        float64           `json:"tool_cpu_seconds"`
	OthersCPU      float64           `json:"other_processes_cpu_seconds"`
	MachineBusyPct float64           `json:"machine_busy_pct"`
	Profile        string            `json:"profile,omitempty"`
	PgbenchTPS     float64           `json:"pgbench_tps"`
	PgbenchPgCPU   float64           `json:"pgbench_postgres_cpu_seconds"`
	PgbenchSecs    float64           `json:"pgbench_seconds"`
	PgbenchCmd     string            `json:"pgbench_command"`
	PgbenchScript  string            `json:"pgbench_script"`
	Ratio          float64           `json:"ratio"`
}

func (d *DBResult) first() string {
	if d.PgbenchFirst {
		return "pgbench"
	}
	return "REST"
}

// perWrite is CPU milliseconds per REST comment of the server and of
// PostgreSQL, and PostgreSQL's per pgbench INSERT.
func (d *DBResult) perWrite() (server, pg, pgbench float64) {
	if d.Comments > 0 {
		server, pg = d.ServerCPU*1000/float64(d.Comments), d.PgCPU*1000/float64(d.Comments)
	}
	if n := d.PgbenchTPS * d.PgbenchSecs; n > 0 {
		pgbench = d.PgbenchPgCPU * 1000 / n
	}
	return server, pg, pgbench
}

// Report is one run.
type Report struct {
	Label    string             `json:"label,omitempty"`
	Command  string             `json:"command"`
	Options  options            `json:"options"`
	Agora    *Phase             `json:"agora,omitempty"`
	Baseline *Phase             `json:"baseline,omitempty"`
	Ratios   map[string]float64 `json:"ratios_agora_to_baseline,omitempty"`
	DB       *DBResult          `json:"db,omitempty"`
	Tenants  *TenantsReport     `json:"tenants,omitempty"`
	// JoinStorm is the --join-storm scenario.
	JoinStorm *JoinStorm `json:"join_storm,omitempty"`
	// Reconnect is the --reconnect-storm scenario.
	Reconnect *ReconnectStorm `json:"reconnect_storm,omitempty"`
	// Idle is the --idle scenario.
	Idle *Idle `json:"idle,omitempty"`
	// Pairs are every interleaved pair of a scenario run with --repeat;
	// Agora and Baseline are the first.
	Pairs []ScenarioPair `json:"pairs,omitempty"`
	// DBPairs are every pair of a --db run with --pairs; DB is the first.
	DBPairs []DBResult `json:"db_pairs,omitempty"`
}

// dbPairs is every pair of a --db run (just the one without --pairs).
func (r *Report) dbPairs() []DBResult {
	if len(r.DBPairs) == 0 && r.DB != nil {
		return []DBResult{*r.DB}
	}
	return r.DBPairs
}

// dbStat is the median and spread of f over a --db run's pairs.
func (r *Report) dbStat(f func(DBResult) float64) (med, lo, hi float64, n int) {
	pairs := r.dbPairs()
	med, lo, hi = statOf(pairs, f)
	return med, lo, hi, len(pairs)
}

// pairStat is the median and spread of f over a repeated scenario's
// pairs (just the one pair without --repeat).
func (r *Report) pairStat(f func(ScenarioPair) float64) (med, lo, hi float64, n int) {
	pairs := r.Pairs
	if len(pairs) == 0 && r.Agora != nil && r.Baseline != nil {
		pairs = []ScenarioPair{{Agora: r.Agora, Baseline: r.Baseline, Ratios: r.Ratios}}
	}
	med, lo, hi = statOf(pairs, f)
	return med, lo, hi, len(pairs)
}

func (r *Report) failed() bool {
	if r.Reconnect != nil {
		for _, p := range r.Reconnect.Pairs {
			for _, x := range []ReconnectResult{p.Memory, p.NoMemory} {
				if x.Lost != 0 || x.Duplicated != 0 || x.SeqGaps != 0 || x.Failed != 0 || x.LiveSeconds < 0 {
					return true
				}
			}
		}
	}
	for _, d := range r.dbPairs() {
		if d.Failed != 0 {
			return true
		}
	}
	agora, _ := r.phases()
	for _, ph := range agora {
		if !ph.ok() || ph.CommentsFailed != 0 {
			return true
		}
	}
	return false
}

// phases is every pair's Agora and baseline phase of a fan-out run (the
// one pair without --repeat).
func (r *Report) phases() (agora, bare []*Phase) {
	pairs := r.Pairs
	if len(pairs) == 0 {
		pairs = []ScenarioPair{{Agora: r.Agora, Baseline: r.Baseline}}
	}
	for _, p := range pairs {
		if p.Agora != nil {
			agora = append(agora, p.Agora)
		}
		if p.Baseline != nil {
			bare = append(bare, p.Baseline)
		}
	}
	return agora, bare
}

// writeFailures is the failed writes of phases, by kind, and the writes
// sent.
func writeFailures(phases []*Phase) (failed, sent int, by map[string]int) {
	by = map[string]int{}
	for _, ph := range phases {
		failed += ph.CommentsFailed
		sent += ph.CommentsSent
		for k, v := range ph.WriteErrors {
			by[k] += v
		}
	}
	return failed, sent, by
}

// failedCell is failed writes for a table: "0", or "12 (HTTP 429: 12)".
func failedCell(phases []*Phase) string {
	failed, _, by := writeFailures(phases)
	if failed == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", failed, counts(by))
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ratios(a, b *Phase) map[string]float64 {
	return map[string]float64{
		"connect_seconds":              ratio(a.ConnectSeconds, b.ConnectSeconds),
		"e2e_p50":                      ratio(a.E2E.P50, b.E2E.P50),
		"e2e_p99":                      ratio(a.E2E.P99, b.E2E.P99),
		"e2e_p99_minus_baseline_ms":    a.E2E.P99 - b.E2E.P99,
		"deliveries_per_s":             ratio(a.DeliveriesPerSec, b.DeliveriesPerSec),
		"rest_p50":                     ratio(a.REST.P50, b.REST.P50),
		"rest_p99":                     ratio(a.REST.P99, b.REST.P99),
		"kb_per_connection":            ratio(a.KBPerConn, b.KBPerConn),
		"rss_idle":                     ratio(float64(a.RSSIdleKB), float64(b.RSSIdleKB)),
		"cpu_s_per_million_deliveries": ratio(a.CPUPerMDeliveries, b.CPUPerMDeliveries),
	}
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func fr(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// row is one line of the comparison table.
type row struct {
	name  string
	val   func(*Phase) string
	ratio string // key in Ratios, "" for none
}

var rows = []row{
	{"connect time for N (s)", func(p *Phase) string { return f2(p.ConnectSeconds) }, "connect_seconds"},
	{"connect failures", func(p *Phase) string { return fmt.Sprint(p.ConnectFailed) }, ""},
	{"comments posted (ok/sent)", func(p *Phase) string { return fmt.Sprintf("%d/%d", p.CommentsOK, p.CommentsSent) }, ""},
	{"write rate achieved (/s)", func(p *Phase) string { return f1(p.WriteRate) }, ""},
	{"write errors", func(p *Phase) string { return counts(p.WriteErrors) }, ""},
	{"REST write p50 (ms)", func(p *Phase) string { return f2(p.REST.P50) }, "rest_p50"},
	{"REST write p99 (ms)", func(p *Phase) string { return f2(p.REST.P99) }, "rest_p99"},
	{"end-to-end p50 (ms)", func(p *Phase) string { return f1(p.E2E.P50) }, "e2e_p50"},
	{"end-to-end p95 (ms)", func(p *Phase) string { return f1(p.E2E.P95) }, ""},
	{"end-to-end p99 (ms)", func(p *Phase) string { return f1(p.E2E.P99) }, "e2e_p99"},
	{"end-to-end max (ms)", func(p *Phase) string { return f1(p.E2E.Max) }, ""},
	{"deliveries (expected)", func(p *Phase) string { return fmt.Sprintf("%d (%d)", p.Deliveries, p.Expected) }, ""},
	{"deliveries/s", func(p *Phase) string { return fmt.Sprintf("%.0f", p.DeliveriesPerSec) }, "deliveries_per_s"},
	{"lost / duplicated", func(p *Phase) string { return fmt.Sprintf("%d / %d", p.Lost, p.Duplicated) }, ""},
	{"subscribers ended early", func(p *Phase) string { return counts(p.Ended) }, ""},
	{"messages per frame", func(p *Phase) string { return f2(ratio(float64(p.Messages), float64(p.Frames))) }, ""},
	{"server RSS before/idle/load (MB)", func(p *Phase) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f", float64(p.RSSBeforeKB)/1024, float64(p.RSSIdleKB)/1024, float64(p.RSSLoadKB)/1024)
	}, "rss_idle"},
	{"idle KB per connection", func(p *Phase) string { return f1(p.KBPerConn) }, "kb_per_connection"},
	{"  of which Go heap / stacks (KB)", func(p *Phase) string {
		return fmt.Sprintf("%.1f / %.1f (%.1f goroutines)", p.HeapKBPerConn, p.StackKBPerConn, p.GoroutinesPerConn)
	}, ""},
	{"server CPU in write phase (s)", func(p *Phase) string { return f2(p.CPUSeconds) }, ""},
	{"server CPU s per M deliveries", func(p *Phase) string { return f2(p.CPUPerMDeliveries) }, "cpu_s_per_million_deliveries"},
	{"server CPU ms per comment", func(p *Phase) string { return f2(p.CPUMsPerComment) }, ""},
	{"  net of idle (ms per comment)", func(p *Phase) string {
		return fmt.Sprintf("%.2f (idle: %.1f%% of a core)", p.PublishCPUMsPerComment, p.IdleCPUPercent)
	}, ""},
	{"CPU s: tool / postgres / others", func(p *Phase) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", p.ToolCPUSeconds, p.PgCPUSeconds, p.OthersCPUSeconds)
	}, ""},
	{"machine busy in write phase", func(p *Phase) string {
		return fmt.Sprintf("%.0f%% of %.1fs", p.MachineBusyPct, p.CPUWindowSeconds)
	}, ""},
}

func printReport(w io.Writer, r *Report) {
	if r.Tenants != nil {
		writeTenants(w, r.Tenants)
		return
	}
	if r.DB != nil {
		printDB(w, r)
		return
	}
	if r.JoinStorm != nil {
		printJoinStorm(w, r.JoinStorm)
		return
	}
	if r.Reconnect != nil {
		printReconnect(w, r.Reconnect)
		return
	}
	if r.Idle != nil {
		printIdle(w, r.Idle)
		return
	}
	o := r.Options
	fmt.Fprintf(w, "\n%s\n", r.Command)
	fmt.Fprintf(w, "N=%d subscribers over %d room(s), %d writers at %s comments/s for %s, %d-byte bodies\n\n",
		o.Subscribers, o.Rooms, o.Writers, rateString(o.Rate), o.Duration, o.BodyBytes)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	if r.Baseline != nil {
		fmt.Fprintf(tw, "\tagora\tbare melody (queue %d)\tagora / bare\n", bareQueue)
	} else {
		fmt.Fprintf(tw, "\tagora\n")
	}
	for _, rw := range rows {
		if r.Baseline == nil {
			fmt.Fprintf(tw, "%s\t%s\n", rw.name, rw.val(r.Agora))
			continue
		}
		rt := ""
		if rw.ratio != "" {
			rt = fr(r.Ratios[rw.ratio])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rw.name, rw.val(r.Agora), rw.val(r.Baseline), rt)
	}
	tw.Flush()
	if len(r.Pairs) > 1 {
		agora, bare := r.phases()
		fmt.Fprintf(w, "\nfailed writes over all %d pairs: agora %s, bare melody %s\n", len(r.Pairs), failedCell(agora), failedCell(bare))
	}
	if r.Baseline != nil {
		fmt.Fprintf(w, "\nend-to-end p99, agora minus bare: %+.1f ms", r.Ratios["e2e_p99_minus_baseline_ms"])
		if r.Baseline.Dropped > 0 {
			fmt.Fprintf(w, "; bare melody dropped %d messages on full queues", r.Baseline.Dropped)
		}
		fmt.Fprintln(w)
	}
	for _, p := range []*Phase{r.Agora, r.Baseline} {
		if p == nil {
			continue
		}
		if p.DrainTimedOut {
			fmt.Fprintf(w, "%s: not every expected delivery arrived within the drain timeout\n", p.Target)
		}
		for k, v := range p.WriteErrorSample {
			fmt.Fprintf(w, "%s: first %s write error: %s\n", p.Target, k, v)
		}
	}
}

func rateString(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%g", r)
}

func printDB(w io.Writer, r *Report) {
	pairs := r.dbPairs()
	if len(pairs) == 1 {
		printDBPair(w, &pairs[0])
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\npair\tfirst\tREST writes/s\tfailed\tpgbench TPS\tREST / pgbench\tPostgreSQL ms per REST write\tper pgbench INSERT\tserver ms per REST write\tREST p50 / p99 (ms)\tmachine busy\n")
	for i := range pairs {
		d := &pairs[i]
		srv, pg, pgb := d.perWrite()
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%d\t%.0f\t%.3fx\t%.3f\t%.3f\t%.3f\t%.2f / %.2f\t%.0f%%\n", i+1, d.first(), d.WritesPerSec, d.Failed,
			d.PgbenchTPS, d.Ratio, pg, pgb, srv, d.REST.P50, d.REST.P99, d.MachineBusyPct)
	}
	tw.Flush()
	stat := func(name string, f func(DBResult) float64, format string) {
		med, lo, hi, n := r.dbStat(f)
		fmt.Fprintf(w, "%s: median "+format+" ("+format+" to "+format+" over %d pairs)\n", name, med, lo, hi, n)
	}
	stat("REST writes/s", func(d DBResult) float64 { return d.WritesPerSec }, "%.0f")
	stat("pgbench TPS", func(d DBResult) float64 { return d.PgbenchTPS }, "%.0f")
	stat("REST / pgbench", func(d DBResult) float64 { return d.Ratio }, "%.3fx")
	stat("PostgreSQL CPU ms per REST write", func(d DBResult) float64 { _, pg, _ := d.perWrite(); return pg }, "%.3f")
	stat("PostgreSQL CPU ms per pgbench INSERT", func(d DBResult) float64 { _, _, pgb := d.perWrite(); return pgb }, "%.3f")
	stat("server CPU ms per REST write", func(d DBResult) float64 { srv, _, _ := d.perWrite(); return srv }, "%.3f")
	failed, errs := dbFailures(pairs)
	if failed > 0 {
		fmt.Fprintf(w, "failed REST writes: %d in all (%s)\n", failed, counts(errs))
	} else {
		fmt.Fprintln(w, "failed REST writes: 0")
	}
	fmt.Fprintf(w, "pgbench: %s\n", pairs[0].PgbenchCmd)
}

// dbFailures is the failed REST writes over the pairs, by kind.
func dbFailures(pairs []DBResult) (int, map[string]int) {
	n, by := 0, map[string]int{}
	for _, d := range pairs {
		n += d.Failed
		for k, v := range d.Errors {
			by[k] += v
		}
	}
	return n, by
}

func printDBPair(w io.Writer, d *DBResult) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\nREST comment writes, %d writers over %d posts, %s\t%.0f /s\t(%d ok, %d failed; p50 %.2f ms, p99 %.2f ms)\n",
		d.Writers, d.Posts, time.Duration(d.Seconds*float64(time.Second)).Round(time.Millisecond), d.WritesPerSec, d.Comments, d.Failed, d.REST.P50, d.REST.P99)
	fmt.Fprintf(tw, "pgbench single-row INSERT, same cluster\t%.0f /s\t(%s)\n", d.PgbenchTPS, d.PgbenchCmd)
	fmt.Fprintf(tw, "REST / pgbench\t%.2fx\n", d.Ratio)
	fmt.Fprintf(tw, "CPU s in the REST phase: server / postgres / tool / others\t%.1f / %.1f / %.1f / %.1f\t(machine %.0f%% busy)\n",
		d.ServerCPU, d.PgCPU, d.ToolCPU, d.OthersCPU, d.MachineBusyPct)
	srv, pg, pgb := d.perWrite()
	fmt.Fprintf(tw, "CPU ms per write: server / postgres; postgres per pgbench INSERT\t%.2f / %.2f; %.3f\n", srv, pg, pgb)
	tw.Flush()
	if d.Failed > 0 {
		fmt.Fprintf(w, "failed REST writes: %s\n", counts(d.Errors))
		for k, v := range d.ErrorSample {
			fmt.Fprintf(w, "first %s write error: %s\n", k, v)
		}
	}
	if d.Starved > 0.5 {
		fmt.Fprintf(w, "note: writers waited %.1fs in total for a user under the comment rate limit; more --users would raise the figure\n", d.Starved)
	}
}

func printJoinStorm(w io.Writer, js *JoinStorm) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\npair\tusers\tjoined (s)\tsettled (s)\tpresence KB per client (state)\tmessages per client\tserver CPU (s)\n")
	for i, p := range js.Pairs {
		for _, r := range []StormResult{p.Small, p.Large} {
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%.2f%s\t%.2f (%.2f)\t%.1f\t%.2f\n", i+1, r.Users, r.JoinSeconds, r.SettleSeconds,
				map[bool]string{true: "", false: " (not settled)"}[r.Settled], r.KBPerClient, r.StateKBPerClient,
				ratio(float64(r.PresenceMessages), float64(r.Users-r.Failed)), r.ServerCPUSeconds)
		}
	}
	tw.Flush()
	med, lo, hi := js.stat(func(p StormPair) float64 { return p.BytesRatio })
	fmt.Fprintf(w, "presence bytes, %d users / %d users: median %.2fx (%.2f to %.2f over %d pairs)\n", js.Sizes[1], js.Sizes[0], med, lo, hi, len(js.Pairs))
	med, lo, hi = js.stat(func(p StormPair) float64 { return p.CPURatio })
	fmt.Fprintf(w, "server CPU, %d users / %d users: median %.2fx (%.2f to %.2f)\n", js.Sizes[1], js.Sizes[0], med, lo, hi)
}

func printReconnect(w io.Writer, rs *ReconnectStorm) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\npair\tin memory\tresumed (failed)\tlast live (s)\tmedian live (s)\tlost / dup / gaps / resets / errors\thistory queries per resume\tby kind\tserver CPU (s)\n")
	for i, p := range rs.Pairs {
		for _, r := range []ReconnectResult{p.Memory, p.NoMemory} {
			fmt.Fprintf(tw, "%d\t%v\t%d (%d)\t%.2f\t%.2f\t%d / %d / %d / %d / %d\t%.3f\t%v\t%.2f\n", i+1, r.Memory, r.Resumed, r.Failed,
				r.LiveSeconds, r.LiveP50, r.Lost, r.Duplicated, r.SeqGaps, r.Resets, r.Errors, r.QueriesPerResume, r.Queries, r.ServerCPUSeconds)
		}
	}
	tw.Flush()
	med, lo, hi := rs.stat(func(p ReconnectPair) float64 { return ratio(p.Memory.LiveSeconds, p.NoMemory.LiveSeconds) })
	fmt.Fprintf(w, "time to the last client live, in memory / not: median %.2fx (%.2f to %.2f over %d pairs)\n", med, lo, hi, len(rs.Pairs))
	med, lo, hi = rs.stat(func(p ReconnectPair) float64 { return ratio(p.Memory.QueriesPerResume, p.NoMemory.QueriesPerResume) })
	fmt.Fprintf(w, "history queries per resume, in memory / not: median %.3fx (%.3f to %.3f)\n", med, lo, hi)
}

func printIdle(w io.Writer, id *Idle) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\npair\tserver\tconnect %d (s)\tKB per connection\theap / stacks (KB)\tgoroutines\n", id.Subscribers)
	for i, p := range id.Pairs {
		for _, x := range []struct {
			n string
			r IdleResult
		}{{"agora", p.Agora}, {"bare melody", p.Bare}} {
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.1f\t%.1f / %.1f\t%.1f\n", i+1, x.n, x.r.ConnectSeconds, x.r.KBPerConn, x.r.HeapKBPerConn, x.r.StackKBPerConn, x.r.Goroutines)
		}
	}
	tw.Flush()
	med, lo, hi := id.stat(func(p IdlePair) float64 { return ratio(p.Agora.KBPerConn, p.Bare.KBPerConn) })
	fmt.Fprintf(w, "KB per idle connection, agora / bare: median %.2fx (%.2f to %.2f over %d pairs)\n", med, lo, hi, len(id.Pairs))
	med, lo, hi = id.stat(func(p IdlePair) float64 { return ratio(p.Agora.ConnectSeconds, p.Bare.ConnectSeconds) })
	fmt.Fprintf(w, "connect time, agora / bare: median %.2fx (%.2f to %.2f)\n", med, lo, hi)
}
