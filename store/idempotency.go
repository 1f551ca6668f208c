package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyKey is one request's use of an Idempotency-Key (API.md, safe
// retries). The store sees only what the caller derived from the key, so
// the key itself is never stored.
type IdempotencyKey struct {
	// Hash names the key of one caller: the same key from someone else is
	// another key.
	Hash []byte
	// Request fingerprints the request, to tell a retry from a different
	// request that reuses the key.
	Request []byte
	// Claim is this request's random token: only the request holding the
	// key may record its answer, or give the key up.
	Claim []byte
}

// IdempotentResponse is the recorded answer to a keyed request.
type IdempotentResponse struct {
	Status      int
	ContentType string
	// Body is opaque to the store (the api layer seals it).
	Body []byte
}

// KeyUse is what ClaimIdempotencyKey found.
type KeyUse struct {
	// Claimed means the key was free (new, expired, or abandoned by a
	// request that never answered): the caller runs the request.
	Claimed bool
	// Request is the fingerprint of the request holding the key.
	Request []byte
	// Response is that request's answer; nil while it is still running,
	// or when its answer was lost.
	Response *IdempotentResponse
	// Lost means the request holding the key committed its write but never
	// recorded an answer (its server died in between): running it again
	// could write twice, so the key stays used and the answer is gone.
	Lost bool
}

type idempotencyClaimKey struct{}

type heldClaim struct {
	tenantID int64
	key      IdempotencyKey
}

// WithIdempotencyClaim marks ctx as the request that holds k. Every tenant
// transaction that commits under ctx marks the key applied in that same
// transaction, so that the write and "this key was used" commit or vanish
// together: a retry never runs a write that committed.
func WithIdempotencyClaim(ctx context.Context, tenantID int64, k IdempotencyKey) context.Context {
	return context.WithValue(ctx, idempotencyClaimKey{}, heldClaim{tenantID, k})
}

// markClaimApplied is the part of a tenant transaction that a keyed
// request adds (see WithIdempotencyClaim).
func markClaimApplied(ctx context.Context, tx *Tx, tenantID int64) error {
	k, ok := claimOf(ctx, tenantID)
	if !ok {
		return nil
	}
	_, err := tx.Exec(ctx, claimAppliedSQL, tenantID, k.Hash, k.Claim)
	return mapErr(err, "idempotency key")
}

// claimOf is the key ctx holds a claim of for this tenant, if any.
func claimOf(ctx context.Context, tenantID int64) (IdempotencyKey, bool) {
	c, ok := ctx.Value(idempotencyClaimKey{}).(heldClaim)
	if !ok || c.tenantID != tenantID {
		return IdempotencyKey{}, false
	}
	return c.key, true
}

const claimAppliedSQL = `
	UPDATE idempotency_keys SET applied = true
	WHERE tenant_id = $1 AND key_hash = $2 AND claim = $3`

// pruneBatch is how many expired keys of its tenant each claim deletes.
// Every claim adds at most one row and removes up to this many expired
// ones, so expired rows cannot pile up, and no background worker is needed.
const pruneBatch = 20

// ClaimIdempotencyKey takes the key for this request, or reports who holds
// it. A claim lasts ttl; one that has no answer after lease was abandoned
// (its server died mid-request) and may be taken over.
//
// The claim commits on its own, before the request runs, and the answer is
// recorded after the request's own transaction. See the api package's
// idempotency middleware for why, and what that costs.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, tenantID int64, k IdempotencyKey, ttl, lease time.Duration) (KeyUse, error) {
	// One round trip: the statements of a batch share an implicit
	// transaction, so the tenant setting covers them and ends with them.
	b := tenantBatch(tenantID)
	b.Queue(`
		DELETE FROM idempotency_keys
		WHERE tenant_id = $1 AND key_hash = $2
		  AND (expires_at <= now() OR (status IS NULL AND NOT applied AND created_at <= now() - $3::interval))`,
		tenantID, k.Hash, lease)
	// SKIP LOCKED: concurrent claims share the pruning instead of queueing
	// behind each other for it.
	b.Queue(`
		DELETE FROM idempotency_keys
		WHERE tenant_id = $1 AND key_hash IN (
			SELECT key_hash FROM idempotency_keys
			WHERE tenant_id = $1 AND expires_at <= now()
			LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		tenantID, pruneBatch)
	// DO UPDATE (a no-op) rather than DO NOTHING: it returns the row that
	// holds the key even when that row was committed after this statement
	// began, which a DO NOTHING followed by a SELECT could miss.
	b.Queue(`
		INSERT INTO idempotency_keys AS k (tenant_id, key_hash, request_hash, claim, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval)
		ON CONFLICT (tenant_id, key_hash) DO UPDATE SET key_hash = k.key_hash
		RETURNING k.claim = $4, k.request_hash, k.status, k.content_type, k.response,
		          k.status IS NULL AND k.applied AND k.created_at <= now() - $6::interval`,
		tenantID, k.Hash, k.Request, k.Claim, ttl, lease)
	br := db.pool.SendBatch(ctx, b)
	use, err := readClaim(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return use, mapErr(err, "idempotency key")
}

func readClaim(br pgx.BatchResults) (KeyUse, error) {
	for range 3 {
		if _, err := br.Exec(); err != nil {
			return KeyUse{}, err
		}
	}
	var use KeyUse
	var status *int16
	var contentType *string
	var body []byte
	if err := br.QueryRow().Scan(&use.Claimed, &use.Request, &status, &contentType, &body, &use.Lost); err != nil {
		return KeyUse{}, err
	}
	if status != nil {
		use.Response = &IdempotentResponse{Status: int(*status), Body: body}
		if contentType != nil {
			use.Response.ContentType = *contentType
		}
	}
	return use, nil
}

// RecordIdempotentResponse stores the answer of the request holding k, so
// that retries replay it. A request that lost its claim records nothing.
func (db *DB) RecordIdempotentResponse(ctx context.Context, tenantID int64, k IdempotencyKey, r IdempotentResponse) error {
	var contentType *string
	if r.ContentType != "" {
		contentType = &r.ContentType
	}
	return db.idempotencyExec(ctx, tenantID, `
		UPDATE idempotency_keys SET status = $3, content_type = $4, response = $5
		WHERE tenant_id = $1 AND key_hash = $2 AND claim = $6`,
		tenantID, k.Hash, r.Status, contentType, r.Body, k.Claim)
}

// ReleaseIdempotencyKey gives the key up after an answer that is not kept
// (a server error, a rate limit), so that a retry runs the request again;
// unless the request already committed a write, which a retry must not
// repeat: then the key stays used, with its answer lost.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, tenantID int64, k IdempotencyKey) error {
	return db.idempotencyExec(ctx, tenantID, `
		DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key_hash = $2 AND claim = $3 AND NOT applied`,
		tenantID, k.Hash, k.Claim)
}

// idempotencyExec runs one statement scoped to a tenant in one round trip.
func (db *DB) idempotencyExec(ctx context.Context, tenantID int64, sql string, args ...any) error {
	return mapErr(db.rowTenant(ctx, tenantID, nil, sql, args...), "idempotency key")
}
