// Package store is Agora's only door to PostgreSQL: the connection pool,
// every SQL statement, tenant-scoped transactions, the outbox of realtime
// events, and the domain types and errors that callers see.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config says how to reach the database and how patient to be with it.
type Config struct {
	URL string
	// StatementTimeout bounds every statement on the pool (0: 5 s).
	StatementTimeout time.Duration
	// MaxConns caps the pool (0: 16).
	MaxConns int32
	// AcquireTimeout bounds the wait for a free pool connection, apart
	// from the caller's context; past it the call fails as unavailable
	// (0: 3 s).
	AcquireTimeout time.Duration
	// Hasher hashes passwords (zero value: DefaultHasher()).
	Hasher Hasher
	// HashConcurrency caps password hashes running at once, each holding
	// Hasher.MemoryKiB (0: the number of CPUs).
	HashConcurrency int
	// HashWait is how long a registration or login waits for a hashing
	// slot before it is refused as unavailable (0: 3 s).
	HashWait time.Duration
	// Doorbell says how events are announced (zero value: batched).
	Doorbell Doorbell
	// ActivityDelay is how long a write's post.activity may wait in the
	// queue to be flushed with others' (0: 10 ms). Longer batches more of a
	// busy board's writes into one flush; the board room hears later.
	ActivityDelay time.Duration
	// Tracer traces tenant transactions and their commits; nil: no
	// tracing.
	Tracer trace.TracerProvider
}

// DB is the store. It is safe for concurrent use.
type DB struct {
	pool      *pool
	pinger    *pinger
	hasher    Hasher
	hashes    *hashGate
	closeOnce sync.Once
	bell      *bell // nil: NOTIFY inside each write transaction
	// dummyHash is verified against when a login names no user, so an
	// unknown username costs the same time as a wrong password.
	dummyHash string
	tracer    trace.Tracer
	tenants   *tenantCache
	sessions  *sessionCache
	activity  *activityFlusher
}

// Open connects and checks the connection.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	timeout := cfg.StatementTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	// A transaction left open by a bug must not hold row locks forever.
	pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt((6 * timeout).Milliseconds(), 10)
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// pgxpool's default (the core count, at least 4) starves a server whose
	// requests and realtime reads wait on the database rather than the CPU.
	pc.MaxConns = 16
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	// pgxpool goes on connecting after the waiting caller gave up, for up
	// to two minutes by default: towards a host that drops packets, those
	// attempts would hold every pool slot long after the network is back.
	if pc.ConnConfig.ConnectTimeout <= 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	wait := cfg.AcquireTimeout
	if wait <= 0 {
		wait = 3 * time.Second
	}
	pgxp, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	conns := &pool{p: pgxp, wait: wait}
	if err := pgxp.Ping(ctx); err != nil {
		conns.close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	h := cfg.Hasher
	if h == (Hasher{}) {
		h = DefaultHasher()
	}
	dummy, err := h.Hash("agora-dummy-password")
	if err != nil {
		conns.close()
		return nil, err
	}
	tp := cfg.Tracer
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	db := &DB{pool: conns, pinger: newPinger(pc.ConnConfig.Copy()), hasher: h, hashes: newHashGate(cfg.HashConcurrency, cfg.HashWait),
		dummyHash: dummy, tracer: tp.Tracer("agora/store"), tenants: newTenantCache(), sessions: newSessionCache(maxSessions)}
	if cfg.Doorbell == DoorbellBatched {
		db.bell = startBell(db)
	}
	db.activity = startActivityFlusher(db, cfg.ActivityDelay)
	return db, nil
}

// Close announces what is still pending, then closes the pool. It may be
// called more than once.
func (db *DB) Close() {
	db.closeOnce.Do(func() {
		// The flusher's last flush rings the bell.
		db.activity.close()
		if db.bell != nil {
			db.bell.close()
		}
		db.pinger.close()
		db.pool.close()
	})
}

// Pool exposes the pool for metrics and for the listener's dedicated
// connection config; queries go through store methods.
func (db *DB) Pool() *pgxpool.Pool { return db.pool.p }

// Ping checks that the database answers, on a connection of its own: a
// pool busy with requests does not make it wait or fail.
func (db *DB) Ping(ctx context.Context) error { return db.pinger.ping(ctx) }

// Tx is a tenant transaction, as WithTenant hands it out: Row Level
// Security scopes it to one tenant, and with the batched doorbell it
// collects the events to announce once the commit has succeeded. Store
// helpers take a *Tx, so the type says they run inside one.
type Tx struct {
	pgx.Tx
	batched bool
	rung    []Notification
	// controls are applied to this instance's session cache once the
	// commit has succeeded, not waiting for the NOTIFY to come back.
	controls []Control
	// activityQueued: the transaction queued post.activity, which this
	// instance flushes once the commit has succeeded.
	activityQueued bool
	// trace is the W3C traceparent of the transaction's span, stored with
	// each event it publishes ("" when the write is not traced).
	trace string
}

// inTenant is WithTenant for work that yields a value.
func inTenant[T any](ctx context.Context, db *DB, tenantID int64, fn func(tx *Tx) (T, error)) (T, error) {
	var v T
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) (err error) {
		v, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// WithTenant runs fn in a transaction that Row Level Security scopes to one
// tenant. set_config(..., true) lasts only for the transaction, so a pooled
// connection never carries a tenant into the next request.
//
// Events published inside fn are announced after the commit succeeded.
// The transaction and its commit are spans of their own; events published
// inside carry the transaction span's context, so the fan-out on every
// instance joins the trace of the write that caused it.
//
// Postgres aborts one of two transactions that deadlock (two writers that
// publish to the same user rooms in opposite orders, say) or that conflict
// under serializable isolation; such a transaction is run again, up to
// txAttempts times in all, so the caller sees a conflict only when it
// keeps happening. fn must therefore do nothing outside tx that it cannot
// do twice.
func (db *DB) WithTenant(ctx context.Context, tenantID int64, fn func(tx *Tx) error) error {
	return retryConflicts(func() error { return db.withTenantOnce(ctx, tenantID, fn) })
}

// retryConflicts runs a transaction again while Postgres aborts it for a
// deadlock or a serialization failure, up to txAttempts times in all.
func retryConflicts(run func() error) error {
	for attempt := 1; ; attempt++ {
		err := run()
		if !txConflict(err) {
			return err
		}
		if attempt == txAttempts {
			var se *Error
			if errors.As(err, &se) {
				return err
			}
			return unavailable("the database was too busy with conflicting writes", err)
		}
	}
}

// txAttempts is how often WithTenant runs a transaction that keeps
// running into deadlocks or serialization failures.
const txAttempts = 3

func (db *DB) withTenantOnce(ctx context.Context, tenantID int64, fn func(tx *Tx) error) (err error) {
	ctx, span := db.tracer.Start(ctx, "store.tenant_tx", trace.WithAttributes(attribute.Int64("agora.tenant_id", tenantID)))
	defer func() { endSpan(span, err) }()
	tt := &Tx{batched: db.bell != nil, trace: traceParent(span.SpanContext())}
	// BEGIN and the tenant setting travel in one round trip. The id is an
	// integer formatted here, so it cannot carry SQL.
	begin := "BEGIN; SELECT set_config('app.tenant_id', '" + strconv.FormatInt(tenantID, 10) + "', true)"
	conn, err := db.pool.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
	if err != nil {
		return lost(err)
	}
	// A no-op after Commit; after an error or a panic in fn it returns the
	// connection clean.
	defer func() { _ = tx.Rollback(ctx) }()
	tt.Tx = tx
	if err := fn(tt); err != nil {
		return lost(err)
	}
	if err := markClaimApplied(ctx, tt, tenantID); err != nil {
		return lost(err)
	}
	_, commit := db.tracer.Start(ctx, "store.commit")
	err = tx.Commit(ctx)
	endSpan(commit, err)
	if err != nil {
		return lost(err)
	}
	for _, c := range tt.controls {
		db.sessions.apply(c)
	}
	if len(tt.rung) > 0 {
		db.bell.ring(tt.rung)
	}
	if tt.activityQueued {
		db.activity.mark(tenantID)
	}
	return nil
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// tenantBatch starts a batch scoped to a tenant: the statements queued
// after the tenant setting share one implicit transaction with it, ended by
// the batch's one Sync, and so does the setting.
func tenantBatch(tenantID int64) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('app.tenant_id', $1, true)`, strconv.FormatInt(tenantID, 10))
	return b
}

// rowTenant runs one statement scoped to a tenant in one round trip and
// scans its one row (none: pgx.ErrNoRows), or with a nil scan just runs
// it. A statement that writes commits at the batch's Sync, so the result
// counts only once the batch has closed cleanly, which rowTenant waits for.
func (db *DB) rowTenant(ctx context.Context, tenantID int64, scan func(pgx.Row) error, sql string, args ...any) error {
	b := tenantBatch(tenantID)
	b.Queue(sql, args...)
	br := db.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		if scan == nil {
			_, err = br.Exec()
		} else {
			err = scan(br.QueryRow())
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// queryTenant runs one read-only query scoped to a tenant in a single round
// trip: set_config and the query are pipelined in one batch with one Sync,
// so they share an implicit transaction and the setting ends with it.
// The rows must be read (and closed) before the connection is reused, as
// with any pgx.Rows.
func (db *DB) queryTenant(ctx context.Context, tenantID int64, sql string, args ...any) (pgx.Rows, error) {
	b := tenantBatch(tenantID)
	b.Queue(sql, args...)
	conn, err := db.pool.acquire(ctx)
	if err != nil {
		return nil, err
	}
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		conn.Release()
		return nil, fmt.Errorf("set tenant: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		conn.Release()
		return nil, err
	}
	return &connRows{Rows: rows, release: func() { _ = br.Close(); conn.Release() }}, nil
}

// CheckSafety refuses to run with a role for which Row Level Security would
// be silently off (a superuser, BYPASSRLS), on a schema where a tenant table
// lacks forced RLS, as a role that owns what it serves (ErrRoleOwnsSchema:
// one ALTER TABLE through an SQL injection would switch RLS off), or as one
// the migrations have not granted its rights (ErrRoleLacksRights).
//
// allowOwner accepts a role that owns the schema, for single-role setups;
// what it owns then comes back as a warning, as do rights the role should
// not have but that only the database's owner could take away.
func (db *DB) CheckSafety(ctx context.Context, allowOwner bool) (warnings []string, err error) {
	var super, bypass bool
	var role string
	err = db.pool.QueryRow(ctx,
		`SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).
		Scan(&role, &super, &bypass)
	if err != nil {
		return nil, fmt.Errorf("read role attributes: %w", err)
	}
	if super || bypass {
		return nil, fmt.Errorf("database role %q is a superuser or has BYPASSRLS: tenant isolation would be off; connect as an ordinary role", role)
	}
	unsafe, err := db.names(ctx, `
		SELECT c.relname
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		WHERE n.nspname = current_schema() AND c.relkind = 'r'
		  AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("check row level security: %w", err)
	}
	if len(unsafe) > 0 {
		return nil, fmt.Errorf("tenant tables without forced row level security: %v", unsafe)
	}

	// Owning (or being able to become the owner of) the database, the
	// schema or anything in it gives DDL: ALTER, DROP, TRUNCATE, GRANT.
	owned, err := db.names(ctx, `
		SELECT what FROM (
			SELECT 'database ' || d.datname AS what, 0 AS rank FROM pg_database d
			WHERE d.datname = current_database() AND pg_has_role(d.datdba, 'MEMBER')
			UNION ALL
			SELECT 'schema ' || n.nspname, 1 FROM pg_namespace n
			WHERE n.nspname = current_schema() AND pg_has_role(n.nspowner, 'MEMBER')
			UNION ALL
			SELECT CASE WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'table ' END || c.relname,
			       CASE WHEN c.relkind = 'S' THEN 3 ELSE 2 END
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
			  AND pg_has_role(c.relowner, 'MEMBER')
			UNION ALL
			SELECT 'function ' || p.proname, 3
			FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = current_schema() AND pg_has_role(p.proowner, 'MEMBER')
		) owned ORDER BY rank, what`)
	if err != nil {
		return nil, fmt.Errorf("check ownership: %w", err)
	}
	if len(owned) > 0 {
		if !allowOwner {
			return nil, fmt.Errorf("%w: database role %q owns %s; an SQL injection through it could switch row level security off or drop the tables",
				ErrRoleOwnsSchema, role, summarise(owned))
		}
		return []string{fmt.Sprintf("database role %q owns %s: allowed for a single-role setup, but an SQL injection through it could switch row level security off or drop the tables",
			role, summarise(owned))}, nil
	}

	unreadable, err := db.names(ctx, `
		SELECT c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
		  AND NOT has_table_privilege(c.oid, 'SELECT')
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("check privileges: %w", err)
	}
	if len(unreadable) > 0 {
		return nil, fmt.Errorf("%w: database role %q may not read %s", ErrRoleLacksRights, role, summarise(unreadable))
	}

	var temp, create bool
	err = db.pool.QueryRow(ctx, `SELECT has_database_privilege(current_database(), 'TEMPORARY'), has_schema_privilege(current_schema(), 'CREATE')`).
		Scan(&temp, &create)
	if err != nil {
		return nil, fmt.Errorf("check privileges: %w", err)
	}
	if temp {
		warnings = append(warnings, fmt.Sprintf("database role %q may create temporary tables, which would shadow the real ones for the connection that made them; the database's owner can take that away: REVOKE TEMPORARY ON DATABASE ... FROM PUBLIC, %s", role, pgx.Identifier{role}.Sanitize()))
	}
	if create {
		warnings = append(warnings, fmt.Sprintf("database role %q may create objects in the schema; the schema's owner can take that away: REVOKE CREATE ON SCHEMA ... FROM PUBLIC, %s", role, pgx.Identifier{role}.Sanitize()))
	}
	return warnings, nil
}

// names runs a query of one text column.
func (db *DB) names(ctx context.Context, sql string) ([]string, error) {
	rows, err := db.pool.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// summarise lists a few names and counts the rest, so that one log line
// stays readable.
func summarise(names []string) string {
	const shown = 4
	if len(names) <= shown {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:shown], ", "), len(names)-shown)
}
