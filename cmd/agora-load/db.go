package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// runDB measures REST comment writes/s with no subscribers, then pgbench
// doing a plain single-row INSERT of a row of the same size on the same
// cluster, and their ratio.
func runDB(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	if e == nil {
		return nil, errors.New("--db needs the private cluster")
	}
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	srv, err := startAgora(ctx, o, e, logw)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.stop()
		}
	}()
	f, err := setupForum(ctx, srv, userCount(o), o.Rooms, logw)
	if err != nil {
		return nil, err
	}
	pool := writerPool(o, f.users)
	client := httpClient(nil, o.Writers)
	defer client.CloseIdleConnections()
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
			filepath.Join(o.ProfileDir, profileName(o.Label, "agora-db")))
	}()
	fmt.Fprintf(logw, "[%s] REST: %d writers over %d posts for %s\n", o.Label, o.Writers, o.Rooms, o.Duration)
	wr := runWriters(ctx, o.Writers, o.Rooms, o.WriteRooms, o.Rate, o.Duration, o.MaxComments, o.BodyBytes, epoch,
		agoraWriter(f, pool, client), pool.starvedFor)
	cpu1 := snapCPU(srv.pid, pgPID)
	profile := <-profDone
	stopped = true
	if err := srv.stop(); err != nil {
		fmt.Fprintln(logw, err)
	}
	d := &DBResult{Writers: o.Writers, Posts: o.Rooms, Seconds: wr.elapsed.Seconds(), Comments: wr.ok,
		Failed: wr.failed, Starved: wr.starved.Seconds(), ServerCPU: (cpu1.server - cpu0.server).Seconds(),
		PgCPU: (cpu1.pg - cpu0.pg).Seconds(), ToolCPU: (cpu1.tool - cpu0.tool).Seconds(), Profile: profile}
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
		fmt.Fprintf(logw, "[%s] REST write errors: %s\n", o.Label, counts(wr.errs))
	}

	fmt.Fprintf(logw, "[%s] pgbench: %d clients for %s\n", o.Label, o.PgbenchConns, o.PgbenchTime)
	pg0 := treeCPU(pgPID)
	if err := runPgbench(ctx, o, e, d); err != nil {
		return nil, err
	}
	d.PgbenchPgCPU = (treeCPU(pgPID) - pg0).Seconds()
	d.Ratio = ratio(d.WritesPerSec, d.PgbenchTPS)
	rep.DB = d
	return rep, nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

func runPgbench(ctx context.Context, o options, e *env, d *DBResult) error {
	if _, err := os.Stat(o.Pgbench); err != nil {
		return fmt.Errorf("pgbench: %w (pass --pgbench)", err)
	}
	if err := e.cluster.CreateDatabase(ctx, pgbenchDB, "", ""); err != nil {
		return err
	}
	su := e.cluster.SuperuserURL(pgbenchDB)
	conn, err := pgx.Connect(ctx, su)
	if err != nil {
		return fmt.Errorf("pgbench scratch database: %w", err)
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
		return fmt.Errorf("pgbench scratch table: %w", err)
	}
	script := "INSERT INTO load_rows (room, body) VALUES (:client_id % 100, '" + strings.Repeat("x", o.BodyBytes) + "');\n"
	path := filepath.Join(e.dir, "insert.sql")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return err
	}
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
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("pgbench: no tps in its output:\n%s", out)
	}
	d.PgbenchTPS, _ = strconv.ParseFloat(string(m[1]), 64)
	d.PgbenchSecs = o.PgbenchTime.Seconds()
	d.PgbenchCmd = "pgbench " + strings.Join(args[:len(args)-9], " ") + " -f insert.sql " + pgbenchDB
	d.PgbenchScript = strings.Replace(script, strings.Repeat("x", o.BodyBytes), fmt.Sprintf("<%d x>", o.BodyBytes), 1)
	return nil
}
