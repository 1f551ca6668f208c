package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestOutboxConcurrentComments: 50 writers commenting on one post at once
// produce 50 events in the post's room with consecutive seqs in commit
// order, and exactly one doorbell each, delivered in the same order; the
// board room gets one post.activity per comment, in the same order, and
// each author's room one read.updated per comment of theirs.
func TestOutboxConcurrentComments(t *testing.T) {
	const writers = 50
	// Enough connections that the writers really contend in Postgres.
	db, dbURL := openDB(t, Config{MaxConns: 20, Doorbell: DoorbellInTx})
	ctx := testCtx(t)
	c := newCommunity(t, db, "busy")
	room := PostRoom(c.post.ID)
	before, err := db.RoomState(ctx, c.tenant.ID, room)
	if err != nil {
		t.Fatal(err)
	}
	boardBefore, err := db.RoomState(ctx, c.tenant.ID, BoardRoom(c.board.ID))
	if err != nil {
		t.Fatal(err)
	}
	listener := listenConn(t, dbURL, NotifyChannel, sentinelChannel)

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			actor := ActorOf(c.member)
			if i%2 == 0 {
				actor = ActorOf(c.admin)
			}
			if _, err := db.CreateComment(ctx, c.tenant.ID, actor, c.post.ID, fmt.Sprintf("comment %d", i)); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent CreateComment: %v", err)
	}
	settle(t, db, c.tenant.ID)

	// The doorbells: exactly one per write and room, in commit order. The
	// post's author (the member) gets one for each of their own comments
	// (read.updated) and one for each of the admin's (a reply
	// notification); the admin one for each of theirs (read.updated).
	var got []int64
	rung := map[string]int{}
	for _, n := range drainUntilSentinel(t, db, listener) {
		if n.TenantID != c.tenant.ID {
			t.Errorf("unexpected notification %+v", n)
			continue
		}
		rung[n.Room]++
		if n.Room == room {
			got = append(got, n.Seq)
		}
	}
	boardRoom, adminRoom, memberRoom := BoardRoom(c.board.ID), UserRoom(c.admin.ID), UserRoom(c.member.ID)
	if len(rung) != 4 || rung[boardRoom] != writers || rung[adminRoom] != writers/2 || rung[memberRoom] != writers {
		t.Errorf("doorbells per room %v, want %d in %s, %s and %s, %d in %s",
			rung, writers, room, boardRoom, memberRoom, writers/2, adminRoom)
	}
	if len(got) != writers {
		t.Fatalf("%d notifications for %d writes: %v", len(got), writers, got)
	}
	for i, seq := range got {
		if want := before.Seq + 1 + int64(i); seq != want {
			t.Fatalf("notification %d has seq %d, want %d (all: %v)", i, seq, want, got)
		}
	}

	// The outbox: the same 50 events, gap free, in commit order.
	evs, err := db.EventsAfter(ctx, c.tenant.ID, room, before.Seq, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != writers {
		t.Fatalf("%d events after seq %d, want %d", len(evs), before.Seq, writers)
	}
	bodies := map[string]bool{}
	var lastID int64
	for i, e := range evs {
		if want := before.Seq + 1 + int64(i); e.Seq != want || e.Room != room || e.TenantID != c.tenant.ID {
			t.Fatalf("event %d: %s seq %d, want %s seq %d", i, e.Room, e.Seq, room, want)
		}
		if e.Type != "comment.created" {
			t.Errorf("event %d: type %s, want comment.created", i, e.Type)
		}
		var cm Comment
		if err := json.Unmarshal(e.Payload, &cm); err != nil {
			t.Fatalf("event %d payload %s: %v", i, e.Payload, err)
		}
		if cm.PostID != c.post.ID || cm.Version != 1 || cm.Author.Username == "" {
			t.Errorf("event %d payload is not the whole comment: %s", i, e.Payload)
		}
		// Writers take the post's row lock before inserting, so commit
		// order is also id order and time order.
		if cm.ID <= lastID {
			t.Errorf("event %d: comment id %d after %d: seq is not in commit order", i, cm.ID, lastID)
		}
		if i > 0 && e.CreatedAt.Before(evs[i-1].CreatedAt) {
			t.Errorf("event %d created at %v, before event %d at %v", i, e.CreatedAt, i-1, evs[i-1].CreatedAt)
		}
		lastID = cm.ID
		bodies[cm.Body] = true
	}
	if len(bodies) != writers {
		t.Errorf("%d distinct comments in the events, want %d", len(bodies), writers)
	}
	after, err := db.RoomState(ctx, c.tenant.ID, room)
	if err != nil || after.Seq != before.Seq+writers {
		t.Errorf("room state %+v (%v), want seq %d", after, err, before.Seq+writers)
	}

	// comment_count is a derived counter: it changed, but the post's
	// version did not. Its post.activity events count up one by one in
	// seq order: they were written under the post's row lock.
	p, err := db.GetPost(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID)
	if err != nil || p.CommentCount != c.post.CommentCount+writers || p.Version != 1 {
		t.Errorf("post after the comments: count %d version %d (%v); want %d, 1", p.CommentCount, p.Version, err, c.post.CommentCount+writers)
	}
	bevs, err := db.EventsAfter(ctx, c.tenant.ID, boardRoom, boardBefore.Seq, 1000)
	if err != nil || len(bevs) != writers {
		t.Fatalf("%d board room events (%v), want %d", len(bevs), err, writers)
	}
	for i, e := range bevs {
		var a activity
		if err := json.Unmarshal(e.Payload, &a); err != nil || e.Type != "post.activity" || a.CommentCount != c.post.CommentCount+1+i {
			t.Errorf("board room event %d: %s %s, want post.activity with comment_count %d", i, e.Type, e.Payload, c.post.CommentCount+1+i)
		}
	}
}

var errRollback = errors.New("roll back on purpose")

// TestOutboxRollback: an event published in a transaction that rolls back
// leaves no event, no seq and no doorbell; the next committed event takes
// the next seq with no gap.
func TestOutboxRollback(t *testing.T) {
	db, dbURL := openDB(t, Config{Doorbell: DoorbellInTx})
	ctx := testCtx(t)
	c := newCommunity(t, db, "undo")
	room := PostRoom(c.post.ID)
	before, err := db.RoomState(ctx, c.tenant.ID, room)
	if err != nil {
		t.Fatal(err)
	}
	listener := listenConn(t, dbURL, NotifyChannel, sentinelChannel)

	// A write path that publishes and then fails.
	err = db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		seq, err := publish(ctx, tx, c.tenant.ID, room, "comment.deleted", Deleted{ID: 1})
		if err != nil {
			return err
		}
		if seq != before.Seq+1 {
			t.Errorf("publish in the doomed tx: seq %d, want %d", seq, before.Seq+1)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("WithTenant = %v, want the fn's error", err)
	}
	// A room that only the rolled-back transaction created vanishes too.
	err = db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		if _, err := publish(ctx, tx, c.tenant.ID, BoardRoom(999999), "board.updated", Deleted{ID: 1}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("WithTenant = %v, want the fn's error", err)
	}
	// A real write that fails validation publishes nothing either.
	empty := " "
	if _, err := db.UpdatePost(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, PostPatch{Title: &empty}); !errors.Is(err, &Error{Code: CodeInvalid}) {
		t.Fatalf("UpdatePost with a blank title: %v, want unprocessable", err)
	}
	// An edit by someone who may not edit: fails after reading the post.
	other := "hijacked"
	stranger, _, err := db.Register(ctx, c.tenant.ID, Registration{Username: "stranger", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdatePost(ctx, c.tenant.ID, ActorOf(stranger), c.post.ID, PostPatch{Title: &other}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("UpdatePost by a stranger: %v, want forbidden", err)
	}

	if st, err := db.RoomState(ctx, c.tenant.ID, room); err != nil || st != before {
		t.Fatalf("room state after rollbacks: %+v (%v), want %+v", st, err, before)
	}
	if st, err := db.RoomState(ctx, c.tenant.ID, BoardRoom(999999)); err != nil || st.Seq != 0 {
		t.Fatalf("room created by a rolled-back tx: %+v (%v), want none", st, err)
	}
	if n := drainUntilSentinel(t, db, listener); len(n) != 0 {
		t.Fatalf("notifications from rolled-back transactions: %+v", n)
	}

	// The next committed write takes the very next seq and rings once.
	title := "Edited title"
	p, err := db.UpdatePost(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, PostPatch{Title: &title})
	if err != nil {
		t.Fatal(err)
	}
	ns := drainUntilSentinel(t, db, listener)
	want := map[string]bool{room: true, BoardRoom(c.board.ID): true}
	for _, n := range ns {
		if !want[n.Room] {
			t.Errorf("unexpected notification %+v", n)
		}
		delete(want, n.Room)
		if n.Room == room && n.Seq != before.Seq+1 {
			t.Errorf("post room seq after rollbacks: %d, want %d (no gap)", n.Seq, before.Seq+1)
		}
	}
	if len(ns) != 2 || len(want) != 0 {
		t.Errorf("post.updated rang %+v, want once in the post room and once in the board room", ns)
	}
	evs, err := db.EventsAfter(ctx, c.tenant.ID, room, before.Seq, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events after the rollbacks: %d (%v), want 1", len(evs), err)
	}
	var d struct {
		ID      int64          `json:"id,string"`
		Version int            `json:"version"`
		Changes map[string]any `json:"changes"`
	}
	if err := json.Unmarshal(evs[0].Payload, &d); err != nil {
		t.Fatal(err)
	}
	// An edit of the title changes edited_at too.
	if evs[0].Type != "post.updated" || d.ID != p.ID || d.Version != 2 || len(d.Changes) != 2 || d.Changes["title"] != title || d.Changes["edited_at"] == nil {
		t.Errorf("post.updated event %s %s: want a diff of the title and edited_at only at version 2", evs[0].Type, evs[0].Payload)
	}
}

func TestParseNotification(t *testing.T) {
	n, err := ParseNotification("17 post:42 9")
	if err != nil || n != (Notification{TenantID: 17, Room: "post:42", Seq: 9}) {
		t.Errorf("ParseNotification = %+v, %v", n, err)
	}
	for _, bad := range []string{"", "17 post:42", "x post:42 9", "17 post:42 y", "1 2 3 4"} {
		if _, err := ParseNotification(bad); err == nil {
			t.Errorf("ParseNotification(%q) accepted", bad)
		}
	}
}

func TestParseRoom(t *testing.T) {
	good := map[string]struct {
		kind string
		id   int64
	}{"tenant": {"tenant", 0}, "board:1": {"board", 1}, "post:9007199254740993": {"post", 9007199254740993}, "user:1": {"user", 1}}
	for room, want := range good {
		kind, id, err := ParseRoom(room)
		if err != nil || kind != want.kind || id != want.id {
			t.Errorf("ParseRoom(%q) = %q, %d, %v", room, kind, id, err)
		}
	}
	for _, bad := range []string{"", "board", "board:", "board:0", "board:-1", "board:01", "post:1x", "user:0", "user:1x", "users:1", "tenant:1", "post: 1"} {
		if _, _, err := ParseRoom(bad); !errors.Is(err, &Error{Code: CodeBadRequest}) {
			t.Errorf("ParseRoom(%q): %v, want bad_request", bad, err)
		}
	}
}

// TestBatchedDoorbell: with the doorbell rung after commit, 50 concurrent
// writers are announced with fewer NOTIFYs, the newest seq is announced,
// and a rolled-back write is never announced.
func TestBatchedDoorbell(t *testing.T) {
	const writers = 50
	db, dbURL := openDB(t, Config{MaxConns: 20, Doorbell: DoorbellBatched})
	ctx := testCtx(t)
	c := newCommunity(t, db, "batched")
	room := PostRoom(c.post.ID)
	before, err := db.RoomState(ctx, c.tenant.ID, room)
	if err != nil {
		t.Fatal(err)
	}
	listener := listenConn(t, dbURL, NotifyChannel)

	err = db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		if _, err := publish(ctx, tx, c.tenant.ID, room, "comment.deleted", Deleted{ID: 1}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("WithTenant = %v, want the fn's error", err)
	}

	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, fmt.Sprintf("c%d", i)); err != nil {
				t.Errorf("CreateComment: %v", err)
			}
		}()
	}
	wg.Wait()

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var notifies int
	last := before.Seq
	for last < before.Seq+writers {
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("announced up to seq %d of %d: %v", last, before.Seq+writers, err)
		}
		notifies++
		ns, err := ParseNotifications(n.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range ns {
			if a.Room != room || a.TenantID != c.tenant.ID {
				continue // the community's own set-up (board, post) rings late
			}
			// Writers ring in whatever order their goroutines run after
			// their commits, so an older seq may be announced after a newer
			// one; listeners read everything up to the newest they heard
			// of, so only coverage matters.
			if a.Seq <= before.Seq {
				continue // the community's own set-up, rung late
			}
			if a.Seq > before.Seq+writers {
				t.Fatalf("announced seq %d beyond the last write's %d", a.Seq, before.Seq+writers)
			}
			last = max(last, a.Seq)
		}
	}
	if notifies > writers {
		t.Fatalf("%d NOTIFYs for %d writes", notifies, writers)
	}
	t.Logf("%d writes announced by %d NOTIFYs", writers, notifies)
	evs, err := db.EventsAfter(ctx, c.tenant.ID, room, before.Seq, 1000)
	if err != nil || len(evs) != writers || evs[0].Seq != before.Seq+1 {
		t.Fatalf("events: %d (%v), want %d gap free from %d", len(evs), err, writers, before.Seq+1)
	}
}
