package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// A write that changes a post's comment_count queues the post's new counts
// in activity_queue, in its own transaction, rather than publishing
// post.activity to the board room there: a board's room seq is one row,
// and every comment of the board would wait for the previous one's commit
// on it. The instance that wrote flushes the tenant's queue shortly after
// its commit (Config.ActivityDelay), many entries per transaction; the
// Pruner's periodic pass flushes whatever an instance left when it died.
// See flush_activity (migration 0010).

// activityBatch bounds the entries one flush transaction publishes.
const activityBatch = 500

// FlushActivity publishes a tenant's queued post.activity events to their
// boards' rooms, oldest first, and reports how many it published.
func (db *DB) FlushActivity(ctx context.Context, tenantID int64) (int, error) {
	total := 0
	for {
		n := 0
		err := inOneTrip(ctx, db, tenantID, func(t tripArgs) (string, []any) {
			return `SELECT event_rooms, event_seqs FROM flush_activity($1, $2, $3)`, []any{tenantID, activityBatch, t.channel}
		}, func(row pgx.Row) ([]Notification, error) {
			var rooms []string
			var seqs []int64
			if err := row.Scan(&rooms, &seqs); err != nil {
				return nil, mapErr(err, "post activity")
			}
			n = len(rooms)
			return notifications(tenantID, rooms, seqs), nil
		})
		total += n
		if err != nil || n < activityBatch {
			return total, err
		}
	}
}

// notifications pairs the rooms and seqs an outbox function answers.
func notifications(tenantID int64, rooms []string, seqs []int64) []Notification {
	ns := make([]Notification, len(rooms))
	for i := range rooms {
		ns[i] = Notification{TenantID: tenantID, Room: rooms[i], Seq: seqs[i]}
	}
	return ns
}

// activityFlusher flushes the queues of the tenants this instance wrote
// to, on a goroutine of its own, delay after the first write that asks:
// the writes of that while, and of a flush's own time, go out together.
type activityFlusher struct {
	db      *DB
	delay   time.Duration
	mu      sync.Mutex
	pending map[int64]bool
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func startActivityFlusher(db *DB, delay time.Duration) *activityFlusher {
	if delay <= 0 {
		delay = 10 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &activityFlusher{db: db, delay: delay, pending: map[int64]bool{}, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

// mark asks for a flush of the tenant's queue.
func (f *activityFlusher) mark(tenantID int64) {
	f.mu.Lock()
	f.pending[tenantID] = true
	f.mu.Unlock()
	f.poke()
}

func (f *activityFlusher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// close flushes what is pending, then stops.
func (f *activityFlusher) close() {
	f.stop()
	<-f.done
}

func (f *activityFlusher) run(ctx context.Context) {
	defer close(f.done)
	retry := 100 * time.Millisecond
	for {
		select {
		case <-f.wake:
		case <-ctx.Done():
			f.last()
			return
		}
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			f.last()
			return
		}
		if f.flush(ctx) {
			retry = 100 * time.Millisecond
			continue
		}
		// The database is unreachable: the tenants stay marked and are
		// tried again, less often while it stays so.
		select {
		case <-time.After(retry):
			retry = min(2*retry, 5*time.Second)
			f.poke()
		case <-ctx.Done():
		}
	}
}

// last is the flush on the way out, briefly: what it cannot flush stays
// queued for the Pruner.
func (f *activityFlusher) last() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	f.flush(ctx)
}

// flush flushes every marked tenant once; false if any failed (those stay
// marked).
func (f *activityFlusher) flush(ctx context.Context) bool {
	f.mu.Lock()
	tenants := f.pending
	f.pending = map[int64]bool{}
	f.mu.Unlock()
	ok := true
	for tenantID := range tenants {
		if _, err := f.db.FlushActivity(ctx, tenantID); err != nil {
			ok = false
			f.mu.Lock()
			f.pending[tenantID] = true
			f.mu.Unlock()
		}
	}
	return ok
}
