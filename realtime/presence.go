package realtime

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
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

// apply takes one message from another instance, tells agg what changed,
// and returns the rooms whose view changed. unknown says the message came
// from an instance this replica does not know and that is not sending its
// whole view anyway (a hello, or the snapshots answering someone's): one
// dropped for silence that spoke again, or one whose hello was missed.
// Its users are then missing until it sends a snapshot.
func (r *replica) apply(w wire, now time.Time, agg aggregate) (changed []roomKey, unknown bool) {
	switch w.K {
	case kindBye:
		return r.drop(w.I, agg), false
	case kindHello, kindHeartbeat, kindDelta:
	default:
		return nil, false
	}
	pe := r.peers[w.I]
	if pe == nil {
		pe = &peer{rooms: map[roomKey]*roomPresence{}}
		r.peers[w.I] = pe
		unknown = w.K == kindHeartbeat || (w.K == kindDelta && !w.Reset)
	}
	pe.beat = now
	if w.K != kindDelta {
		return nil, unknown
	}
	k := w.room()
	rp := pe.rooms[k]
	if rp != nil && w.Reset {
		agg.removeAll(k, rp)
		rp = nil
	}
	if rp == nil {
		rp = newRoomPresence()
		pe.rooms[k] = rp
	}
	for _, u := range w.J {
		if rp.users[u.ID] == nil {
			m := &member{Name: u.Name, Since: u.Since}
			rp.users[u.ID] = m
			agg.add(k, u.ID, m)
		}
	}
	for _, id := range w.L {
		if rp.users[id] != nil {
			delete(rp.users, id)
			agg.remove(k, id)
		}
	}
	if w.A != nil {
		agg.anon(k, *w.A-rp.anon)
		rp.anon = *w.A
	}
	if rp.empty() {
		delete(pe.rooms, k)
	}
	return []roomKey{k}, unknown
}

// expire drops the instances silent since before deadline and returns
// their ids and the rooms they were in.
func (r *replica) expire(deadline time.Time, agg aggregate) (dropped []string, rooms []roomKey) {
	for id, pe := range r.peers {
		if pe.beat.Before(deadline) {
			dropped = append(dropped, id)
			rooms = append(rooms, r.drop(id, agg)...)
		}
	}
	return dropped, rooms
}

// drop forgets an instance and returns the rooms it was in.
func (r *replica) drop(id string, agg aggregate) []roomKey {
	pe := r.peers[id]
	if pe == nil {
		return nil
	}
	delete(r.peers, id)
	for k, rp := range pe.rooms {
		agg.removeAll(k, rp)
	}
	return slices.Collect(maps.Keys(pe.rooms))
}

// aggregate is the merged presence of every room across the instances:
// own's and every peer's, kept up to date as they change, so that what a
// join costs does not grow with the room. A user present through several
// sources (tabs, instances) is there once, since their earliest arrival.
type aggregate map[roomKey]*aggRoom

type aggRoom struct {
	users map[int64]*aggMember
	anon  int
}

type aggMember struct {
	member
	sources int    // own and peers that have the user in the room
	entry   []byte // the user's presence entry, encoded once
}

func (m *aggMember) presenceEntry(id int64) presenceEntry {
	e := presenceEntry{User: store.UserRef{ID: id, Username: m.Name}, Since: m.Since}
	if m.entry == nil {
		m.entry = appendPresenceEntry(nil, e)
	}
	e.raw = m.entry
	return e
}

func (a aggregate) room(k roomKey) *aggRoom {
	ar := a[k]
	if ar == nil {
		ar = &aggRoom{users: map[int64]*aggMember{}}
		a[k] = ar
	}
	return ar
}

func (a aggregate) add(k roomKey, id int64, m *member) {
	ar := a.room(k)
	if cur := ar.users[id]; cur != nil {
		cur.sources++
		// The user was present without a break since the earlier arrival.
		if m.Since.Before(cur.Since) {
			cur.Since, cur.entry = m.Since, nil
		}
		return
	}
	ar.users[id] = &aggMember{member: member{Name: m.Name, Since: m.Since}, sources: 1}
}

func (a aggregate) remove(k roomKey, id int64) {
	ar := a[k]
	if ar == nil {
		return
	}
	if cur := ar.users[id]; cur != nil {
		if cur.sources--; cur.sources <= 0 {
			delete(ar.users, id)
		}
	}
	a.tidy(k, ar)
}

func (a aggregate) anon(k roomKey, delta int) {
	if delta == 0 {
		return
	}
	ar := a.room(k)
	ar.anon += delta
	a.tidy(k, ar)
}

// removeAll takes one source's whole view of a room out.
func (a aggregate) removeAll(k roomKey, rp *roomPresence) {
	for id := range rp.users {
		a.remove(k, id)
	}
	a.anon(k, -rp.anon)
}

func (a aggregate) tidy(k roomKey, ar *aggRoom) {
	if len(ar.users) == 0 && ar.anon <= 0 {
		delete(a, k)
	}
}

// counts is how many signed-in users and anonymous connections are in k.
func (a aggregate) counts(k roomKey) (users, anon int) {
	if ar := a[k]; ar != nil {
		return len(ar.users), ar.anon
	}
	return 0, 0
}

// presenceListMax is the most users a presence message lists (API.md,
// "Large rooms"). Above it a room's presence is its counts only, at most
// once per countEvery: what a join storm costs then grows with the room,
// not with its square.
const presenceListMax = 100

// presence shows the merged view of own and peers to local subscribers,
// and sends own's changes to the other instances.
type presence struct {
	instance         string
	bus              Bus
	rooms            *index
	log              zerolog.Logger
	metrics          *Metrics
	flushEvery       time.Duration
	countEvery       time.Duration
	heartbeat        time.Duration
	heartbeatTimeout time.Duration

	mu    sync.Mutex
	own   *tracker
	peers *replica
	agg   aggregate
	// shown is what the local subscribers of each room were last told;
	// dirty rooms may have changed since.
	shown map[roomKey]*roomView
	dirty map[roomKey]bool
	// force: a new subscriber of a small room was told an anonymous count
	// that differs from shown's; the next flush sends the counts even if
	// nothing changed.
	force map[roomKey]bool
}

// roomView is what a room's local subscribers were last told. A small
// room's view lists its users, so the next message can be the joins and
// leaves since; a large room's is its counts, and when they went out.
type roomView struct {
	large bool
	users map[int64]member
	anon  int
	at    time.Time
}

func newPresence(h *Hub) *presence {
	return &presence{
		instance:         h.cfg.InstanceID,
		bus:              h.bus,
		rooms:            h.rooms,
		log:              h.log,
		metrics:          h.metrics,
		flushEvery:       h.cfg.PresenceFlush,
		countEvery:       h.cfg.PresenceCountEvery,
		heartbeat:        h.cfg.Heartbeat,
		heartbeatTimeout: h.cfg.HeartbeatTimeout,
		own:              newTracker(),
		peers:            newReplica(),
		agg:              aggregate{},
		shown:            map[roomKey]*roomView{},
		dirty:            map[roomKey]bool{},
		force:            map[roomKey]bool{},
	}
}

func (p *presence) join(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.own.join(k, c.actor, now) {
		p.metrics.PresenceMembers.Inc()
		p.agg.add(k, c.actor.UserID, p.own.local[k].users[c.actor.UserID].clone())
	} else if c.actor.Anonymous() {
		p.agg.anon(k, 1)
	}
	p.dirty[k] = true
}

func (p *presence) leave(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.own.leave(k, c.actor) {
		p.metrics.PresenceMembers.Dec()
		p.agg.remove(k, c.actor.UserID)
	} else if c.actor.Anonymous() {
		p.agg.anon(k, -1)
	}
	p.dirty[k] = true
}

func (m *member) clone() *member { return &member{Name: m.Name, Since: m.Since} }

func sortedIDs(rp *roomPresence) []int64 {
	ids := make([]int64, 0, len(rp.users))
	for id := range rp.users {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// listed is the users a state message names: all of them, sorted, in a
// room of at most presenceListMax; else presenceListMax of them, the
// receiver (self, 0: anonymous) first when present.
func (ar *aggRoom) listed(self int64) (entries []presenceEntry, truncated bool) {
	if ar == nil {
		return []presenceEntry{}, false
	}
	ids := make([]int64, 0, min(len(ar.users), presenceListMax))
	truncated = len(ar.users) > presenceListMax
	if truncated && ar.users[self] != nil {
		ids = append(ids, self)
	}
	for id := range ar.users {
		if len(ids) == presenceListMax {
			break
		}
		if !truncated || id != self {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	entries = make([]presenceEntry, len(ids))
	for i, id := range ids {
		entries[i] = ar.users[id].presenceEntry(id)
	}
	return entries, truncated
}

// view is what the subscribers of a room are told now.
func (ar *aggRoom) view(now time.Time) *roomView {
	v := &roomView{at: now}
	if ar == nil {
		return v
	}
	v.anon = ar.anon
	if len(ar.users) > presenceListMax {
		v.large = true
		return v
	}
	v.users = make(map[int64]member, len(ar.users))
	for id, m := range ar.users {
		v.users[id] = m.member
	}
	return v
}

// state is the presence message a new subscriber c of room k gets at once.
// In a small room its users are the view the room's subscribers were last
// told, plus c's own: the joins and leaves that follow are computed against
// that view, so a join and a leave that cancel out within one flush window
// cannot leave the newcomer with someone who is gone (or without someone
// who is there). The anonymous count is today's; when it differs from the
// one last told, the next flush sends the counts even if nothing else
// changed. A large room's state is as it is now: the count messages that
// follow carry whole numbers.
func (p *presence) state(k roomKey, c *client) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	ar := p.agg[k]
	users, anon := p.agg.counts(k)
	v := p.shown[k]
	if v == nil {
		v = &roomView{} // the first local subscriber
	}
	if v.large || users > presenceListMax {
		entries, truncated := ar.listed(c.actor.UserID)
		return encodePresenceState(k.name, entries, truncated, users, anon)
	}
	ids := make([]int64, 0, len(v.users)+1)
	for id := range v.users {
		ids = append(ids, id)
	}
	view := v
	if _, told := v.users[c.actor.UserID]; !told && !c.actor.Anonymous() && len(ids) < presenceListMax {
		if m := ar.users[c.actor.UserID]; m != nil {
			ids = append(ids, c.actor.UserID)
			view = &roomView{users: make(map[int64]member, len(v.users)+1)}
			maps.Copy(view.users, v.users)
			view.users[c.actor.UserID] = m.member
		}
	}
	slices.Sort(ids)
	if v.anon != anon {
		p.force[k], p.dirty[k] = true, true
	}
	return encodePresenceState(k.name, viewEntries(view, ids), false, len(ids), anon)
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
		case now := <-flush.C:
			p.mu.Lock()
			msgs := p.own.changes()
			p.mu.Unlock()
			for _, w := range msgs {
				p.publish(ctx, w)
			}
			p.flushLocal(now)
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

// message is the presence message that brings room k's subscribers from
// what they were told (old) to now, with ok false when it must wait
// (large rooms get at most one per countEvery) or there is nothing to
// tell.
func (p *presence) message(k roomKey, old *roomView, now time.Time) (frame []byte, next *roomView, ok bool) {
	ar := p.agg[k]
	users, anon := p.agg.counts(k)
	cur := ar.view(now)
	if old == nil {
		old = &roomView{}
	}
	switch {
	case old.large && now.Sub(old.at) < p.countEvery:
		return nil, nil, false
	case cur.large:
		// Also when the counts are what they were: someone came or went.
		return encodePresenceCount(k.name, users, anon), cur, true
	case old.large:
		// Back to a room whose users can be listed: the whole list again,
		// as their new base.
		entries, _ := ar.listed(0)
		return encodePresenceState(k.name, entries, false, users, anon), cur, true
	}
	var joins, leaves []int64
	for id := range cur.users {
		if _, ok := old.users[id]; !ok {
			joins = append(joins, id)
		}
	}
	for id := range old.users {
		if _, ok := cur.users[id]; !ok {
			leaves = append(leaves, id)
		}
	}
	if len(joins) == 0 && len(leaves) == 0 && cur.anon == old.anon && !p.force[k] {
		return nil, cur, false
	}
	slices.Sort(joins)
	slices.Sort(leaves)
	return encodePresenceDelta(k.name, viewEntries(cur, joins), viewEntries(old, leaves), users, anon), cur, true
}

func viewEntries(v *roomView, ids []int64) []presenceEntry {
	out := make([]presenceEntry, 0, len(ids))
	for _, id := range ids {
		m := v.users[id]
		out = append(out, presenceEntry{User: store.UserRef{ID: id, Username: m.Name}, Since: m.Since})
	}
	return out
}

// flushLocal sends each changed room's presence to its local subscribers.
func (p *presence) flushLocal(now time.Time) {
	type out struct {
		k     roomKey
		frame []byte
	}
	var outs []out
	p.mu.Lock()
	for k := range p.dirty {
		if p.rooms.get(k) == nil {
			// No local subscriber to tell; the next one gets a state.
			delete(p.dirty, k)
			delete(p.shown, k)
			delete(p.force, k)
			continue
		}
		frame, next, ok := p.message(k, p.shown[k], now)
		if !ok && next == nil {
			continue // a large room's next message is not due yet
		}
		delete(p.dirty, k)
		delete(p.force, k)
		p.shown[k] = next
		if ok {
			outs = append(outs, out{k, frame})
		}
	}
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
	dropped, rooms := p.peers.expire(time.Now().Add(-p.heartbeatTimeout), p.agg)
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

// receive applies another instance's presence message. snapshot says it
// asked for ours; ask, that we need its (and say hello to get it).
func (p *presence) receive(w wire) (snapshot, ask bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed, unknown := p.peers.apply(w, time.Now(), p.agg)
	p.markDirty(changed)
	if unknown {
		p.log.Info().Str("peer", w.I).Msg("an instance this one does not know spoke: asking for snapshots")
	}
	return w.K == kindHello, unknown
}
