package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"agora/store/pgtest"
)

// TestAcquireTimeout: with every pool connection held, a statement waits
// for one at most AcquireTimeout, however patient its context, and then
// fails as unavailable; the readiness ping, on its own connection, still
// answers; and once a connection is free again, statements work.
func TestAcquireTimeout(t *testing.T) {
	const wait = 300 * time.Millisecond
	db, _ := openDB(t, Config{MaxConns: 2, AcquireTimeout: wait})
	ctx := testCtx(t)
	c := newCommunity(t, db, "busy")

	release := make(chan struct{})
	holding := make(chan struct{}, 2)
	held := make(chan error, 2)
	for range 2 {
		go func() {
			held <- db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
				holding <- struct{}{}
				<-release
				return nil
			})
		}()
	}
	<-holding
	<-holding

	patient, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for name, call := range map[string]func() error{
		"a tenant transaction": func() error { _, err := db.GetUser(patient, c.tenant.ID, c.member.ID); return err },
		"a pipelined read":     func() error { _, err := db.Authenticate(patient, c.tenant.ID, c.memberToken); return err },
		"a platform read":      func() error { _, err := db.TenantBySlug(patient, "busy"); return err },
		"a notification":       func() error { return db.notify(patient, "agora_test", "x") },
	} {
		t0 := time.Now()
		err := call()
		took := time.Since(t0)
		if !errors.Is(err, &Error{Code: CodeUnavailable}) {
			t.Errorf("%s with the pool exhausted: %v after %v, want unavailable", name, err, took)
		}
		if took < wait || took > wait+10*time.Second {
			t.Errorf("%s gave up after %v, want after the %v acquire timeout", name, took, wait)
		}
	}
	// At least ours: the doorbell, announcing newCommunity's events in the
	// background, may have timed out too.
	if got := db.pool.timeouts.Load(); got < 4 {
		t.Errorf("%d acquire timeouts counted, want at least 4", got)
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := db.Ping(pctx); err != nil {
		t.Errorf("ping with the pool exhausted: %v; a busy pool is not an unreachable database", err)
	}

	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.GetUser(ctx, c.tenant.ID, c.member.ID); err != nil {
		t.Errorf("after the pool freed up: %v", err)
	}
}

// TestUnreachableDatabase: a store whose database stops answering (here:
// every connection of its role terminated and new ones refused) fails its
// statements and its ping as unavailable, never as an internal error.
func TestUnreachableDatabase(t *testing.T) {
	db, rawURL := openDB(t, Config{AcquireTimeout: time.Second})
	ctx := testCtx(t)
	c := newCommunity(t, db, "gone")
	name := pgtest.DBName(t, rawURL)
	// From another database: one cannot lock out the database one is in.
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// No new connections, and the open ones killed: what clients see of a
	// server that went away (57P01 on the open connections, then refused
	// connects).
	if _, err := super.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := super.Exec(context.Background(), `ALTER DATABASE `+pgx.Identifier{name}.Sanitize()+` ALLOW_CONNECTIONS true`); err != nil {
			t.Error(err)
		}
	}()
	if _, err := super.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"a tenant transaction": func() error { _, err := db.GetUser(ctx, c.tenant.ID, c.member.ID); return err },
		"a pipelined read":     func() error { _, err := db.Authenticate(ctx, c.tenant.ID, c.memberToken); return err },
		"a platform read":      func() error { _, err := db.TenantBySlug(ctx, "gone"); return err },
		"a write": func() error {
			_, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, "hello?")
			return err
		},
		"a login": func() error { _, _, err := db.Login(ctx, c.tenant.ID, c.member.Username, testPassword); return err },
	} {
		// Twice: first on a pooled connection that was killed, then on a
		// fresh connect that is refused.
		for i := range 2 {
			if err := call(); !errors.Is(err, &Error{Code: CodeUnavailable}) {
				t.Errorf("%s (%d) with the database gone: %v, want unavailable", name, i+1, err)
			}
		}
	}
	if err := db.Ping(ctx); err == nil {
		t.Errorf("ping succeeded with the database refusing connections")
	}
}

// TestConnectionLost classifies real driver errors: outages are
// unavailable, configuration mistakes and statement errors are not.
func TestConnectionLost(t *testing.T) {
	ctx := testCtx(t)
	// A port nobody listens on: a refused TCP connect.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := lis.Addr().String()
	lis.Close()
	_, refused := pgx.Connect(ctx, "postgres://agora@"+closedPort+"/agora?sslmode=disable&connect_timeout=5")

	_, rawURL := openDB(t, Config{})
	u, _ := url.Parse(rawURL)
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	_, badPassword := pgx.Connect(ctx, u.String())
	var pe *pgconn.PgError
	if !errors.As(badPassword, &pe) || pe.Code != "28P01" {
		t.Fatalf("connect with a wrong password: %v, want SQLSTATE 28P01", badPassword)
	}
	_, noDatabase := pgx.Connect(ctx, strings.Replace(rawURL, pgtest.DBName(t, rawURL), "no_such_database", 1))
	if !errors.As(noDatabase, &pe) || pe.Code != "3D000" {
		t.Fatalf("connect to a missing database: %v, want SQLSTATE 3D000", noDatabase)
	}

	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused connect", refused, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", fmt.Errorf("begin: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"broken pipe", &net.OpError{Op: "write", Net: "tcp", Err: errors.New("broken pipe")}, true},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), true},
		{"closed connection", fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{"wrong password", badPassword, false},
		{"no such database", noDatabase, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"cancelled request", fmt.Errorf("%w: %w", context.Canceled, &net.OpError{Op: "read", Err: errors.New("i/o timeout")}), false},
	} {
		if got := connectionLost(tc.err); got != tc.want {
			t.Errorf("%s (%v): connectionLost = %v, want %v", tc.name, tc.err, got, tc.want)
		}
		if mapped := mapErr(tc.err, "x"); tc.want && !errors.Is(mapped, &Error{Code: CodeUnavailable}) {
			t.Errorf("%s: mapErr gave %v, want unavailable", tc.name, mapped)
		}
	}
}
