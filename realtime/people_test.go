package realtime_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"agora/store"
)

// TestActivityAndReactionsLive: over real sockets, a board list hears of
// each new comment count and a thread of each new reaction count; members
// see a hidden comment's reactions redacted, moderators in full.
func TestActivityAndReactionsLive(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	_, member := s.Register(t, "acme", "mia")
	const wait = 5 * time.Second
	boardRoom, postRoom := store.BoardRoom(f.board.ID), store.PostRoom(f.post.ID)
	board := mustDial(t, s.URL, "acme", member)
	board.subscribe(boardRoom, nil)
	thread := mustDial(t, s.URL, "acme", member)
	thread.subscribe(postRoom, nil)
	mod := mustDial(t, s.URL, "acme", f.admin)
	mod.subscribe(postRoom, nil)

	cm := s.CreateComment(t, "acme", member, f.post.ID, "first")
	ev := board.events(boardRoom, 1, wait)[0]
	var act struct {
		ID             string    `json:"id"`
		CommentCount   int       `json:"comment_count"`
		LastActivityAt time.Time `json:"last_activity_at"`
	}
	if err := json.Unmarshal(ev.Data, &act); err != nil || ev.Type != "post.activity" ||
		act.ID != fmt.Sprint(f.post.ID) || act.CommentCount != 1 || act.LastActivityAt.IsZero() {
		t.Fatalf("board room after a comment: %s", ev.Raw)
	}

	// The thread gets the comment, then (and only then) the reaction.
	s.MustDo(t, "PUT", fmt.Sprintf("/api/v1/t/acme/comments/%d/reactions/love", cm.ID), member, nil, http.StatusOK, nil)
	evs := thread.events(postRoom, 2, wait)
	if evs[0].Type != "comment.created" || evs[1].Type != "comment.reactions" ||
		!sameJSON(evs[1].Data, fmt.Sprintf(`{"id":"%d","reactions":{"love":1}}`, cm.ID)) {
		t.Fatalf("thread after a comment and a reaction: %s | %s", evs[0].Raw, evs[1].Raw)
	}
	mod.events(postRoom, 2, wait)

	// Hidden: the board hears of the count, the thread's member of a
	// reaction only that it happened.
	s.MustDo(t, "POST", fmt.Sprintf("/api/v1/t/acme/mod/comments/%d/hide", cm.ID), f.admin, nil, http.StatusOK, nil)
	if ev := board.events(boardRoom, 1, wait)[0]; ev.Type != "post.activity" || json.Unmarshal(ev.Data, &act) != nil || act.CommentCount != 0 {
		t.Fatalf("board room after hiding: %s", ev.Raw)
	}
	s.MustDo(t, "PUT", fmt.Sprintf("/api/v1/t/acme/comments/%d/reactions/wow", cm.ID), f.admin, nil, http.StatusOK, nil)
	evs = thread.events(postRoom, 2, wait)
	if evs[1].Type != "comment.reactions" || !sameJSON(evs[1].Data, fmt.Sprintf(`{"hidden":true,"id":"%d"}`, cm.ID)) {
		t.Errorf("member's view of a hidden comment's reactions: %s", evs[1].Raw)
	}
	evs = mod.events(postRoom, 2, wait)
	var r struct {
		Reactions map[string]int `json:"reactions"`
	}
	if json.Unmarshal(evs[1].Data, &r) != nil || r.Reactions["wow"] != 1 || r.Reactions["love"] != 1 {
		t.Errorf("moderator's view of a hidden comment's reactions: %s", evs[1].Raw)
	}
}

// sameJSON reports whether got encodes the same value as want.
func sameJSON(got json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
}
