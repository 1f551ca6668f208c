package realtime_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"agora/store"
)

func TestEventReachesSubscriber(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)

	c := mustDial(t, s.URL, "acme", "")
	sub := c.subscribe(room, nil)
	if sub.Seq != 1 {
		t.Fatalf("subscribed seq = %d, want 1 (post.created)", sub.Seq)
	}
	p := c.next(2*time.Second, "presence state", op("presence"))
	if p.Anonymous != 1 || len(p.State) != 0 {
		t.Fatalf("presence = %s, want one anonymous reader", p.Raw)
	}

	cm := s.CreateComment(t, "acme", f.admin, f.post.ID, "hi there")
	ev := c.events(room, 1, 5*time.Second)[0]
	if ev.Seq != 2 || ev.Type != "comment.created" {
		t.Fatalf("event = %s", ev.Raw)
	}
	var got store.Comment
	if err := json.Unmarshal(ev.Data, &got); err != nil || got.ID != cm.ID || got.Body != "hi there" {
		t.Fatalf("event data = %s (err %v)", ev.Data, err)
	}

	// An edit is a diff with only the changed fields: the body, its
	// rendering and the time of the edit.
	s.MustDo(t, "PATCH", fmt.Sprintf("/api/v1/t/acme/comments/%d", cm.ID), f.admin, map[string]any{"body": "edited"}, 200, nil)
	ev = c.events(room, 1, 5*time.Second)[0]
	var diff struct {
		ID      string         `json:"id"`
		Version int            `json:"version"`
		Changes map[string]any `json:"changes"`
	}
	if err := json.Unmarshal(ev.Data, &diff); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "comment.updated" || diff.Version != 2 || len(diff.Changes) != 3 || diff.Changes["body"] != "edited" ||
		diff.Changes["body_html"] != "<p>edited</p>" || diff.Changes["edited_at"] == nil {
		t.Fatalf("update event = %s", ev.Raw)
	}
}

func TestResumeReplaysExactlyTheMissedEvents(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)

	c := mustDial(t, s.URL, "acme", f.admin)
	last := c.subscribe(room, nil).Seq
	_ = c.conn.Close()

	for i := range 200 {
		s.CreateComment(t, "acme", f.admin, f.post.ID, fmt.Sprintf("missed %d", i))
	}

	c = mustDial(t, s.URL, "acme", f.admin)
	c.subscribe(room, &last)
	// A live write right after the resume: it must follow the replay once.
	go s.CreateComment(t, "acme", f.admin, f.post.ID, "live")
	got := c.events(room, 201, 10*time.Second)
	assertConsecutive(t, seqs(got), last+1)
	var first, final store.Comment
	_ = json.Unmarshal(got[0].Data, &first)
	_ = json.Unmarshal(got[200].Data, &final)
	if first.Body != "missed 0" || final.Body != "live" {
		t.Fatalf("first %q, last %q", first.Body, final.Body)
	}
	select {
	case m := <-c.msgs:
		if m.Op == "event" {
			t.Fatalf("extra event after the seam: %s", m.Raw)
		}
	case <-time.After(200 * time.Millisecond):
	}
}

func TestWriteRacingSubscribeIsNeitherLostNorDuplicated(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)
	const iterations = 25
	for i := range iterations {
		since := int64(1) // post.created
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.CreateComment(t, "acme", f.admin, f.post.ID, fmt.Sprintf("race %d", i))
		}()
		c := mustDial(t, s.URL, "acme", f.admin)
		c.subscribe(room, &since)
		wg.Wait()
		want := int(i + 1) // comments so far, all after seq 1
		got := c.events(room, want, 5*time.Second)
		assertConsecutive(t, seqs(got), 2)
		select {
		case m := <-c.msgs:
			if m.Op == "event" {
				t.Fatalf("iteration %d: duplicate or extra event %s", i, m.Raw)
			}
		case <-time.After(20 * time.Millisecond):
		}
		_ = c.conn.Close()
	}
}

func TestThreeInstancesSeeTheSameOrder(t *testing.T) {
	a := startInstance(t, "", nil)
	b := startInstance(t, a.DatabaseURL, nil)
	c := startInstance(t, a.DatabaseURL, nil)
	f := newForum(t, a, "acme")
	room := store.PostRoom(f.post.ID)

	var clients []*wsClient
	for _, inst := range []*instance{a, b, c} {
		for range 2 {
			cl := mustDial(t, inst.URL, "acme", "")
			cl.subscribe(room, nil)
			clients = append(clients, cl)
		}
	}
	// One write through A reaches B and C.
	a.CreateComment(t, "acme", f.admin, f.post.ID, "from A")
	for _, cl := range clients {
		cl.events(room, 1, 5*time.Second)
	}

	const writers, each = 20, 10
	tokens := make([]string, writers)
	for i := range tokens {
		_, tokens[i] = a.Register(t, "acme", fmt.Sprintf("writer%d", i))
	}
	var wg sync.WaitGroup
	insts := []*instance{a, b, c}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				insts[(w+j)%3].CreateComment(t, "acme", tokens[w], f.post.ID, fmt.Sprintf("w%d-%d", w, j))
			}
		}()
	}
	wg.Wait()
	var want []int64
	for i, cl := range clients {
		got := seqs(cl.events(room, writers*each, 20*time.Second))
		assertConsecutive(t, got, 3)
		if i == 0 {
			want = got
		}
	}
	_ = want
}
