package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// notes reads all of a user's notifications, newest first.
func notes(t *testing.T, db *DB, tenantID int64, u User) []UserNotification {
	t.Helper()
	p, err := db.ListNotifications(testCtx(t), tenantID, ActorOf(u), false, PageParams{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

func unread(t *testing.T, db *DB, tenantID int64, u User) int64 {
	t.Helper()
	n, err := db.UnreadCount(testCtx(t), tenantID, ActorOf(u))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// userEvents decodes the events of a user's room after seq.
// userEvents are the notification events in u's room after seq after
// (the room also carries read.updated, which the read state tests cover).
func userEvents(t *testing.T, db *DB, tenantID int64, u User, after int64) []Event {
	t.Helper()
	evs, err := db.EventsAfter(testCtx(t), tenantID, UserRoom(u.ID), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "notification.") {
			out = append(out, e)
		}
	}
	return out
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// notificationCreated is the payload of notification.created, as
// notify_cause (migration 0010) writes it.
type notificationCreated struct {
	Notification UserNotification `json:"notification"`
	UnreadCount  int64            `json:"unread_count"`
}

func createdPayload(t *testing.T, e Event) notificationCreated {
	t.Helper()
	if e.Type != "notification.created" {
		t.Fatalf("event %d of %s: %s, want notification.created", e.Seq, e.Room, e.Type)
	}
	var p notificationCreated
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// kindsOf maps each user to the kinds of their notifications, newest first.
func kindsOf(t *testing.T, db *DB, tenantID int64, users ...User) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, u := range users {
		for _, n := range notes(t, db, tenantID, u) {
			out[u.Username] = append(out[u.Username], n.Kind)
		}
	}
	return out
}

// TestNotifyReplyAndMention: a comment notifies the post's author (reply),
// the answered comment's author (reply) and the mentioned (mention), each
// once, never the writer; the notification.created event in each user's
// room carries the same item the list shows and the new unread count.
func TestNotifyReplyAndMention(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "notify")
	tid := c.tenant.ID
	author := c.member // wrote c.post; c.admin's welcome comment notified them once
	carol := registerUser(t, db, tid, "carol")
	dave := registerUser(t, db, tid, "Dave")
	erin := registerUser(t, db, tid, "erin")
	base := map[string]int64{}
	for _, u := range []User{author, carol, dave, erin, c.admin} {
		st, err := db.RoomState(ctx, tid, UserRoom(u.ID))
		if err != nil {
			t.Fatal(err)
		}
		base[u.Username] = st.Seq
	}

	// carol answers the admin's welcome, mentioning the post's author
	// (already notified as a reply: once), dave (in any case), herself, a
	// name in code and one in a link, and someone who does not exist.
	body := "Thanks @" + c.admin.Username + " and @" + author.Username + ", see @dave and @carol. `@erin` [@erin](https://example.com) @nobody_here"
	reply, err := db.CreateReply(ctx, tid, ActorOf(carol), c.post.ID, c.comment.ID, body)
	if err != nil {
		t.Fatal(err)
	}
	if reply.ReplyTo == nil || *reply.ReplyTo != c.comment.ID {
		t.Fatalf("reply_to = %v, want %d", reply.ReplyTo, c.comment.ID)
	}
	got := kindsOf(t, db, tid, author, carol, dave, erin, c.admin)
	want := map[string][]string{
		author.Username:  {KindReply, KindReply}, // this one and the welcome
		dave.Username:    {KindMention},
		c.admin.Username: {KindReply},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("notifications by user: %v, want %v", got, want)
	}

	n := notes(t, db, tid, author)[0]
	if n.Actor == nil || n.Actor.ID != carol.ID || n.Post == nil || n.Post.ID != c.post.ID || n.Post.Title != c.post.Title ||
		n.CommentID == nil || *n.CommentID != reply.ID || n.Read || n.Detail != nil || !strings.HasPrefix(n.Excerpt, "Thanks @") {
		t.Errorf("the author's notification: %+v", n)
	}
	if unread(t, db, tid, author) != 2 || unread(t, db, tid, dave) != 1 || unread(t, db, tid, carol) != 0 {
		t.Errorf("unread counts: author %d dave %d carol %d, want 2 1 0",
			unread(t, db, tid, author), unread(t, db, tid, dave), unread(t, db, tid, carol))
	}

	// Events: one notification.created per recipient in their own room,
	// with the listed item and the count; none for the writer or erin.
	for _, u := range []User{author, dave, c.admin} {
		evs := userEvents(t, db, tid, u, base[u.Username])
		if len(evs) != 1 {
			t.Fatalf("%s's room: %d events, want 1", u.Username, len(evs))
		}
		p := createdPayload(t, evs[0])
		listed := notes(t, db, tid, u)[0]
		if asJSON(t, p.Notification) != asJSON(t, listed) || p.UnreadCount != unread(t, db, tid, u) {
			t.Errorf("%s's event %+v (count %d); the list has %+v (count %d)", u.Username, p.Notification, p.UnreadCount, listed, unread(t, db, tid, u))
		}
	}
	for _, u := range []User{carol, erin} {
		if evs := userEvents(t, db, tid, u, base[u.Username]); len(evs) != 0 {
			t.Errorf("%s's room got %d events, want none", u.Username, len(evs))
		}
	}

	// A new post notifies whom it mentions; writing about oneself does not.
	if _, err := db.CreatePost(ctx, tid, ActorOf(erin), c.board.ID, "Hi", "Hello @carol and @erin"); err != nil {
		t.Fatal(err)
	}
	if k := kindsOf(t, db, tid, carol, erin); fmt.Sprint(k) != fmt.Sprint(map[string][]string{carol.Username: {KindMention}}) {
		t.Errorf("after erin's post: %v, want one mention for carol", k)
	}
	// Commenting on one's own post notifies nobody.
	if _, err := db.CreateComment(ctx, tid, ActorOf(author), c.post.ID, "my own post, @"+author.Username); err != nil {
		t.Fatal(err)
	}
	if unread(t, db, tid, author) != 2 {
		t.Errorf("the author's own comment notified them: unread %d", unread(t, db, tid, author))
	}
}

// TestReplyTo: reply_to must be a comment of the same post that the writer
// can see; anything else is 422 and writes nothing. A deleted answered
// comment leaves the reply answering nothing.
func TestReplyTo(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "replyto")
	other := newCommunity(t, db, "replyto-other")
	tid := c.tenant.ID
	otherPost, err := db.CreatePost(ctx, tid, ActorOf(c.admin), c.board.ID, "Other", "Another thread")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := db.CreateComment(ctx, tid, ActorOf(c.admin), otherPost.ID, "In the other thread")
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := db.CreateComment(ctx, tid, ActorOf(c.admin), c.post.ID, "to be hidden")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModerateComment(ctx, tid, ActorOf(c.admin), hidden.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	room := PostRoom(c.post.ID)
	before, err := db.RoomState(ctx, tid, room)
	if err != nil {
		t.Fatal(err)
	}
	notesBefore := unread(t, db, tid, c.admin)
	for name, id := range map[string]int64{
		"a comment of another post":        elsewhere.ID,
		"a comment of another tenant":      other.comment.ID,
		"a comment that does not exist":    hidden.ID + other.comment.ID + 1000,
		"a hidden comment (for a member)":  hidden.ID,
		"the post's id instead of comment": c.post.ID + 100000,
	} {
		_, err := db.CreateReply(ctx, tid, ActorOf(c.member), c.post.ID, id, "answer")
		var se *Error
		if !errors.As(err, &se) || se.Code != CodeInvalid || se.Fields["reply_to"] == "" {
			t.Errorf("reply to %s: %v, want unprocessable naming reply_to", name, err)
		}
	}
	// A missing post is still 404, whatever reply_to says.
	if _, err := db.CreateReply(ctx, tid, ActorOf(c.member), otherPost.ID+1000, c.comment.ID, "answer"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reply into a missing post: %v, want not_found", err)
	}
	if st, _ := db.RoomState(ctx, tid, room); st.Seq != before.Seq {
		t.Errorf("refused replies wrote events: seq %d -> %d", before.Seq, st.Seq)
	}
	if n := unread(t, db, tid, c.admin); n != notesBefore {
		t.Errorf("refused replies notified: %d -> %d", notesBefore, n)
	}
	// Moderators see hidden comments, so they may answer them.
	modReply, err := db.CreateReply(ctx, tid, ActorOf(c.admin), c.post.ID, hidden.ID, "answering the hidden one")
	if err != nil || modReply.ReplyTo == nil || *modReply.ReplyTo != hidden.ID {
		t.Fatalf("moderator's reply to a hidden comment: %+v, %v", modReply, err)
	}

	// Reads and the event carry reply_to.
	r, err := db.CreateReply(ctx, tid, ActorOf(c.member), c.post.ID, c.comment.ID, "answer")
	if err != nil {
		t.Fatal(err)
	}
	page, err := db.ListComments(ctx, tid, ActorOf(c.member), c.post.ID, PageParams{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]Comment{}
	for _, cm := range page.Items {
		byID[cm.ID] = cm
	}
	if got := byID[r.ID].ReplyTo; got == nil || *got != c.comment.ID {
		t.Errorf("listed reply_to = %v, want %d", got, c.comment.ID)
	}
	if got := byID[c.comment.ID].ReplyTo; got != nil {
		t.Errorf("a plain comment lists reply_to %d, want null", *got)
	}
	evs, err := db.EventsAfter(ctx, tid, room, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	var raw map[string]any
	if err := json.Unmarshal(last.Payload, &raw); err != nil || raw["reply_to"] != fmt.Sprint(c.comment.ID) {
		t.Errorf("comment.created payload %s: reply_to %v, want the string %q", last.Payload, raw["reply_to"], fmt.Sprint(c.comment.ID))
	}

	// Deleting the answered comment keeps the reply, answering nothing.
	if err := db.DeleteComment(ctx, tid, ActorOf(c.admin), c.comment.ID); err != nil {
		t.Fatal(err)
	}
	page, err = db.ListComments(ctx, tid, ActorOf(c.member), c.post.ID, PageParams{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range page.Items {
		if cm.ID == r.ID && cm.ReplyTo != nil {
			t.Errorf("after the answered comment was deleted, reply_to = %d, want null", *cm.ReplyTo)
		}
	}
	// A post goes with its comments, replies to each other included.
	if _, err := db.CreateReply(ctx, tid, ActorOf(c.member), c.post.ID, modReply.ID, "a reply to a reply"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeletePost(ctx, tid, ActorOf(c.admin), c.post.ID); err != nil {
		t.Fatalf("deleting a post with a chain of replies: %v", err)
	}
}

// TestMentionFlood: a body naming 500 users (15 of them real) notifies at
// most 10 people, and the write goes through.
func TestMentionFlood(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "flood")
	tid := c.tenant.ID
	var users []User
	var names []string
	for i := range 15 {
		u := registerUser(t, db, tid, fmt.Sprintf("user_%02d", i))
		users = append(users, u)
		names = append(names, "@"+u.Username)
	}
	for i := range 485 {
		names = append(names, fmt.Sprintf("@ghost_%03d", i))
	}
	// On the member's own post, so that nobody is notified as a reply.
	cm, err := db.CreateComment(ctx, tid, ActorOf(c.member), c.post.ID, strings.Join(names, " "))
	if err != nil {
		t.Fatalf("the flood was refused: %v", err)
	}
	notified := 0
	for i, u := range users {
		ns := notes(t, db, tid, u)
		notified += len(ns)
		// The first ten names, in order of appearance.
		if want := i < maxNotified; (len(ns) == 1) != want {
			t.Errorf("%s (name %d) has %d notifications", u.Username, i, len(ns))
		}
	}
	if notified != maxNotified {
		t.Errorf("%d users notified, want %d", notified, maxNotified)
	}
	if !strings.Contains(cm.BodyHTML, `href="/t/flood/u/user_14"`) {
		t.Errorf("rendering stopped at the cap too: all 15 names should link")
	}
	// A reply with a flood: the post's author first, then nine mentions.
	if _, err := db.CreateComment(ctx, tid, ActorOf(users[14]), c.post.ID, strings.Join(names, " ")); err != nil {
		t.Fatal(err)
	}
	if k := kindsOf(t, db, tid, c.member); len(k[c.member.Username]) != 2 || k[c.member.Username][0] != KindReply {
		t.Errorf("the post's author after a flood reply: %v, want a reply", k)
	}
	if n := unread(t, db, tid, users[9]); n != 1 {
		t.Errorf("the tenth name was notified again (%d): the reply took its place", n)
	}
	if n := unread(t, db, tid, users[8]); n != 2 {
		t.Errorf("the ninth name has %d, want 2", n)
	}
}

// TestNotifyOnlyWhatTheyCanSee: a moderator's comment in a hidden post
// notifies only moderators; once content is hidden, members' notifications
// about it keep their place without excerpt or title (also in replays of
// their events), and moderators still see everything.
func TestNotifyOnlyWhatTheyCanSee(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "visible")
	tid := c.tenant.ID
	mod := registerUser(t, db, tid, "mod")
	if _, err := db.SetRole(ctx, tid, ActorOf(c.admin), mod.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	mod.Role = RoleModerator
	carol := registerUser(t, db, tid, "carol")
	post, err := db.CreatePost(ctx, tid, ActorOf(c.admin), c.board.ID, "Secret", "To be hidden")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, tid, ActorOf(c.admin), post.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	carolBefore, modBefore := unread(t, db, tid, carol), unread(t, db, tid, mod)
	if _, err := db.CreateComment(ctx, tid, ActorOf(c.admin), post.ID, "@carol @mod look"); err != nil {
		t.Fatal(err)
	}
	if unread(t, db, tid, carol) != carolBefore || unread(t, db, tid, mod) != modBefore+1 {
		t.Errorf("in a hidden post: carol %d -> %d (want unchanged), mod %d -> %d (want +1)",
			carolBefore, unread(t, db, tid, carol), modBefore, unread(t, db, tid, mod))
	}

	// carol and mod are mentioned in a visible comment, which is hidden
	// afterwards.
	cm, err := db.CreateComment(ctx, tid, ActorOf(c.admin), c.post.ID, "@carol @mod see this")
	if err != nil {
		t.Fatal(err)
	}
	st, err := db.RoomState(ctx, tid, UserRoom(carol.ID))
	if err != nil {
		t.Fatal(err)
	}
	if n := notes(t, db, tid, carol)[0]; n.Excerpt == "" || n.Post == nil || n.Post.Title == "" {
		t.Fatalf("before hiding: %+v", n)
	}
	if _, err := db.ModerateComment(ctx, tid, ActorOf(c.admin), cm.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	n := notes(t, db, tid, carol)[0]
	if n.CommentID == nil || *n.CommentID != cm.ID || n.Excerpt != "" || n.Post == nil || n.Post.ID != c.post.ID || n.Post.Title != "" {
		t.Errorf("carol's notification about a hidden comment: %+v; want its place kept without excerpt or title", n)
	}
	if n := notes(t, db, tid, mod)[0]; n.Excerpt == "" || n.Post.Title == "" {
		t.Errorf("the moderator's notification about a hidden comment: %+v; moderators see it", n)
	}
	evs := userEvents(t, db, tid, carol, st.Seq-1)
	if p := createdPayload(t, evs[0]); p.Notification.Excerpt != "" || p.Notification.Post.Title != "" || p.UnreadCount == 0 {
		t.Errorf("replay of carol's event about the hidden comment: %s", evs[0].Payload)
	}
	// Deleted content is the same: the place stays, the text goes.
	if err := db.DeletePost(ctx, tid, ActorOf(c.admin), c.post.ID); err != nil {
		t.Fatal(err)
	}
	if n := notes(t, db, tid, mod)[0]; n.Excerpt != "" || n.Post == nil || n.Post.Title != "" {
		t.Errorf("the moderator's notification about a deleted post: %+v", n)
	}
}

// TestNotifyEachCause: moderation of one's content, a resolved report, a
// role change, a ban and an unban each notify their person once, with the
// detail that says what happened; acting on one's own content does not.
func TestNotifyEachCause(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "causes")
	tid := c.tenant.ID
	admin := ActorOf(c.admin)
	m := c.member // authored c.post
	type want struct {
		kind, detail string
		post         bool
		excerpt      bool
	}
	latest := func(t *testing.T, w want) {
		t.Helper()
		n := notes(t, db, tid, m)[0]
		detail := ""
		if n.Detail != nil {
			detail = *n.Detail
		}
		if n.Kind != w.kind || detail != w.detail || (n.Post != nil) != w.post || (n.Excerpt != "") != w.excerpt || n.Actor != nil || n.Read {
			t.Errorf("latest notification %+v (detail %q), want %+v", n, detail, w)
		}
	}
	count := func() int { return len(notes(t, db, tid, m)) }

	before := count()
	for _, a := range []string{ActionPin, ActionUnpin, ActionUnlock} {
		if _, err := db.ModeratePost(ctx, tid, admin, c.post.ID, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	if count() != before {
		t.Errorf("pin, unpin and unlock notified")
	}
	// Hidden: told, though the member cannot see it any more.
	if _, err := db.ModeratePost(ctx, tid, admin, c.post.ID, ActionHide, "spam"); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindModeration, ActionHide, true, false})
	if _, err := db.ModeratePost(ctx, tid, admin, c.post.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindModeration, ActionUnhide, true, true})
	if _, err := db.ModeratePost(ctx, tid, admin, c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindModeration, ActionLock, true, true})
	if _, err := db.ModeratePost(ctx, tid, admin, c.post.ID, ActionUnlock, ""); err != nil {
		t.Fatal(err)
	}
	cm, err := db.CreateComment(ctx, tid, ActorOf(m), c.post.ID, "my comment")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModerateComment(ctx, tid, admin, cm.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindModeration, ActionHide, true, false})
	if n := notes(t, db, tid, m)[0]; n.CommentID == nil || *n.CommentID != cm.ID {
		t.Errorf("comment hide: %+v", n)
	}
	if _, err := db.ModerateComment(ctx, tid, admin, cm.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindModeration, ActionUnhide, true, true})
	// A moderator's own content: nothing.
	adminBefore := len(notes(t, db, tid, c.admin))
	if _, err := db.ModerateComment(ctx, tid, admin, c.comment.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	if len(notes(t, db, tid, c.admin)) != adminBefore {
		t.Errorf("a moderator hiding their own comment was notified")
	}

	rep, err := db.CreateReport(ctx, tid, ActorOf(m), NewReport{TargetType: "post", TargetID: c.post.ID, Reason: "mine, oddly"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ResolveReport(ctx, tid, admin, rep.ID, "looked at it"); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindReportResolved, "", true, true})

	if _, err := db.SetRole(ctx, tid, admin, m.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindRole, string(RoleModerator), false, false})
	if _, err := db.SetRole(ctx, tid, admin, m.ID, RoleMember, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindRole, string(RoleMember), false, false})
	if _, err := db.BanUser(ctx, tid, admin, m.ID, Ban{Reason: "be nice"}); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindBan, "ban", false, true})
	if n := notes(t, db, tid, m)[0]; n.Excerpt != "be nice" {
		t.Errorf("a ban's excerpt is %q, want its reason", n.Excerpt)
	}
	if _, err := db.UnbanUser(ctx, tid, admin, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	latest(t, want{KindBan, "unban", false, false})
	// Nothing changed, nothing notified.
	total := count()
	if _, err := db.UnbanUser(ctx, tid, admin, m.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetRole(ctx, tid, admin, m.ID, RoleMember, ""); err != nil {
		t.Fatal(err)
	}
	if count() != total {
		t.Errorf("actions that changed nothing notified")
	}
	// An admin changing their own role is not told about it.
	other := registerUser(t, db, tid, "second_admin")
	if _, err := db.SetRole(ctx, tid, admin, other.ID, RoleAdmin, ""); err != nil {
		t.Fatal(err)
	}
	adminNotes := len(notes(t, db, tid, c.admin))
	if _, err := db.SetRole(ctx, tid, admin, c.admin.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	if len(notes(t, db, tid, c.admin)) != adminNotes {
		t.Errorf("an admin was notified of their own role change")
	}
}

// TestMarkRead: by ids or all, the count follows and the user room hears
// notification.read with it; ids of someone else's notifications are
// not_found and mark nothing, not even the caller's own ids beside them.
func TestMarkNotificationsRead(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "markread")
	tid := c.tenant.ID
	m, other := c.member, registerUser(t, db, tid, "other")
	for i := range 4 {
		if _, err := db.CreateComment(ctx, tid, ActorOf(c.admin), c.post.ID, fmt.Sprintf("reply %d @other", i)); err != nil {
			t.Fatal(err)
		}
	}
	mine, theirs := notes(t, db, tid, m), notes(t, db, tid, other)
	if len(mine) != 5 || len(theirs) != 4 {
		t.Fatalf("%d and %d notifications, want 5 and 4", len(mine), len(theirs))
	}
	st, err := db.RoomState(ctx, tid, UserRoom(m.ID))
	if err != nil {
		t.Fatal(err)
	}

	for name, ids := range map[string][]int64{
		"another user's":        {theirs[0].ID},
		"mine and another's":    {mine[0].ID, theirs[0].ID},
		"one that is not there": {theirs[0].ID + 1000},
	} {
		if _, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), ids, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("mark %s: %v, want not_found", name, err)
		}
	}
	for name, call := range map[string]func() error{
		"neither": func() error { _, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), nil, false); return err },
		"both": func() error {
			_, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), []int64{mine[0].ID}, true)
			return err
		},
		"too many": func() error {
			_, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), make([]int64, MaxMarkRead+1), false)
			return err
		},
	} {
		if err := call(); !errors.Is(err, &Error{Code: CodeInvalid}) {
			t.Errorf("mark %s: %v, want unprocessable", name, err)
		}
	}
	if unread(t, db, tid, m) != 5 || unread(t, db, tid, other) != 4 || len(userEvents(t, db, tid, m, st.Seq)) != 0 {
		t.Fatalf("refused requests changed something: %d %d", unread(t, db, tid, m), unread(t, db, tid, other))
	}

	// Two of mine, one of them twice.
	n, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), []int64{mine[1].ID, mine[3].ID, mine[1].ID}, false)
	if err != nil || n != 3 {
		t.Fatalf("mark two: %d, %v; want 3", n, err)
	}
	evs := userEvents(t, db, tid, m, st.Seq)
	var ev notificationRead
	if len(evs) != 1 || evs[0].Type != "notification.read" || json.Unmarshal(evs[0].Payload, &ev) != nil ||
		ev.UnreadCount != 3 || ev.All || fmt.Sprint(ev.IDs) != fmt.Sprint([]string{fmt.Sprint(mine[3].ID), fmt.Sprint(mine[1].ID)}) {
		t.Fatalf("events after marking two: %+v", evs)
	}
	if string(evs[0].Payload) == "" || strings.Contains(string(evs[0].Payload), `"all"`) {
		t.Errorf("payload %s: all is left out when ids are given", evs[0].Payload)
	}
	// Again: nothing changes, no event, the same count.
	if n, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), []int64{mine[1].ID}, false); err != nil || n != 3 {
		t.Errorf("mark again: %d, %v", n, err)
	}
	unreadOnly, err := db.ListNotifications(ctx, tid, ActorOf(m), true, PageParams{Limit: 50})
	if err != nil || len(unreadOnly.Items) != 3 {
		t.Fatalf("unread list: %d items, %v", len(unreadOnly.Items), err)
	}
	for _, x := range unreadOnly.Items {
		if x.Read || x.ID == mine[1].ID || x.ID == mine[3].ID {
			t.Errorf("unread list holds %+v", x)
		}
	}

	n, err = db.MarkNotificationsRead(ctx, tid, ActorOf(m), nil, true)
	if err != nil || n != 0 {
		t.Fatalf("mark all: %d, %v", n, err)
	}
	evs = userEvents(t, db, tid, m, st.Seq)
	ev = notificationRead{}
	if len(evs) != 2 || json.Unmarshal(evs[1].Payload, &ev) != nil || !ev.All || ev.IDs != nil || ev.UnreadCount != 0 {
		t.Fatalf("events after mark all: %d, last %s", len(evs), evs[len(evs)-1].Payload)
	}
	if n, err := db.MarkNotificationsRead(ctx, tid, ActorOf(m), nil, true); err != nil || n != 0 || len(userEvents(t, db, tid, m, st.Seq)) != 2 {
		t.Errorf("mark all again: %d, %v, or an event for nothing", n, err)
	}
	if unread(t, db, tid, other) != 4 {
		t.Errorf("marking all of mine touched another user's")
	}
	// Someone never notified can mark all: nothing to do.
	if n, err := db.MarkNotificationsRead(ctx, tid, ActorOf(registerUser(t, db, tid, "newbie")), nil, true); err != nil || n != 0 {
		t.Errorf("mark all with no notifications: %d, %v", n, err)
	}
}

// TestNotificationRollback: a write that fails after its notifications
// were inserted leaves none of them, no counter change and no event.
func TestNotificationRollback(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "rollback")
	tid := c.tenant.ID
	m := c.member
	st, err := db.RoomState(ctx, tid, UserRoom(m.ID))
	if err != nil {
		t.Fatal(err)
	}
	before := unread(t, db, tid, m)

	// Forced: the notification statement and its publish ran, then the
	// transaction fails.
	err = db.WithTenant(ctx, tid, func(tx *Tx) error {
		if err := notify(ctx, tx, tid, ActorOf(c.admin), notice{kind: KindReply, postAuthor: true, postID: c.post.ID, commentID: c.comment.ID}); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1`, m.ID).Scan(&n); err != nil || n != int(before)+1 {
			return fmt.Errorf("inside the transaction: %d notifications (%v), want %d", n, err, before+1)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	// A comment into a locked post fails after nothing was notified yet;
	// as a moderator's it would notify: it must leave nothing either way.
	if _, err := db.ModeratePost(ctx, tid, ActorOf(c.admin), c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	lockedNote := unread(t, db, tid, m) // the lock itself notified the author
	carol := registerUser(t, db, tid, "carol")
	if _, err := db.CreateComment(ctx, tid, ActorOf(carol), c.post.ID, "@"+m.Username+" hello"); !errors.Is(err, errLocked) {
		t.Fatalf("comment into a locked post: %v", err)
	}
	if got := unread(t, db, tid, m); got != lockedNote || len(notes(t, db, tid, m)) != int(lockedNote) {
		t.Errorf("after the refused comment: unread %d, %d listed; want %d", got, len(notes(t, db, tid, m)), lockedNote)
	}
	evs := userEvents(t, db, tid, m, st.Seq)
	if len(evs) != 1 || createdPayload(t, evs[0]).Notification.Detail == nil || *createdPayload(t, evs[0]).Notification.Detail != ActionLock {
		t.Errorf("the user room after the rolled-back writes: %d events (want only the lock's)", len(evs))
	}
	if lockedNote != before+1 {
		t.Errorf("unread %d after the lock, want %d", lockedNote, before+1)
	}
}

// TestNotifyConcurrentRepliers: 20 people replying to one post at once
// give its author exactly 20 notifications, one per reply, and none to
// any writer; the user room's events are gap free and each carries the
// count as of its own commit (1, 2, ... 20), whatever the commit order.
// Meanwhile the author marks read from another device: the counter and
// the rows never disagree.
func TestNotifyConcurrentRepliers(t *testing.T) {
	const writers = 20
	db, _ := openDB(t, Config{MaxConns: 24})
	ctx := testCtx(t)
	c := newCommunity(t, db, "race")
	tid := c.tenant.ID
	author := registerUser(t, db, tid, "author")
	post, err := db.CreatePost(ctx, tid, ActorOf(author), c.board.ID, "Busy", "Reply here")
	if err != nil {
		t.Fatal(err)
	}
	var users []User
	for i := range writers {
		users = append(users, registerUser(t, db, tid, fmt.Sprintf("writer_%02d", i)))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Each also mentions the author and the next writer: still one
			// notification for the author per reply.
			if _, err := db.CreateComment(ctx, tid, ActorOf(u), post.ID, "@author @"+u.Username+" me too"); err != nil {
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
	ns := notes(t, db, tid, author)
	comments := map[int64]bool{}
	for _, n := range ns {
		if n.Kind != KindReply || n.CommentID == nil {
			t.Errorf("the author got %+v", n)
			continue
		}
		comments[*n.CommentID] = true
	}
	if len(ns) != writers || len(comments) != writers {
		t.Fatalf("the author has %d notifications about %d comments, want %d", len(ns), len(comments), writers)
	}
	for _, u := range users {
		if got := notes(t, db, tid, u); len(got) != 0 {
			t.Errorf("writer %s was notified: %+v", u.Username, got)
		}
	}
	evs := userEvents(t, db, tid, author, 0)
	if len(evs) != writers {
		t.Fatalf("%d events in the author's room, want %d", len(evs), writers)
	}
	for i, e := range evs {
		if p := createdPayload(t, e); e.Seq != int64(i+1) || p.UnreadCount != int64(i+1) {
			t.Errorf("event %d: seq %d, unread_count %d; want %d, %d", i, e.Seq, p.UnreadCount, i+1, i+1)
		}
	}

	// Replies and mark-all racing: every answer and event is a count that
	// the rows agree with once all is done.
	start = make(chan struct{})
	errs = make(chan error, 2*writers)
	for i, u := range users {
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			if _, err := db.CreateComment(ctx, tid, ActorOf(u), post.ID, "again"); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			if i%4 == 0 {
				_, err := db.MarkNotificationsRead(ctx, tid, ActorOf(author), nil, true)
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rows int64
	if err := db.WithTenant(ctx, tid, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL`, author.ID).Scan(&rows)
	}); err != nil {
		t.Fatal(err)
	}
	if got := unread(t, db, tid, author); got != rows {
		t.Errorf("unread counter %d, unread rows %d", got, rows)
	}
	// The last event of the room carries the count that stands now.
	evs = userEvents(t, db, tid, author, 0)
	last := evs[len(evs)-1]
	var count struct {
		UnreadCount int64 `json:"unread_count"`
	}
	if err := json.Unmarshal(last.Payload, &count); err != nil || count.UnreadCount != rows {
		t.Errorf("the last event (%s) says %d unread, the rows %d", last.Type, count.UnreadCount, rows)
	}
}

// TestUserPage: a user's page by name in any case, with their newest posts
// and comments that the reader may see; unknown names and other tenants'
// users are not found.
func TestUserPage(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "pages")
	other := newCommunity(t, db, "pages-other")
	tid := c.tenant.ID
	admin := ActorOf(c.admin)
	hiddenPost, err := db.CreatePost(ctx, tid, admin, c.board.ID, "Hidden one", "secret text")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, tid, admin, hiddenPost.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	var last Comment
	for i := range 12 {
		if last, err = db.CreateComment(ctx, tid, admin, c.post.ID, fmt.Sprintf("comment   number\n%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ModerateComment(ctx, tid, admin, last.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	name := strings.ToUpper(c.admin.Username)
	up, err := db.GetUserPage(ctx, tid, ActorOf(c.member), name)
	if err != nil {
		t.Fatal(err)
	}
	if up.ID != c.admin.ID || up.Username != c.admin.Username || up.Role != RoleAdmin || !up.CreatedAt.Equal(c.admin.CreatedAt) {
		t.Errorf("page: %+v", up)
	}
	if len(up.Recent) != recentItems {
		t.Fatalf("%d recent items, want %d", len(up.Recent), recentItems)
	}
	for i, it := range up.Recent {
		if it.Type != "comment" || it.CommentID == nil || *it.CommentID == last.ID || it.Post.ID != c.post.ID || it.Post.Title != c.post.Title {
			t.Errorf("member's item %d: %+v (hidden ones must not show)", i, it)
		}
		if i > 0 && it.CreatedAt.After(up.Recent[i-1].CreatedAt) {
			t.Errorf("item %d is newer than item %d", i, i-1)
		}
	}
	if up.Recent[0].Excerpt != "comment number 10" {
		t.Errorf("newest visible excerpt %q", up.Recent[0].Excerpt)
	}
	mod, err := db.GetUserPage(ctx, tid, admin, c.admin.Username)
	if err != nil {
		t.Fatal(err)
	}
	if mod.Recent[0].CommentID == nil || *mod.Recent[0].CommentID != last.ID {
		t.Errorf("a moderator's view starts with %+v, want the hidden newest comment", mod.Recent[0])
	}
	// A member's page with one post, read anonymously.
	mp, err := db.GetUserPage(ctx, tid, Actor{}, c.member.Username)
	if err != nil || len(mp.Recent) != 1 || mp.Recent[0].Type != "post" || mp.Recent[0].CommentID != nil || mp.Recent[0].Excerpt != "First post." {
		t.Errorf("the member's page: %+v, %v", mp, err)
	}
	// No posts at all: an empty list, not null.
	fresh, err := db.GetUserPage(ctx, tid, admin, registerUser(t, db, tid, "quiet").Username)
	if err != nil || fresh.Recent == nil || len(fresh.Recent) != 0 {
		t.Errorf("a quiet user's page: %+v, %v", fresh, err)
	}
	for _, n := range []string{"nobody_at_all", other.admin.Username, "bad name!", ""} {
		if _, err := db.GetUserPage(ctx, tid, admin, n); !errors.Is(err, ErrNotFound) {
			t.Errorf("page of %q: %v, want not_found", n, err)
		}
	}
}
