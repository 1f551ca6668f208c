package realtime

import (
	"encoding/json"
	"slices"
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
	tr, rep := newTracker(), newReplica()
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
			changed = append(changed, rep.apply(back, now)...)
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
	if tr.leave(k, ann) || !tr.leave(k, ann) {
		t.Fatal("leave: ann had two sessions; only the second leave is a departure")
	}
	send(tr.changes())
	if v := view(); len(v.users) != 1 || v.users[2] == nil {
		t.Fatalf("replica after ann left: %+v", v.users)
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

	// Silence and goodbye both drop the instance.
	if ids, rooms := rep.expire(now.Add(-time.Second)); len(ids) != 0 || len(rooms) != 0 {
		t.Fatalf("expired %v %v while the peer was fresh", ids, rooms)
	}
	if ids, rooms := rep.expire(now.Add(time.Second)); !slices.Equal(ids, []string{"a"}) || !slices.Equal(rooms, []roomKey{k}) {
		t.Fatalf("expire = %v %v, want a in %v", ids, rooms, k)
	}
	send(tr.snapshot())
	if got := send([]wire{{K: kindBye}}); !slices.Equal(got, []roomKey{k}) || rep.peers["a"] != nil {
		t.Fatalf("bye changed %v, peers %v", got, rep.peers)
	}
	if got := rep.apply(wire{I: "b", K: "future-kind"}, now); got != nil || rep.peers["b"] != nil {
		t.Fatal("an unknown kind of message made a peer")
	}
}
