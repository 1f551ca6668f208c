package store

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Two transactions that lock the same rows in opposite orders deadlock;
// Postgres aborts one of them, and WithTenant runs it again instead of
// failing the write.
func TestWithTenantRetriesADeadlock(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "deadlock")
	other, err := db.CreateBoard(ctx, c.tenant.ID, ActorOf(c.admin), NewBoard{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	lock := func(tx *Tx, board int64) error {
		_, err := tx.Exec(ctx, `SELECT id FROM boards WHERE id = $1 FOR UPDATE`, board)
		return err
	}
	var holding sync.WaitGroup
	holding.Add(2)
	var attempts atomic.Int32
	run := func(first, second int64) error {
		once := sync.Once{}
		return db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
			attempts.Add(1)
			if err := lock(tx, first); err != nil {
				return err
			}
			// Only the first attempts wait for each other: that is what
			// makes them deadlock; a retry just takes both locks.
			once.Do(func() { holding.Done(); holding.Wait() })
			return lock(tx, second)
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(c.board.ID, other.ID) }()
	go func() { errs <- run(other.ID, c.board.ID) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("a deadlocked write failed: %v", err)
		}
	}
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts, want at least 3: both, and a retry of the one Postgres aborted", n)
	}
}
