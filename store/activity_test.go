package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"agora/store/pgtest"
)

// wantActivity checks a post.activity event against the post as it is now.
func wantActivity(t *testing.T, db *DB, c community, what string, e Event, count int) {
	t.Helper()
	m := payloadKeys(t, e, "id", "comment_count", "last_activity_at")
	var n int
	var at time.Time
	if json.Unmarshal(m["comment_count"], &n) != nil || json.Unmarshal(m["last_activity_at"], &at) != nil {
		t.Fatalf("%s: post.activity %s", what, e.Payload)
	}
	p, err := db.GetPost(testCtx(t), c.tenant.ID, ActorOf(c.admin), c.post.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(m["id"]) != fmt.Sprintf(`"%d"`, c.post.ID) || n != count || p.CommentCount != count || !at.Equal(p.LastActivityAt) {
		t.Errorf("%s: post.activity %s; post has %d comments, last activity %v; want %d",
			what, e.Payload, p.CommentCount, p.LastActivityAt, count)
	}
}

// TestPostActivity: each comment write is exactly one comment event in
// the post room plus, when it changes the count, one post.activity in the
// board room; comment_count counts only comments members can see.
func TestPostActivity(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "activity")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	postRoom := newRoomLog(t, db, c.tenant.ID, PostRoom(c.post.ID))
	boardRoom := newRoomLog(t, db, c.tenant.ID, BoardRoom(c.board.ID))
	before, err := db.GetPost(ctx, c.tenant.ID, admin, c.post.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Created: the count and the last activity move.
	cm, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, "a comment")
	if err != nil {
		t.Fatal(err)
	}
	postRoom.one("create", "comment.created")
	wantActivity(t, db, c, "create", boardRoom.one("create", "post.activity"), 2)
	created, err := db.GetPost(ctx, c.tenant.ID, admin, c.post.ID)
	if err != nil || !created.LastActivityAt.After(before.LastActivityAt) || created.Version != before.Version {
		t.Errorf("after a comment: last activity %v (was %v), version %d (was %d)", created.LastActivityAt, before.LastActivityAt, created.Version, before.Version)
	}

	// An edit: no count change, no activity.
	if _, err := db.UpdateComment(ctx, c.tenant.ID, member, cm.ID, "edited"); err != nil {
		t.Fatal(err)
	}
	postRoom.one("edit", "comment.updated")
	boardRoom.none("edit")

	// Hidden: one fewer for everyone (moderators included), last activity
	// unchanged; again: nothing at all.
	for _, repeat := range []bool{false, true} {
		if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, cm.ID, ActionHide, ""); err != nil {
			t.Fatal(err)
		}
		if repeat {
			postRoom.none("hide again")
			boardRoom.none("hide again")
			continue
		}
		postRoom.one("hide", "comment.updated")
		wantActivity(t, db, c, "hide", boardRoom.one("hide", "post.activity"), 1)
	}
	for _, a := range []Actor{member, admin, {}} {
		p, err := db.GetPost(ctx, c.tenant.ID, a, c.post.ID)
		if err != nil || p.CommentCount != 1 || !p.LastActivityAt.Equal(created.LastActivityAt) {
			t.Errorf("hidden comment, read by %q: count %d, last activity %v (%v); want 1, %v", a.Username, p.CommentCount, p.LastActivityAt, err, created.LastActivityAt)
		}
	}
	list, err := db.ListPosts(ctx, c.tenant.ID, member, c.board.ID, PageParams{Limit: 10})
	// The welcome comment came before the member's own: read.
	if err != nil || list.Items[0].CommentCount != 1 || list.Items[0].UnreadComments != 0 {
		t.Errorf("board list with a hidden comment: %+v (%v), want 1 comment, 0 unread", list.Items, err)
	}

	// Unhidden: back.
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, cm.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.one("unhide", "comment.updated")
	wantActivity(t, db, c, "unhide", boardRoom.one("unhide", "post.activity"), 2)

	// Deleted while visible: one fewer.
	if err := db.DeleteComment(ctx, c.tenant.ID, member, cm.ID); err != nil {
		t.Fatal(err)
	}
	postRoom.one("delete", "comment.deleted")
	wantActivity(t, db, c, "delete", boardRoom.one("delete", "post.activity"), 1)

	// Deleted while hidden: it was not counted, so nothing changes.
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, c.comment.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.one("hide the welcome", "comment.updated")
	wantActivity(t, db, c, "hide the welcome", boardRoom.one("hide the welcome", "post.activity"), 0)
	if err := db.DeleteComment(ctx, c.tenant.ID, admin, c.comment.ID); err != nil {
		t.Fatal(err)
	}
	postRoom.one("delete a hidden comment", "comment.deleted")
	boardRoom.none("delete a hidden comment")

	// A moderator's comment in a hidden post counts too; its activity
	// event is redacted for members like the post.
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	boardRoom.next()
	if _, err := db.CreateComment(ctx, c.tenant.ID, admin, c.post.ID, "in a hidden post"); err != nil {
		t.Fatal(err)
	}
	postRoom.one("comment in a hidden post", "comment.created")
	e := boardRoom.one("comment in a hidden post", "post.activity")
	wantActivity(t, db, c, "comment in a hidden post", e, 1)
	if !e.Hidden {
		t.Errorf("post.activity of a hidden post is not marked hidden")
	}

	// Refused writes send nothing.
	if _, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, "into a hidden post"); !isCode(err, CodeNotFound) {
		t.Errorf("member commenting on a hidden post: %v", err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	boardRoom.next()
	if _, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, "into a locked post"); !isCode(err, CodeConflict) {
		t.Errorf("member commenting on a locked post: %v", err)
	}
	postRoom.none("refused comment")
	boardRoom.none("refused comment")
}

// TestCommentCountConcurrent: comments written, hidden, unhidden and
// deleted at once leave comment_count equal to a recount of the visible
// comments, and the last post.activity says the same.
func TestCommentCountConcurrent(t *testing.T) {
	db, _ := openDB(t, Config{MaxConns: 24})
	ctx := testCtx(t)
	c := newCommunity(t, db, "count-race")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	boardRoom := newRoomLog(t, db, c.tenant.ID, BoardRoom(c.board.ID))
	var existing []int64
	for i := range 10 {
		cm, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, fmt.Sprint("existing ", i))
		if err != nil {
			t.Fatal(err)
		}
		existing = append(existing, cm.ID)
	}
	boardRoom.next()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := fn(); err != nil {
				errs <- err
			}
		}()
	}
	for i := range 10 {
		run(func() error {
			_, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, fmt.Sprint("new ", i))
			return err
		})
	}
	for _, id := range existing[:4] { // hidden
		run(func() error { _, err := db.ModerateComment(ctx, c.tenant.ID, admin, id, ActionHide, ""); return err })
	}
	for _, id := range existing[4:7] { // hidden and unhidden
		run(func() error {
			if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, id, ActionHide, ""); err != nil {
				return err
			}
			_, err := db.ModerateComment(ctx, c.tenant.ID, admin, id, ActionUnhide, "")
			return err
		})
	}
	for _, id := range existing[7:] { // deleted
		run(func() error { return db.DeleteComment(ctx, c.tenant.ID, member, id) })
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var counter, recount int
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT p.comment_count, (SELECT count(*) FROM comments WHERE post_id = p.id AND NOT hidden)
			FROM posts p WHERE p.id = $1`, c.post.ID).Scan(&counter, &recount)
	})
	// The welcome comment, 10 existing - 4 hidden - 3 deleted, 10 new.
	if err != nil || counter != recount || counter != 1+10-4-3+10 {
		t.Fatalf("comment_count %d, recount %d (%v); want both %d", counter, recount, err, 1+10-4-3+10)
	}
	evs := boardRoom.next()
	if len(evs) != 10+4+2*3+3 {
		t.Errorf("%d post.activity events, want one per change of the count: %d", len(evs), 10+4+2*3+3)
	}
	var last struct {
		CommentCount int `json:"comment_count"`
	}
	if err := json.Unmarshal(evs[len(evs)-1].Payload, &last); err != nil || last.CommentCount != counter {
		t.Errorf("the last post.activity says %d comments (%v), want %d", last.CommentCount, err, counter)
	}
}

// TestActivityFlushedByTheWriter: a comment's post.activity reaches the
// board room on its own, shortly after the comment, with no one asking.
func TestActivityFlushedByTheWriter(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "flushed")
	before, err := db.RoomState(ctx, c.tenant.ID, BoardRoom(c.board.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		evs, err := db.EventsAfter(ctx, c.tenant.ID, BoardRoom(c.board.ID), before.Seq, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			wantActivity(t, db, c, "flushed", evs[0], 2)
			return
		}
		if len(evs) > 1 || time.Now().After(deadline) {
			t.Fatalf("board room events %v, want one post.activity within 5 s", evs)
		}
		time.Sleep(5 * time.Millisecond) // polling for the condition above, within its deadline
	}
}

// TestActivityLeftByADeadInstance: what an instance queued and never
// flushed (it died) goes out with the Pruner's next pass on another.
func TestActivityLeftByADeadInstance(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	// This instance's flusher would wait an hour: as good as dead.
	dead, _ := openDB(t, Config{URL: dbURL, ActivityDelay: time.Hour})
	ctx := testCtx(t)
	c := newCommunity(t, dead, "dead")
	room := newRoomLog(t, dead, c.tenant.ID, BoardRoom(c.board.ID))
	room.settle = false
	for i := range 3 {
		if _, err := dead.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, fmt.Sprint("left ", i)); err != nil {
			t.Fatal(err)
		}
	}
	room.none("before any flush")
	alive, _ := openDB(t, Config{URL: dbURL})
	p := &Pruner{DB: alive, Log: zerolog.Nop()}
	p.defaults()
	p.prune(ctx)
	evs := room.next()
	if len(evs) != 3 {
		t.Fatalf("after the pruner's pass: %d board room events, want 3", len(evs))
	}
	wantActivity(t, alive, c, "the last one left", evs[2], 4)
}

// TestActivityOrderAcrossInstances: comments on one post through two
// instances, each flushing its own writes, reach the board room counting
// up one by one: a post's queued counts go out in the order of its
// commits, whichever instance flushes them.
func TestActivityOrderAcrossInstances(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	one, _ := openDB(t, Config{URL: dbURL, MaxConns: 8})
	two, _ := openDB(t, Config{URL: dbURL, MaxConns: 8, ActivityDelay: time.Millisecond})
	ctx := testCtx(t)
	c := newCommunity(t, one, "order")
	room := newRoomLog(t, one, c.tenant.ID, BoardRoom(c.board.ID))
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i := range writers {
		db := one
		if i%2 == 1 {
			db = two
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.admin), c.post.ID, fmt.Sprint(i, " ", j)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	settle(t, two, c.tenant.ID)
	evs := room.next()
	if len(evs) != writers*each {
		t.Fatalf("%d board room events, want %d", len(evs), writers*each)
	}
	for i, e := range evs {
		var a activity
		if err := json.Unmarshal(e.Payload, &a); err != nil || a.CommentCount != c.post.CommentCount+1+i {
			t.Fatalf("board room event %d: %s, want comment_count %d", i, e.Payload, c.post.CommentCount+1+i)
		}
	}
}
