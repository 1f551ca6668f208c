package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// NotifyChannel is the LISTEN channel that rings when events are committed.
const NotifyChannel = "agora_events"

// Room names as the realtime protocol spells them.
const RoomTenant = "tenant"

func BoardRoom(id int64) string { return "board:" + strconv.FormatInt(id, 10) }
func PostRoom(id int64) string  { return "post:" + strconv.FormatInt(id, 10) }

// publish appends one event to a room's outbox inside the caller's write
// transaction, through the publish_event function (migration 0010): it
// bumps the room's seq (the row lock orders concurrent writers of one room,
// so seq follows commit order with no gaps) and stores the event. The
// doorbell carries only "tenant room seq": listeners read the body from
// events, so the 8000-byte NOTIFY limit never matters. Postgres delivers a
// NOTIFY only after COMMIT, and the batched doorbell rings only after a
// successful commit: a rollback announces nothing.
//
// Every event of the system goes through publish_event.
func publish(ctx context.Context, tx *Tx, tenantID int64, room, typ string, data any) (int64, error) {
	payload, err := json.Marshal(data)
	if err != nil {
		return 0, fmt.Errorf("encode %s event: %w", typ, err)
	}
	var seq int64
	err = tx.QueryRow(ctx, `SELECT publish_event($1, $2, $3, $4, $5, $6)`,
		tenantID, room, typ, payload, tx.traceArg(), tx.channelArg()).Scan(&seq)
	if err != nil {
		return 0, mapErr(err, typ+" event")
	}
	tx.rang(Notification{TenantID: tenantID, Room: room, Seq: seq})
	return seq, nil
}

// traceArg is the transaction's traceparent as the outbox functions take
// it (NULL: not traced).
func (tx *Tx) traceArg() *string {
	if tx.trace == "" {
		return nil
	}
	return &tx.trace
}

// channelArg is the channel the outbox functions NOTIFY inside the
// transaction: NULL with the batched doorbell, which rings after the
// commit instead.
func (tx *Tx) channelArg() *string {
	if tx.batched {
		return nil
	}
	ch := NotifyChannel
	return &ch
}

// rang notes events written inside the transaction for the batched
// doorbell to announce once the commit succeeded.
func (tx *Tx) rang(ns ...Notification) {
	if tx.batched {
		tx.rung = append(tx.rung, ns...)
	}
}

// Notification is a parsed doorbell payload.
type Notification struct {
	TenantID int64
	Room     string
	Seq      int64
}

// line is the doorbell payload of one room: "tenant room seq".
func (n Notification) line() string { return formatLine(n.Room, [2]int64{n.TenantID, n.Seq}, 1) }

// ParseNotification reads the "tenant room seq" payload written by publish.
func ParseNotification(payload string) (Notification, error) {
	room, n, err := parseLine("notification", payload, 1)
	if err != nil {
		return Notification{}, err
	}
	return Notification{TenantID: n[0], Room: room, Seq: n[1]}, nil
}

// RoomState is where a room's history stands.
type RoomState struct {
	// Seq is the room's latest sequence number (0: nothing happened yet).
	Seq int64
	// Oldest is the oldest retained seq (0 when none is retained).
	Oldest int64
}

// RoomState reads a room's latest and oldest retained seq, in one round
// trip: every subscription with since asks it.
func (db *DB) RoomState(ctx context.Context, tenantID int64, room string) (RoomState, error) {
	rows, err := db.queryTenant(ctx, tenantID, `
		SELECT coalesce((SELECT seq FROM rooms WHERE name = $1), 0),
		       coalesce((SELECT min(seq) FROM events WHERE room = $1), 0)`, room)
	if err != nil {
		return RoomState{}, mapErr(err, "room")
	}
	st, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (RoomState, error) {
		var st RoomState
		return st, row.Scan(&st.Seq, &st.Oldest)
	})
	return st, mapErr(err, "room")
}

// EventsAfter returns up to limit events of a room with seq > after, in
// order.
func (db *DB) EventsAfter(ctx context.Context, tenantID int64, room string, after int64, limit int) ([]Event, error) {
	// One round trip: resumes and gap fills of every room come here.
	// Hidden is the object's state now, not when the event was written:
	// hiding a comment must also hide it from replays of its creation.
	rows, err := db.queryTenant(ctx, tenantID, `
		SELECT e.tenant_id, e.room, e.seq, e.type, `+notificationReplay+`, e.created_at, coalesce(e.trace_parent, ''),
		       CASE
		         WHEN e.type LIKE 'comment.%' THEN coalesce((
		           SELECT c.hidden OR p.hidden FROM comments c
		           JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id
		           WHERE c.id = (e.payload->>'id')::bigint), false)
		         WHEN e.type LIKE 'post.%' THEN coalesce((
		           SELECT p.hidden FROM posts p WHERE p.id = (e.payload->>'id')::bigint), false)
		         ELSE false
		       END
		FROM events e WHERE e.room = $1 AND e.seq > $2
		ORDER BY e.seq LIMIT $3`, room, after, limit)
	if err != nil {
		return nil, mapErr(err, "events")
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.TenantID, &e.Room, &e.Seq, &e.Type, &e.Payload, &e.CreatedAt, &e.TraceParent, &e.Hidden)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	return evs, mapErr(err, "events")
}

// Retention bounds the outbox per room.
type Retention struct {
	// PerRoom keeps at most this many newest events of each room.
	PerRoom int64
	// MaxAge drops events older than this.
	MaxAge time.Duration
}

// PruneEvents applies retention to one tenant and returns how many events
// it removed. Room seqs live in rooms, so pruning never reuses a seq.
func (db *DB) PruneEvents(ctx context.Context, tenantID int64, r Retention) (int64, error) {
	var n int64
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM events WHERE created_at < now() - $1::interval`, r.MaxAge)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `
			DELETE FROM events e USING rooms r
			WHERE e.tenant_id = r.tenant_id AND e.room = r.name AND e.seq <= r.seq - $1`, r.PerRoom)
		n += tag.RowsAffected()
		return err
	})
	return n, mapErr(err, "prune events")
}

// ParseRoom splits "board:17" into ("board", 17); "tenant" has id 0. The
// kinds are tenant, board, post and user.
func ParseRoom(room string) (kind string, id int64, err error) {
	if room == RoomTenant {
		return RoomTenant, 0, nil
	}
	kind, num, ok := strings.Cut(room, ":")
	if ok && (kind == "board" || kind == "post" || kind == "user") {
		id, err := strconv.ParseInt(num, 10, 64)
		if err == nil && id > 0 && strconv.FormatInt(id, 10) == num {
			return kind, id, nil
		}
	}
	return "", 0, Errorf(CodeBadRequest, "unknown room %q: want tenant, board:{id}, post:{id} or user:{id}", room)
}
