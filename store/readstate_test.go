package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// readingOf reads a post as actor and returns its reader state.
func readingOf(t *testing.T, db *DB, tenantID int64, actor Actor, postID int64) PostReading {
	t.Helper()
	p, err := db.GetPost(testCtx(t), tenantID, actor, postID)
	if err != nil {
		t.Fatal(err)
	}
	if p.PostReading == nil {
		t.Fatalf("post %d read by user %d has no reader state", postID, actor.UserID)
	}
	return *p.PostReading
}

func wantReading(t *testing.T, what string, r PostReading, last int64, unread int) {
	t.Helper()
	got := int64(0)
	if r.LastReadCommentID != nil {
		got = *r.LastReadCommentID
	}
	if got != last || r.UnreadComments != unread || (last == 0) != (r.LastReadCommentID == nil) {
		t.Errorf("%s: last read %v, unread %d; want %d (0: never), %d", what, r.LastReadCommentID, r.UnreadComments, last, unread)
	}
}

// TestReadState: the position only moves forward, a move is one
// read.updated in the reader's own room, unread counts leave out hidden
// comments and the reader's own, and bad positions are refused.
func TestReadState(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "reading")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	other := newCommunity(t, db, "reading-other")
	mine := newRoomLog(t, db, c.tenant.ID, UserRoom(c.member.ID))
	mine.only = "read.updated" // the member's room also has reply notifications

	// The admin's welcome comment (c.comment) is unread to the member, who
	// never read the post: all visible comments are unread.
	wantReading(t, "never read", readingOf(t, db, c.tenant.ID, member, c.post.ID), 0, 1)
	var ids []int64
	for i := range 4 {
		cm, err := db.CreateComment(ctx, c.tenant.ID, admin, c.post.ID, fmt.Sprintf("admin %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cm.ID)
	}
	mine.none("others' comments")
	wantReading(t, "never read, 5 comments", readingOf(t, db, c.tenant.ID, member, c.post.ID), 0, 5)

	// Forward to the second of the four.
	if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, &ids[1]); err != nil {
		t.Fatal(err)
	}
	e := mine.one("mark read", "read.updated")
	m := payloadKeys(t, e, "post_id", "last_read_comment_id")
	if string(m["post_id"]) != fmt.Sprintf(`"%d"`, c.post.ID) || string(m["last_read_comment_id"]) != fmt.Sprintf(`"%d"`, ids[1]) {
		t.Errorf("read.updated %s, want post %d at %d", e.Payload, c.post.ID, ids[1])
	}
	wantReading(t, "read to the 2nd", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[1], 2)
	// Back: a no-op, no event. The same: too.
	for _, back := range []int64{ids[0], c.comment.ID, ids[1]} {
		if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, &back); err != nil {
			t.Fatal(err)
		}
	}
	mine.none("marking older comments read")
	wantReading(t, "after going back", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[1], 2)

	// Hidden comments are not unread; for a member, "the newest now" is
	// the newest one it can see.
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, ids[3], ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	wantReading(t, "newest hidden", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[1], 1)
	wantReading(t, "the moderator, never read", readingOf(t, db, c.tenant.ID, admin, c.post.ID), ids[3], 0)
	if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, nil); err != nil {
		t.Fatal(err)
	}
	mine.one("mark all read", "read.updated")
	wantReading(t, "all read", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[2], 0)
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, ids[3], ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	wantReading(t, "unhidden", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[2], 1)

	// Writing a comment marks the post read up to it, in the same
	// transaction: the member's own comment is never unread, and neither
	// is what came before it.
	if _, err := db.CreateComment(ctx, c.tenant.ID, admin, c.post.ID, "before mine"); err != nil {
		t.Fatal(err)
	}
	own, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, "mine")
	if err != nil {
		t.Fatal(err)
	}
	e = mine.one("own comment", "read.updated")
	if string(payloadKeys(t, e, "post_id", "last_read_comment_id")["last_read_comment_id"]) != fmt.Sprintf(`"%d"`, own.ID) {
		t.Errorf("read.updated after an own comment: %s, want it at %d", e.Payload, own.ID)
	}
	wantReading(t, "after an own comment", readingOf(t, db, c.tenant.ID, member, c.post.ID), own.ID, 0)
	after, err := db.CreateComment(ctx, c.tenant.ID, admin, c.post.ID, "after mine")
	if err != nil {
		t.Fatal(err)
	}
	wantReading(t, "one more by the admin", readingOf(t, db, c.tenant.ID, member, c.post.ID), own.ID, 1)

	// Bad positions: 422, not a move. Another post's comment, another
	// tenant's, one that does not exist, a hidden one for a member.
	second, err := db.CreatePost(ctx, c.tenant.ID, admin, c.board.ID, "Second", "body")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, ids[3], ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	foreign, missing := other.comment.ID, after.ID+1000
	for name, id := range map[string]int64{"another post's": after.ID, "another tenant's": foreign, "missing": missing, "none (0)": 0} {
		if err := db.MarkRead(ctx, c.tenant.ID, member, second.ID, &id); err == nil {
			t.Errorf("%s comment: marked read", name)
		} else {
			var se *Error
			if !errors.As(err, &se) || se.Code != CodeInvalid || se.Fields["comment_id"] == "" {
				t.Errorf("%s comment: %v, want 422 naming comment_id", name, err)
			}
		}
	}
	hiddenID := ids[3]
	if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, &hiddenID); err == nil || !isCode(err, CodeInvalid) {
		t.Errorf("a hidden comment as a member's position: %v, want 422", err)
	}
	// A post without comments: nothing to have read, nothing written.
	if err := db.MarkRead(ctx, c.tenant.ID, member, second.ID, nil); err != nil {
		t.Fatal(err)
	}
	wantReading(t, "post without comments", readingOf(t, db, c.tenant.ID, member, second.ID), 0, 0)
	// Posts one cannot see: 404, like reading them.
	for name, id := range map[string]int64{"another tenant's": other.post.ID, "missing": second.ID + 1000} {
		if err := db.MarkRead(ctx, c.tenant.ID, member, id, nil); !isCode(err, CodeNotFound) {
			t.Errorf("%s post: %v, want not_found", name, err)
		}
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, second.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkRead(ctx, c.tenant.ID, member, second.ID, nil); !isCode(err, CodeNotFound) {
		t.Errorf("hidden post: %v, want not_found", err)
	}
	if err := db.MarkRead(ctx, c.tenant.ID, Actor{}, c.post.ID, nil); !isCode(err, CodeUnauthorized) {
		t.Errorf("anonymous: %v, want unauthorized", err)
	}
	mine.none("refused marks")

	// Reading is not writing: a banned member may mark read.
	if _, err := db.BanUser(ctx, c.tenant.ID, admin, c.member.ID, Ban{Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	member.Banned = true
	if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, nil); err != nil {
		t.Errorf("banned member marking read: %v", err)
	}
	mine.one("banned member marks read", "read.updated")

	// The board list carries each post's state; anonymous readers get none.
	list, err := db.ListPosts(ctx, c.tenant.ID, member, c.board.ID, PageParams{Limit: 10})
	if err != nil || len(list.Items) != 1 || list.Items[0].PostReading == nil || list.Items[0].UnreadComments != 0 {
		t.Errorf("ListPosts as the member: %+v (%v)", list.Items, err)
	}
	list, err = db.ListPosts(ctx, c.tenant.ID, Actor{}, c.board.ID, PageParams{Limit: 10})
	if err != nil || len(list.Items) != 1 || list.Items[0].PostReading != nil {
		t.Errorf("ListPosts anonymously: %+v (%v), want no reader state", list.Items, err)
	}
}

// TestReadStateConcurrent: 20 marks of different comments at once end at
// the newest, and the events they sent only ever move forward.
func TestReadStateConcurrent(t *testing.T) {
	const marks = 20
	db, _ := openDB(t, Config{MaxConns: 24})
	ctx := testCtx(t)
	c := newCommunity(t, db, "reading-race")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	mine := newRoomLog(t, db, c.tenant.ID, UserRoom(c.member.ID))
	mine.only = "read.updated" // the member's room also has reply notifications
	ids := make([]int64, marks)
	for i := range ids {
		cm, err := db.CreateComment(ctx, c.tenant.ID, admin, c.post.ID, fmt.Sprint("comment ", i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = cm.ID
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, marks)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := db.MarkRead(ctx, c.tenant.ID, member, c.post.ID, &ids[i]); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantReading(t, "after the race", readingOf(t, db, c.tenant.ID, member, c.post.ID), ids[marks-1], 0)
	evs := mine.next()
	if len(evs) == 0 || len(evs) > marks {
		t.Fatalf("%d read.updated events for %d marks", len(evs), marks)
	}
	var prev int64
	for _, e := range evs {
		var r readUpdated
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			t.Fatal(err)
		}
		if r.LastReadCommentID <= prev {
			t.Errorf("read.updated went from %d to %d: not forward only", prev, r.LastReadCommentID)
		}
		prev = r.LastReadCommentID
	}
	if prev != ids[marks-1] {
		t.Errorf("the last read.updated says %d, want %d", prev, ids[marks-1])
	}
}

// isCode reports whether err is a store error with code.
func isCode(err error, code Code) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}
