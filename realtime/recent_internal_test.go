package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"agora/store"
)

func ringEvent(seq int64, hidden bool) store.Event {
	return store.Event{TenantID: 1, Room: "post:1", Seq: seq, Type: "comment.created", Hidden: hidden,
		Payload:   json.RawMessage(`{"id":"` + strconv.FormatInt(seq, 10) + `","body":"secret"}`),
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func ringBatch(from, to int64) []ringEntry {
	var out []ringEntry
	for s := from; s <= to; s++ {
		out = append(out, newRingEntry(ringEvent(s, s%5 == 0)))
	}
	return out
}

func newTestRecent(perRoom int, budget int64) *recent {
	return &recent{perRoom: perRoom, budget: budget, gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "t"})}
}

// sum is what rc's rooms hold, to check its running total against.
func sum(rooms ...*room) (n int64) {
	for _, r := range rooms {
		for _, en := range r.ring.entries {
			n += int64(en.size)
		}
	}
	return n
}

func TestRingBounds(t *testing.T) {
	rc := newTestRecent(10, 1<<30)
	r := &room{cacheable: true}
	for s := int64(1); s <= 25; s += 5 {
		rc.appendTo(r, ringBatch(s, s+4))
	}
	if len(r.ring.entries) != 10 || r.ring.first() != 16 {
		t.Fatalf("ring of %d from %d, want the newest 10 from 16", len(r.ring.entries), r.ring.first())
	}
	if !r.ring.covers(15, 25) || r.ring.covers(14, 25) || r.ring.covers(15, 26) {
		t.Fatal("covers is wrong at the edges")
	}
	member, mod := r.ring.span(18, 21, false), r.ring.span(18, 21, true)
	if len(member) != 3 || bytes.Contains(member[1], []byte("secret")) || !bytes.Contains(mod[1], []byte("secret")) ||
		!bytes.Contains(member[0], []byte(`"seq":19`)) {
		t.Fatalf("span: member %q, moderator %q", member, mod)
	}
	if got := rc.total.Load(); got != sum(r) || testutil.ToFloat64(rc.gauge) != float64(got) {
		t.Fatalf("total %d, gauge %v, the ring holds %d", got, testutil.ToFloat64(rc.gauge), sum(r))
	}

	// A batch that does not follow (history pruned under the room)
	// starts the ring again.
	rc.appendTo(r, ringBatch(40, 41))
	if len(r.ring.entries) != 2 || r.ring.first() != 40 || rc.total.Load() != sum(r) {
		t.Fatalf("after a gap: %d entries from %d", len(r.ring.entries), r.ring.first())
	}
	// Older events from History go in front, within the bound.
	r.lastSeq = 41
	rc.prepend(r, ringBatch(30, 39))
	if len(r.ring.entries) != 10 || r.ring.first() != 32 || !r.ring.covers(31, 41) || rc.total.Load() != sum(r) {
		t.Fatalf("after prepend: %d entries from %d", len(r.ring.entries), r.ring.first())
	}
	// A room that is not kept, or gone, keeps nothing.
	other, gone := &room{}, &room{cacheable: true, dropped: true}
	rc.appendTo(other, ringBatch(1, 3))
	rc.appendTo(gone, ringBatch(1, 3))
	if len(other.ring.entries)+len(gone.ring.entries) != 0 {
		t.Fatal("a room that is not kept kept events")
	}
	rc.clear(&r.ring)
	if rc.total.Load() != 0 || testutil.ToFloat64(rc.gauge) != 0 {
		t.Fatalf("total %d after clearing everything", rc.total.Load())
	}
}

// TestRingBudget: over the total budget, every room gives up the same
// share of its oldest events, until all fit.
func TestRingBudget(t *testing.T) {
	rc := newTestRecent(1000, 1<<30)
	rooms := make([]*room, 10)
	for i := range rooms {
		rooms[i] = &room{cacheable: true}
		rc.appendTo(rooms[i], ringBatch(1, 100))
	}
	total := rc.total.Load()
	rc.budget = total / 2
	if !rc.appendTo(rooms[0], ringBatch(101, 101)) {
		t.Fatal("append over the budget did not say so")
	}
	rc.shrink(rooms)
	if got := rc.total.Load(); got > rc.budget*9/10 || got != sum(rooms...) {
		t.Fatalf("after shrinking: %d bytes (the rooms hold %d), budget %d", got, sum(rooms...), rc.budget)
	}
	for i, r := range rooms {
		if n := len(r.ring.entries); n < 30 || n > 50 || r.ring.entries[n-1].seq < 100 {
			t.Fatalf("room %d keeps %d events up to %d", i, n, r.ring.entries[n-1].seq)
		}
	}
}

func TestHiddenChange(t *testing.T) {
	for payload, want := range map[string]bool{
		`{"id":"1","version":2,"changes":{"hidden":true}}`:                     true,
		`{"id":"1","version":2,"changes":{"locked":true,"hidden":false}}`:      true,
		`{"id":"1","version":2,"changes":{"body":"the word \"hidden\" here"}}`: false,
		`{"id":"1","version":2,"changes":{"pinned":true}}`:                     false,
	} {
		for _, typ := range []string{"post.updated", "comment.updated"} {
			if got := hiddenChange(store.Event{Type: typ, Payload: json.RawMessage(payload)}); got != want {
				t.Errorf("%s %s: %v, want %v", typ, payload, got, want)
			}
		}
	}
	if hiddenChange(store.Event{Type: "comment.created", Payload: json.RawMessage(`{"hidden":true}`)}) {
		t.Error("a created event changes nothing")
	}
}

// BenchmarkRing is the rooms' recent events: a delivered event kept
// (encoded, appended, the oldest dropped at the bound of 1,000), and a
// resume's read of the 100 events it missed.
func BenchmarkRing(b *testing.B) {
	b.Run("append", func(b *testing.B) {
		rc := newTestRecent(1000, 1<<40)
		r := &room{cacheable: true}
		e := benchEvent(1)
		b.ReportAllocs()
		seq := int64(0)
		for b.Loop() {
			seq++
			e.Seq = seq
			rc.appendTo(r, []ringEntry{newRingEntry(e)})
		}
	})
	b.Run("resume100", func(b *testing.B) {
		rc := newTestRecent(1000, 1<<40)
		r := &room{cacheable: true}
		batch := make([]ringEntry, 1000)
		for i := range batch {
			batch[i] = newRingEntry(benchEvent(int64(i + 1)))
		}
		rc.appendTo(r, batch)
		b.ReportAllocs()
		for b.Loop() {
			if !r.ring.covers(900, 1000) {
				b.Fatal("not covered")
			}
			pack(r.ring.span(900, 1000, false), replayFrame)
		}
	})
}

// blockingHistory answers EventsAfter only when released, and records how
// many calls were in at once.
type blockingHistory struct {
	History
	release       chan struct{}
	inFlight, max atomic.Int64
}

func (b *blockingHistory) EventsAfter(context.Context, int64, string, int64, int) ([]store.Event, error) {
	n := b.inFlight.Add(1)
	for m := b.max.Load(); n > m && !b.max.CompareAndSwap(m, n); m = b.max.Load() {
	}
	<-b.release
	b.inFlight.Add(-1)
	return nil, nil
}

// TestReplayReadsBounded: a storm of replays reads History at most
// ReplayReads at a time; the rest wait in line, or until their context
// ends.
func TestReplayReadsBounded(t *testing.T) {
	bh := &blockingHistory{release: make(chan struct{})}
	h := boundedHistory{History: bh, slots: make(chan struct{}, 2)}
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.EventsAfter(t.Context(), 1, "post:1", 0, 10); err != nil {
				t.Error(err)
			}
		}()
	}
	for released := 0; released < n; released++ {
		want := int64(min(2, n-released))
		deadline := time.Now().Add(5 * time.Second)
		for bh.inFlight.Load() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d reads in History after %d released, want %d", bh.inFlight.Load(), released, want)
			}
			time.Sleep(time.Millisecond) // polling for the condition above, within its deadline
		}
		bh.release <- struct{}{}
	}
	wg.Wait()
	if got := bh.max.Load(); got != 2 {
		t.Errorf("at most %d reads at once, want 2", got)
	}

	// Both slots taken: a read whose context ends gives up.
	for range 2 {
		go func() { _, _ = h.EventsAfter(t.Context(), 1, "post:1", 0, 10) }()
	}
	ctx, cancel := context.WithCancel(t.Context())
	for deadline := time.Now().Add(5 * time.Second); bh.inFlight.Load() != 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the two reads never got in")
		}
	}
	cancel()
	if _, err := h.RoomState(ctx, 1, "post:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiting read whose context ended: %v, want context.Canceled", err)
	}
	bh.release <- struct{}{}
	bh.release <- struct{}{}
}
