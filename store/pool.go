package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pool is pgxpool with a bounded wait for a connection. pgxpool waits as
// long as the caller's context allows, which for a request is as long as
// the client keeps its connection open: under overload requests would
// pile up behind the pool instead of being told to come back. Every
// statement of the store takes its connection through acquire.
type pool struct {
	p    *pgxpool.Pool
	wait time.Duration

	closed   atomic.Bool
	timeouts atomic.Int64 // acquires that gave up waiting
}

// acquire takes a connection, waiting at most p.wait. Failing to get one
// (timeout, refused connection, closed pool) is CodeUnavailable.
func (p *pool) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, p.wait)
	defer cancel()
	c, err := p.p.Acquire(actx)
	switch {
	case err == nil:
		return c, nil
	case ctx.Err() != nil:
		return nil, err // the caller gave up (or its own deadline passed)
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		p.timeouts.Add(1)
		return nil, unavailable("no database connection came free in time", err)
	case p.closed.Load():
		return nil, unavailable("the server is shutting down", err)
	}
	return nil, lost(err)
}

// Query runs a query on a connection of its own; closing the rows (or
// reading them to the end) returns the connection.
func (p *pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		c.Release()
		return nil, err
	}
	return &connRows{Rows: rows, release: c.Release}, nil
}

// QueryRow runs a query for at most one row; Scan returns the connection.
func (p *pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c, err := p.acquire(ctx)
	if err != nil {
		return errRow{err}
	}
	return &connRow{row: c.QueryRow(ctx, sql, args...), release: c.Release}
}

// Exec runs a statement that returns no rows.
func (p *pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, err := p.acquire(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer c.Release()
	return c.Exec(ctx, sql, args...)
}

// SendBatch sends a batch on a connection of its own; closing the results
// returns the connection.
func (p *pool) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	c, err := p.acquire(ctx)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return &connBatch{BatchResults: c.SendBatch(ctx, b), release: c.Release}
}

// connBatch returns its connection when the results are closed.
type connBatch struct {
	pgx.BatchResults
	release func()
}

func (r *connBatch) Close() error {
	err := r.BatchResults.Close()
	r.release()
	return err
}

// Stat is pgxpool's statistics, for metrics.
func (p *pool) Stat() *pgxpool.Stat { return p.p.Stat() }

func (p *pool) close() {
	p.closed.Store(true)
	p.p.Close()
}

// connRows returns its connection once, when the rows are closed, which
// pgx does by itself when Next reaches the end.
type connRows struct {
	pgx.Rows
	release func()
}

func (r *connRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *connRows) Close() {
	r.Rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

type connRow struct {
	row     pgx.Row
	release func()
}

func (r *connRow) Scan(dest ...any) error {
	defer r.release()
	return r.row.Scan(dest...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// pinger answers readiness probes on a connection of its own, outside the
// pool: a probe must tell "the database is down" from "every pooled
// connection is busy" and must not queue behind requests. Probes take
// turns on the one connection, so a flood of them costs the database
// nothing more than one session.
type pinger struct {
	cfg  *pgx.ConnConfig
	turn chan struct{} // holds a token while a probe runs
	conn *pgx.Conn     // nil until connected, and after a failure
}

func newPinger(cfg *pgx.ConnConfig) *pinger {
	return &pinger{cfg: cfg, turn: make(chan struct{}, 1)}
}

func (p *pinger) ping(ctx context.Context) error {
	select {
	case p.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.turn }()
	if p.conn == nil {
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return err
		}
		p.conn = c
	}
	if err := p.conn.Ping(ctx); err != nil {
		p.closeLocked()
		return err
	}
	return nil
}

func (p *pinger) close() {
	p.turn <- struct{}{}
	defer func() { <-p.turn }()
	p.closeLocked()
}

func (p *pinger) closeLocked() {
	if p.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.conn.Close(ctx)
	p.conn = nil
}
