package realtime_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"agora/api/apitest"
	"agora/store"
)

// TestHideAfterKept: events kept in memory before their post or comment
// was hidden are redacted for members who resume past them, exactly as a
// replay from the database is; and a hidden post's room is closed to new
// members at once, though the room remembered who may subscribe.
func TestHideAfterKept(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	_, member := s.Register(t, "acme", "mia")
	postRoom, boardRoom := store.PostRoom(f.post.ID), store.BoardRoom(f.board.ID)

	// Live subscribers, so what follows is delivered, and kept.
	live := mustDial(t, s.URL, "acme", member)
	boardSeq := live.subscribe(boardRoom, nil).Seq
	postSeq := live.subscribe(postRoom, nil).Seq
	const secret = "words that will be hidden"
	cm := s.CreateComment(t, "acme", member, f.post.ID, secret)
	live.events(postRoom, 1, wait)
	p := s.CreatePost(t, "acme", member, f.board.ID, "A secret title", "a secret body")
	live.next(wait, "post.created", func(m msg) bool { return m.Type == "post.created" })

	resume := func(token, room string, since int64) string {
		t.Helper()
		c := mustDial(t, s.URL, "acme", token)
		sub := c.subscribe(room, &since)
		evs := c.events(room, int(sub.Seq-since), wait)
		assertConsecutive(t, seqs(evs), since+1)
		var all []string
		for _, e := range evs {
			all = append(all, e.Raw)
		}
		return strings.Join(all, "\n")
	}
	hide := func(path string) {
		t.Helper()
		s.MustDo(t, http.MethodPost, apitest.TenantPath("acme", path), f.admin, nil, http.StatusOK, nil)
	}

	hide(fmt.Sprintf("mod/comments/%d/hide", cm.ID))
	live.events(postRoom, 1, wait)
	if got := resume(member, postRoom, postSeq); strings.Contains(got, secret) {
		t.Fatalf("a member resuming after the hide sees the comment:\n%s", got)
	}
	if got := resume(f.admin, postRoom, postSeq); !strings.Contains(got, secret) {
		t.Fatalf("the admin resuming after the hide lost the comment:\n%s", got)
	}

	hide(fmt.Sprintf("mod/posts/%d/hide", p.ID))
	live.next(wait, "the post hidden", func(m msg) bool { return m.Type == "post.updated" })
	if got := resume(member, boardRoom, boardSeq); strings.Contains(got, "secret title") {
		t.Fatalf("a member resuming the board after the post was hidden sees it:\n%s", got)
	}
	if got := resume(f.admin, boardRoom, boardSeq); !strings.Contains(got, "secret title") {
		t.Fatalf("the admin resuming the board lost the post:\n%s", got)
	}

	// The post room of a hidden post: members who passed before are not
	// let in again on that memory.
	pr := store.PostRoom(p.ID)
	watcher := mustDial(t, s.URL, "acme", f.admin)
	watcher.subscribe(pr, nil)
	hide(fmt.Sprintf("mod/posts/%d/unhide", p.ID))
	watcher.events(pr, 1, wait)
	mustDial(t, s.URL, "acme", member).subscribe(pr, nil) // remembered: members may
	hide(fmt.Sprintf("mod/posts/%d/hide", p.ID))
	watcher.events(pr, 1, wait)
	late := mustDial(t, s.URL, "acme", member)
	late.send(map[string]any{"op": "subscribe", "room": pr})
	late.errorFrame("not_found", pr)
}
