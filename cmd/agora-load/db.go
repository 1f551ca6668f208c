package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgbenchDB is the scratch database pgbench writes into, next to Agora's
// in the same cluster.
const pgbenchDB = "agora_load_pgbench"

// runDB measures REST comment writes/s with no subscribers against
// pgbench doing a plain single-row INSERT of a row of the same size on the
// same cluster, in o.Pairs interleaved pairs (REST then pgbench, then
// pgbench then REST, ...), each REST run on a fresh server. The forum
// (tenant, users, posts) is set up once, as the other paired scenarios
// do; so is pgbench's table, so that both sides write into tables that
// grow over the pairs.
func runDB(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	if e == nil {
		return nil, errors.New("--db needs the private cluster")
	}
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	f, err := setupOnce(ctx, o, e, logw, userCount(o), o.Rooms)
	if err != nil {
		return nil, err
	}
	script, err := preparePgbench(ctx, o, e)
	if err != nil {
		return nil, err
	}
	pool := writerPool(o, f.users)
	client := httpClient(nil, o.Writers)
	defer client.CloseIdleConnections()
	rest := func(ctx context.Context, pair int, d *DBResult) error {
		label := o.Label
		if o.Pairs > 1 {
			label = fmt.Sprintf("%s.pair%d", o.Label, pair+1)
		}
		return restWrites(ctx, o, e, f, pool, client, label, d, logw)
	}
	bench := func(ctx context.Context, pair int, d *DBResult) error {
		fmt.Fprintf(logw, "[%s] pair %d, pgbench: %d clients for %s\n", o.Label, pair+1, o.PgbenchConns, o.PgbenchTime)
		return runPgbench(ctx, o, e, script, d)
	}
	err = dbPairs(ctx, o.Pairs, o.Writers, o.Rooms, rest, bench, func(pair int, d DBResult) {
		srvMS, pgMS, pgbMS := d.perWrite()
		fmt.Fprintf(logw, "[%s] pair %d (%s first): REST %.0f/s (%d ok, %d failed), pgbench %.0f/s, %.3fx; PostgreSQL %.3f ms per write, %.3f ms per INSERT; server %.3f ms per write\n",
			o.Label, pair+1, d.first(), d.WritesPerSec, d.Comments, d.Failed, d.PgbenchTPS, d.Ratio, pgMS, pgbMS, srvMS)
		if rep.DB == nil {
			rep.DB = &d
		}
		if o.Pairs > 1 {
			rep.DBPairs = append(rep.DBPairs, d)
		}
	})
	return rep, err
}

// dbPairs runs n pairs of the REST run and the pgbench run, REST first in
// the first pair and the order alternating after it, and hands each pair
// to done once both halves are in.
func dbPairs(ctx context.Context, n, writers, posts int, rest, bench func(context.Context, int, *DBResult) error, done func(int, DBResult)) error {
	for pair := range n {
		d := DBResult{Writers: writers, Posts: posts, PgbenchFirst: pair%2 == 1}
		order := []bool{true, false}
		if pair%2 == 1 {
			order = []bool{false, true}
		}
		for _, isREST := range order {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			run := bench
			if isREST {
				run = rest
			}
			if err := run(ctx, pair, &d); err != nil {
				return fmt.Errorf("pair %d: %w", pair+1, err)
			}
		}
		d.Ratio = ratio(d.WritesPerSec, d.PgbenchTPS)
		done(pair, d)
	}
	return nil
}

// restWrites is one REST run: a fresh server, the writers as fast as they
// go for o.Duration, the CPU of the server and of PostgreSQL meanwhile.
func restWrites(ctx context.Context, o options, e *env, f *forum, pool *userPool, client *http.Client, label string, d *DBResult, logw io.Writer) error {
	srv, err := startAgora(ctx, o, e, logw)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.stop()
		}
	}()
	fa := *f
	fa.base = srv.base
	epoch := time.Now()
	pgPID := e.postmaster()
	cpu0 := snapCPU(srv.pid, pgPID)
	profDone := make(chan string, 1)
	go func() {
		if o.ProfileDir == "" {
			profDone <- ""
			return
		}
		profDone <- fetchProfile(ctx, srv.pprofBase+"/debug/pprof/profile", o.Duration,
			filepath.Join(o.ProfileDir, profileName(label, "agora-db")))
	}()
	fmt.Fprintf(logw, "[%s] REST: %d writers over %d posts for %s\n", label, o.Writers, o.Rooms, o.Duration)
	wr := runWriters(ctx, o.Writers, o.Rooms, o.WriteRooms, o.Rate, o.Duration, o.MaxComments, o.BodyBytes, epoch,
		agoraWriter(&fa, pool, client), pool.starvedFor)
	cpu1 := snapCPU(srv.pid, pgPID)
	d.Profile = <-profDone
	stopped = true
	if err := srv.stop(); err != nil {
		fmt.Fprintln(logw, err)
	}
	d.Seconds, d.Comments, d.Failed, d.Starved = wr.elapsed.Seconds(), wr.ok, wr.failed, wr.starved.Seconds()
	d.ServerCPU = (cpu1.server - cpu0.server).Seconds()
	d.PgCPU = (cpu1.pg - cpu0.pg).Seconds()
	d.ToolCPU = (cpu1.tool - cpu0.tool).Seconds()
	if wall := cpu1.total - cpu0.total; wall > 0 {
		busy := cpu1.busy - cpu0.busy
		d.MachineBusyPct = 100 * busy.Seconds() / wall.Seconds()
		d.OthersCPU = max(busy-(cpu1.server-cpu0.server)-(cpu1.tool-cpu0.tool)-(cpu1.pg-cpu0.pg), 0).Seconds()
	}
	if wr.elapsed > 0 {
		d.WritesPerSec = float64(wr.ok) / wr.elapsed.Seconds()
	}
	lat := make([]int32, 0, len(wr.lat))
	for _, l := range wr.lat {
		lat = append(lat, int32(min(l.Microseconds(), 1<<31-1)))
	}
	slices.Sort(lat)
	d.REST = latencyMS(lat)
	if wr.failed > 0 {
		d.Errors, d.ErrorSample = wr.errs, wr.errSample
		fmt.Fprintf(logw, "[%s] REST write errors: %s\n", label, counts(wr.errs))
	}
	return nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// preparePgbench creates pgbench's scratch database, its table and its
// script, once for all pairs; it returns the script's path.
func preparePgbench(ctx context.Context, o options, e *env) (string, error) {
	if _, err := os.Stat(o.Pgbench); err != nil {
		return "", fmt.Errorf("pgbench: %w (pass --pgbench)", err)
	}
	if err := e.cluster.CreateDatabase(ctx, pgbenchDB, "", ""); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, e.cluster.SuperuserURL(pgbenchDB))
	if err != nil {
		return "", fmt.Errorf("pgbench scratch database: %w", err)
	}
	// A scratch table of the benchmark's own, outside Agora's schema: an
	// id, a room and a body, like the comment the REST side writes but
	// with none of its checks, indexes, RLS or outbox.
	_, err = conn.Exec(ctx, `CREATE TABLE load_rows (
		id bigserial PRIMARY KEY,
		room int NOT NULL,
		body text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`)
	conn.Close(context.Background())
	if err != nil {
		return "", fmt.Errorf("pgbench scratch table: %w", err)
	}
	script := "INSERT INTO load_rows (room, body) VALUES (:client_id % 100, '" + strings.Repeat("x", o.BodyBytes) + "');\n"
	path := filepath.Join(e.dir, "insert.sql")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// runPgbench is one pgbench run of the script at path, with PostgreSQL's
// CPU meanwhile.
func runPgbench(ctx context.Context, o options, e *env, path string, d *DBResult) error {
	script, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	su := e.cluster.SuperuserURL(pgbenchDB)
	u, err := url.Parse(su)
	if err != nil {
		return err
	}
	pw, _ := u.User.Password()
	secs := strconv.Itoa(max(int(o.PgbenchTime.Seconds()), 1))
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(o.PgbenchConns), "-j", "2", "-T", secs,
		"-f", path, "-h", u.Hostname(), "-p", u.Port(), "-U", u.User.Username(), pgbenchDB}
	pctx, cancel := context.WithTimeout(ctx, o.PgbenchTime+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(pctx, o.Pgbench, args...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	pgPID := e.postmaster()
	pg0 := treeCPU(pgPID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	d.PgbenchPgCPU = (treeCPU(pgPID) - pg0).Seconds()
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("pgbench: no tps in its output:\n%s", out)
	}
	d.PgbenchTPS, _ = strconv.ParseFloat(string(m[1]), 64)
	d.PgbenchSecs = o.PgbenchTime.Seconds()
	d.PgbenchCmd = "pgbench " + strings.Join(args[:len(args)-9], " ") + " -f insert.sql " + pgbenchDB
	d.PgbenchScript = strings.Replace(string(script), strings.Repeat("x", o.BodyBytes), fmt.Sprintf("<%d x>", o.BodyBytes), 1)
	return nil
}
