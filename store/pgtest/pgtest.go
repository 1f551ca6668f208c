// Package pgtest gives tests a PostgreSQL database of their own.
//
// One private cluster (see store/devdb) runs per test binary; each test gets
// a fresh database cloned from a template migrated as the owner role
// "agora_owner", and connects to it as the serving role "agora", which owns
// nothing and has the rights the migrations granted it, as in production:
//
//	func TestMain(m *testing.M) { pgtest.Main(m, store.MigrateUp) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDatabase(t) // dropped when the test ends
//		...
//	}
//
// OwnerURL and SuperuserURL reach the same database with more powers, for
// tests that need DDL or superuser tricks.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"agora/store/devdb"
)

const (
	// AppRole is the role tests connect as: LOGIN, no SUPERUSER, no
	// BYPASSRLS, owner of nothing.
	AppRole = "agora"
	// OwnerRole owns the template and every test database, and so what the
	// migrations create: LOGIN, no SUPERUSER, no BYPASSRLS.
	OwnerRole = "agora_owner"
	// TemplateDB is the migrated database each test database is cloned from.
	TemplateDB = "agora_template"
)

// Set once by Main before m.Run; read-only afterwards.
var (
	cluster     *devdb.Cluster
	templateURL string // as AppRole
	ownerURL    string // the template as OwnerRole
	seq         atomic.Int64
)

// Main runs the tests of a package against a private PostgreSQL cluster. Call
// it from TestMain. It starts a cluster tuned for speed in a temporary
// directory, creates the roles "agora_owner" and "agora" and the database
// "agora_template" owned by "agora_owner", runs migrate on the template with
// the URLs of both roles (it connects as the owner and grants the serving
// role its rights), runs the tests, stops the cluster, removes the
// directory and exits with the tests' exit code.
func Main(m *testing.M, migrate func(ctx context.Context, ownerURL, appURL string) error) {
	os.Exit(run(m, migrate))
}

func run(m *testing.M, migrate func(ctx context.Context, ownerURL, appURL string) error) int {
	dir, err := os.MkdirTemp("", "agora-pgtest-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	// Removes the cluster if this process dies without cleaning up (test
	// timeout, panic, kill).
	watchdog := startWatchdog(dir)

	var started atomic.Pointer[devdb.Cluster] // also read by the signal handler
	cleanup := sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		if c := started.Load(); c != nil {
			err = c.Stop(ctx)
		}
		if err == nil {
			err = os.RemoveAll(dir)
		}
		if err == nil && watchdog != nil {
			watchdog.Kill()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: cleaning up %s: %v\n", dir, err)
		}
		return err
	})
	defer cleanup()

	// A Ctrl-C stops the cluster before exiting (the server itself is in a
	// process group of its own and does not get the terminal's signal).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "pgtest: interrupted, stopping the test cluster")
			cleanup()
			os.Exit(1)
		}
	}()

	setupCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	c, err := devdb.Start(setupCtx, devdb.Options{Dir: dir, Fast: true, Log: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: starting the test cluster: %v\n", err)
		return 1
	}
	started.Store(c)
	tmplOwnerURL, tmplURL, err := c.EnsureApp(setupCtx, OwnerRole, AppRole, TemplateDB)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	if err := migrate(setupCtx, tmplOwnerURL, tmplURL); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: migrating %s: %v\n", TemplateDB, err)
		return 1
	}
	if err := sealTemplate(setupCtx, c); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	cancel()

	cluster, templateURL, ownerURL = c, tmplURL, tmplOwnerURL
	code := m.Run()
	if cleanup() != nil && code == 0 {
		code = 1
	}
	return code
}

// sealTemplate makes the template a template database that accepts no
// connections and closes those left open (by migrate): CREATE DATABASE
// ... TEMPLATE fails while the template has sessions.
func sealTemplate(ctx context.Context, c *devdb.Cluster) error {
	conn, err := pgx.Connect(ctx, c.SuperuserURL("postgres"))
	if err != nil {
		return fmt.Errorf("connecting as superuser: %w", err)
	}
	defer conn.Close(context.Background())
	tmpl := pgx.Identifier{TemplateDB}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+tmpl+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("sealing %s: %w", TemplateDB, err)
	}
	for {
		var left int
		err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 5000))
			FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, TemplateDB).Scan(&left)
		if err != nil {
			return fmt.Errorf("closing connections to %s: %w", TemplateDB, err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("closing connections to %s: %d left: %w", TemplateDB, left, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startWatchdog starts a shell, in a process group of its own, that waits
// for this process to end and then stops the cluster in dir (SIGINT to the
// postmaster is a fast shutdown) and removes dir. It is killed once Main has
// cleaned up by itself.
func startWatchdog(dir string) *os.Process {
	const script = `[ -n "$2" ] || exit 1
while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null; then
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
fi
rm -rf "$2"`
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", strconv.Itoa(os.Getpid()), dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// No stdout/stderr: go test waits for the test binary's output pipes
	// to close, which would wait for the watchdog too.
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: starting watchdog (the cluster in %s is left behind if the tests crash): %v\n", dir, err)
		return nil
	}
	return cmd.Process
}

// NewDatabase creates a database cloned from the migrated template, owned by
// the role "agora_owner", drops it when tb ends (tb.Cleanup), and returns the
// URL for connecting to it as the serving role "agora". Main must have been
// called from TestMain.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	return newDatabase(tb, cluster, templateURL)
}

func newDatabase(tb testing.TB, c *devdb.Cluster, templateURL string) string {
	tb.Helper()
	if c == nil {
		tb.Fatal("pgtest.NewDatabase: no test cluster: pgtest.Main was not called; add to this package's tests:\n\tfunc TestMain(m *testing.M) { pgtest.Main(m, migrate) }")
	}
	name := dbName(tb.Name(), seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name, TemplateDB, OwnerRole); err != nil {
		tb.Fatalf("pgtest.NewDatabase: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	u, err := withDatabase(templateURL, name)
	if err != nil {
		tb.Fatalf("pgtest.NewDatabase: %v", err)
	}
	return u
}

// withDatabase is rawURL pointing to database db instead.
func withDatabase(rawURL, db string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	return u.String(), nil
}

// OwnerURL returns a URL for connecting to database db of the test cluster
// as the owner role "agora_owner", for tests that need what only the owner
// may do (DDL, running migrations by hand). It panics if Main was not
// called.
func OwnerURL(db string) string {
	if cluster == nil {
		panic("pgtest.OwnerURL: no test cluster: pgtest.Main was not called from TestMain")
	}
	u, err := withDatabase(ownerURL, db)
	if err != nil {
		panic("pgtest.OwnerURL: " + err.Error()) // ownerURL is devdb's own making
	}
	return u
}

// DBName is the database name of a postgres:// URL, such as one that
// NewDatabase returned.
func DBName(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// SuperuserURL returns a URL for connecting to database db of the test
// cluster as the superuser, for tests that need superuser powers (e.g.
// pg_terminate_backend). It panics if Main was not called.
func SuperuserURL(db string) string {
	if cluster == nil {
		panic("pgtest.SuperuserURL: no test cluster: pgtest.Main was not called from TestMain")
	}
	return cluster.SuperuserURL(db)
}

// StopCluster stops the test cluster the way clients see a crash
// (pg_ctl stop -m immediate), for tests of database outages; StartCluster
// brings it back. Every test of the binary shares the cluster: a test that
// stops it must not run in parallel with others.
func StopCluster(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if cluster == nil {
		tb.Fatal("pgtest.StopCluster: pgtest.Main was not called")
	}
	if err := cluster.StopImmediate(ctx); err != nil {
		tb.Fatalf("pgtest.StopCluster: %v", err)
	}
}

// StartCluster starts the test cluster again after StopCluster and waits
// until it accepts connections (crash recovery included).
func StartCluster(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cluster == nil {
		tb.Fatal("pgtest.StartCluster: pgtest.Main was not called")
	}
	if err := cluster.Resume(ctx); err != nil {
		tb.Fatalf("pgtest.StartCluster: %v", err)
	}
}

// dbName makes a database name unique in the cluster that says which test
// it belongs to, within PostgreSQL's 63-byte limit.
func dbName(testName string, n int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", n)
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
