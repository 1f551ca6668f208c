// Package devdb runs a private PostgreSQL cluster for development and tests.
//
// A cluster lives in a directory of its own: the data directory in Dir/data,
// the server log in Dir/postgres.log and generated passwords in Dir/*.secret
// (mode 0600, owned by the running user). The cluster listens only on
// 127.0.0.1, on a free port picked when it is initialised and kept in its
// postgresql.conf, and has no Unix socket.
//
// PostgreSQL refuses to run as root. When the calling process is root, the
// server programs (initdb, pg_ctl, postgres) are run as the "postgres" OS user
// instead; Dir is then made traversable (not readable) by that user, while
// the data directory and the log file are owned by it.
package devdb

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// Options configures Start.
type Options struct {
	// Dir is where the cluster lives: data in Dir/data, the server log in
	// Dir/postgres.log, generated passwords in Dir/*.secret.
	Dir string
	// Fast trades durability for speed, for tests: fsync=off,
	// synchronous_commit=off, full_page_writes=off, max_connections=400.
	// It takes effect when the cluster is initialised.
	Fast bool
	// Log receives progress messages. The zero value discards them.
	Log zerolog.Logger
}

// Cluster is a running private PostgreSQL cluster.
type Cluster struct {
	dir      string
	dataDir  string
	logFile  string
	binDir   string
	port     int
	password string // superuser password
	runAs    *osUser
	log      zerolog.Logger

	mu   sync.Mutex
	idle []*pgx.Conn // superuser connections to "postgres" kept for reuse
	// startedHere: this Start started the server (rather than reusing one
	// another process runs), so this process may stop it.
	startedHere bool
}

// StartedHere reports whether Start started the server, rather than
// finding it running. A process should stop only a cluster it started.
func (c *Cluster) StartedHere() bool { return c.startedHere }

const (
	superuser      = "postgres"
	superuserFile  = "postgres.secret"
	logFileName    = "postgres.log"
	dataDirName    = "data"
	startTimeout   = 60 * time.Second
	confBlockBegin = "# ---- added by agora/store/devdb ----"
)

// Start initialises the cluster in opts.Dir if that has not been done yet,
// starts it unless it is already running, and waits until it accepts
// connections. A cluster already running from the same directory (for
// example one started by another process) is reused.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("devdb: Options.Dir is empty")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("devdb: %w", err)
	}
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	runAs, err := serverUser()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, dataDirName),
		logFile: filepath.Join(dir, logFileName),
		binDir:  binDir,
		runAs:   runAs,
		log:     opts.Log,
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}

	fresh := false
	initialised, err := c.initialised()
	if err != nil {
		return nil, err
	}
	if !initialised {
		t0 := time.Now()
		if err := c.initdb(ctx, opts.Fast); err != nil {
			return nil, err
		}
		fresh = true
		c.log.Info().Str("dir", dir).Int("port", c.port).Dur("took", time.Since(t0)).Msg("devdb: initialised cluster")
	} else {
		pw, err := os.ReadFile(filepath.Join(dir, superuserFile))
		if err != nil {
			return nil, fmt.Errorf("devdb: reading superuser password of the existing cluster in %s: %w", dir, err)
		}
		c.password = strings.TrimSpace(string(pw))
		if c.port, err = c.confPort(); err != nil {
			return nil, err
		}
	}

	running, err := c.running(ctx)
	if err != nil {
		return nil, err
	}
	if running {
		c.log.Info().Str("dir", dir).Int("port", c.port).Msg("devdb: reusing running cluster")
	} else if err := c.start(ctx, fresh); err != nil {
		return nil, err
	} else {
		c.startedHere = true
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// prepareDirs creates Dir, Dir/data and the log file, and when running as
// root gives the server user what it needs of them.
func (c *Cluster) prepareDirs() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("devdb: creating %s: %w", c.dir, err)
	}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("devdb: creating %s: %w", c.dataDir, err)
	}
	lf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("devdb: creating log file: %w", err)
	}
	lf.Close()
	if c.runAs == nil {
		return nil
	}
	// The server user must be able to reach Dir/data and Dir/postgres.log,
	// but not read the secrets in Dir: Dir gets o+x only.
	if err := ensureSearchable(c.dir, c.runAs); err != nil {
		return err
	}
	if err := checkAncestorsSearchable(c.dir, c.runAs); err != nil {
		return err
	}
	for _, p := range []string{c.dataDir, c.logFile} {
		if err := os.Chown(p, c.runAs.uid, c.runAs.gid); err != nil {
			return fmt.Errorf("devdb: chown %s to %s: %w", p, c.runAs.name, err)
		}
	}
	return nil
}

// initialised reports whether Dir/data holds a cluster.
func (c *Cluster) initialised() (bool, error) {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return true, nil
	}
	entries, err := os.ReadDir(c.dataDir)
	if err != nil {
		return false, fmt.Errorf("devdb: %w", err)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("devdb: %s is neither empty nor a PostgreSQL data directory (no PG_VERSION); remove it to start afresh", c.dataDir)
	}
	return false, nil
}

func (c *Cluster) initdb(ctx context.Context, fast bool) error {
	c.password = rand.Text()
	if err := writeSecret(filepath.Join(c.dir, superuserFile), c.password); err != nil {
		return err
	}
	// initdb runs as the server user and must be able to read the password
	// file; it is removed as soon as initdb is done.
	pwfile := filepath.Join(c.dir, ".initdb-pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("devdb: writing initdb password file: %w", err)
	}
	defer os.Remove(pwfile)
	if c.runAs != nil {
		if err := os.Chown(pwfile, c.runAs.uid, c.runAs.gid); err != nil {
			return fmt.Errorf("devdb: chown %s: %w", pwfile, err)
		}
	}
	args := []string{
		"-D", c.dataDir,
		"--auth=scram-sha-256",
		"--pwfile=" + pwfile,
		"-U", superuser,
		"--encoding=UTF8",
		"--locale=C",
		"--no-instructions",
	}
	if fast {
		args = append(args, "--no-sync")
	}
	out, err := c.command(ctx, "initdb", args...).CombinedOutput()
	c.log.Debug().Str("output", string(out)).Msg("devdb: initdb")
	if err != nil {
		return fmt.Errorf("devdb: initdb in %s: %w\n%s", c.dataDir, err, strings.TrimSpace(string(out)))
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n", confBlockBegin)
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "unix_socket_directories = ''\n")
	if fast {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 400\n")
	}
	fmt.Fprintf(&b, "port = %d\n", port)
	return c.appendConf(b.String())
}

func (c *Cluster) appendConf(s string) error {
	// Appending keeps the file's owner (the server user).
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("devdb: %w", err)
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return fmt.Errorf("devdb: writing postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("devdb: writing postgresql.conf: %w", err)
	}
	return nil
}

// confPort reads the port setting from postgresql.conf and
// postgresql.auto.conf (the last setting wins, as in the server).
func (c *Cluster) confPort() (int, error) {
	port := 0
	for _, name := range []string{"postgresql.conf", "postgresql.auto.conf"} {
		data, err := os.ReadFile(filepath.Join(c.dataDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("devdb: %w", err)
		}
		if p := parsePort(string(data)); p != 0 {
			port = p
		}
	}
	if port == 0 {
		return 0, fmt.Errorf("devdb: no port setting in %s/postgresql.conf", c.dataDir)
	}
	return port, nil
}

// parsePort returns the value of the last "port" setting in a
// postgresql.conf-style text, or 0.
func parsePort(conf string) int {
	port := 0
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "port")
		if !ok || rest == "" || !(rest[0] == ' ' || rest[0] == '\t' || rest[0] == '=') {
			continue
		}
		rest = strings.TrimSpace(rest)
		rest = strings.TrimSpace(strings.TrimPrefix(rest, "="))
		rest = strings.Trim(rest, "'")
		if p, err := strconv.Atoi(rest); err == nil && p > 0 && p < 65536 {
			port = p
		}
	}
	return port
}

// running reports whether a postmaster is running on the data directory,
// after removing a postmaster.pid left behind by one that is gone.
func (c *Cluster) running(ctx context.Context) (bool, error) {
	c.removeStalePidFile()
	cmd := c.command(ctx, "pg_ctl", "status", "-D", c.dataDir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return true, nil
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		return false, nil
	}
	return false, fmt.Errorf("devdb: pg_ctl status: %w\n%s", err, strings.TrimSpace(string(out)))
}

// start runs pg_ctl start. A freshly initialised cluster whose port was taken
// in the meantime gets another port.
func (c *Cluster) start(ctx context.Context, fresh bool) error {
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		logOffset := fileSize(c.logFile)
		cmd := c.command(ctx, "pg_ctl", "start", "-w",
			"-t", strconv.Itoa(int(startTimeout/time.Second)),
			"-D", c.dataDir, "-l", c.logFile)
		out, err := cmd.CombinedOutput()
		if err == nil {
			c.log.Info().Str("dir", c.dir).Int("port", c.port).Dur("took", time.Since(t0)).Msg("devdb: started cluster")
			return nil
		}
		tail := logTailFrom(c.logFile, logOffset)
		if fresh && attempt < 4 && strings.Contains(tail, "Address already in use") {
			port, perr := freePort()
			if perr != nil {
				return perr
			}
			c.log.Warn().Int("port", c.port).Int("new_port", port).Msg("devdb: port taken, retrying on another")
			if perr := c.appendConf(fmt.Sprintf("port = %d\n", port)); perr != nil {
				return perr
			}
			c.port = port
			continue
		}
		return fmt.Errorf("devdb: starting PostgreSQL in %s (port %d): %w\npg_ctl: %s\n--- tail of %s ---\n%s",
			c.dataDir, c.port, err, strings.TrimSpace(string(out)), c.logFile, tail)
	}
}

// waitReady waits until the superuser can connect.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var lastErr error
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(actx, c.SuperuserURL("postgres"))
		acancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("devdb: PostgreSQL in %s does not accept connections on port %d: %w (last error: %v)\n--- tail of %s ---\n%s",
				c.dataDir, c.port, ctx.Err(), lastErr, c.logFile, logTail(c.logFile))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the cluster (pg_ctl stop -m fast). Stopping a cluster that is
// not running is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	c.closeIdle()
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	if !running {
		return nil
	}
	out, err := c.command(ctx, "pg_ctl", "stop", "-w", "-m", "fast",
		"-t", strconv.Itoa(int(startTimeout/time.Second)), "-D", c.dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("devdb: pg_ctl stop: %w\n%s\n--- tail of %s ---\n%s",
			err, strings.TrimSpace(string(out)), c.logFile, logTail(c.logFile))
	}
	c.log.Info().Str("dir", c.dir).Msg("devdb: stopped cluster")
	return nil
}

// StopImmediate stops the server the way clients see a crash
// (pg_ctl stop -m immediate): every backend is killed at once, nothing is
// shut down cleanly, and the next start runs crash recovery. It is for
// tests of database outages; Resume starts the server again.
func (c *Cluster) StopImmediate(ctx context.Context) error {
	c.closeIdle()
	out, err := c.command(ctx, "pg_ctl", "stop", "-w", "-m", "immediate",
		"-t", strconv.Itoa(int(startTimeout/time.Second)), "-D", c.dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("devdb: pg_ctl stop -m immediate: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	c.log.Info().Str("dir", c.dir).Msg("devdb: stopped cluster immediately")
	return nil
}

// Resume starts a stopped cluster again, on its port, and waits until it
// accepts connections. A running cluster is left as it is.
func (c *Cluster) Resume(ctx context.Context) error {
	running, err := c.running(ctx)
	if err != nil || running {
		return err
	}
	if err := c.start(ctx, false); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// SuperuserURL returns a URL for connecting to database db as the superuser.
func (c *Cluster) SuperuserURL(db string) string {
	return c.url(superuser, c.password, db)
}

func (c *Cluster) url(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (c *Cluster) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.SuperuserURL(db))
	if err != nil {
		return nil, fmt.Errorf("devdb: connecting as superuser to %q: %w", db, err)
	}
	return conn, nil
}

// maxIdle is how many superuser connections to the "postgres" database are
// kept for reuse: opening one costs tens of milliseconds (SCRAM, backend
// start), which adds up over many test databases.
const maxIdle = 4

// admin runs f on a superuser connection to the "postgres" database.
func (c *Cluster) admin(ctx context.Context, f func(*pgx.Conn) error) error {
	var conn *pgx.Conn
	for conn == nil {
		c.mu.Lock()
		if n := len(c.idle); n > 0 {
			conn = c.idle[n-1]
			c.idle = c.idle[:n-1]
		}
		c.mu.Unlock()
		if conn == nil {
			var err error
			if conn, err = c.connect(ctx, "postgres"); err != nil {
				return err
			}
			break
		}
		if err := conn.Ping(ctx); err != nil { // e.g. the server was restarted
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return fmt.Errorf("devdb: %w", ctx.Err())
			}
		}
	}
	err := f(conn)
	if conn.IsClosed() || conn.PgConn().TxStatus() != 'I' {
		conn.Close(context.Background())
		return err
	}
	c.mu.Lock()
	if len(c.idle) < maxIdle {
		c.idle = append(c.idle, conn)
		conn = nil
	}
	c.mu.Unlock()
	if conn != nil {
		conn.Close(context.Background())
	}
	return err
}

// closeIdle closes the kept superuser connections.
func (c *Cluster) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, conn := range idle {
		conn.Close(context.Background())
	}
}

// EnsureApp makes sure there are two LOGIN roles (NOSUPERUSER NOBYPASSRLS
// NOCREATEDB NOCREATEROLE) whose generated passwords are kept in
// Dir/<role>.secret: owner, which owns database db and so may create its
// schema, and app, which owns nothing in db and gets only what owner
// grants it. It returns the URLs for connecting to db as each. It is
// idempotent; the roles' attributes and passwords, and the database's
// owner, are re-asserted on every call.
//
// A database made by the single-role layout, where app owned everything,
// is converted: what app owns in db, and any database it owns, goes to
// owner (REASSIGN OWNED). app then has no rights on the old tables until
// owner grants them (the migrations do).
func (c *Cluster) EnsureApp(ctx context.Context, owner, app, db string) (ownerURL, appURL string, err error) {
	if owner == "" || app == "" || db == "" {
		return "", "", errors.New("devdb: EnsureApp needs an owner role, an app role and a database name")
	}
	if owner == app {
		return "", "", fmt.Errorf("devdb: EnsureApp: the owner and the app role are both %q", owner)
	}
	passwords := map[string]string{}
	for _, role := range []string{owner, app} {
		if role == superuser {
			return "", "", fmt.Errorf("devdb: EnsureApp: %q is the superuser, not an application role", role)
		}
		if passwords[role], err = readOrCreateSecret(filepath.Join(c.dir, secretFileName(role))); err != nil {
			return "", "", err
		}
	}
	var reassign bool
	err = c.admin(ctx, func(conn *pgx.Conn) error {
		for _, role := range []string{owner, app} {
			if err := ensureRole(ctx, conn, role, passwords[role]); err != nil {
				return err
			}
		}
		if err := c.ensureDatabase(ctx, conn, db, owner); err != nil {
			return err
		}
		// pg_shdepend is shared: this needs no connection to db.
		err := conn.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
			               WHERE d.datname = $1 AND s.deptype = 'o' AND s.refobjid = $2::regrole)`, db, pgx.Identifier{app}.Sanitize()).
			Scan(&reassign)
		if err != nil {
			return fmt.Errorf("devdb: looking up what %q owns in %q: %w", app, db, err)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	if reassign {
		conn, err := c.connect(ctx, db)
		if err != nil {
			return "", "", err
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "REASSIGN OWNED BY "+pgx.Identifier{app}.Sanitize()+" TO "+pgx.Identifier{owner}.Sanitize()); err != nil {
			return "", "", fmt.Errorf("devdb: giving what %q owns in %q to %q: %w", app, db, owner, err)
		}
		c.log.Info().Str("from", app).Str("to", owner).Str("db", db).Msg("devdb: the application role owned tables; they now belong to the owner role")
	}
	return c.url(owner, passwords[owner], db), c.url(app, passwords[app], db), nil
}

// ensureRole creates role, or re-asserts its attributes and password.
func ensureRole(ctx context.Context, conn *pgx.Conn, role, password string) error {
	ident := pgx.Identifier{role}.Sanitize()
	attrs := "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD " + quoteLiteral(password)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("devdb: looking up role %q: %w", role, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE ROLE "+ident+" "+attrs)
		if isCode(err, "42710") { // duplicate_object: created concurrently
			exists, err = true, nil
		}
		if err != nil {
			return fmt.Errorf("devdb: creating role %q: %w", role, err)
		}
	}
	if exists {
		if _, err := conn.Exec(ctx, "ALTER ROLE "+ident+" "+attrs); err != nil {
			return fmt.Errorf("devdb: altering role %q: %w", role, err)
		}
	}
	return nil
}

// ensureDatabase creates db owned by owner, or gives it to owner.
func (c *Cluster) ensureDatabase(ctx context.Context, conn *pgx.Conn, db, owner string) error {
	ident := pgx.Identifier{owner}.Sanitize()
	var current *string
	err := conn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", db).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER "+ident)
		if isCode(err, "42P04") { // duplicate_database: created concurrently
			err = nil
		}
		if err != nil {
			return fmt.Errorf("devdb: creating database %q: %w", db, err)
		}
		c.log.Info().Str("owner", owner).Str("db", db).Msg("devdb: created application database")
	case err != nil:
		return fmt.Errorf("devdb: looking up database %q: %w", db, err)
	case current == nil || *current != owner:
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER TO "+ident); err != nil {
			return fmt.Errorf("devdb: giving database %q to %q: %w", db, owner, err)
		}
	}
	return nil
}

// CreateDatabase runs CREATE DATABASE name TEMPLATE template OWNER owner as
// the superuser. An empty template or owner leaves that clause out.
//
// The copy also gets the template's database privileges (PostgreSQL starts
// a new database with the defaults), so that, say, TEMPORARY taken from
// PUBLIC on the template stays taken in its clones.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template, owner string) error {
	ident := pgx.Identifier{name}.Sanitize()
	q := "CREATE DATABASE " + ident
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if owner != "" {
		q += " OWNER " + pgx.Identifier{owner}.Sanitize()
	}
	exec := func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("devdb: creating database %q: %w", name, err)
		}
		if template == "" {
			return nil
		}
		// No rows when the template has the default privileges (a NULL
		// datacl), which the copy has too.
		rows, err := conn.Query(ctx, `
			SELECT 'GRANT ' || a.privilege_type || ' ON DATABASE ' || $2 || ' TO ' ||
			       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
			FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1`, template, ident)
		if err != nil {
			return fmt.Errorf("devdb: reading the privileges of %q: %w", template, err)
		}
		grants, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("devdb: reading the privileges of %q: %w", template, err)
		}
		if len(grants) == 0 {
			return nil
		}
		acl := "REVOKE ALL ON DATABASE " + ident + " FROM PUBLIC;\n" + strings.Join(grants, ";\n")
		if _, err := conn.Exec(ctx, acl); err != nil {
			return fmt.Errorf("devdb: copying the privileges of %q to %q: %w", template, name, err)
		}
		return nil
	}
	if template != "postgres" {
		return c.admin(ctx, exec)
	}
	// The kept connections are to "postgres", which cannot be copied while
	// anyone is connected to it.
	c.closeIdle()
	conn, err := c.connect(ctx, "template1")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return exec(conn)
}

// DropDatabase drops database name if it exists, terminating its sessions
// (DROP DATABASE ... WITH (FORCE)).
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return c.admin(ctx, func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("devdb: dropping database %q: %w", name, err)
		}
		return nil
	})
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on, the default since PostgreSQL 9.1).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// freePort picks a free TCP port on 127.0.0.1, preferring ports below the
// usual ephemeral range so that outgoing connections are unlikely to hold it
// when the cluster restarts later.
func freePort() (int, error) {
	var buf [2]byte
	for range 50 {
		if _, err := rand.Read(buf[:]); err != nil {
			break
		}
		port := 15000 + (int(buf[0])<<8|int(buf[1]))%17000 // 15000..31999
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("devdb: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
