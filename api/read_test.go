package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"agora/api/apitest"
	"agora/store"
)

// TestMarkReadHTTP: every body the contract allows marks the post read,
// only forward, and the reader's other devices hear of each move.
func TestMarkReadHTTP(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	ctx := context.Background()
	readPath := f.path(fmt.Sprintf("posts/%d/read", f.post.ID))
	var ids []int64
	for i := range 3 {
		ids = append(ids, f.CreateComment(t, f.slug, f.adminToken, f.post.ID, fmt.Sprint("comment ", i)).ID)
	}
	reading := func() store.PostReading {
		t.Helper()
		var p store.Post
		f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.victimToken, nil, http.StatusOK, &p)
		if p.PostReading == nil {
			t.Fatalf("no reader state for a signed-in reader: %+v", p)
		}
		return *p.PostReading
	}
	if r := reading(); r.LastReadCommentID != nil || r.UnreadComments != 4 {
		t.Fatalf("never read: %+v, want null and all 4 comments unread", r)
	}
	room := store.UserRoom(f.victim.ID)
	seq := int64(0)
	moves := func() []string {
		t.Helper()
		evs, err := f.DB.EventsAfter(ctx, f.tenant.ID, room, seq, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			seq = e.Seq
			var m struct {
				PostID string `json:"post_id"`
				Last   string `json:"last_read_comment_id"`
			}
			if e.Type != "read.updated" || json.Unmarshal(e.Payload, &m) != nil || m.PostID != fmt.Sprint(f.post.ID) {
				t.Errorf("event in %s: %s %s", room, e.Type, e.Payload)
			}
			out = append(out, m.Last)
		}
		return out
	}

	steps := []struct {
		name   string
		body   any
		last   int64
		unread int
		moved  bool
	}{
		{"a comment id as a string", map[string]any{"comment_id": fmt.Sprint(ids[0])}, ids[0], 2, true},
		{"an older one", map[string]any{"comment_id": fmt.Sprint(f.comment.ID)}, ids[0], 2, false},
		{"a comment id as a number", map[string]any{"comment_id": ids[1]}, ids[1], 1, true},
		{"{}", map[string]any{}, ids[2], 0, true},
		{"no body again", nil, ids[2], 0, false},
		{"null", map[string]any{"comment_id": nil}, ids[2], 0, false},
	}
	for _, s := range steps {
		status, body := f.Do(t, "PUT", readPath, f.victimToken, s.body)
		if status != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("%s: %d %s, want 204 and no body", s.name, status, body)
		}
		r := reading()
		if r.LastReadCommentID == nil || *r.LastReadCommentID != s.last || r.UnreadComments != s.unread {
			t.Errorf("%s: %+v, want %d with %d unread", s.name, r, s.last, s.unread)
		}
		got := moves()
		if s.moved != (len(got) == 1 && got[0] == fmt.Sprint(s.last)) || (!s.moved && len(got) != 0) {
			t.Errorf("%s: read.updated %v, moved %v", s.name, got, s.moved)
		}
	}
	// No body at all, on a fresh post: the newest now.
	second := f.CreatePost(t, f.slug, f.adminToken, f.board.ID, "Second", "body")
	last := f.CreateComment(t, f.slug, f.adminToken, second.ID, "only one")
	r := f.Call(t, apitest.Request{Method: "PUT", Path: f.path(fmt.Sprintf("posts/%d/read", second.ID)), Token: f.victimToken})
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT read with no body: %d %s", r.Status, r.Body)
	}
	var p store.Post
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", second.ID)), f.victimToken, nil, http.StatusOK, &p)
	if p.PostReading == nil || p.LastReadCommentID == nil || *p.LastReadCommentID != last.ID || p.UnreadComments != 0 {
		t.Errorf("after PUT read with no body: %+v", p.PostReading)
	}
	evs, err := f.DB.EventsAfter(ctx, f.tenant.ID, room, seq, 100)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read.updated events after marking the second post: %d (%v), want 1", len(evs), err)
	}
	seq = evs[0].Seq

	// Refusals.
	bad := []struct {
		name, token string
		body        any
		status      int
		code        string
	}{
		{"another post's comment", f.victimToken, map[string]any{"comment_id": fmt.Sprint(last.ID)}, http.StatusUnprocessableEntity, "unprocessable"},
		{"no id", f.victimToken, map[string]any{"comment_id": "first"}, http.StatusUnprocessableEntity, "unprocessable"},
		{"not a string or number", f.victimToken, map[string]any{"comment_id": true}, http.StatusUnprocessableEntity, "unprocessable"},
		{"malformed JSON", f.victimToken, "{", http.StatusBadRequest, "bad_request"},
		{"anonymous", "", nil, http.StatusUnauthorized, "unauthorized"},
	}
	for _, b := range bad {
		status, body := f.Do(t, "PUT", readPath, b.token, b.body)
		e := wantError(t, b.name, status, body, b.status, b.code)
		if b.status == http.StatusUnprocessableEntity && e.Error.Fields["comment_id"] == "" {
			t.Errorf("%s: %s, want comment_id named", b.name, body)
		}
	}
	status, body := f.Do(t, "PUT", f.path("posts/999999/read"), f.victimToken, nil)
	wantError(t, "a missing post", status, body, http.StatusNotFound, "not_found")
	if got := moves(); len(got) != 0 {
		t.Errorf("refused marks sent read.updated %v", got)
	}
}
