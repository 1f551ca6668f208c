package devdb

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// clusterDir returns a fresh directory for a cluster. Not t.TempDir: when
// the tests run as root the server runs as the postgres user, which cannot
// traverse t.TempDir's 0700 parents.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devdb-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing %s: %v", dir, err)
		}
	})
	return dir
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(t0))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", redact(url), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func redact(url string) string {
	if i, j := strings.Index(url, "://"), strings.LastIndex(url, "@"); i >= 0 && j > i {
		return url[:i+3] + "…" + url[j:]
	}
	return url
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir() = %s: %v", dir, err)
		}
	}
	t.Logf("FindBinDir() = %s", dir)
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	dir := clusterDir(t)
	opts := Options{Dir: dir, Fast: true, Log: testLogger(t)}
	c := startCluster(t, opts)

	su := connect(t, c.SuperuserURL("postgres"))
	var startedAt time.Time
	if err := su.QueryRow(ctx, "SELECT pg_postmaster_start_time()").Scan(&startedAt); err != nil {
		t.Fatal(err)
	}
	var fsync, listen, maxConn string
	if err := su.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('listen_addresses'), current_setting('max_connections')").Scan(&fsync, &listen, &maxConn); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || listen != "127.0.0.1" || maxConn != "400" {
		t.Errorf("fsync=%s listen_addresses=%s max_connections=%s, want off 127.0.0.1 400", fsync, listen, maxConn)
	}

	// Secrets are private to the running user.
	for _, name := range []string{"postgres.secret"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	t.Run("EnsureApp", func(t *testing.T) {
		ownerURL, url, err := c.EnsureApp(ctx, "app_owner", "app", "app_db")
		if err != nil {
			t.Fatal(err)
		}
		owner, app := connect(t, ownerURL), connect(t, url)
		for conn, want := range map[*pgx.Conn]string{owner: "app_owner", app: "app"} {
			var user, db string
			if err := conn.QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &db); err != nil {
				t.Fatal(err)
			}
			if user != want || db != "app_db" {
				t.Errorf("connected as %s to %s, want %s to app_db", user, db, want)
			}
			var super, bypass, createdb, createrole, login bool
			if err := su.QueryRow(ctx, "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1", want).
				Scan(&super, &bypass, &createdb, &createrole, &login); err != nil {
				t.Fatal(err)
			}
			if super || bypass || createdb || createrole || !login {
				t.Errorf("role %s: super=%v bypassrls=%v createdb=%v createrole=%v login=%v", want, super, bypass, createdb, createrole, login)
			}
			if fi, err := os.Stat(filepath.Join(dir, want+".secret")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s.secret: %v %v", want, fi, err)
			}
		}
		var dbOwner string
		if err := su.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app_db'").Scan(&dbOwner); err != nil {
			t.Fatal(err)
		}
		if dbOwner != "app_owner" {
			t.Errorf("app_db owned by %s, want app_owner", dbOwner)
		}
		// The owner can create tables in public (PostgreSQL 15 restricts it
		// to the database's owner); the app role cannot.
		if _, err := owner.Exec(ctx, "CREATE TABLE t (id int); GRANT SELECT ON t TO app"); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exec(ctx, "CREATE TABLE t2 (id int)"); err == nil {
			t.Error("the app role created a table")
		}

		// Idempotent: same URLs, still works, the table is still there.
		ownerURL2, url2, err := c.EnsureApp(ctx, "app_owner", "app", "app_db")
		if err != nil {
			t.Fatal(err)
		}
		if url2 != url || ownerURL2 != ownerURL {
			t.Errorf("second EnsureApp URLs differ: %s, %s vs %s, %s", redact(ownerURL2), redact(url2), redact(ownerURL), redact(url))
		}
		if _, err := connect(t, url2).Exec(ctx, "SELECT * FROM t"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.EnsureApp(ctx, "same", "same", "app_db"); err == nil {
			t.Error("EnsureApp accepted one role as both owner and app")
		}
	})

	t.Run("SingleRoleLayoutConverted", func(t *testing.T) {
		// As the single-role layout left it: the app role owns the
		// database and its tables.
		for _, q := range []string{"CREATE ROLE legacy LOGIN PASSWORD 'legacy-pw'", "CREATE DATABASE legacy_db OWNER legacy"} {
			if _, err := su.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		old := connect(t, c.url("legacy", "legacy-pw", "legacy_db"))
		if _, err := old.Exec(ctx, "CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY, body text)"); err != nil {
			t.Fatal(err)
		}
		ownerURL, url, err := c.EnsureApp(ctx, "legacy_owner", "legacy", "legacy_db")
		if err != nil {
			t.Fatal(err)
		}
		var dbOwner, tableOwner string
		err = connect(t, ownerURL).QueryRow(ctx, `SELECT pg_get_userbyid(d.datdba), pg_get_userbyid(c.relowner)
			FROM pg_database d, pg_class c WHERE d.datname = current_database() AND c.oid = 'posts'::regclass`).Scan(&dbOwner, &tableOwner)
		if err != nil {
			t.Fatal(err)
		}
		if dbOwner != "legacy_owner" || tableOwner != "legacy_owner" {
			t.Errorf("after EnsureApp: database owned by %s, posts by %s; want legacy_owner for both", dbOwner, tableOwner)
		}
		if _, err := connect(t, url).Exec(ctx, "DROP TABLE posts"); err == nil {
			t.Error("the app role can still drop the table it used to own")
		}
	})

	t.Run("QuotedNames", func(t *testing.T) {
		owner, role, db := `we"ird Owner`, `we"ird Role`, `my-db "x"`
		ownerURL, url, err := c.EnsureApp(ctx, owner, role, db)
		if err != nil {
			t.Fatal(err)
		}
		for u, want := range map[string]string{ownerURL: owner, url: role} {
			var user, cdb string
			if err := connect(t, u).QueryRow(ctx, "SELECT current_user, current_database()").Scan(&user, &cdb); err != nil {
				t.Fatal(err)
			}
			if user != want || cdb != db {
				t.Errorf("connected as %q to %q, want %q to %q", user, cdb, want, db)
			}
		}
		if _, _, err := c.EnsureApp(ctx, owner, role, db); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CreateDropDatabase", func(t *testing.T) {
		// The copy keeps the template's database privileges, which
		// PostgreSQL itself resets.
		if _, err := su.Exec(ctx, "REVOKE TEMPORARY ON DATABASE app_db FROM PUBLIC"); err != nil {
			t.Fatal(err)
		}
		if err := c.CreateDatabase(ctx, "app_copy", "app_db", "app_owner"); err != nil {
			t.Fatal(err)
		}
		copyConn := connect(t, c.SuperuserURL("app_copy"))
		var n int
		if err := copyConn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("table t not cloned: %v", err)
		}
		var temp, connectOK bool
		if err := su.QueryRow(ctx, "SELECT has_database_privilege('app', 'app_copy', 'TEMPORARY'), has_database_privilege('app', 'app_copy', 'CONNECT')").Scan(&temp, &connectOK); err != nil {
			t.Fatal(err)
		}
		if temp || !connectOK {
			t.Errorf("app on app_copy: TEMPORARY %v, CONNECT %v; want the template's: false, true", temp, connectOK)
		}
		// FORCE: dropping works with a session still connected.
		if err := c.DropDatabase(ctx, "app_copy"); err != nil {
			t.Fatal(err)
		}
		var exists bool
		if err := su.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'app_copy')").Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Error("app_copy still exists after DropDatabase")
		}
		if err := c.DropDatabase(ctx, "app_copy"); err != nil {
			t.Errorf("dropping a missing database: %v", err)
		}
	})

	t.Run("StartReusesRunning", func(t *testing.T) {
		c2, err := Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if c2.port != c.port || c2.SuperuserURL("x") != c.SuperuserURL("x") {
			t.Errorf("second Start: port %d, want %d", c2.port, c.port)
		}
		conn := connect(t, c2.SuperuserURL("postgres"))
		var startedAt2 time.Time
		if err := conn.QueryRow(ctx, "SELECT pg_postmaster_start_time()").Scan(&startedAt2); err != nil {
			t.Fatal(err)
		}
		if !startedAt2.Equal(startedAt) {
			t.Errorf("server restarted: started at %v, before %v", startedAt2, startedAt)
		}
	})

	t.Run("StopAndRestart", func(t *testing.T) {
		_, url, err := c.EnsureApp(ctx, "app_owner", "app", "app_db")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(cctx, c.SuperuserURL("postgres")); err == nil {
			conn.Close(ctx)
			t.Fatal("connected after Stop")
		}

		// Starting again keeps port and passwords.
		t0 := time.Now()
		c3, err := Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("restart took %v", time.Since(t0))
		if c3.port != c.port {
			t.Errorf("port changed on restart: %d, was %d", c3.port, c.port)
		}
		conn := connect(t, url)
		if _, err := conn.Exec(ctx, "SELECT * FROM t"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStalePidFile: a postmaster.pid left by a server that is gone (its PID
// now used by some other process) does not stop Start.
func TestStalePidFile(t *testing.T) {
	ctx := context.Background()
	opts := Options{Dir: clusterDir(t), Fast: true, Log: testLogger(t)}
	c := startCluster(t, opts)
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// PID 1 is alive and is no PostgreSQL server.
	_, rest, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(pidFile, []byte("1\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.runAs != nil {
		if err := os.Chown(pidFile, c.runAs.uid, c.runAs.gid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	connect(t, c.SuperuserURL("postgres"))
}

// TestStartFailureShowsLog: when the server does not start, the error holds
// the tail of its log.
func TestStartFailureShowsLog(t *testing.T) {
	ctx := context.Background()
	opts := Options{Dir: clusterDir(t), Fast: true, Log: testLogger(t)}
	c := startCluster(t, opts)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.appendConf("no_such_setting = 1\n"); err != nil {
		t.Fatal(err)
	}
	_, err := Start(ctx, opts)
	if err == nil {
		t.Fatal("Start succeeded with a bad postgresql.conf")
	}
	if !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("error does not show the log: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestParsePort(t *testing.T) {
	for conf, want := range map[string]int{
		"#port = 5432\n":                       0,
		"port = 5432\n":                        5432,
		"port=5433 # comment\nport = '5434'\n": 5434,
		"port 5435\n":                          5435,
		"portx = 1\n":                          0,
	} {
		if got := parsePort(conf); got != want {
			t.Errorf("parsePort(%q) = %d, want %d", conf, got, want)
		}
	}
}

func TestSecretFileName(t *testing.T) {
	for role, want := range map[string]string{
		"agora":   "agora.secret",
		"a-b_c.d": "a-b_c.d.secret",
		"../x":    "@2e2e2f78.secret",
		".hidden": "@2e68696464656e.secret",
	} {
		if got := secretFileName(role); got != want {
			t.Errorf("secretFileName(%q) = %q, want %q", role, got, want)
		}
	}
}
