package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// tripArgs is what a one-trip write knows of its transaction before it is
// sent: the traceparent to store with its events and the doorbell channel
// to NOTIFY inside it, as the outbox functions take them.
type tripArgs struct {
	trace   *string
	channel *string
}

// inOneTrip runs one statement as a tenant transaction of its own, in one
// round trip: the tenant setting, the statement and (for a request with an
// Idempotency-Key) the claim's applied mark are pipelined as one batch with
// one Sync, which Postgres runs as one implicit transaction and commits at
// the Sync. It is for writes whose whole work is one statement or function
// (see create_comment), as every round trip of a write on a busy server
// waits in the run queue behind the fan-out.
//
// query builds the statement from the transaction's tripArgs; scan reads
// its one row and returns the events it published, which the batched
// doorbell announces once the commit succeeded. Deadlocks and
// serialization failures are run again, as by WithTenant.
func inOneTrip(ctx context.Context, db *DB, tenantID int64, query func(tripArgs) (string, []any), scan func(pgx.Row) ([]Notification, error)) error {
	return retryConflicts(func() error { return db.oneTrip(ctx, tenantID, query, scan) })
}

func (db *DB) oneTrip(ctx context.Context, tenantID int64, query func(tripArgs) (string, []any), scan func(pgx.Row) ([]Notification, error)) (err error) {
	ctx, span := db.tracer.Start(ctx, "store.tenant_tx", trace.WithAttributes(
		attribute.Int64("agora.tenant_id", tenantID), attribute.Bool("agora.one_trip", true)))
	defer func() { endSpan(span, err) }()
	var args tripArgs
	if tp := traceParent(span.SpanContext()); tp != "" {
		args.trace = &tp
	}
	if db.bell == nil {
		ch := NotifyChannel
		args.channel = &ch
	}
	sql, params := query(args)
	b := tenantBatch(tenantID)
	b.Queue(sql, params...)
	claim, keyed := claimOf(ctx, tenantID)
	if keyed {
		b.Queue(claimAppliedSQL, tenantID, claim.Hash, claim.Claim)
	}
	conn, err := db.pool.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, b)
	rung, err := func() ([]Notification, error) {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		rung, err := scan(br.QueryRow())
		if err != nil {
			return nil, err
		}
		if keyed {
			if _, err := br.Exec(); err != nil {
				return nil, mapErr(err, "idempotency key")
			}
		}
		return rung, nil
	}()
	// Close reads up to the Sync, so a failed commit is seen here too.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return lost(err)
	}
	if db.bell != nil && len(rung) > 0 {
		db.bell.ring(rung)
	}
	return nil
}
