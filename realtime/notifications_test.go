package realtime_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"agora/store"
)

// The user:{id} room over real sockets and the real outbox: only its user
// may subscribe; notification.created and notification.read reach every
// socket of that user, with the same gap-free seq, history and resume as
// every room.

type createdEvent struct {
	Notification struct {
		ID        string  `json:"id"`
		Kind      string  `json:"kind"`
		CommentID *string `json:"comment_id"`
		Excerpt   string  `json:"excerpt"`
		Post      *struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"post"`
		Read bool `json:"read"`
	} `json:"notification"`
	UnreadCount *int64 `json:"unread_count"`
}

type readEvent struct {
	IDs         []string `json:"ids"`
	All         bool     `json:"all"`
	UnreadCount *int64   `json:"unread_count"`
}

func decodeData[T any](t *testing.T, m msg) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(m.Data, &v); err != nil {
		t.Fatalf("event data %s: %v", m.Data, err)
	}
	return v
}

// TestUserRoomIsPrivate: anyone but the user (another member, a
// moderator, the admin, an anonymous reader, a user of another tenant) is
// told not_found, as for a room that does not exist; the user is let in.
func TestUserRoomIsPrivate(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	other := newForum(t, s, "globex")
	bob, bobToken := s.Register(t, "acme", "bob")
	_, carolToken := s.Register(t, "acme", "carol")
	mod, modToken := s.Register(t, "acme", "mod")
	s.MustDo(t, "PUT", fmtPath("acme", "mod/users/%d/role", mod.ID), f.admin, map[string]string{"role": "moderator"}, http.StatusOK, nil)
	room := store.UserRoom(bob.ID)

	for name, token := range map[string]string{"another member": carolToken, "a moderator": modToken, "the admin": f.admin, "anonymous": ""} {
		c := mustDial(t, s.URL, "acme", token)
		c.send(map[string]any{"op": "subscribe", "room": room, "since": 0})
		if m := c.errorFrame("not_found", room); m.Code != "not_found" {
			t.Errorf("%s: %s", name, m.Raw)
		}
	}
	// Another tenant's admin, for bob's id and for a room of their own id
	// in this tenant (whose users they are not).
	c := mustDial(t, s.URL, "globex", other.admin)
	c.send(map[string]any{"op": "subscribe", "room": room})
	c.errorFrame("not_found", room)

	// bob is let in, and nothing of carol's reaches him.
	bc := mustDial(t, s.URL, "acme", bobToken)
	bc.subscribe(room, nil)
	s.CreatePost(t, "acme", f.admin, f.board.ID, "For carol", "Hello @carol")
	s.CreatePost(t, "acme", f.admin, f.board.ID, "For bob", "Hello @bob")
	ev := bc.events(room, 1, wait)[0]
	if d := decodeData[createdEvent](t, ev); ev.Type != "notification.created" || d.Notification.Kind != "mention" ||
		d.Notification.Post == nil || d.Notification.Post.Title != "For bob" {
		t.Errorf("bob's room: %s", ev.Raw)
	}
	bc.quiet(150*time.Millisecond, "a second event (carol's mention)", eventIn(room))
}

// TestUserRoomLiveAndResume: a reply reaches the author's room live, in
// order with its count; one made while they were away is replayed on
// resume with since, exactly once and before live ones.
func TestUserRoomLiveAndResume(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	bob, bobToken := s.Register(t, "acme", "bob")
	_, carolToken := s.Register(t, "acme", "carol")
	post := s.CreatePost(t, "acme", bobToken, f.board.ID, "Bob's", "Answer me")
	room := store.UserRoom(bob.ID)

	c := mustDial(t, s.URL, "acme", bobToken)
	sub := c.subscribe(room, nil)
	first := s.CreateComment(t, "acme", carolToken, post.ID, "one")
	ev := c.events(room, 1, wait)[0]
	d := decodeData[createdEvent](t, ev)
	if ev.Seq != sub.Seq+1 || d.Notification.Kind != "reply" || d.Notification.CommentID == nil ||
		*d.Notification.CommentID != fmt.Sprint(first.ID) || d.Notification.Excerpt != "one" || d.Notification.Read ||
		d.UnreadCount == nil || *d.UnreadCount != 1 {
		t.Fatalf("live: %s (subscribed at %d)", ev.Raw, sub.Seq)
	}
	exactKeys(t, string(ev.Data), "notification", "unread_count")
	exactKeys(t, string(decodeData[map[string]json.RawMessage](t, ev)["notification"]),
		"id", "kind", "actor", "post", "comment_id", "excerpt", "detail", "read", "created_at")
	last := ev.Seq
	if err := c.Conn.Close(); err != nil {
		t.Fatal(err)
	}

	// While bob is away: two replies, one of them by the admin answering
	// carol's comment (carol is told too, in her own room).
	s.CreateComment(t, "acme", carolToken, post.ID, "two")
	var three store.Comment
	s.MustDo(t, "POST", fmtPath("acme", "posts/%d/comments", post.ID), f.admin,
		map[string]any{"body": "three", "reply_to": fmt.Sprint(first.ID)}, http.StatusCreated, &three)

	c = mustDial(t, s.URL, "acme", bobToken)
	c.subscribe(room, &last)
	missed := c.events(room, 2, wait)
	assertConsecutive(t, seqs(missed), last+1)
	for i, m := range missed {
		if d := decodeData[createdEvent](t, m); m.Type != "notification.created" || *d.UnreadCount != int64(i+2) {
			t.Errorf("replayed %d: %s", i, m.Raw)
		}
	}
	if d := decodeData[createdEvent](t, missed[1]); *d.Notification.CommentID != fmt.Sprint(three.ID) {
		t.Errorf("the second missed event is about %s, want %d", *d.Notification.CommentID, three.ID)
	}
	// Then live again, with no gap and no repeat.
	s.CreateComment(t, "acme", carolToken, post.ID, "four")
	live := c.events(room, 1, wait)[0]
	if live.Seq != missed[1].Seq+1 {
		t.Errorf("live after the replay: seq %d, want %d", live.Seq, missed[1].Seq+1)
	}
}

// TestNotificationReadOnEveryDevice: two sockets of one user see
// notification.read with the same count the REST answer gave, whichever
// of them (or neither) marked it; another user's sockets see nothing.
func TestNotificationReadOnEveryDevice(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	bob, bobToken := s.Register(t, "acme", "bob")
	carol, carolToken := s.Register(t, "acme", "carol")
	post := s.CreatePost(t, "acme", bobToken, f.board.ID, "Bob's", "Answer me")
	room := store.UserRoom(bob.ID)
	tab, phone := mustDial(t, s.URL, "acme", bobToken), mustDial(t, s.URL, "acme", bobToken)
	tab.subscribe(room, nil)
	phone.subscribe(room, nil)
	carolSocket := mustDial(t, s.URL, "acme", carolToken)
	carolSocket.subscribe(store.UserRoom(carol.ID), nil)

	for i := range 3 {
		s.CreateComment(t, "acme", carolToken, post.ID, fmt.Sprintf("reply %d", i))
	}
	created := tab.events(room, 3, wait)
	phone.events(room, 3, wait)
	ids := make([]string, 3)
	for i, m := range created {
		d := decodeData[createdEvent](t, m)
		ids[i] = d.Notification.ID
		if *d.UnreadCount != int64(i+1) {
			t.Errorf("created %d carries unread_count %d", i, *d.UnreadCount)
		}
	}

	var res map[string]int64
	s.MustDo(t, "POST", fmtPath("acme", "me/notifications/read"), bobToken, map[string]any{"ids": ids[:2]}, http.StatusOK, &res)
	for name, c := range map[string]*wsClient{"tab": tab, "phone": phone} {
		m := c.events(room, 1, wait)[0]
		d := decodeData[readEvent](t, m)
		if m.Type != "notification.read" || d.All || len(d.IDs) != 2 || d.UnreadCount == nil || *d.UnreadCount != res["unread_count"] || res["unread_count"] != 1 {
			t.Errorf("%s after marking two: %s (REST said %v)", name, m.Raw, res)
		}
	}
	s.MustDo(t, "POST", fmtPath("acme", "me/notifications/read"), bobToken, map[string]any{"all": true}, http.StatusOK, &res)
	for name, c := range map[string]*wsClient{"tab": tab, "phone": phone} {
		m := c.events(room, 1, wait)[0]
		d := decodeData[readEvent](t, m)
		if m.Type != "notification.read" || !d.All || d.IDs != nil || d.UnreadCount == nil || *d.UnreadCount != 0 || res["unread_count"] != 0 {
			t.Errorf("%s after marking all: %s (REST said %v)", name, m.Raw, res)
		}
		exactKeys(t, string(m.Data), "all", "unread_count")
	}
	// Carol's own comments only moved her read position.
	carolSocket.quiet(150*time.Millisecond, "a notification in carol's room", func(m msg) bool {
		return eventIn(store.UserRoom(carol.ID))(m) && strings.HasPrefix(m.Type, "notification.")
	})
}

// TestConcurrentRepliersReachTheAuthor: 20 people replying to one post at
// once over HTTP; the author's socket gets exactly 20 notification.created,
// gap free, counting 1 to 20, and no writer's socket gets one.
func TestConcurrentRepliersReachTheAuthor(t *testing.T) {
	const writers = 20
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	author, authorToken := s.Register(t, "acme", "author")
	post := s.CreatePost(t, "acme", authorToken, f.board.ID, "Busy", "Reply here")
	ac := mustDial(t, s.URL, "acme", authorToken)
	sub := ac.subscribe(store.UserRoom(author.ID), nil)
	type writer struct {
		token string
		conn  *wsClient
		room  string
	}
	ws := make([]writer, writers)
	for i := range ws {
		u, token := s.Register(t, "acme", fmt.Sprintf("writer_%02d", i))
		ws[i] = writer{token: token, conn: mustDial(t, s.URL, "acme", token), room: store.UserRoom(u.ID)}
		ws[i].conn.subscribe(ws[i].room, nil)
	}
	start := make(chan struct{})
	done := make(chan int, writers)
	for _, w := range ws {
		go func() {
			<-start
			status, _ := s.Do(t, "POST", fmtPath("acme", "posts/%d/comments", post.ID), w.token, map[string]string{"body": "me too"})
			done <- status
		}()
	}
	close(start)
	for range writers {
		if status := <-done; status != http.StatusCreated {
			t.Fatalf("a concurrent reply: %d", status)
		}
	}
	evs := ac.events(store.UserRoom(author.ID), writers, wait)
	assertConsecutive(t, seqs(evs), sub.Seq+1)
	comments := map[string]bool{}
	for i, m := range evs {
		d := decodeData[createdEvent](t, m)
		if m.Type != "notification.created" || d.Notification.Kind != "reply" || *d.UnreadCount != int64(i+1) {
			t.Errorf("event %d: %s", i, m.Raw)
		}
		comments[*d.Notification.CommentID] = true
	}
	if len(comments) != writers {
		t.Errorf("%d distinct comments among %d notifications", len(comments), writers)
	}
	ac.quiet(150*time.Millisecond, "a 21st notification", eventIn(store.UserRoom(author.ID)))
	for _, w := range ws {
		w.conn.quiet(10*time.Millisecond, "a notification to a writer", eventIn(w.room))
	}
}

func eventIn(room string) func(msg) bool {
	return func(m msg) bool { return m.Op == "event" && m.Room == room }
}

func fmtPath(tenant, format string, args ...any) string {
	return "/api/v1/t/" + tenant + "/" + fmt.Sprintf(format, args...)
}
