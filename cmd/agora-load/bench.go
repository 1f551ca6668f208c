package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"agora/store/devdb"
)

// benchCase is one row of the standard matrix.
type benchCase struct {
	label string
	what  string
	mod   func(*options)
}

// The saturation rates are far above what one core can fan out one frame
// per message (bare melody manages about 10 comments/s to 10,000
// subscribers): the figure that matters is what was achieved.
func matrix(quick bool) []benchCase {
	scale := func(n int) int {
		if quick {
			return max(n/10, 10)
		}
		return n
	}
	fan := func(n, rooms, writers int, rate float64) func(*options) {
		return func(o *options) {
			o.Subscribers, o.Rooms, o.Writers, o.Rate = scale(n), rooms, writers, rate
			o.Baseline = true
		}
	}
	cases := []benchCase{
		{"n1k-r1-5", "N=1,000, 1 room, 5 comments/s", fan(1000, 1, 8, 5)},
		{"n1k-r1-sat", "N=1,000, 1 room, saturation (200/s offered)", fan(1000, 1, 16, 200)},
		{"n10k-r1-5", "N=10,000, 1 room, 5 comments/s", func(o *options) {
			fan(10000, 1, 8, 5)(o)
			o.ProfileDir, o.HeapOnly, o.Repeat = "profiles", true, 3
		}},
		{"n10k-r1-sat", "N=10,000, 1 room, saturation (50/s offered)", func(o *options) {
			fan(10000, 1, 16, 50)(o)
			o.ProfileDir, o.Repeat = "profiles", 3
		}},
		{"n10k-r100-5", "N=10,000 over 100 rooms, 5 comments/s", fan(10000, 100, 8, 5)},
		{"n10k-r100-sat", "N=10,000 over 100 rooms, saturation (400/s offered)", fan(10000, 100, 32, 400)},
		// Publish cost against sessions elsewhere: 100 subscribers in the
		// written room either way, 900 or 9,900 bystanders in others.
		{"iso-1k", "1 written room of 100, 900 bystanders, 50/s", func(o *options) {
			o.Subscribers, o.Rooms, o.WriteRooms, o.Writers, o.Rate = scale(1000), 10, 1, 8, 50
			o.ProfileDir = "profiles"
		}},
		{"iso-10k", "1 written room of 100, 9,900 bystanders, 50/s", func(o *options) {
			o.Subscribers, o.Rooms, o.WriteRooms, o.Writers, o.Rate = scale(10000), 100, 1, 8, 50
			o.ProfileDir = "profiles"
		}},
		{"join-storm", "join storms of 1,500 and 3,000 distinct users in one room, 3 interleaved pairs", func(o *options) {
			o.JoinStorm, o.Pairs = fmt.Sprintf("%d,%d", scale(1500), scale(3000)), 3
		}},
		{"idle", "10,000 idle connections, Agora and bare melody, 3 interleaved pairs", func(o *options) {
			o.Idle, o.Subscribers, o.Rooms, o.Pairs = true, scale(10000), 1, 3
			o.ProfileDir = "profiles"
		}},
		{"reconnect", "reconnect storm: 10,000 subscribers over 100 rooms resume on another instance at once, 3 interleaved pairs", func(o *options) {
			o.Reconnect, o.Subscribers, o.Rooms, o.Pairs = true, scale(10000), 100, 3
		}},
		{"db", "REST writes, 32 writers over 100 posts, vs pgbench, 3 interleaved pairs", func(o *options) {
			o.DB, o.Subscribers, o.Rooms, o.Writers, o.Rate, o.Pairs = true, 0, 100, 32, 0, 3
			o.MaxComments = 200000
			o.ProfileDir = "profiles"
		}},
		{"tenants", "tenant A floods the write path, tenant B writes 40/s", func(o *options) { o.Tenants = true }},
	}
	if quick {
		for i := range cases {
			m := cases[i].mod
			cases[i].mod = func(o *options) { m(o); o.Duration = 3 * time.Second; o.PgbenchTime = 3 * time.Second }
		}
	}
	return cases
}

// options is the case's run: pinned, its profiles under work.
func (c benchCase) options(serverBin, work string) (options, error) {
	o := defaultOptions()
	o.ServerBin, o.Pin, o.Label = serverBin, true, c.label
	c.mod(&o)
	if o.ProfileDir != "" {
		o.ProfileDir = filepath.Join(work, o.ProfileDir)
	}
	if err := o.validate(); err != nil {
		return o, fmt.Errorf("%s: %w", c.label, err)
	}
	return o, nil
}

type benchRun struct {
	c       benchCase
	command string
	rep     *Report
	err     error
	took    time.Duration
}

// savedBench is results.json: everything the report is written from, so
// `bench --render` can write it again without measuring again.
type savedBench struct {
	Machine machineInfo `json:"machine"`
	Runs    []savedRun  `json:"runs"`
}

type savedRun struct {
	Label   string  `json:"label"`
	What    string  `json:"what"`
	Command string  `json:"command"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
	Report  *Report `json:"report,omitempty"`
}

func saveRuns(m machineInfo, runs []benchRun) savedBench {
	sb := savedBench{Machine: m}
	for _, r := range runs {
		sr := savedRun{Label: r.c.label, What: r.c.what, Command: r.command, Seconds: r.took.Seconds(), Report: r.rep}
		if r.err != nil {
			sr.Error = r.err.Error()
		}
		sb.Runs = append(sb.Runs, sr)
	}
	return sb
}

func loadRuns(path string) (machineInfo, []benchRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return machineInfo{}, nil, err
	}
	var sb savedBench
	if err := json.Unmarshal(b, &sb); err != nil {
		return machineInfo{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	var runs []benchRun
	for _, sr := range sb.Runs {
		r := benchRun{c: benchCase{label: sr.Label, what: sr.What}, command: sr.Command, rep: sr.Report,
			took: time.Duration(sr.Seconds * float64(time.Second))}
		if sr.Error != "" {
			r.err = errors.New(sr.Error)
		}
		runs = append(runs, r)
	}
	return sb.Machine, runs, nil
}

func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agora-load bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "BENCHMARKS.md", "the report to write")
	serverBin := fs.String("server-bin", defaultOptions().ServerBin, "agora binary")
	micro := fs.String("micro", "", "go test -bench output of ./realtime/ to summarise")
	benchstat := fs.String("benchstat", "", "benchstat's summary of --micro")
	work := fs.String("work-dir", ".agora/bench", "where raw results and profiles go")
	quick := fs.Bool("quick", false, "a tenth of the subscribers and 3 s phases (to try the matrix)")
	only := fs.String("only", "", "run only the cases whose label contains this")
	render := fs.String("render", "", "write the report from this results.json of an earlier run, measuring nothing")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if *render != "" {
		machine, runs, err := loadRuns(*render)
		if err != nil {
			return err
		}
		return writeReport(*out, machine, runs, *micro, *benchstat, stdout)
	}
	raiseFileLimit()
	if err := os.MkdirAll(*work, 0o755); err != nil {
		return err
	}
	started := time.Now()
	machine := describeMachine()
	e, err := newEnv(ctx, stderr)
	if err != nil {
		return err
	}
	defer e.close(stderr)
	pinSelf(stderr)

	var runs []benchRun
	for _, c := range matrix(*quick) {
		if *only != "" && !strings.Contains(c.label, *only) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		o, err := c.options(*serverBin, *work)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "\n=== %s: %s\n", c.label, c.what)
		t0 := time.Now()
		var rep *Report
		if o.Tenants {
			rep, err = benchTenants(ctx, o, e, stderr)
		} else if o.JoinStorm != "" {
			rep, err = runJoinStorm(ctx, o, e, stderr)
		} else if o.Reconnect {
			rep, err = runReconnectStorm(ctx, o, e, stderr)
		} else if o.Idle {
			rep, err = runIdle(ctx, o, e, stderr)
		} else if o.DB {
			// The write path uses every core, as in production; so do
			// the REST writers and pgbench.
			o.Pin = false
			unpinSelf()
			rep, err = runDB(ctx, o, e, stderr)
			pinSelf(stderr)
		} else {
			rep, err = runScenario(ctx, o, e, stderr)
		}
		r := benchRun{c: c, command: o.commandLine(), rep: rep, err: err, took: time.Since(t0)}
		if rep != nil && rep.Tenants != nil {
			r.command = rep.Tenants.Command
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s failed: %v\n", c.label, err)
		} else {
			printReport(stderr, rep)
		}
		runs = append(runs, r)
	}
	machine.LoadEnd = loadAvg()
	machine.Took = time.Since(started)
	machine.Quick = *quick

	raw, _ := json.MarshalIndent(saveRuns(machine, runs), "", "  ")
	if err := os.WriteFile(filepath.Join(*work, "results.json"), raw, 0o644); err != nil {
		return err
	}
	if err := writeReport(*out, machine, runs, *micro, *benchstat, stdout); err != nil {
		return err
	}
	for _, r := range runs {
		if r.err != nil {
			return fmt.Errorf("scenario %s failed: %w", r.c.label, r.err)
		}
	}
	return nil
}

// keptMarker starts the part of BENCHMARKS.md that task bench does not
// write: the sections of the scenarios that have tasks of their own.
const keptMarker = "<!-- Below: sections measured by their own tasks; task bench keeps them as they are. -->"

func writeReport(out string, machine machineInfo, runs []benchRun, micro, benchstat string, stdout io.Writer) error {
	var microText, statText string
	if micro != "" {
		b, err := os.ReadFile(micro)
		if err != nil {
			return err
		}
		microText = string(b)
	}
	if benchstat != "" {
		if b, err := os.ReadFile(benchstat); err == nil {
			statText = string(b)
		}
	}
	var md bytes.Buffer
	writeMarkdown(&md, machine, runs, microText, statText, machine.Quick)
	// Sections that other tasks measure (task bench:search, ...) live
	// below keptMarker; a new report keeps them as they are.
	if old, err := os.ReadFile(out); err == nil {
		if i := bytes.Index(old, []byte(keptMarker)); i >= 0 {
			md.WriteString("\n")
			md.Write(old[i:])
		}
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d scenarios measured in %s)\n", out, len(runs), machine.Took.Round(time.Second))
	return nil
}

type machineInfo struct {
	CPUs      int           `json:"cpus"`
	Model     string        `json:"cpu_model"`
	MemGiB    float64       `json:"mem_gib"`
	Kernel    string        `json:"kernel"`
	GoVersion string        `json:"go_version"`
	PgVersion string        `json:"postgres_version"`
	Files     int           `json:"open_files"`
	LoadStart string        `json:"load_start"`
	LoadEnd   string        `json:"load_end"`
	Date      string        `json:"date"`
	Took      time.Duration `json:"took_ns"`
	Quick     bool          `json:"quick"`
}

func describeMachine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Files: fileLimit(), LoadStart: loadAvg(),
		Date: time.Now().UTC().Format("2006-01-02 15:04 MST")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemGiB = kb / (1 << 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.GoVersion = runtime.Version()
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	if dir, err := devdb.FindBinDir(); err == nil {
		if out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output(); err == nil {
			m.PgVersion = strings.TrimSpace(string(out))
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Targets from issue 6.
const (
	targetKBPerConn   = 20.0
	targetCPUPerM     = 5.5
	targetP99Slack    = 25.0 // ms over bare melody's p99
	targetDBRatio     = 0.5
	targetIsolation   = 1.25 // publish CPU at 10,000 sessions vs 1,000
	targetReplayMS    = 1000.0
	pprofTopNodeCount = 22
)

func find(runs []benchRun, label string) *Report {
	for _, r := range runs {
		if r.c.label == label && r.rep != nil {
			return r.rep
		}
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

var replayLine = regexp.MustCompile(`(?m)^BenchmarkReplay10k\S*\s+\d+\s+\d+ ns/op\s+([0-9.]+) ms/replay`)

// replayMedian is the median ms/replay of the microbenchmark runs.
func replayMedian(micro string) (float64, int) {
	var v []float64
	for _, m := range replayLine.FindAllStringSubmatch(micro, -1) {
		if f, err := strconv.ParseFloat(m[1], 64); err == nil {
			v = append(v, f)
		}
	}
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	return v[len(v)/2], len(v)
}

func writeMarkdown(w io.Writer, m machineInfo, runs []benchRun, micro, stat string, quick bool) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Agora benchmarks\n\n")
	p("Generated by `task bench` (`cmd/agora-load bench`) on %s in %s. Do not edit by hand: run `task bench` again.\n\n",
		m.Date, m.Took.Round(time.Second))
	if quick {
		p("> **Quick mode**: a tenth of the subscribers and 3-second phases. These figures are not comparable with the targets.\n\n")
	}
	p("## Machine\n\n| | |\n|---|---|\n")
	p("| CPUs (nproc) | %d |\n| CPU model | %s |\n| RAM | %.1f GiB |\n| Kernel | %s |\n| Go | %s |\n| PostgreSQL | %s |\n| Open files per process | %d |\n| Load average (1/5/15 min) at start / end | %s / %s |\n\n",
		m.CPUs, m.Model, m.MemGiB, m.Kernel, m.GoVersion, m.PgVersion, m.Files, m.LoadStart, m.LoadEnd)
	p("The machine is shared: other work may run during the benchmark. The \"machine load\" table below shows, for every write phase, how busy all CPUs were and how much of that was neither the server, this tool nor PostgreSQL. Ratios against bare melody come from the same run and the same conditions, which makes them the figures to trust most.\n\n")

	p("## How\n\n")
	p("`task bench` builds `agora` and `agora-load`, runs the realtime microbenchmarks (`go test -run XXX -bench . -benchmem -count 5 ./realtime/`, summarised with benchstat), then `agora-load bench`, which starts one private PostgreSQL cluster (initialised fresh in a temporary directory, unpinned) and runs each scenario below as the command shown, sharing that cluster:\n\n")
	p("- each scenario starts its own `agora serve` pinned to CPU 0 (`taskset -c 0`), with the load tool pinned to the other CPU and PostgreSQL on both; a first `agora serve` registers the users (argon2id) and creates the posts, then a fresh one is started for the measurement, so none of that garbage is in its RSS;\n")
	p("- N WebSocket subscribers (authenticated as at least 50 distinct users and as many as the server's quota of 20 WebSockets per user needs (500 for 10,000), from source addresses 127.0.0.1..k) subscribe to `post:{id}` rooms round-robin; W writers post 300-byte comments through REST at a fixed total rate for 10 s; each body carries its REST call start time, and every subscriber checks every event on receipt (frames split on newlines);\n")
	p("- **lost** = Σ over rooms of subscribers × comments committed − unique receipts; **duplicated** = receipts − unique receipts; **deliveries/s** = unique receipts / (last receipt − first write); **idle KB per connection** = (RSS after connecting and a forced GC − RSS before) / N; **server CPU** = utime+stime of the server process (`/proc/<pid>/stat`) from the first write to the last receipt; **CPU s per M deliveries** = that / deliveries × 10⁶;\n")
	p("- the baseline (`--baseline`) is a bare melody v1.4.0 server, this binary run as `agora-load --bare-server`, pinned the same way, with melody's defaults except `MessageBufferSize: 16`, broadcasting each message POSTed to it to the sessions of its room (a room's session list, each `Session.Write`, which is what `BroadcastMultiple` does); it gets the same N, rooms, rate and writers, and messages shaped like Agora's events and padded to Agora's mean event size in the same run. A full queue makes melody drop the message: that is counted as lost for the baseline;\n")
	p("- scenarios with several interleaved pairs (`--repeat`, `--pairs`: Agora then the baseline, then the baseline then Agora, ...) report the median and the spread (lowest to highest) over the pairs, each measurement on a fresh server: `--idle` connects N to Agora and to bare melody and reads memory per idle connection and connect time; `--join-storm` joins distinct signed-in users to one room at once, the smaller crowd against the larger; `--reconnect-storm` kills the instance N subscribers over R rooms are on, writes comments through a second instance meanwhile, and has them all resume on it at once with `since`, against a second instance keeping no recent events in memory (`--history-memory-events=0`), counting its History queries from its `/metrics`; `--db` runs REST comment writes (on a fresh server every time) and pgbench;\n")
	p("- every scenario but the tenant quota's starts its servers with a tenant write quota far above anything its writers reach (`AGORA_TENANT_WRITE_RATE=%d`, and `AGORA_TENANT_WRITE_SLOTS` as many as the writers, at least %d, so that no write waits for a slot): a run's writes all come from one tenant, and with serve's defaults (100 writes/s per tenant after a burst of 500, and 8 of the 16 database connections) the saturation cases, which offer up to 400 comments/s from up to 32 writers, and `--db` would measure the quota (writes refused 429 or queued for a slot), not the fan-out or the write path. The quota's check still runs on every write, as in production. The tenant quota scenario (`agora-load tenants`) keeps serve's defaults, set as flags: the quota is what it measures;\n", liftedQuotaRate, toolWrites)
	p("- a write answered anything but its success status (201, or 204 from bare melody), or not answered, is a failed write, counted by status (`HTTP 429`, `HTTP 503`, `timeout`, `network`): the fan-out matrix and the baseline table show them over every pair of the case, the issue-6 targets table counts them over all fan-out runs, and the database and tenant sections show theirs; a reconnect storm's failed write ends the scenario with its status.\n\n")
	p("Commands (each is also a standalone run that starts its own cluster):\n\n```sh\n")
	p("go tool task bench          # everything below, writes BENCHMARKS.md\n")
	for _, r := range runs {
		p("%s\n", r.command)
	}
	p("```\n\n")

	writeTargets12(w, runs, micro)
	writeFindings12(w, runs)
	writeTargets(w, runs, micro)
	writeFindings(w, runs)
	writeMatrix(w, runs)
	writeDB(w, runs)
	writeTenantsRuns(w, runs)
	writeMicro(w, micro, stat)
	writeProfiles(w, runs)
}

func writeTargets(w io.Writer, runs []benchRun, micro string) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Targets (issue 6)\n\n| Target | Threshold | Measured | Result |\n|---|---|---|---|\n")
	if r := find(runs, "n10k-r1-5"); r != nil && r.Agora != nil {
		bare := "-"
		if r.Baseline != nil {
			bare = fmt.Sprintf("%.1f KB: heap %.1f, stacks %.1f", r.Baseline.KBPerConn, r.Baseline.HeapKBPerConn, r.Baseline.StackKBPerConn)
		}
		p("| Idle memory per WebSocket connection, N=10,000 | ≤ %.0f KB | %.1f KB RSS, of which Go heap %.1f KB and goroutine stacks %.1f KB (bare melody, queue 16: %s) | %s, by %+.1f KB |\n",
			targetKBPerConn, r.Agora.KBPerConn, r.Agora.HeapKBPerConn, r.Agora.StackKBPerConn, bare,
			verdict(r.Agora.KBPerConn <= targetKBPerConn), r.Agora.KBPerConn-targetKBPerConn)
	}
	if r := find(runs, "n10k-r1-sat"); r != nil && r.Agora != nil {
		bare := "-"
		if r.Baseline != nil {
			bare = fmt.Sprintf("%.2f", r.Baseline.CPUPerMDeliveries)
		}
		p("| Server CPU-seconds per million deliveries, pinned, 10,000 in one room at saturation | ≤ %.1f | %.2f (bare melody: %s; %.0f deliveries/s, %.1f messages per frame) | %s, by %+.2f |\n",
			targetCPUPerM, r.Agora.CPUPerMDeliveries, bare, r.Agora.DeliveriesPerSec, ratio(float64(r.Agora.Messages), float64(r.Agora.Frames)),
			verdict(r.Agora.CPUPerMDeliveries > 0 && r.Agora.CPUPerMDeliveries <= targetCPUPerM), r.Agora.CPUPerMDeliveries-targetCPUPerM)
	}
	if r := find(runs, "n10k-r1-5"); r != nil && r.Agora != nil && r.Baseline != nil {
		limit := r.Baseline.E2E.P99 + targetP99Slack
		p("| End-to-end p99, N=10,000 at 5 comments/s | ≤ bare melody's p99 + %.0f ms = %.1f ms | %.1f ms (bare: %.1f ms) | %s, by %+.1f ms |\n",
			targetP99Slack, limit, r.Agora.E2E.P99, r.Baseline.E2E.P99, verdict(r.Agora.E2E.P99 <= limit), r.Agora.E2E.P99-limit)
	}
	if r := find(runs, "db"); r != nil && r.DB != nil {
		rt, lo, hi, n := r.dbStat(func(d DBResult) float64 { return d.Ratio })
		ws, _, _, _ := r.dbStat(func(d DBResult) float64 { return d.WritesPerSec })
		tps, _, _, _ := r.dbStat(func(d DBResult) float64 { return d.PgbenchTPS })
		p("| REST comment writes/s, 100 posts, 32 writers, vs pgbench single-row INSERT at 32 clients | ≥ %.1f× | %.2f× (%.2f to %.2f over %d pairs): %.0f/s vs %.0f/s | %s, by %+.2f× |\n",
			targetDBRatio, rt, lo, hi, n, ws, tps, verdict(rt >= targetDBRatio), rt-targetDBRatio)
	}
	a, b := find(runs, "iso-1k"), find(runs, "iso-10k")
	if a != nil && b != nil && a.Agora != nil && b.Agora != nil && a.Agora.PublishCPUMsPerComment > 0 {
		g := b.Agora.PublishCPUMsPerComment / a.Agora.PublishCPUMsPerComment
		p("| Publish CPU for a 100-subscriber room flat from 1,000 to 10,000 sessions | ≤ %.2f× (flat within measurement noise) | %.2f ms → %.2f ms per comment = %.2f×, net of the server's idle CPU (%.1f%% → %.1f%% of a core: pings and timers of every session); gross %.2f → %.2f ms | %s |\n",
			targetIsolation, a.Agora.PublishCPUMsPerComment, b.Agora.PublishCPUMsPerComment, g,
			a.Agora.IdleCPUPercent, b.Agora.IdleCPUPercent, a.Agora.CPUMsPerComment, b.Agora.CPUMsPerComment, verdict(g <= targetIsolation))
	}
	if ms, n := replayMedian(micro); n > 0 {
		p("| Resume: 10,000 missed events replayed to one client | < %.0f ms | %.0f ms (median of %d, `BenchmarkReplay10k`) | %s |\n",
			targetReplayMS, ms, n, verdict(ms < targetReplayMS))
	}
	var bad, failing []string
	total, failed, sent := 0, 0, 0
	for _, r := range runs {
		if r.rep == nil || r.rep.Agora == nil {
			continue
		}
		agora, _ := r.rep.phases()
		for i, a := range agora {
			total++
			name := r.c.label
			if i > 0 {
				name = fmt.Sprintf("%s pair %d", r.c.label, i+1)
			}
			if !a.ok() {
				bad = append(bad, fmt.Sprintf("%s (lost %d, duplicated %d, ended early %s)", name, a.Lost, a.Duplicated, counts(a.Ended)))
			}
		}
		n, s, by := writeFailures(agora)
		failed, sent = failed+n, sent+s
		if n > 0 {
			failing = append(failing, fmt.Sprintf("%s: %d (%s)", r.c.label, n, counts(by)))
		}
	}
	if len(bad) == 0 {
		p("| Zero lost and zero duplicated events in every run | 0 / 0 | 0 / 0 in all %d Agora runs | %s |\n", total, verdict(total > 0))
	} else {
		p("| Zero lost and zero duplicated events in every run | 0 / 0 | %s | %s |\n", strings.Join(bad, "; "), verdict(false))
	}
	if total > 0 {
		detail := ""
		if len(failing) > 0 {
			detail = ": " + strings.Join(failing, "; ")
		}
		p("| Failed writes in those runs (any answer but 201) | 0 | %d of %d%s | %s |\n", failed, sent, detail, verdict(failed == 0))
	}
	for _, r := range runs {
		if r.err != nil {
			p("\nScenario `%s` failed: `%s`\n", r.c.label, oneLine(r.err.Error()))
		}
	}
	p("\n")
}

// writeFindings says, with this run's numbers, what stands between the
// missed targets and their thresholds.
func writeFindings(w io.Writer, runs []benchRun) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## What is in the way\n\n")
	if r := find(runs, "n10k-r1-5"); r != nil && r.Agora != nil && r.Baseline != nil {
		a, b := r.Agora, r.Baseline
		p("- **Memory per connection.** Agora holds %.1f KB per idle connection against bare melody's %.1f KB: %+.1f KB of Go heap (%.1f vs %.1f) and %+.1f KB of goroutine stack (%.1f vs %.1f, %.1f goroutines each). ",
			a.KBPerConn, b.KBPerConn, a.HeapKBPerConn-b.HeapKBPerConn, a.HeapKBPerConn, b.HeapKBPerConn,
			a.StackKBPerConn-b.StackKBPerConn, a.StackKBPerConn, b.StackKBPerConn, a.GoroutinesPerConn)
		p("The stack difference is the upgrade's handler goroutine: melody runs the read loop inside it, under the HTTP server, Echo and its middleware, so each connection keeps that whole call chain alive. The heap's largest holders at idle are listed below (net/http's per-connection bufio reader and writer stay alive for the same reason).\n")
		if top := pprofTop(a.HeapProfile, "-sample_index=inuse_space", 12); top != "" {
			p("\n  Agora's heap at idle with %d connections (`go tool pprof -sample_index=inuse_space -top`):\n\n```\n%s\n```\n\n", r.Options.Subscribers, top)
		}
		p("- **End-to-end p99 at 5 comments/s.** %.1f ms against bare melody's %.1f ms (%+.1f ms); the REST call itself took %.1f ms at p99 (bare: %.1f ms). Every event is one frame per session (%.2f messages per frame), like bare melody, so the difference is the fan-out's own cost per frame and the path through PostgreSQL. Both figures include the load tool's own time to read 10,000 sockets on its one core.\n",
			a.E2E.P99, b.E2E.P99, a.E2E.P99-b.E2E.P99, a.REST.P99, b.REST.P99, ratio(float64(a.Messages), float64(a.Frames)))
	}
	if r := find(runs, "n10k-r1-sat"); r != nil && r.Agora != nil {
		a := r.Agora
		p("- **CPU per delivery at saturation.** %.2f CPU-seconds per million deliveries at %.0f deliveries/s, with %.2f messages per frame. ",
			a.CPUPerMDeliveries, a.DeliveriesPerSec, ratio(float64(a.Messages), float64(a.Frames)))
		p("Packing divides the per-frame cost (one `write(2)` per session per frame, the top of the profile below) only when events queue up during a fan-out; here the writers achieved %.1f of the %.0f comments/s offered, with REST p50 %.0f ms and p99 %.0f ms: ",
			a.WriteRate, r.Options.Rate, a.REST.P50, a.REST.P99)
		p("with the server on one core, every database round trip of a comment write waits for the run queue behind the fan-out's runnable write pumps (one goroutine per session), and a write makes several round trips, so the writes that would fill the batches arrive slowly.")
		if b := r.Baseline; b != nil {
			p(" Bare melody, one frame per message: %.2f CPU-s per million at %.0f deliveries/s, and it dropped %d messages on full queues.", b.CPUPerMDeliveries, b.DeliveriesPerSec, b.Dropped)
		}
		p("\n")
	}
	a, b := find(runs, "iso-1k"), find(runs, "iso-10k")
	if a != nil && b != nil && a.Agora != nil && b.Agora != nil {
		p("- **Publish cost against sessions elsewhere.** With 100 subscribers in the written room either way, the server spent %.2f ms per comment (net of its idle CPU) beside 900 other sessions and %.2f ms beside 9,900. The room index is not where it goes: delivery touches only the room's sessions, and `BenchmarkIndex` does not depend on the number of rooms. The profiles show where: system calls (the same number of frames cost more `write(2)` time among 10,000 sockets) and the Go runtime's scheduler and timers (every frame sets a write deadline, every session has a ping ticker and a read deadline, and with the server on one core all of them sit in one timer heap). By cumulative share of each profile:\n\n",
			a.Agora.PublishCPUMsPerComment, b.Agora.PublishCPUMsPerComment)
		for _, ph := range []struct {
			label string
			path  string
		}{{"900 bystanders", a.Agora.Profile}, {"9,900 bystanders", b.Agora.Profile}} {
			if lines := pprofLines(ph.path, "runtime.findRunnable", "runtime.(*timers).check", "runtime.(*timers).adjust", "runtime.netpoll", "linux.Syscall6"); lines != "" {
				p("  %s:\n\n```\n%s\n```\n\n", ph.label, lines)
			}
		}
	}
	if r := find(runs, "db"); r != nil && r.DB != nil {
		srv, _, _, _ := r.dbStat(func(d DBResult) float64 { srv, _, _ := d.perWrite(); return srv })
		pg, _, _, _ := r.dbStat(func(d DBResult) float64 { _, pg, _ := d.perWrite(); return pg })
		pgb, _, _, n := r.dbStat(func(d DBResult) float64 { _, _, pgb := d.perWrite(); return pgb })
		p("- **Write throughput.** Each REST comment cost %.2f ms of server CPU and %.2f ms of PostgreSQL CPU; each pgbench INSERT cost PostgreSQL %.3f ms (medians of %d pairs). On two shared cores the sum per write bounds the rate (the REST writers and pgbench also need CPU): a comment is one round trip when the tenant and session caches answer (`create_comment`, migration 0010: the comment and its search document, the post's counter, three or four events with their rooms' counters, the writer's read position, the post author's notification and unread counter, and the post.activity queue entry, published later in batches), executed under row level security with its foreign keys and indexes, against one INSERT into a table with a primary key only. The per-write PostgreSQL CPU also carries what the cluster does meanwhile (autovacuum, checkpoints) in a cluster that earlier scenarios filled.\n",
			srv, pg, pgb, n)
	}
	p("\n")
}

// pprofTop is `go tool pprof -top` of a profile, "" if there is none.
func pprofTop(path, extra string, n int) string {
	if path == "" {
		return ""
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	args := []string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(n)}
	if extra != "" {
		args = append(args, extra)
	}
	out, err := exec.Command(goBin, append(args, path)...).Output()
	if err != nil {
		return ""
	}
	return trimProfile(string(out))
}

// pprofLines is the header and the -top -cum lines of a profile that
// name one of the functions.
func pprofLines(path string, funcs ...string) string {
	top := pprofTop(path, "-cum", 400)
	if top == "" {
		return ""
	}
	var out []string
	for _, l := range strings.Split(top, "\n") {
		if strings.Contains(l, "flat%") || strings.HasPrefix(l, "Duration:") {
			out = append(out, l)
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		for _, fn := range funcs {
			if strings.HasSuffix(f[len(f)-1], fn) || (len(f) > 1 && strings.HasSuffix(f[len(f)-2], fn)) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func writeMatrix(w io.Writer, runs []benchRun) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Fan-out matrix: Agora\n\n")
	p("The figures are the first pair's; failed writes (by status) are every pair's.\n\n")
	p("| Scenario | Offered /s | Achieved writes/s | Failed writes | Deliveries/s | e2e p50 / p95 / p99 / max (ms) | Lost / dup | REST p50 / p99 (ms) | Connect N (s) | Idle KB/conn (heap + stacks) | RSS idle / load (MB) | CPU s per M deliveries | CPU ms per comment | Messages per frame |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		if r.rep == nil || r.rep.Agora == nil {
			continue
		}
		a := r.rep.Agora
		agora, _ := r.rep.phases()
		p("| %s | %s | %.1f | %s | %.0f | %.1f / %.1f / %.1f / %.1f | %d / %d | %.1f / %.1f | %.1f | %.1f (%.1f + %.1f) | %.0f / %.0f | %.2f | %.2f | %.2f |\n",
			r.c.what, rateString(r.rep.Options.Rate), a.WriteRate, failedCell(agora), a.DeliveriesPerSec, a.E2E.P50, a.E2E.P95, a.E2E.P99, a.E2E.Max,
			a.Lost, a.Duplicated, a.REST.P50, a.REST.P99, a.ConnectSeconds, a.KBPerConn, a.HeapKBPerConn, a.StackKBPerConn,
			float64(a.RSSIdleKB)/1024, float64(a.RSSLoadKB)/1024, a.CPUPerMDeliveries, a.CPUMsPerComment,
			ratio(float64(a.Messages), float64(a.Frames)))
	}
	p("\n## Baseline: bare melody (queue 16), and Agora's figures as ratios to it\n\n")
	p("| Scenario | bare deliveries/s | bare failed writes | bare e2e p50 / p99 (ms) | bare lost (dropped) | bare idle KB/conn | bare CPU s per M | Agora / bare: deliveries/s | e2e p99 | idle KB/conn | CPU per M deliveries | connect time |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		if r.rep == nil || r.rep.Baseline == nil {
			continue
		}
		b, q := r.rep.Baseline, r.rep.Ratios
		_, bare := r.rep.phases()
		p("| %s | %.0f | %s | %.1f / %.1f | %d (%d) | %.1f | %.2f | %s | %s (%+.0f ms) | %s | %s | %s |\n",
			r.c.what, b.DeliveriesPerSec, failedCell(bare), b.E2E.P50, b.E2E.P99, b.Lost, b.Dropped, b.KBPerConn, b.CPUPerMDeliveries,
			fr(q["deliveries_per_s"]), fr(q["e2e_p99"]), q["e2e_p99_minus_baseline_ms"], fr(q["kb_per_connection"]),
			fr(q["cpu_s_per_million_deliveries"]), fr(q["connect_seconds"]))
	}
	p("\n## Machine load during each write phase\n\n")
	p("CPU seconds over the write phase and drain, by whom. \"Others\" is every process that is not this run's: the share of the machine this run did not have.\n\n")
	p("| Scenario | Target | Window (s) | Machine busy | Server | Load tool | PostgreSQL | Others |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		if r.rep == nil {
			continue
		}
		for _, ph := range []*Phase{r.rep.Agora, r.rep.Baseline} {
			if ph == nil {
				continue
			}
			p("| %s | %s | %.1f | %.0f%% | %.1f | %.1f | %.1f | %.1f |\n", r.c.label, ph.Target, ph.CPUWindowSeconds,
				ph.MachineBusyPct, ph.CPUSeconds, ph.ToolCPUSeconds, ph.PgCPUSeconds, ph.OthersCPUSeconds)
		}
	}
	p("\n")
}

func writeDB(w io.Writer, runs []benchRun) {
	r := find(runs, "db")
	if r == nil || r.DB == nil {
		return
	}
	pairs := r.dbPairs()
	d := &pairs[0]
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Database write throughput (`task bench:db`)\n\n")
	p("Same cluster, same run, the server unpinned (the write path uses every core, as in production)")
	if len(pairs) > 1 {
		p(", in %d interleaved pairs (REST then pgbench, then pgbench then REST, ...), each REST run on a fresh `agora serve`. The forum's users and posts are set up once, and pgbench's table too, so both sides write into tables that grow over the pairs", len(pairs))
	}
	p(":\n\n")
	p("- REST: `POST posts/{post}/comments`, %d writers over %d posts as fast as they go, no subscribers, %s a run;\n",
		d.Writers, d.Posts, r.Options.Duration)
	p("- pgbench: `%s`, script `%s`: a plain single-row INSERT into a scratch table (primary key only).\n\n",
		d.PgbenchCmd, strings.TrimSpace(d.PgbenchScript))
	p("| Pair | First | REST writes/s | pgbench TPS | REST / pgbench | PostgreSQL CPU ms per REST write | per pgbench INSERT | Server CPU ms per REST write | REST ok / failed | REST p50 / p99 (ms) | Machine busy |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i := range pairs {
		x := &pairs[i]
		srv, pg, pgb := x.perWrite()
		p("| %d | %s | %.0f | %.0f | %.3f× | %.3f | %.3f | %.3f | %d / %d | %.2f / %.2f | %.0f%% |\n", i+1, x.first(),
			x.WritesPerSec, x.PgbenchTPS, x.Ratio, pg, pgb, srv, x.Comments, x.Failed, x.REST.P50, x.REST.P99, x.MachineBusyPct)
	}
	failed, errs := dbFailures(pairs)
	if len(pairs) > 1 {
		cell := func(f func(DBResult) float64, format string) string {
			med, lo, hi, _ := r.dbStat(f)
			return fmt.Sprintf(format+" ("+format+" to "+format+")", med, lo, hi)
		}
		ok := 0
		for _, x := range pairs {
			ok += x.Comments
		}
		p("| **median** (lowest to highest) | | %s | %s | %s | %s | %s | %s | %d / %d in all | | |\n",
			cell(func(x DBResult) float64 { return x.WritesPerSec }, "%.0f"),
			cell(func(x DBResult) float64 { return x.PgbenchTPS }, "%.0f"),
			cell(func(x DBResult) float64 { return x.Ratio }, "%.3f×"),
			cell(func(x DBResult) float64 { _, pg, _ := x.perWrite(); return pg }, "%.3f"),
			cell(func(x DBResult) float64 { _, _, pgb := x.perWrite(); return pgb }, "%.3f"),
			cell(func(x DBResult) float64 { srv, _, _ := x.perWrite(); return srv }, "%.3f"),
			ok, failed)
	}
	p("\nTarget: REST / pgbench ≥ %.2f× (issue 12; issue 6 asked ≥ %.1f×), PostgreSQL CPU per REST write ≤ %.2f ms; the verdicts, on the medians, are in the targets tables above.", targetWriteRatio, targetDBRatio, targetPgMSPerWrite)
	if failed > 0 {
		p(" **%d REST writes failed**: %s.", failed, counts(errs))
	}
	p("\n\nA REST comment is one database round trip when the server's tenant and session caches answer (a fresh server's first request of each token adds one): `create_comment` (migration 0010) with the tenant setting as one pipelined batch, announced after commit by the batched doorbell.\n\n")
}

func writeMicro(w io.Writer, micro, stat string) {
	if micro == "" && stat == "" {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Microbenchmarks (`realtime/bench_test.go`)\n\n")
	p("`go test -run XXX -bench . -benchmem -count 5 ./realtime/`, summarised by `benchstat -confidence 0.9` (medians; five runs are too few for benchstat's default 95%% ranges). `BenchmarkDeliver` hands one batch to every session of a room through real melody sessions over in-memory pipes (melody's queue, write pump and WebSocket framing; no kernel); `BenchmarkReplay10k` reads 10,000 events from PostgreSQL and writes them to one session; `BenchmarkPresenceJoinStorm` is a join storm's presence work in one room without sockets (every joiner's state, a flush window every 100 joins), with the presence bytes each client received; `BenchmarkRing` keeps a delivered event in a room's recent events (at the bound of 1,000) and reads a resume's 100 missed events from them.\n\n")
	text := stat
	if text == "" {
		text = micro
	}
	p("```\n%s\n```\n\n", strings.TrimSpace(text))
}

func writeProfiles(w io.Writer, runs []benchRun) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	shown := false
	header := func() {
		if !shown {
			p("## CPU profiles\n\n")
			shown = true
		}
	}
	for _, r := range runs {
		if r.rep == nil {
			continue
		}
		for _, ph := range []*Phase{r.rep.Agora, r.rep.Baseline} {
			if ph == nil {
				continue
			}
			if top := pprofTop(ph.Profile, "", pprofTopNodeCount); top != "" {
				header()
				p("`%s`, %s, write phase (%s):\n\n```\n%s\n```\n\n", r.c.label, ph.Target, ph.Profile, top)
			}
			if top := pprofTop(ph.Profile, "-cum", pprofTopNodeCount); top != "" && ph.Target == "agora" {
				p("The same, by cumulative time:\n\n```\n%s\n```\n\n", top)
			}
		}
		if r.rep.DB != nil {
			if top := pprofTop(r.rep.DB.Profile, "", pprofTopNodeCount); top != "" {
				header()
				p("`%s`, agora, REST writes with no subscribers (%s):\n\n```\n%s\n```\n\n", r.c.label, r.rep.DB.Profile, top)
			}
		}
	}
}

// trimProfile drops pprof's header lines that name the binary and time.
func trimProfile(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}
