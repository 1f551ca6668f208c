package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"agora/store"
)

type roomKey struct {
	tenant int64
	name   string
}

const shardCount = 64

// index maps (tenant, room) to the room's local subscribers. It is sharded
// so a busy room locks only its own shard, and fan-out touches only the
// room's sessions, never a scan of every session.
type index struct {
	seed   maphash.Seed
	shards [shardCount]shard
}

type shard struct {
	mu    sync.Mutex
	rooms map[roomKey]*room
}

func newIndex() *index {
	ix := &index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		ix.shards[i].rooms = map[roomKey]*room{}
	}
	return ix
}

func (ix *index) shard(k roomKey) *shard {
	var h maphash.Hash
	h.SetSeed(ix.seed)
	h.WriteString(k.name)
	h.WriteString(strconv.FormatInt(k.tenant, 10))
	return &ix.shards[h.Sum64()%shardCount]
}

// get returns the room if this instance has subscribers in it.
func (ix *index) get(k roomKey) *room {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[k]
}

// acquire returns the room, creating it, and counts one more user of it so
// it cannot be dropped while a subscribe is under way.
func (ix *index) acquire(k roomKey) (r *room, created bool) {
	s := ix.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	r = s.rooms[k]
	if r == nil {
		r = &room{key: k, subs: map[*client]*sub{}, ready: make(chan struct{}), cacheable: cacheableRoom(k.name)}
		s.rooms[k] = r
		created = true
	}
	r.refs++
	return r, created
}

// release undoes acquire; the last release drops the room and says so.
func (ix *index) release(r *room) (dropped bool) {
	s := ix.shard(r.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	r.refs--
	if r.refs == 0 && s.rooms[r.key] == r {
		delete(s.rooms, r.key)
		return true
	}
	return false
}

func (ix *index) all() []*room {
	var out []*room
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.Lock()
		for _, r := range s.rooms {
			out = append(out, r)
		}
		s.mu.Unlock()
	}
	return out
}

// room is one room's local state. lastSeq is how far this instance has
// delivered the room; every subscriber is either live (gets each batch as
// it is delivered) or still replaying (batches wait in its sub).
type room struct {
	key   roomKey
	refs  int // guarded by the shard lock
	ready chan struct{}
	err   error // set before ready closes if the room could not start

	mu      sync.Mutex
	subs    map[*client]*sub
	lastSeq int64
	target  int64 // highest seq any notification announced
	started bool  // lastSeq is set: drains may run
	running bool  // a drain goroutine is at work
	recheck bool  // read events even without a newer notification
	dropped bool  // the last subscriber left: nothing more is kept

	// cacheable: a room whose events are about boards, posts and
	// comments, which keeps its recent events (recent.go) and remembers
	// who may subscribe.
	cacheable bool
	ring      ring
	filling   chan struct{} // a fill from History is under way; closed when done
	hideGen   uint64        // counts the changes of hidden delivered
	// visible: a member's (0) or moderator's (1) check that the room
	// exists passed while it was open here, and no event since hid or
	// deleted its post (visGen counts those).
	visible [2]bool
	visGen  uint64
}

// cacheableRoom: tenant, board:{id} and post:{id}. Other kinds (a user's
// own room) are authorised and replayed by History every time.
func cacheableRoom(name string) bool {
	kind, _, err := store.ParseRoom(name)
	return err == nil && (kind == store.RoomTenant || kind == "board" || kind == "post")
}

type sub struct {
	replaying bool
	held      [][]byte // frames delivered while replaying
	heldBytes int
}

// maxHeld bounds what a replaying session may hold back before it is
// treated as a slow consumer.
const maxHeld = 8 << 20

func (h *Hub) subscribe(ctx context.Context, c *client, name string, since *int64) {
	fail := func(code store.Code, msg string) { c.send(encodeError(code, msg, name)) }
	c.mu.Lock()
	r, again := c.rooms[name]
	count := len(c.rooms)
	c.mu.Unlock()
	if !again && count >= h.cfg.MaxRooms {
		h.metrics.Rejected.WithLabelValues("too_many_rooms").Inc()
		fail(store.CodeBadRequest, "too many rooms: at most "+strconv.Itoa(h.cfg.MaxRooms)+" per connection")
		return
	}
	if err := h.checkRoom(ctx, c, name); err != nil {
		code, msg := store.CodeNotFound, "room not found"
		var se *store.Error
		if !errors.As(err, &se) || se.Code != store.CodeNotFound {
			code, msg = store.CodeUnavailable, "could not check the room, try again"
			c.log(zerolog.WarnLevel).Err(err).Str("room", name).Msg("room check failed")
		}
		fail(code, msg)
		return
	}
	if !again {
		var created bool
		r, created = h.rooms.acquire(roomKey{c.tenant.ID, name})
		if created {
			h.startRoom(ctx, r)
		}
		<-r.ready
		if r.err != nil {
			h.rooms.release(r)
			fail(store.CodeUnavailable, "could not open the room, try again")
			return
		}
		c.mu.Lock()
		c.rooms[name] = r
		c.mu.Unlock()
		h.presence.join(c, r.key)
		h.metrics.Subscriptions.Inc()
	}

	// A client that pipelines many subscribes (a reconnect in 100 rooms)
	// gets the same backpressure as a replay: its frames wait for room in
	// the send queue rather than overflow it and be closed as slow.
	if err := c.waitQueue(); err != nil {
		return
	}
	// Register for live batches before reading history: whatever is
	// delivered from now on waits in s.held, and the replay stops at
	// liveFrom, so the seam has neither gap nor duplicate.
	r.mu.Lock()
	s := &sub{replaying: true}
	r.subs[c] = s
	liveFrom := r.lastSeq
	// Still under the room lock, so no presence or typing frame for the
	// room can reach the session before these two; one frame for both.
	for _, f := range pack([][]byte{encodeSubscribed(name, liveFrom), h.presence.state(r.key, c)}, replayFrame) {
		c.send(f)
	}
	r.mu.Unlock()
	if since != nil && *since != liveFrom {
		if err := h.replay(ctx, c, r, *since, liveFrom); err != nil {
			// The client was told to subscribe again (or is gone): it is
			// no longer in the room, so nothing piles up for it.
			c.log(zerolog.InfoLevel).Err(err).Str("room", name).Msg("replay stopped")
			c.mu.Lock()
			_, still := c.rooms[name]
			delete(c.rooms, name)
			c.mu.Unlock()
			if still {
				h.leave(c, r)
			}
			return
		}
	}
	r.mu.Lock()
	for _, f := range s.held {
		c.send(f)
	}
	s.held, s.replaying = nil, false
	r.mu.Unlock()
	c.log(zerolog.DebugLevel).Str("room", name).Int64("seq", liveFrom).Msg("subscribed")
}

// checkRoom asks History whether c may subscribe to name, unless the room
// is open here and remembers that someone of c's kind (member or
// moderator) passed since its post was last hidden or deleted; checks of
// the same room by the same kind at the same time share one question. A
// reconnect storm so checks each room about once, not each client.
func (h *Hub) checkRoom(ctx context.Context, c *client, name string) error {
	if !cacheableRoom(name) {
		return h.history.RoomExists(ctx, c.tenant.ID, c.actor, name)
	}
	k := roomKey{c.tenant.ID, name}
	who := 0
	if c.actor.Moderates() {
		who = 1
	}
	r := h.rooms.get(k)
	var gen uint64
	if r != nil {
		r.mu.Lock()
		ok := r.visible[who]
		gen = r.visGen
		r.mu.Unlock()
		if ok {
			return nil
		}
	}
	ck := checkKey{k, who}
	h.checksMu.Lock()
	f := h.checks[ck]
	leader := f == nil
	if leader {
		f = &check{done: make(chan struct{})}
		h.checks[ck] = f
	}
	h.checksMu.Unlock()
	if leader {
		f.err = h.history.RoomExists(ctx, c.tenant.ID, c.actor, name)
		h.checksMu.Lock()
		delete(h.checks, ck)
		h.checksMu.Unlock()
		close(f.done)
	} else {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.err == nil && r != nil {
		r.mu.Lock()
		if r.visGen == gen {
			r.visible[who] = true
		}
		r.mu.Unlock()
	}
	return f.err
}

// checkKey names the checks that may share one question: the room, and
// whether the asker moderates (the only thing of the asker that counts
// for these rooms).
type checkKey struct {
	room roomKey
	who  int
}

// check is one question to History about a room, shared by its waiters.
type check struct {
	done chan struct{}
	err  error
}

// replay sends the events in (since, upTo], or reset when history no
// longer reaches back to since: from the room's recent events when they
// reach back that far (after filling them once for everyone resuming
// here), else from History.
func (h *Hub) replay(ctx context.Context, c *client, r *room, since, upTo int64) error {
	name := r.key.name
	if since > upTo {
		c.send(encodeReset(name, upTo))
		return nil
	}
	// History goes out only while the session's standing is known to be
	// current (see deliver).
	gen := h.linkGen.Load()
	unavailable := func(err error) error {
		c.send(encodeError(store.CodeUnavailable, "could not read history, subscribe again", name))
		return err
	}
	if !h.live(gen) {
		return unavailable(errors.New("listener not connected"))
	}
	if err := h.fill(ctx, r, since, upTo); errors.Is(err, errTooOld) {
		c.send(encodeReset(name, upTo))
		return nil
	} else if err != nil {
		return unavailable(err)
	}
	r.mu.Lock()
	var kept [][]byte
	inMemory := r.ring.covers(since, upTo)
	if inMemory {
		kept = r.ring.span(since, upTo, c.actor.Moderates())
	}
	r.mu.Unlock()
	if inMemory {
		h.metrics.Replayed.Add(float64(len(kept)))
		h.metrics.ReplayedFromMemory.Add(float64(len(kept)))
		for _, f := range pack(kept, replayFrame) {
			if err := c.waitQueue(); err != nil {
				return err
			}
			if !h.live(gen) {
				return unavailable(errors.New("listener lost during the replay"))
			}
			c.send(f)
		}
		return nil
	}
	st, err := h.replayHistory.RoomState(ctx, r.key.tenant, name)
	if err != nil {
		return unavailable(err)
	}
	if st.Oldest == 0 || st.Oldest > since+1 {
		c.send(encodeReset(name, upTo))
		return nil
	}
	const page = 1000
	after := since
	for after < upTo {
		evs, err := h.replayHistory.EventsAfter(ctx, r.key.tenant, name, after, min(page, int(upTo-after)))
		if err != nil {
			return unavailable(err)
		}
		if len(evs) == 0 || evs[0].Seq != after+1 {
			c.send(encodeReset(name, upTo)) // pruned while we read
			return nil
		}
		msgs := make([][]byte, 0, len(evs))
		for _, e := range evs {
			msgs = append(msgs, encodeFor(e, c.actor.Moderates()))
		}
		h.metrics.Replayed.Add(float64(len(evs)))
		for _, f := range pack(msgs, replayFrame) {
			if err := c.waitQueue(); err != nil {
				return err
			}
			if !h.live(gen) {
				return unavailable(errors.New("listener lost during the replay"))
			}
			c.send(f)
		}
		after = evs[len(evs)-1].Seq
	}
	return nil
}

// replayFrame is the size replays pack their events into.
const replayFrame = 64 << 10

func (h *Hub) unsubscribe(c *client, name string) {
	c.mu.Lock()
	r, ok := c.rooms[name]
	delete(c.rooms, name)
	c.mu.Unlock()
	if !ok {
		c.send(encodeError(store.CodeBadRequest, "not subscribed", name))
		return
	}
	h.leave(c, r)
}

// leave removes one session from one room.
func (h *Hub) leave(c *client, r *room) {
	r.mu.Lock()
	delete(r.subs, c)
	r.mu.Unlock()
	h.presence.leave(c, r.key)
	h.metrics.Subscriptions.Dec()
	if h.rooms.release(r) {
		h.metrics.Rooms.Dec()
		r.mu.Lock()
		r.dropped = true
		h.recent.clear(&r.ring)
		r.mu.Unlock()
	}
}

// startRoom sets where a new room's delivery starts: the room's seq now.
// Notifications that arrive meanwhile only raise target, so nothing
// committed after this read is missed.
func (h *Hub) startRoom(ctx context.Context, r *room) {
	defer close(r.ready)
	st, err := h.history.RoomState(ctx, r.key.tenant, r.key.name)
	if err != nil {
		r.err = err
		h.log.Warn().Err(err).Str("room", r.key.name).Msg("open room")
		return
	}
	h.metrics.Rooms.Inc()
	r.mu.Lock()
	r.lastSeq = st.Seq
	r.started = true
	r.mu.Unlock()
	h.schedule(r, 0, true)
}

// notify is the listener's doorbell for one room.
func (h *Hub) notify(n store.Notification) {
	h.metrics.EventsReceived.Inc()
	r := h.rooms.get(roomKey{n.TenantID, n.Room})
	if r == nil {
		return
	}
	h.schedule(r, n.Seq, false)
}

// schedule makes sure a drain runs for the room if there may be news.
func (h *Hub) schedule(r *room, seq int64, recheck bool) {
	r.mu.Lock()
	if seq > r.target {
		r.target = seq
	}
	r.recheck = r.recheck || recheck
	start := r.started && !r.running && (r.target > r.lastSeq || r.recheck)
	if start {
		r.running = true
	}
	r.mu.Unlock()
	if start && !h.spawn(func() { h.drain(r) }) {
		r.mu.Lock()
		r.running = false // shutting down
		r.mu.Unlock()
	}
}

// drain reads the room's new events in order and delivers them, until it
// has caught up with every notification. Several events read at once go
// out as one frame per session.
func (h *Hub) drain(r *room) {
	backoff := 50 * time.Millisecond
	for {
		r.mu.Lock()
		after, want := r.lastSeq, r.target
		if want <= after && !r.recheck {
			r.running = false
			r.mu.Unlock()
			return
		}
		if !h.listening.Load() {
			// Sessions may have lost their standing meanwhile: the
			// listener's reconnect checks them, then catches every room up.
			r.running = false
			r.mu.Unlock()
			return
		}
		gen := h.linkGen.Load()
		r.recheck = false
		r.mu.Unlock()

		evs, err := h.history.EventsAfter(h.ctx, r.key.tenant, r.key.name, after, 500)
		if err != nil {
			if h.ctx.Err() != nil {
				r.mu.Lock()
				r.running = false
				r.mu.Unlock()
				return
			}
			h.log.Warn().Err(err).Str("room", r.key.name).Msg("read events")
			select {
			case <-h.ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			r.mu.Lock()
			r.recheck = true
			r.mu.Unlock()
			continue
		}
		backoff = 50 * time.Millisecond
		if n := len(evs); n > 0 {
			r.mu.Lock()
			announced := r.target
			r.mu.Unlock()
			if last := evs[n-1].Seq; last > announced {
				h.metrics.CaughtUp.Add(float64(last - max(announced, after)))
			}
		}
		if len(evs) == 0 {
			// A notification is sent only after its commit is visible, so
			// a seq announced before this read began and still not found
			// is gone (pruned): settle. One announced during the read
			// (target moved) is simply read again.
			r.mu.Lock()
			if r.target == want && r.lastSeq == after && want > after {
				h.log.Warn().Str("room", r.key.name).Int64("announced", want).Int64("found", after).
					Msg("announced events are not in history")
				r.target = after
			}
			r.mu.Unlock()
			continue
		}
		h.deliver(r, after, evs, gen)
	}
}

// deliver fans one ordered batch out to the room's sessions: each event is
// encoded once (twice when it must be redacted for members), and each
// session gets one frame for the batch.
//
// Events read on an earlier listener connection than the current one (gen)
// are not delivered: they are read again after the standing check.
func (h *Hub) deliver(r *room, after int64, evs []store.Event, gen uint64) {
	gap := evs[0].Seq != after+1
	batch := make([]ringEntry, len(evs))
	hides, hidesPost, redacted := false, false, false
	for i, e := range evs {
		batch[i] = newRingEntry(e)
		redacted = redacted || e.Hidden
		if hiddenChange(e) {
			hides = true
			hidesPost = hidesPost || e.Type == "post.updated"
		}
		hidesPost = hidesPost || e.Type == "post.deleted"
	}
	member := joinFrames(batch, false)
	moderator := member
	if redacted {
		moderator = joinFrames(batch, true)
	}
	last := evs[len(evs)-1].Seq
	now := time.Now()
	r.mu.Lock()
	if after != r.lastSeq {
		r.mu.Unlock()
		return // someone else delivered meanwhile
	}
	if !h.live(gen) {
		r.recheck = true
		r.mu.Unlock()
		return
	}
	r.lastSeq = last
	if hides {
		// Kept entries may show what is hidden now (or hide what is not):
		// forget them. This batch was read after the change.
		r.hideGen++
		h.recent.clear(&r.ring)
	}
	if hidesPost && strings.HasPrefix(r.key.name, "post:") {
		r.visible, r.visGen = [2]bool{}, r.visGen+1
	}
	over := h.recent.appendTo(r, batch)
	// Counted before the sends, so a client never sees an event that the
	// metrics have not counted yet.
	h.metrics.Deliveries.Add(float64(len(evs) * len(r.subs)))
	for _, e := range evs {
		h.metrics.FanoutLatency.Observe(now.Sub(e.CreatedAt).Seconds())
	}
	defer h.traceFanout(r, evs)()
	for c, s := range r.subs {
		f := member
		if c.actor.Moderates() {
			f = moderator
		}
		if gap {
			// History was pruned under a live subscriber: it cannot be
			// gap free any more, so tell it to reload.
			f = encodeReset(r.key.name, last)
		}
		if s.replaying {
			s.held = append(s.held, f)
			s.heldBytes += len(f)
			if s.heldBytes > maxHeld {
				c.slow()
			}
			continue
		}
		c.send(f)
	}
	r.mu.Unlock()
	if over {
		h.spawn(func() { h.recent.shrink(h.rooms.all()) })
	}
}

// traceFanout starts a span for each event whose write was traced, as a
// child of the write's transaction, so one trace shows the REST call, the
// commit and the fan-out on every instance. The returned func ends them.
func (h *Hub) traceFanout(r *room, evs []store.Event) (end func()) {
	var spans []trace.Span
	for _, e := range evs {
		if e.TraceParent == "" {
			continue
		}
		_, span := h.tracer.Start(store.TraceContext(h.ctx, e.TraceParent), "realtime.fanout",
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("agora.room", r.key.name),
				attribute.Int64("agora.seq", e.Seq),
				attribute.String("agora.event", e.Type),
				attribute.Int("agora.sessions", len(r.subs)),
				attribute.String("agora.instance", h.cfg.InstanceID),
			))
		spans = append(spans, span)
	}
	return func() {
		for _, s := range spans {
			s.End()
		}
	}
}

// joinFrames is a batch as one frame, its messages newline-separated.
func joinFrames(batch []ringEntry, moderator bool) []byte {
	if len(batch) == 1 {
		return batch[0].frame(moderator)
	}
	n := len(batch) - 1
	for _, en := range batch {
		n += len(en.frame(moderator))
	}
	b := make([]byte, 0, n)
	for i, en := range batch {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, en.frame(moderator)...)
	}
	return b
}

// encodeFor renders an event for a moderator or, redacted when its object
// is hidden now, for everyone else. The event itself still goes out, so
// seq stays gap free.
func encodeFor(e store.Event, moderator bool) []byte {
	if moderator || !e.Hidden {
		return encodeEvent(e, e.Payload)
	}
	return encodeEvent(e, redact(e.Payload))
}

// redact keeps an object's identity and moderation flags, never its text.
func redact(payload json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return json.RawMessage(`{}`)
	}
	out := map[string]json.RawMessage{"hidden": json.RawMessage("true")}
	for _, k := range []string{"id", "post_id", "board_id", "version"} {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	if raw, ok := m["changes"]; ok {
		var ch map[string]json.RawMessage
		_ = json.Unmarshal(raw, &ch)
		kept := map[string]json.RawMessage{}
		for _, k := range []string{"hidden", "locked", "pinned"} {
			if v, ok := ch[k]; ok {
				kept[k] = v
			}
		}
		out["changes"], _ = json.Marshal(kept)
		delete(out, "hidden")
	}
	b, _ := json.Marshal(out)
	return b
}
