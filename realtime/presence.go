package realtime

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"agora/store"
)

// Presence across instances: each instance tracks its own sessions
// (tracker), tells the others what changed on the bus, keeps a replica of
// what they told it (replica), and shows its subscribers the merged view,
// at most one frame per room per flush window (presence). Nothing of it
// is stored: replicas are fed by deltas, refreshed by snapshots on hello,
// and dropped when their instance stops sending heartbeats.

// wireKind says what a presence-channel message is.
type wireKind string

const (
	// kindDelta: joins and leaves in one room (with Reset, the sender's
	// whole view of the room).
	kindDelta wireKind = "d"
	// kindHeartbeat: the sender lives.
	kindHeartbeat wireKind = "h"
	// kindHello: the sender (re)connected and may have missed deltas:
	// everyone sends it a snapshot.
	kindHello wireKind = "hello"
	// kindBye: the sender is shutting down; its users leave at once.
	kindBye wireKind = "bye"
	// kindTyping: a user is typing in a room.
	kindTyping wireKind = "t"
)

// wire is a presence-channel message.
type wire struct {
	I     string     `json:"i"` // sending instance
	K     wireKind   `json:"k"`
	T     int64      `json:"t,omitempty"`
	R     string     `json:"r,omitempty"`
	Reset bool       `json:"reset,omitempty"`
	J     []wireUser `json:"j,omitempty"`
	L     []int64    `json:"l,omitempty"`
	A     *int       `json:"a,omitempty"`
}

type wireUser struct {
	ID    int64     `json:"i"`
	Name  string    `json:"n"`
	Since time.Time `json:"s"`
}

func (w wire) room() roomKey { return roomKey{w.T, w.R} }

type member struct {
	Name  string
	Since time.Time
	n     int // local sessions of this user in the room
}

type roomPresence struct {
	users map[int64]*member
	anon  int
}

func newRoomPresence() *roomPresence { return &roomPresence{users: map[int64]*member{}} }

func (rp *roomPresence) empty() bool { return len(rp.users) == 0 && rp.anon <= 0 }

// tracker is this instance's own presence: who is in each room through its
// sessions, and what the other instances were last told of it.
type tracker struct {
	local     map[roomKey]*roomPresence
	published map[roomKey]*roomPresence
	dirty     map[roomKey]bool // changed since last published
}

func newTracker() *tracker {
	return &tracker{local: map[roomKey]*roomPresence{}, published: map[roomKey]*roomPresence{}, dirty: map[roomKey]bool{}}
}

// join counts one more session of a in room k; arrived says a was not
// there before.
func (t *tracker) join(k roomKey, a store.Actor, now time.Time) (arrived bool) {
	t.dirty[k] = true
	rp := t.local[k]
	if rp == nil {
		rp = newRoomPresence()
		t.local[k] = rp
	}
	if a.Anonymous() {
		rp.anon++
		return false
	}
	if m := rp.users[a.UserID]; m != nil {
		m.n++
		return false
	}
	rp.users[a.UserID] = &member{Name: a.Username, Since: now.UTC(), n: 1}
	return true
}

// leave undoes join; gone says a's last session left the room.
func (t *tracker) leave(k roomKey, a store.Actor) (gone bool) {
	rp := t.local[k]
	if rp == nil {
		return false
	}
	t.dirty[k] = true
	if a.Anonymous() {
		rp.anon--
	} else if m := rp.users[a.UserID]; m != nil {
		if m.n--; m.n == 0 {
			delete(rp.users, a.UserID)
			gone = true
		}
	}
	if rp.empty() {
		delete(t.local, k)
	}
	return gone
}

// changes returns the deltas that bring the others up to date with every
// room changed since the last call.
func (t *tracker) changes() []wire {
	var out []wire
	for k := range t.dirty {
		out = append(out, t.delta(k, false)...)
	}
	clear(t.dirty)
	return out
}

// snapshot returns every room whole, for an instance that may have missed
// deltas.
func (t *tracker) snapshot() []wire {
	var out []wire
	for k := range t.local {
		out = append(out, t.delta(k, true)...)
	}
	return out
}

// delta compares local with published for one room and returns the
// messages (chunked under the bus's payload limit) that bring the others
// up to date. With snapshot, the first message replaces their view.
func (t *tracker) delta(k roomKey, snapshot bool) []wire {
	cur := t.local[k]
	if cur == nil {
		cur = newRoomPresence()
	}
	old := t.published[k]
	if old == nil || snapshot {
		old = newRoomPresence()
	}
	anon := cur.anon
	w := wire{K: kindDelta, T: k.tenant, R: k.name, Reset: snapshot, A: &anon}
	var out []wire
	size := 0
	emit := func() {
		out = append(out, w)
		w = wire{K: kindDelta, T: k.tenant, R: k.name, A: &anon}
		size = 0
	}
	for _, id := range sortedIDs(cur) {
		if old.users[id] == nil {
			m := cur.users[id]
			w.J = append(w.J, wireUser{ID: id, Name: m.Name, Since: m.Since})
			if size += 80 + len(m.Name); size > store.MaxPresencePayload {
				emit()
			}
		}
	}
	for id := range old.users {
		if cur.users[id] == nil {
			w.L = append(w.L, id)
			if size += 24; size > store.MaxPresencePayload {
				emit()
			}
		}
	}
	if len(w.J) > 0 || len(w.L) > 0 || len(out) == 0 {
		emit()
	}
	snap := newRoomPresence()
	snap.anon = cur.anon
	for id, m := range cur.users {
		snap.users[id] = &member{Name: m.Name, Since: m.Since}
	}
	if snap.empty() {
		delete(t.published, k)
	} else {
		t.published[k] = snap
	}
	return out
}

// replica is the other instances' presence as their messages describe it.
type replica struct {
	peers map[string]*peer
}

type peer struct {
	beat  time.Time
	rooms map[roomKey]*roomPresence
}

func newReplica() *replica { return &replica{peers: map[string]*peer{}} }

// apply takes one message from another instance and returns the rooms
// whose view changed.
func (r *replica) apply(w wire, now time.Time) []roomKey {
	switch w.K {
	case kindBye:
		return r.drop(w.I)
	case kindHello, kindHeartbeat, kindDelta:
	default:
		return nil
	}
	pe := r.peers[w.I]
	if pe == nil {
		pe = &peer{rooms: map[roomKey]*roomPresence{}}
		r.peers[w.I] = pe
	}
	pe.beat = now
	if w.K != kindDelta {
		return nil
	}
	k := w.room()
	rp := pe.rooms[k]
	if rp == nil || w.Reset {
		rp = newRoomPresence()
		pe.rooms[k] = rp
	}
	for _, u := range w.J {
		rp.users[u.ID] = &member{Name: u.Name, Since: u.Since}
	}
	for _, id := range w.L {
		delete(rp.users, id)
	}
	if w.A != nil {
		rp.anon = *w.A
	}
	if rp.empty() {
		delete(pe.rooms, k)
	}
	return []roomKey{k}
}

// expire drops the instances silent since before deadline and returns
// their ids and the rooms they were in.
func (r *replica) expire(deadline time.Time) (dropped []string, rooms []roomKey) {
	for id, pe := range r.peers {
		if pe.beat.Before(deadline) {
			dropped = append(dropped, id)
			rooms = append(rooms, r.drop(id)...)
		}
	}
	return dropped, rooms
}

// drop forgets an instance and returns the rooms it was in.
func (r *replica) drop(id string) []roomKey {
	pe := r.peers[id]
	if pe == nil {
		return nil
	}
	delete(r.peers, id)
	return slices.Collect(maps.Keys(pe.rooms))
}

// presence shows the merged view of own and peers to local subscribers,
// and sends own's changes to the other instances.
type presence struct {
	instance         string
	bus              Bus
	rooms            *index
	log              zerolog.Logger
	metrics          *Metrics
	flushEvery       time.Duration
	heartbeat        time.Duration
	heartbeatTimeout time.Duration

	mu    sync.Mutex
	own   *tracker
	peers *replica
	// sent is the merged view last shown to local subscribers; dirty rooms
	// may differ from it.
	sent  map[roomKey]*roomPresence
	dirty map[roomKey]bool
	// force: a new subscriber was told an anonymous count that differs
	// from sent's; the next flush sends the count even if unchanged.
	force map[roomKey]bool
}

func newPresence(h *Hub) *presence {
	return &presence{
		instance:         h.cfg.InstanceID,
		bus:              h.bus,
		rooms:            h.rooms,
		log:              h.log,
		metrics:          h.metrics,
		flushEvery:       h.cfg.PresenceFlush,
		heartbeat:        h.cfg.Heartbeat,
		heartbeatTimeout: h.cfg.HeartbeatTimeout,
		own:              newTracker(),
		peers:            newReplica(),
		sent:             map[roomKey]*roomPresence{},
		dirty:            map[roomKey]bool{},
		force:            map[roomKey]bool{},
	}
}

func (p *presence) join(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.own.join(k, c.actor, time.Now()) {
		p.metrics.PresenceMembers.Inc()
	}
	p.dirty[k] = true
}

func (p *presence) leave(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.own.leave(k, c.actor) {
		p.metrics.PresenceMembers.Dec()
	}
	p.dirty[k] = true
}

// merged is the room's presence across every instance; a user on several
// instances or tabs is there once, since their earliest arrival.
func (p *presence) merged(k roomKey) *roomPresence {
	out := newRoomPresence()
	add := func(rp *roomPresence) {
		if rp == nil {
			return
		}
		out.anon += rp.anon
		for id, m := range rp.users {
			if cur := out.users[id]; cur == nil || m.Since.Before(cur.Since) {
				out.users[id] = &member{Name: m.Name, Since: m.Since}
			}
		}
	}
	add(p.own.local[k])
	for _, pe := range p.peers.peers {
		add(pe.rooms[k])
	}
	return out
}

func entries(rp *roomPresence, ids []int64) []presenceEntry {
	out := make([]presenceEntry, 0, len(ids))
	for _, id := range ids {
		m := rp.users[id]
		out = append(out, presenceEntry{User: store.UserRef{ID: id, Username: m.Name}, Since: m.Since})
	}
	return out
}

func sortedIDs(rp *roomPresence) []int64 {
	ids := make([]int64, 0, len(rp.users))
	for id := range rp.users {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// state is the presence message a new subscriber of c gets at once. Its
// users are the view the room's subscribers were last sent, plus c's own:
// the deltas that follow are computed against that view, so a join and a
// leave that cancel out within one flush window cannot leave the newcomer
// with someone who is gone (or without someone who is there). The
// anonymous count is today's; when it differs from the one last sent the
// next flush sends the count even if nothing else changed.
func (p *presence) state(k roomKey, c *client) []byte {
	p.mu.Lock()
	cur := p.merged(k)
	view := newRoomPresence()
	view.anon = cur.anon
	sent := p.sent[k]
	if sent != nil {
		maps.Copy(view.users, sent.users)
	}
	if m := cur.users[c.actor.UserID]; m != nil && !c.actor.Anonymous() {
		view.users[c.actor.UserID] = m
	}
	if sent == nil || sent.anon != cur.anon {
		p.force[k], p.dirty[k] = true, true
	}
	p.mu.Unlock()
	b, _ := json.Marshal(presenceState{Op: "presence", Room: k.name, State: entries(view, sortedIDs(view)), Anonymous: view.anon})
	return b
}

// run flushes presence every flush window (at most one presence frame per
// room per window, however many joins and leaves happened in it) and
// sends heartbeats.
func (p *presence) run(ctx context.Context) {
	flush := time.NewTicker(p.flushEvery)
	defer flush.Stop()
	beat := time.NewTicker(p.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			p.publish(ctx, wire{K: kindHeartbeat})
			p.expire()
		case <-flush.C:
			p.mu.Lock()
			msgs := p.own.changes()
			p.mu.Unlock()
			for _, w := range msgs {
				p.publish(ctx, w)
			}
			p.flushLocal()
		}
	}
}

func (p *presence) publish(ctx context.Context, w wire) {
	w.I = p.instance
	b, _ := json.Marshal(w)
	if err := p.bus.PublishPresence(ctx, b); err != nil && ctx.Err() == nil {
		p.log.Warn().Err(err).Str("kind", string(w.K)).Msg("publish presence")
	}
}

// flushLocal sends each changed room's joins and leaves to local
// subscribers.
func (p *presence) flushLocal() {
	type out struct {
		k     roomKey
		frame []byte
	}
	var outs []out
	p.mu.Lock()
	for k := range p.dirty {
		cur := p.merged(k)
		old := p.sent[k]
		if old == nil {
			old = newRoomPresence()
		}
		var joins, leaves []int64
		for id := range cur.users {
			if old.users[id] == nil {
				joins = append(joins, id)
			}
		}
		for id := range old.users {
			if cur.users[id] == nil {
				leaves = append(leaves, id)
			}
		}
		if cur.empty() {
			delete(p.sent, k)
		} else {
			p.sent[k] = cur
		}
		if len(joins) == 0 && len(leaves) == 0 && cur.anon == old.anon && !p.force[k] {
			continue
		}
		sort.Slice(joins, func(i, j int) bool { return joins[i] < joins[j] })
		sort.Slice(leaves, func(i, j int) bool { return leaves[i] < leaves[j] })
		b, _ := json.Marshal(presenceDelta{Op: "presence", Room: k.name,
			Joins: entries(cur, joins), Leaves: entries(old, leaves), Anonymous: cur.anon})
		outs = append(outs, out{k, b})
	}
	clear(p.dirty)
	clear(p.force)
	p.mu.Unlock()
	// One flush can touch every room a session is in (up to MaxRooms):
	// a frame per room would overflow its send queue in one burst and
	// close a client that reads fine as slow. So each session gets its
	// rooms' presence messages packed into as few frames as possible.
	perClient := map[*client][][]byte{}
	for _, o := range outs {
		r := p.rooms.get(o.k)
		if r == nil {
			continue
		}
		r.mu.Lock()
		for c := range r.subs {
			perClient[c] = append(perClient[c], o.frame)
		}
		r.mu.Unlock()
	}
	for c, msgs := range perClient {
		for _, f := range pack(msgs, replayFrame) {
			c.send(f)
		}
	}
}

// expire drops peers that stopped sending heartbeats: their users leave.
func (p *presence) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	dropped, rooms := p.peers.expire(time.Now().Add(-p.heartbeatTimeout))
	for _, id := range dropped {
		p.log.Warn().Str("peer", id).Msg("instance silent: dropping its presence")
	}
	p.markDirty(rooms)
}

func (p *presence) markDirty(rooms []roomKey) {
	for _, k := range rooms {
		p.dirty[k] = true
	}
}

// hello asks every instance for a snapshot (after this instance's bus
// (re)connects, when it may have missed deltas) and sends its own.
func (p *presence) hello(ctx context.Context) {
	p.publish(ctx, wire{K: kindHello})
	p.snapshot(ctx)
}

func (p *presence) snapshot(ctx context.Context) {
	p.mu.Lock()
	msgs := p.own.snapshot()
	p.mu.Unlock()
	for _, w := range msgs {
		p.publish(ctx, w)
	}
}

// goodbye lets the others drop this instance's users at once.
func (p *presence) goodbye(ctx context.Context) { p.publish(ctx, wire{K: kindBye}) }

// receive applies another instance's presence message; hello says it
// asked for a snapshot.
func (p *presence) receive(w wire) (hello bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.markDirty(p.peers.apply(w, time.Now()))
	return w.K == kindHello
}
