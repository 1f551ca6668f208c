package realtime

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"agora/store"
)

func TestTypingThrottle(t *testing.T) {
	th := newTypingThrottle(2 * time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ann := typingKey{roomKey{1, "post:1"}, 1}
	for _, step := range []struct {
		key  typingKey
		at   time.Duration
		want bool
	}{
		{ann, 0, true},
		{ann, time.Second, false},
		{typingKey{roomKey{1, "post:1"}, 2}, time.Second, true}, // another user
		{typingKey{roomKey{1, "post:2"}, 1}, time.Second, true}, // another room
		{typingKey{roomKey{2, "post:1"}, 1}, time.Second, true}, // another tenant
		{ann, 2*time.Second - 1, false},
		{ann, 2 * time.Second, true},
		{ann, 3 * time.Second, false},
	} {
		if got := th.allow(step.key, t0.Add(step.at)); got != step.want {
			t.Fatalf("allow(%+v) at +%v = %v, want %v", step.key, step.at, got, step.want)
		}
	}
	// Entries older than the interval go, so the map stays as small as
	// the set of people typing right now.
	th.allow(ann, t0.Add(time.Hour))
	if len(th.last) != 1 {
		t.Fatalf("throttle keeps %d entries, want 1", len(th.last))
	}
}

// TestTrackerToReplica: what one instance's tracker publishes, another's
// replica turns back into the same room, through the JSON of the bus.
func TestTrackerToReplica(t *testing.T) {
	k := roomKey{1, "post:1"}
	ann := store.Actor{UserID: 1, Username: "ann"}
	bob := store.Actor{UserID: 2, Username: "bob"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr, rep, agg := newTracker(), newReplica(), aggregate{}
	send := func(msgs []wire) (changed []roomKey) {
		t.Helper()
		for _, w := range msgs {
			w.I = "a"
			b, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			var back wire
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			got, _ := rep.apply(back, now, agg)
			changed = append(changed, got...)
		}
		return changed
	}
	view := func() *roomPresence {
		if pe := rep.peers["a"]; pe != nil && pe.rooms[k] != nil {
			return pe.rooms[k]
		}
		return newRoomPresence()
	}

	if !tr.join(k, ann, now) || tr.join(k, ann, now) || !tr.join(k, bob, now) || tr.join(k, store.Actor{}, now) {
		t.Fatal("join: want arrivals for ann and bob only, once each")
	}
	if got := send(tr.changes()); !slices.Equal(got, []roomKey{k}) {
		t.Fatalf("changed rooms %v, want [%v]", got, k)
	}
	if v := view(); len(v.users) != 2 || v.anon != 1 || v.users[1].Name != "ann" || !v.users[1].Since.Equal(now) {
		t.Fatalf("replica after joins: %+v anon %d", v.users, v.anon)
	}
	if u, a := agg.counts(k); u != 2 || a != 1 {
		t.Fatalf("aggregate after joins: %d users, %d anonymous; want 2 and 1", u, a)
	}
	if tr.leave(k, ann) || !tr.leave(k, ann) {
		t.Fatal("leave: ann had two sessions; only the second leave is a departure")
	}
	send(tr.changes())
	if v := view(); len(v.users) != 1 || v.users[2] == nil {
		t.Fatalf("replica after ann left: %+v", v.users)
	}
	if u, _ := agg.counts(k); u != 1 || agg[k].users[2] == nil {
		t.Fatalf("aggregate after ann left: %d users", u)
	}
	if len(tr.changes()) != 0 {
		t.Fatal("changes without a change")
	}

	// A snapshot replaces whatever the replica believed.
	rep.peers["a"].rooms[k].users[99] = &member{Name: "ghost"}
	send(tr.snapshot())
	if v := view(); len(v.users) != 1 || v.users[99] != nil {
		t.Fatalf("replica after snapshot: %+v", v.users)
	}
	if u, a := agg.counts(k); u != 1 || a != 1 {
		t.Fatalf("aggregate after snapshot: %d users, %d anonymous; want bob and 1", u, a)
	}

	// Silence and goodbye both drop the instance.
	if ids, rooms := rep.expire(now.Add(-time.Second), agg); len(ids) != 0 || len(rooms) != 0 {
		t.Fatalf("expired %v %v while the peer was fresh", ids, rooms)
	}
	if ids, rooms := rep.expire(now.Add(time.Second), agg); !slices.Equal(ids, []string{"a"}) || !slices.Equal(rooms, []roomKey{k}) {
		t.Fatalf("expire = %v %v, want a in %v", ids, rooms, k)
	}
	send(tr.snapshot())
	if got := send([]wire{{K: kindBye}}); !slices.Equal(got, []roomKey{k}) || rep.peers["a"] != nil {
		t.Fatalf("bye changed %v, peers %v", got, rep.peers)
	}
	if len(agg) != 0 {
		t.Fatalf("aggregate keeps %v after the peer left", agg)
	}
	if got, _ := rep.apply(wire{I: "b", K: "future-kind"}, now, agg); got != nil || rep.peers["b"] != nil {
		t.Fatal("an unknown kind of message made a peer")
	}

	// An instance heard of for the first time, not through its hello or
	// snapshots (it was dropped for silence, or its hello was missed): its
	// users are unknown until it sends a snapshot, so the replica says so,
	// once.
	for _, tc := range []struct {
		w       wire
		unknown bool
	}{
		{wire{I: "c", K: kindHeartbeat}, true},
		{wire{I: "c", K: kindHeartbeat}, false},
		{wire{I: "d", K: kindDelta, T: 1, R: "post:1", J: []wireUser{{ID: 5, Name: "eve"}}}, true},
		{wire{I: "e", K: kindHello}, false},
		{wire{I: "f", K: kindDelta, T: 1, R: "post:1", Reset: true}, false},
	} {
		if _, unknown := rep.apply(tc.w, now, agg); unknown != tc.unknown {
			t.Fatalf("%+v: unknown = %v, want %v", tc.w, unknown, tc.unknown)
		}
	}
}

// TestLargeRoomMessages: API.md's "Large rooms". Up to 100 users a room
// gets joins and leaves; above, its counts only, at most once per
// countEvery, also when they came back to where they were; below again,
// the whole list.
func TestLargeRoomMessages(t *testing.T) {
	k := roomKey{1, "post:1"}
	p := &presence{agg: aggregate{}, force: map[roomKey]bool{}, countEvery: time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	user := func(id int64) *member { return &member{Name: "u" + strconv.FormatInt(id, 10), Since: t0} }
	var view *roomView
	flush := func(at time.Duration) map[string]any {
		t.Helper()
		frame, next, ok := p.message(k, view, t0.Add(at))
		if next != nil {
			view = next
		}
		if !ok {
			return nil
		}
		var m map[string]any
		if err := json.Unmarshal(frame, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	wantKeys := func(m map[string]any, keys ...string) {
		t.Helper()
		got := slices.Sorted(maps.Keys(m))
		slices.Sort(keys)
		if !slices.Equal(got, keys) {
			t.Fatalf("message %v has keys %v, want %v", m, got, keys)
		}
	}

	for id := int64(1); id <= 100; id++ {
		p.agg.add(k, id, user(id))
	}
	p.agg.anon(k, 2)
	m := flush(0)
	wantKeys(m, "op", "room", "joins", "leaves", "count", "anonymous")
	if len(m["joins"].([]any)) != 100 || m["count"] != 100.0 || m["anonymous"] != 2.0 {
		t.Fatalf("100 users: %v joins, count %v, anonymous %v", len(m["joins"].([]any)), m["count"], m["anonymous"])
	}

	p.agg.add(k, 101, user(101))
	m = flush(100 * time.Millisecond)
	wantKeys(m, "op", "room", "count", "anonymous")
	if m["count"] != 101.0 {
		t.Fatalf("101 users: count %v", m["count"])
	}
	// Within the second: nothing, however much changes.
	for id := int64(102); id <= 150; id++ {
		p.agg.add(k, id, user(id))
	}
	if m := flush(900 * time.Millisecond); m != nil {
		t.Fatalf("a second message within the second: %v", m)
	}
	if m := flush(1100 * time.Millisecond); m == nil || m["count"] != 150.0 {
		t.Fatalf("once the second is over: %v, want count 150", m)
	}
	// Someone came and went: the numbers are back, the message still goes.
	p.agg.add(k, 151, user(151))
	p.agg.remove(k, 151)
	if m := flush(2100 * time.Millisecond); m == nil || m["count"] != 150.0 {
		t.Fatalf("after a join and a leave: %v, want count 150", m)
	}

	// The state of a large room: 100 users, the receiver among them.
	entries, truncated := p.agg[k].listed(150)
	if len(entries) != 100 || !truncated || !slices.ContainsFunc(entries, func(e presenceEntry) bool { return e.User.ID == 150 }) {
		t.Fatalf("large state: %d entries, truncated %v, receiver listed %v", len(entries), truncated,
			slices.ContainsFunc(entries, func(e presenceEntry) bool { return e.User.ID == 150 }))
	}
	if entries, truncated := p.agg[k].listed(0); len(entries) != 100 || !truncated {
		t.Fatalf("large state for an anonymous receiver: %d entries, truncated %v", len(entries), truncated)
	}

	// Back to 100: the whole list, once the second is over.
	for id := int64(101); id <= 150; id++ {
		p.agg.remove(k, id)
	}
	if m := flush(2500 * time.Millisecond); m != nil {
		t.Fatalf("within the second: %v", m)
	}
	m = flush(3200 * time.Millisecond)
	wantKeys(m, "op", "room", "state", "count", "anonymous")
	if len(m["state"].([]any)) != 100 || m["count"] != 100.0 {
		t.Fatalf("back to 100: %d listed, count %v", len(m["state"].([]any)), m["count"])
	}
	// And then joins and leaves one by one again, at once.
	p.agg.remove(k, 7)
	m = flush(3300 * time.Millisecond)
	wantKeys(m, "op", "room", "joins", "leaves", "count", "anonymous")
	if l := m["leaves"].([]any); len(l) != 1 || m["count"] != 99.0 {
		t.Fatalf("a leave at 99: %v", m)
	}
	if m := flush(3400 * time.Millisecond); m != nil {
		t.Fatalf("nothing changed, yet %v", m)
	}
}

// TestAggregateSources: a user present through several instances is
// there once, since the earliest arrival, until the last one leaves.
func TestAggregateSources(t *testing.T) {
	k := roomKey{1, "post:1"}
	a := aggregate{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.add(k, 1, &member{Name: "ann", Since: t0.Add(time.Minute)})
	a.add(k, 1, &member{Name: "ann", Since: t0})
	if u, _ := a.counts(k); u != 1 || !a[k].users[1].Since.Equal(t0) {
		t.Fatalf("two sources: %d users since %v", u, a[k].users[1].Since)
	}
	a.remove(k, 1)
	if u, _ := a.counts(k); u != 1 {
		t.Fatal("ann left with one source of two")
	}
	a.anon(k, 1)
	a.remove(k, 1)
	a.anon(k, -1)
	if len(a) != 0 {
		t.Fatalf("aggregate keeps an empty room: %v", a)
	}
}
