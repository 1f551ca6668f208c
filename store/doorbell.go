package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Doorbell says how committed events are announced on NotifyChannel.
type Doorbell int

const (
	// DoorbellBatched announces events after commit, many per NOTIFY.
	// A NOTIFY inside a write transaction holds a cluster-wide lock through
	// the commit's WAL flush, which serialises every writer of the
	// database; rung after commit, one NOTIFY covers every room that
	// changed meanwhile and the writers run in parallel. An instance that
	// dies between commit and ring leaves its events unannounced; the
	// realtime side's periodic sweep of room seqs finds them.
	DoorbellBatched Doorbell = iota
	// DoorbellInTx sends one NOTIFY inside every write transaction:
	// simplest, exactly one per event, and capped near 2,000 commits/s.
	DoorbellInTx
)

// bell batches announcements: while one NOTIFY is on its way, the next
// ones pile up and leave together, coalesced to the newest seq per room
// (listeners read every event after the last one they delivered).
type bell struct {
	db   *DB
	mu   sync.Mutex
	next map[roomRef]int64
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

type roomRef struct {
	tenant int64
	room   string
}

func startBell(db *DB) *bell {
	ctx, cancel := context.WithCancel(context.Background())
	b := &bell{db: db, next: map[roomRef]int64{}, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go b.run(ctx)
	return b
}

func (b *bell) ring(ns []Notification) {
	b.merge(ns)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// merge adds announcements to the pending set, keeping the newest seq of
// each room.
func (b *bell) merge(ns []Notification) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range ns {
		k := roomRef{n.TenantID, n.Room}
		if n.Seq > b.next[k] {
			b.next[k] = n.Seq
		}
	}
}

// close announces what is pending, then stops.
func (b *bell) close() {
	b.stop()
	<-b.done
}

func (b *bell) run(ctx context.Context) {
	defer close(b.done)
	for {
		select {
		case <-b.wake:
		case <-ctx.Done():
			b.flush(context.Background())
			return
		}
		if err := b.flush(ctx); err != nil && ctx.Err() == nil {
			// The database is unreachable: the announcements are kept and
			// retried; listeners' sweeps cover the meantime.
			select {
			case <-time.After(100 * time.Millisecond):
				b.ring(nil)
			case <-ctx.Done():
			}
		}
	}
}

// maxNotifyPayload stays under Postgres's 8000-byte NOTIFY limit.
const maxNotifyPayload = 7900

func (b *bell) flush(ctx context.Context) error {
	b.mu.Lock()
	pending := b.next
	b.next = map[roomRef]int64{}
	b.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	var payloads []string
	var sb strings.Builder
	for k, seq := range pending {
		line := Notification{TenantID: k.tenant, Room: k.room, Seq: seq}.line()
		if sb.Len() > 0 && sb.Len()+1+len(line) > maxNotifyPayload {
			payloads = append(payloads, sb.String())
			sb.Reset()
		}
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString(line)
	}
	payloads = append(payloads, sb.String())
	for i, p := range payloads {
		if _, err := b.db.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, p); err != nil {
			// Put back what was not sent.
			var rest []Notification
			for _, q := range payloads[i:] {
				ns, _ := ParseNotifications(q)
				rest = append(rest, ns...)
			}
			b.merge(rest)
			return err
		}
	}
	return nil
}

// ParseNotifications reads a doorbell payload: one "tenant room seq" per
// line.
func ParseNotifications(payload string) ([]Notification, error) {
	lines := strings.Split(payload, "\n")
	out := make([]Notification, 0, len(lines))
	for _, l := range lines {
		n, err := ParseNotification(l)
		if err != nil {
			return out, err
		}
		out = append(out, n)
	}
	return out, nil
}

// RoomSeqs reads the current seq of the named rooms of one tenant, for the
// listeners' sweep.
func (db *DB) RoomSeqs(ctx context.Context, tenantID int64, rooms []string) (map[string]int64, error) {
	out := make(map[string]int64, len(rooms))
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT name, seq FROM rooms WHERE name = ANY($1)`, rooms)
		if err != nil {
			return err
		}
		var name string
		var seq int64
		_, err = pgx.ForEachRow(rows, []any{&name, &seq}, func() error {
			out[name] = seq
			return nil
		})
		return err
	})
	return out, mapErr(err, "rooms")
}
