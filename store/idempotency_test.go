package store

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestIdempotencyKeyClaims(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "keys")
	super := superConn(t, dbURL)
	const ttl, lease = time.Hour, time.Minute
	claim := func(k IdempotencyKey) KeyUse {
		t.Helper()
		use, err := db.ClaimIdempotencyKey(ctx, c.tenant.ID, k, ttl, lease)
		if err != nil {
			t.Fatal(err)
		}
		return use
	}
	rows := func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := super.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("ConcurrentClaimsOneWinner", func(t *testing.T) {
		const n = 10
		var wg sync.WaitGroup
		uses := make([]KeyUse, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				k := IdempotencyKey{Hash: []byte("race"), Request: []byte("req"), Claim: []byte{byte(i)}}
				uses[i], errs[i] = db.ClaimIdempotencyKey(ctx, c.tenant.ID, k, ttl, lease)
			})
		}
		wg.Wait()
		winners := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("claim %d: %v", i, errs[i])
			}
			if uses[i].Claimed {
				winners++
			} else if uses[i].Response != nil || !bytes.Equal(uses[i].Request, []byte("req")) {
				t.Errorf("loser %d sees %+v, want the winner's request, in flight", i, uses[i])
			}
		}
		if winners != 1 {
			t.Errorf("%d of %d concurrent claims won, want exactly 1", winners, n)
		}
	})

	t.Run("RecordThenReplay", func(t *testing.T) {
		k := IdempotencyKey{Hash: []byte("done"), Request: []byte("req"), Claim: []byte("first")}
		if !claim(k).Claimed {
			t.Fatal("a new key was not claimed")
		}
		if err := db.RecordIdempotentResponse(ctx, c.tenant.ID, k, IdempotentResponse{Status: 201, ContentType: "application/json", Body: []byte("sealed")}); err != nil {
			t.Fatal(err)
		}
		use := claim(IdempotencyKey{Hash: k.Hash, Request: []byte("req"), Claim: []byte("retry")})
		if use.Claimed || use.Response == nil || use.Response.Status != 201 ||
			use.Response.ContentType != "application/json" || string(use.Response.Body) != "sealed" {
			t.Errorf("retry sees %+v (response %+v), want the recorded answer", use, use.Response)
		}
	})

	t.Run("AbandonedClaimIsTakenOverAndFenced", func(t *testing.T) {
		first := IdempotencyKey{Hash: []byte("abandoned"), Request: []byte("req"), Claim: []byte("first")}
		second := IdempotencyKey{Hash: first.Hash, Request: first.Request, Claim: []byte("second")}
		claim(first)
		if use := claim(second); use.Claimed || use.Response != nil {
			t.Fatalf("a fresh claim without an answer: %+v, want in flight", use)
		}
		if _, err := super.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key_hash = $1`, first.Hash); err != nil {
			t.Fatal(err)
		}
		if !claim(second).Claimed {
			t.Fatal("a claim past its lease was not taken over")
		}
		// The first request comes back late: it may neither answer for the
		// second nor give its key up.
		if err := db.RecordIdempotentResponse(ctx, c.tenant.ID, first, IdempotentResponse{Status: 201, Body: []byte("late")}); err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseIdempotencyKey(ctx, c.tenant.ID, first); err != nil {
			t.Fatal(err)
		}
		if n := rows(`key_hash = $1 AND claim = 'second' AND status IS NULL`, first.Hash); n != 1 {
			t.Errorf("after the late first request: %d rows held by the second, in flight; want 1", n)
		}
		if err := db.ReleaseIdempotencyKey(ctx, c.tenant.ID, second); err != nil {
			t.Fatal(err)
		}
		if n := rows(`key_hash = $1`, first.Hash); n != 0 {
			t.Errorf("released key: %d rows left", n)
		}
	})

	t.Run("AppliedClaimIsNeverTakenOver", func(t *testing.T) {
		first := IdempotencyKey{Hash: []byte("applied"), Request: []byte("req"), Claim: []byte("first")}
		claim(first)
		held := WithIdempotencyClaim(ctx, c.tenant.ID, first)
		// A write that rolls back leaves the key unapplied...
		errBoom := errors.New("boom")
		if err := db.WithTenant(held, c.tenant.ID, func(*Tx) error { return errBoom }); !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		if n := rows(`key_hash = $1 AND applied`, first.Hash); n != 0 {
			t.Fatal("a rolled-back transaction marked the key applied")
		}
		// ...one that commits marks it in the same transaction.
		if _, err := db.CreateBoard(held, c.tenant.ID, ActorOf(c.admin), NewBoard{Name: "Applied"}); err != nil {
			t.Fatal(err)
		}
		if n := rows(`key_hash = $1 AND applied`, first.Hash); n != 1 {
			t.Fatal("a committed write did not mark its key applied")
		}
		// Its server dies before recording the answer: past the lease, a
		// retry must not run the write again, nor may a late release free
		// the key.
		if _, err := super.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key_hash = $1`, first.Hash); err != nil {
			t.Fatal(err)
		}
		retry := IdempotencyKey{Hash: first.Hash, Request: first.Request, Claim: []byte("retry")}
		if use := claim(retry); use.Claimed || !use.Lost || use.Response != nil {
			t.Fatalf("retry of an applied claim past its lease: %+v, want not claimed, answer lost", use)
		}
		if err := db.ReleaseIdempotencyKey(ctx, c.tenant.ID, first); err != nil {
			t.Fatal(err)
		}
		if n := rows(`key_hash = $1 AND claim = 'first'`, first.Hash); n != 1 {
			t.Error("releasing an applied claim freed the key")
		}
	})

	t.Run("ExpiredKeysArePruned", func(t *testing.T) {
		if _, err := super.Exec(ctx, `
			INSERT INTO idempotency_keys (tenant_id, key_hash, request_hash, claim, status, expires_at)
			SELECT $1, ('old ' || i)::bytea, 'req', 'c', 201, now() - interval '1 second'
			FROM generate_series(1, $2::int) i`, c.tenant.ID, pruneBatch); err != nil {
			t.Fatal(err)
		}
		reused := IdempotencyKey{Hash: []byte("old 1"), Request: []byte("another request"), Claim: []byte("new")}
		if use := claim(reused); !use.Claimed {
			t.Errorf("an expired key: %+v, want it claimed afresh", use)
		}
		if n := rows(`expires_at <= now()`); n != 0 {
			t.Errorf("%d expired keys left after a claim, want none", n)
		}
	})
}
