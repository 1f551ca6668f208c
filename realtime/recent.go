package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"agora/store"
)

// Recent events in memory. Each room keeps its latest events, as the
// fan-out delivered them, already encoded, so that most resumes (a
// reconnect storm after an instance died: thousands of clients, each
// with since, in a few rooms) are served without a query. A resume whose
// since the ring does not reach fills it from History once, for
// everyone resuming in that room at the time; older ones still read
// History themselves.
//
// The ring is exactly the room's history (since, lastSeq]: entries are
// contiguous and the newest is the last one delivered, and a replay takes
// its part under the room's lock, in the same critical section that fixed
// where live delivery starts, so the seam to live events has neither gap
// nor duplicate.
//
// Hidden content: an entry's redaction is the object's state when it was
// read, as History's is. A post or comment hidden or unhidden later
// changes that for entries already kept, so the *.updated event that
// carries the change drops every entry older than the batch it came in
// (that batch was read after the change: its entries are right); the
// next resume that needs them fills them again, with their state now.
// Only the rooms whose events are about posts and comments (tenant,
// board:, post:) are kept, where those updates are the only way an
// event's hidden state changes.

// ringEntry is one event and its encodings.
type ringEntry struct {
	seq  int64
	full []byte // the event message as moderators get it
	// member is what everyone else gets: full, or redacted when hidden.
	member []byte
	size   int
}

func newRingEntry(e store.Event) ringEntry {
	full := encodeEvent(e, e.Payload)
	en := ringEntry{seq: e.Seq, full: full, member: full}
	if e.Hidden {
		en.member = encodeEvent(e, redact(e.Payload))
	}
	en.size = len(en.full) + 64
	if e.Hidden {
		en.size += len(en.member)
	}
	return en
}

func (en ringEntry) frame(moderator bool) []byte {
	if moderator {
		return en.full
	}
	return en.member
}

// ring is one room's recent events, guarded by the room's lock.
type ring struct {
	entries []ringEntry // contiguous seqs, oldest first
	bytes   int
}

func (g *ring) first() int64 {
	if len(g.entries) == 0 {
		return 0
	}
	return g.entries[0].seq
}

// covers reports whether the ring holds every event in (since, upTo].
func (g *ring) covers(since, upTo int64) bool {
	n := len(g.entries)
	return n > 0 && g.entries[0].seq <= since+1 && g.entries[n-1].seq >= upTo
}

// span is the frames of (since, upTo] for a moderator or not; covers
// must hold.
func (g *ring) span(since, upTo int64, moderator bool) [][]byte {
	i := int(since + 1 - g.entries[0].seq)
	j := int(upTo + 1 - g.entries[0].seq)
	out := make([][]byte, 0, j-i)
	for _, en := range g.entries[i:j] {
		out = append(out, en.frame(moderator))
	}
	return out
}

// recent is the hub's budget for every room's ring.
type recent struct {
	perRoom int   // most events per room; 0: no rings
	budget  int64 // most bytes in all rings
	total   atomic.Int64
	gauge   prometheus.Gauge
	// shrinking: a pass over every room is trimming rings back under
	// the budget.
	shrinking atomic.Bool
}

func (rc *recent) account(delta int64) {
	rc.total.Add(delta)
	rc.gauge.Add(float64(delta))
}

// appendTo adds a delivered batch to r's ring (r.mu held) and trims it
// to the per-room bound. It reports whether the total is over budget.
func (rc *recent) appendTo(r *room, batch []ringEntry) (over bool) {
	if rc.perRoom <= 0 || !r.cacheable || r.dropped {
		return false
	}
	g := &r.ring
	if len(g.entries) > 0 && g.entries[len(g.entries)-1].seq+1 != batch[0].seq {
		rc.clear(g) // history was pruned under the room: start again
	}
	added := 0
	for _, en := range batch {
		g.entries = append(g.entries, en)
		added += en.size
	}
	g.bytes += added
	rc.account(int64(added))
	if n := len(g.entries) - rc.perRoom; n > 0 {
		rc.dropOldest(g, n)
	}
	return rc.total.Load() > rc.budget
}

// prepend puts older entries, read from History, in front of r's ring
// (r.mu held): they end where the ring begins (or, if it is empty, at
// the last seq delivered).
func (rc *recent) prepend(r *room, older []ringEntry) {
	if len(older) == 0 || r.dropped {
		return
	}
	g := &r.ring
	n := len(older)
	size := 0
	for _, en := range older {
		size += en.size
	}
	g.entries = append(older[:n:n], g.entries...)
	g.bytes += size
	rc.account(int64(size))
	if over := len(g.entries) - rc.perRoom; over > 0 {
		rc.dropOldest(g, over)
	}
}

func (rc *recent) dropOldest(g *ring, n int) {
	n = min(n, len(g.entries))
	size := 0
	for _, en := range g.entries[:n] {
		size += en.size
	}
	// Cleared, so the array keeps none of their bytes alive; the array
	// itself is left behind by the next append that outgrows it.
	clear(g.entries[:n])
	g.entries = g.entries[n:]
	g.bytes -= size
	rc.account(-int64(size))
}

// dropBefore drops the entries older than seq (r.mu held).
func (rc *recent) dropBefore(g *ring, seq int64) {
	if n := int(seq - g.first()); len(g.entries) > 0 && n > 0 {
		rc.dropOldest(g, n)
	}
}

func (rc *recent) clear(g *ring) {
	rc.account(-int64(g.bytes))
	g.entries, g.bytes = nil, 0
}

// shrink trims every room's ring, oldest events first and each by the
// same share, until all of them fit 90% of the budget.
func (rc *recent) shrink(rooms []*room) {
	if !rc.shrinking.CompareAndSwap(false, true) {
		return
	}
	defer rc.shrinking.Store(false)
	for pass := 0; pass < 4; pass++ {
		total := rc.total.Load()
		target := rc.budget * 9 / 10
		if total <= target {
			return
		}
		keep := float64(target) / float64(total)
		for _, r := range rooms {
			r.mu.Lock()
			if n := len(r.ring.entries); n > 0 {
				rc.dropOldest(&r.ring, n-int(float64(n)*keep))
			}
			r.mu.Unlock()
		}
	}
}

// hiddenChange reports whether e changes whether a post or comment is
// hidden: a *.updated whose changes carry hidden.
func hiddenChange(e store.Event) bool {
	if e.Type != "post.updated" && e.Type != "comment.updated" || !bytes.Contains(e.Payload, []byte(`"hidden"`)) {
		return false
	}
	var d struct {
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(e.Payload, &d); err != nil {
		return true // cannot tell: forget rather than risk
	}
	_, ok := d.Changes["hidden"]
	return ok
}

// errTooOld: History no longer reaches back to since.
var errTooOld = errors.New("history does not reach back to since")

// fill makes r's ring reach back to since, reading History once for
// everyone resuming in the room meanwhile: a fill in flight is waited
// for, then looked at again. It gives up (the caller reads History
// itself) when the room is not kept or the gap is longer than a ring.
func (h *Hub) fill(ctx context.Context, r *room, since, upTo int64) error {
	if h.recent.perRoom <= 0 || !r.cacheable || upTo-since > int64(h.recent.perRoom) {
		return nil
	}
	for range 3 {
		r.mu.Lock()
		if r.ring.covers(since, upTo) {
			r.mu.Unlock()
			return nil
		}
		if wait := r.filling; wait != nil {
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		done := make(chan struct{})
		r.filling = done
		to := r.lastSeq
		if first := r.ring.first(); first > 0 {
			to = first - 1
		}
		hideGen := r.hideGen
		r.mu.Unlock()

		older, err := h.readRing(ctx, r.key, since, to)

		r.mu.Lock()
		r.filling = nil
		close(done)
		// Kept only if nothing was hidden or unhidden meanwhile (these
		// entries may predate it) and they still join the ring.
		if err == nil && r.hideGen == hideGen && len(older) > 0 {
			if first := r.ring.first(); (first == 0 && to == r.lastSeq) || first == to+1 {
				h.recent.prepend(r, older)
			}
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// readRing reads (since, to] from History as ring entries.
func (h *Hub) readRing(ctx context.Context, k roomKey, since, to int64) ([]ringEntry, error) {
	if to <= since {
		return nil, nil
	}
	evs, err := h.replayHistory.EventsAfter(ctx, k.tenant, k.name, since, int(to-since))
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Seq != since+1 {
		return nil, errTooOld
	}
	out := make([]ringEntry, 0, len(evs))
	for i, e := range evs {
		if e.Seq != since+1+int64(i) {
			return nil, errTooOld // pruned while read
		}
		out = append(out, newRingEntry(e))
	}
	if out[len(out)-1].seq != to {
		return nil, errTooOld
	}
	return out, nil
}

// countingHistory counts the History calls the hub makes, by kind, for
// the metrics (how many queries a reconnect storm costs). Replays count
// under kinds of their own (prefix "replay_"), apart from the fan-out.
type countingHistory struct {
	History
	queries func(kind string)
	prefix  string
}

func (c countingHistory) count(kind string) { c.queries(c.prefix + kind) }

func (c countingHistory) RoomExists(ctx context.Context, tenantID int64, actor store.Actor, room string) error {
	c.count("room_exists")
	return c.History.RoomExists(ctx, tenantID, actor, room)
}

func (c countingHistory) RoomState(ctx context.Context, tenantID int64, room string) (store.RoomState, error) {
	c.count("room_state")
	return c.History.RoomState(ctx, tenantID, room)
}

func (c countingHistory) EventsAfter(ctx context.Context, tenantID int64, room string, after int64, limit int) ([]store.Event, error) {
	c.count("events_after")
	return c.History.EventsAfter(ctx, tenantID, room, after, limit)
}

func (c countingHistory) RoomSeqs(ctx context.Context, tenantID int64, rooms []string) (map[string]int64, error) {
	c.count("room_seqs")
	return c.History.RoomSeqs(ctx, tenantID, rooms)
}

func (c countingHistory) Standings(ctx context.Context, tenantID int64, tokenIDs []int64) (map[int64]store.Standing, error) {
	c.count("standings")
	return c.History.Standings(ctx, tenantID, tokenIDs)
}

// boundedHistory lets at most cap(slots) of its reads run at once; the
// others wait their turn, or until their context ends. Resumes come in
// storms (an instance died, and all its clients resume elsewhere at once),
// and every resume that misses the recent events in memory reads the
// database: unbounded, they would hold every pooled connection, and the
// writes meanwhile would wait for one and fail.
type boundedHistory struct {
	History
	slots chan struct{}
}

func (b boundedHistory) take(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b boundedHistory) done() { <-b.slots }

func (b boundedHistory) RoomState(ctx context.Context, tenantID int64, room string) (store.RoomState, error) {
	if err := b.take(ctx); err != nil {
		return store.RoomState{}, err
	}
	defer b.done()
	return b.History.RoomState(ctx, tenantID, room)
}

func (b boundedHistory) EventsAfter(ctx context.Context, tenantID int64, room string, after int64, limit int) ([]store.Event, error) {
	if err := b.take(ctx); err != nil {
		return nil, err
	}
	defer b.done()
	return b.History.EventsAfter(ctx, tenantID, room, after, limit)
}
