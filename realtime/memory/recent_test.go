package memory_test

// Resumes served from the rooms' recent events in memory: exactly once and
// gap free across the seam to History and to live events, redacted as
// History would be now, and at a cost in History queries that grows with
// the rooms, not with the clients.

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"agora/realtime"
	"agora/store"
)

// counted starts a hub whose History calls can be read back.
func (s *setup) counted(t *testing.T, tune func(*realtime.Config)) (*node, func(kind string) int) {
	t.Helper()
	m := realtime.NewMetrics(nil)
	n := s.start(t, func(c *realtime.Config) {
		c.Metrics = m
		if tune != nil {
			tune(c)
		}
	})
	return n, func(kind string) int { return int(testutil.ToFloat64(m.HistoryQueries.WithLabelValues(kind))) }
}

func comment(id int, body string) string { return fmt.Sprintf(`{"id":"%d","body":%q}`, id, body) }

// TestResumeFromMemory: the events a live subscriber was delivered serve
// a later resume without a query; one further back than the room keeps
// reads History, and both are exact.
func TestResumeFromMemory(t *testing.T) {
	s := newSetup(t, ann, bob)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n, queries := s.counted(t, func(c *realtime.Config) { c.HistoryMemoryEvents = 10 })
	live := n.dial(t, ann)
	live.subscribe(room, nil)
	for i := range 30 {
		s.event(room, "comment.created", comment(100+i, "hi"), false, true)
	}
	assertSeqs(t, live.events(room, 30), 2) // seqs 2..31; the room keeps 22..31

	before := queries("replay_events_after")
	c := n.dial(t, bob)
	since := int64(25)
	c.subscribe(room, &since)
	assertSeqs(t, c.events(room, 6), 26)
	if q := queries("replay_events_after") - before; q != 0 {
		t.Fatalf("a resume within the kept events made %d History reads", q)
	}
	s.event(room, "comment.created", comment(200, "live"), false, true)
	if ev := c.events(room, 1)[0]; ev.Seq != 32 {
		t.Fatalf("live after the replay: seq %d, want 32", ev.Seq)
	}

	// Further back than the room keeps: History, exactly once too.
	old := n.dial(t, bob)
	since = 5
	old.subscribe(room, &since)
	assertSeqs(t, old.events(room, 27), 6)
	s.event(room, "comment.created", comment(201, "live"), false, true)
	if ev := old.events(room, 1)[0]; ev.Seq != 33 {
		t.Fatalf("after the replay from History: seq %d, want 33", ev.Seq)
	}
	if queries("replay_events_after") == before {
		t.Fatal("a resume older than the kept events did not read History")
	}
}

// TestResumeStormFillsOnce: a fresh instance (nothing kept) and a crowd
// resuming in one room at once with the same since: History is read about
// once for all of them, the room is checked about once, and every client
// gets exactly what it missed, then live events.
func TestResumeStormFillsOnce(t *testing.T) {
	s := newSetup(t)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	for i := range 20 {
		s.event(room, "comment.created", comment(100+i, "missed"), false, false)
	}
	n, queries := s.counted(t, nil)
	const crowd = 60
	conns := make([]*conn, crowd)
	for i := range conns {
		conns[i] = n.dial(t, user{id: int64(1000 + i), name: fmt.Sprintf("u%d", i), role: store.RoleMember})
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Send(map[string]any{"op": "subscribe", "room": room, "since": 3})
		}()
	}
	wg.Wait()
	for _, c := range conns {
		c.next("subscribed", func(m msg) bool { return m.Op == "subscribed" })
	}
	s.event(room, "comment.created", comment(500, "live"), false, true)
	for _, c := range conns {
		assertSeqs(t, c.events(room, 19), 4) // 4..21 replayed, 22 live
	}
	// One read fills what the room keeps, for everyone; racing arrivals
	// may add one or two, never one per client.
	if q := queries("replay_events_after") + queries("replay_room_state"); q > 3 {
		t.Fatalf("%d clients resuming made %d History reads", crowd, q)
	}
	if q := queries("room_exists"); q > 6 {
		t.Fatalf("%d clients subscribing made %d room checks", crowd, q)
	}
}

// TestSeamBetweenHistoryAndMemory: a fill from History joins the kept
// events exactly, under live writes.
func TestSeamBetweenHistoryAndMemory(t *testing.T) {
	s := newSetup(t, ann, bob)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	for i := range 9 {
		s.event(room, "comment.created", comment(100+i, "before"), false, false)
	}
	n, queries := s.counted(t, nil)
	live := n.dial(t, ann)
	live.subscribe(room, nil) // at seq 10: the room keeps nothing yet
	for i := range 5 {
		s.event(room, "comment.created", comment(200+i, "kept"), false, true)
	}
	assertSeqs(t, live.events(room, 5), 11) // keeps 11..15

	c := n.dial(t, bob)
	since := int64(6)
	c.subscribe(room, &since) // 7..10 from History, 11..15 kept
	for i := range 3 {
		s.event(room, "comment.created", comment(300+i, "live"), false, true)
	}
	assertSeqs(t, c.events(room, 12), 7) // and then nothing twice:
	s.event(room, "comment.created", comment(400, "live"), false, true)
	if ev := c.events(room, 1)[0]; ev.Seq != 19 {
		t.Fatalf("after the seam: seq %d, want 19", ev.Seq)
	}

	before := queries("replay_events_after")
	again := n.dial(t, bob)
	again.subscribe(room, &since)
	assertSeqs(t, again.events(room, 13), 7)
	if q := queries("replay_events_after") - before; q != 0 {
		t.Fatalf("the second resume from 6 made %d History reads: the fill was not kept", q)
	}
}

// TestHideAfterKeptIsHonoured: a comment kept in memory and hidden later
// is redacted for members who resume past it, and shown again once
// unhidden, as History would answer; moderators always see it.
func TestHideAfterKeptIsHonoured(t *testing.T) {
	s := newSetup(t, ann, bob, moe)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n := s.start(t, nil)
	live := n.dial(t, ann)
	live.subscribe(room, nil)
	s.event(room, "comment.created", comment(10, "secret"), false, true)
	s.event(room, "comment.created", comment(11, "other"), false, true)
	live.events(room, 2) // both kept, shown

	isTen := func(e store.Event) bool {
		return strings.HasPrefix(e.Type, "comment.") && strings.Contains(string(e.Payload), `"id":"10"`)
	}
	setHidden := func(hidden bool) {
		s.hist.SetHidden(tenant.ID, room, isTen, hidden)
		s.event(room, "comment.updated", fmt.Sprintf(`{"id":"10","version":2,"changes":{"hidden":%v}}`, hidden), hidden, true)
		live.events(room, 1)
	}
	resume := func(u user) string {
		t.Helper()
		c := n.dial(t, u)
		since := int64(1)
		c.subscribe(room, &since)
		return c.events(room, 1)[0].Raw
	}

	setHidden(true)
	if got := resume(bob); strings.Contains(got, "secret") || !strings.Contains(got, `"hidden":true`) {
		t.Fatalf("a member resuming after the hide got %s", got)
	}
	if got := resume(moe); !strings.Contains(got, "secret") {
		t.Fatalf("a moderator resuming after the hide got %s", got)
	}
	setHidden(false)
	if got := resume(bob); !strings.Contains(got, "secret") {
		t.Fatalf("a member resuming after the unhide got %s", got)
	}
}
