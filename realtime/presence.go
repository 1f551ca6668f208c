package realtime

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"sync"
	"time"

	"agora/store"
)

// presenceChannel carries presence and typing between instances. Nothing
// on it is stored: each instance keeps a replica of the others' presence,
// fed by deltas, refreshed by snapshots on hello, and dropped when the
// instance stops sending heartbeats.
const presenceChannel = "agora_presence"

// NOTIFY payloads must stay under 8000 bytes.
const maxPresencePayload = 7000

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

type peer struct {
	beat  time.Time
	rooms map[roomKey]*roomPresence
}

type typingKey struct {
	room roomKey
	user int64
}

type presence struct {
	h  *Hub
	mu sync.Mutex
	// local is this instance's sessions; published is what the others were
	// last told about it; peers is the replica of the other instances.
	local     map[roomKey]*roomPresence
	published map[roomKey]*roomPresence
	peers     map[string]*peer
	// sent is the merged view last shown to local subscribers.
	sent     map[roomKey]*roomPresence
	dirtyOut map[roomKey]bool
	dirtyIn  map[roomKey]bool
	// forceIn: a new subscriber was told an anonymous count that differs
	// from sent's; the next flush sends the count even if unchanged.
	forceIn  map[roomKey]bool
	typingAt map[typingKey]time.Time
}

func newPresence(h *Hub) *presence {
	return &presence{
		h:         h,
		local:     map[roomKey]*roomPresence{},
		published: map[roomKey]*roomPresence{},
		peers:     map[string]*peer{},
		sent:      map[roomKey]*roomPresence{},
		dirtyOut:  map[roomKey]bool{},
		dirtyIn:   map[roomKey]bool{},
		forceIn:   map[roomKey]bool{},
		typingAt:  map[typingKey]time.Time{},
	}
}

func (p *presence) join(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rp := p.local[k]
	if rp == nil {
		rp = newRoomPresence()
		p.local[k] = rp
	}
	if c.actor.Anonymous() {
		rp.anon++
	} else if m := rp.users[c.actor.UserID]; m != nil {
		m.n++
	} else {
		rp.users[c.actor.UserID] = &member{Name: c.actor.Username, Since: time.Now().UTC(), n: 1}
		p.h.metrics.PresenceMembers.Inc()
	}
	p.dirtyOut[k], p.dirtyIn[k] = true, true
}

func (p *presence) leave(c *client, k roomKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rp := p.local[k]
	if rp == nil {
		return
	}
	if c.actor.Anonymous() {
		rp.anon--
	} else if m := rp.users[c.actor.UserID]; m != nil {
		if m.n--; m.n == 0 {
			delete(rp.users, c.actor.UserID)
			p.h.metrics.PresenceMembers.Dec()
		}
	}
	if rp.anon <= 0 && len(rp.users) == 0 {
		delete(p.local, k)
	}
	p.dirtyOut[k], p.dirtyIn[k] = true, true
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
	add(p.local[k])
	for _, pe := range p.peers {
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
		p.forceIn[k], p.dirtyIn[k] = true, true
	}
	p.mu.Unlock()
	b, _ := json.Marshal(presenceState{Op: "presence", Room: k.name, State: entries(view, sortedIDs(view)), Anonymous: view.anon})
	return b
}

// run flushes presence every PresenceFlush: at most one presence frame
// per room per window, however many joins and leaves happened in it.
func (p *presence) run(ctx context.Context) {
	flush := time.NewTicker(p.h.cfg.PresenceFlush)
	defer flush.Stop()
	beat := time.NewTicker(p.h.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			p.publish(ctx, wire{K: "h"})
			p.expire()
		case <-flush.C:
			p.flushOut(ctx)
			p.flushIn()
		}
	}
}

// wire is a presence-channel message.
type wire struct {
	I     string     `json:"i"`
	K     string     `json:"k"` // d: delta, h: heartbeat, hello, bye, t: typing
	T     int64      `json:"t,omitempty"`
	R     string     `json:"r,omitempty"`
	Reset bool       `json:"reset,omitempty"` // d: replace the sender's view of the room
	J     []wireUser `json:"j,omitempty"`
	L     []int64    `json:"l,omitempty"`
	A     *int       `json:"a,omitempty"`
}

type wireUser struct {
	ID    int64     `json:"i"`
	Name  string    `json:"n"`
	Since time.Time `json:"s"`
}

func (p *presence) publish(ctx context.Context, w wire) {
	w.I = p.h.cfg.InstanceID
	b, _ := json.Marshal(w)
	if err := p.h.db.Notify(ctx, presenceChannel, string(b)); err != nil && ctx.Err() == nil {
		p.h.log.Warn().Err(err).Str("kind", w.K).Msg("publish presence")
	}
}

// flushOut tells the other instances what changed here.
func (p *presence) flushOut(ctx context.Context) {
	p.mu.Lock()
	var msgs []wire
	for k := range p.dirtyOut {
		msgs = append(msgs, p.delta(k, false)...)
	}
	clear(p.dirtyOut)
	p.mu.Unlock()
	for _, w := range msgs {
		p.publish(ctx, w)
	}
}

// delta compares local with published for one room and returns the
// messages (chunked under the NOTIFY limit) that bring peers up to date.
// With snapshot, the first message replaces the peers' view.
func (p *presence) delta(k roomKey, snapshot bool) []wire {
	cur := p.local[k]
	if cur == nil {
		cur = newRoomPresence()
	}
	old := p.published[k]
	if old == nil || snapshot {
		old = newRoomPresence()
	}
	anon := cur.anon
	w := wire{K: "d", T: k.tenant, R: k.name, Reset: snapshot, A: &anon}
	var out []wire
	size := 0
	emit := func() {
		out = append(out, w)
		w = wire{K: "d", T: k.tenant, R: k.name, A: &anon}
		size = 0
	}
	for _, id := range sortedIDs(cur) {
		if old.users[id] == nil {
			m := cur.users[id]
			w.J = append(w.J, wireUser{ID: id, Name: m.Name, Since: m.Since})
			if size += 80 + len(m.Name); size > maxPresencePayload {
				emit()
			}
		}
	}
	for id := range old.users {
		if cur.users[id] == nil {
			w.L = append(w.L, id)
			if size += 24; size > maxPresencePayload {
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
	if len(snap.users) == 0 && snap.anon == 0 {
		delete(p.published, k)
	} else {
		p.published[k] = snap
	}
	return out
}

// flushIn sends each changed room's joins and leaves to local subscribers.
func (p *presence) flushIn() {
	type out struct {
		k     roomKey
		frame []byte
	}
	var outs []out
	p.mu.Lock()
	for k := range p.dirtyIn {
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
		if len(cur.users) == 0 && cur.anon == 0 {
			delete(p.sent, k)
		} else {
			p.sent[k] = cur
		}
		if len(joins) == 0 && len(leaves) == 0 && cur.anon == old.anon && !p.forceIn[k] {
			continue
		}
		sort.Slice(joins, func(i, j int) bool { return joins[i] < joins[j] })
		sort.Slice(leaves, func(i, j int) bool { return leaves[i] < leaves[j] })
		b, _ := json.Marshal(presenceDelta{Op: "presence", Room: k.name,
			Joins: entries(cur, joins), Leaves: entries(old, leaves), Anonymous: cur.anon})
		outs = append(outs, out{k, b})
	}
	clear(p.dirtyIn)
	clear(p.forceIn)
	p.mu.Unlock()
	// One flush can touch every room a session is in (up to MaxRooms):
	// a frame per room would overflow its send queue in one burst and
	// close a client that reads fine as slow. So each session gets its
	// rooms' presence messages packed into as few frames as possible.
	perClient := map[*client][][]byte{}
	for _, o := range outs {
		r := p.h.rooms.get(o.k)
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
	deadline := time.Now().Add(-p.h.cfg.HeartbeatTimeout)
	for id, pe := range p.peers {
		if pe.beat.Before(deadline) {
			p.h.log.Warn().Str("peer", id).Msg("instance silent: dropping its presence")
			p.dropPeer(id)
		}
	}
}

func (p *presence) dropPeer(id string) {
	for k := range p.peers[id].rooms {
		p.dirtyIn[k] = true
	}
	delete(p.peers, id)
}

// hello asks every instance for a snapshot (after this instance's
// listener (re)connects, when it may have missed deltas) and sends its own.
func (p *presence) hello(ctx context.Context) {
	p.publish(ctx, wire{K: "hello"})
	p.snapshot(ctx)
}

func (p *presence) snapshot(ctx context.Context) {
	p.mu.Lock()
	var msgs []wire
	for k := range p.local {
		msgs = append(msgs, p.delta(k, true)...)
	}
	p.mu.Unlock()
	for _, w := range msgs {
		p.publish(ctx, w)
	}
}

// goodbye lets the others drop this instance's users at once.
func (p *presence) goodbye(ctx context.Context) { p.publish(ctx, wire{K: "bye"}) }

func (p *presence) receive(payload string) {
	var w wire
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		p.h.log.Warn().Err(err).Msg("bad presence notification")
		return
	}
	if w.I == p.h.cfg.InstanceID || w.I == "" {
		return
	}
	if w.K == "t" {
		p.h.relayTyping(roomKey{w.T, w.R}, w.J, nil)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.peers[w.I]
	if pe == nil && w.K != "bye" {
		pe = &peer{rooms: map[roomKey]*roomPresence{}}
		p.peers[w.I] = pe
	}
	switch w.K {
	case "bye":
		if pe != nil {
			p.dropPeer(w.I)
		}
		return
	case "hello":
		pe.beat = time.Now()
		go p.snapshot(p.h.ctx)
		return
	case "h":
		pe.beat = time.Now()
		return
	case "d":
		pe.beat = time.Now()
		k := roomKey{w.T, w.R}
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
		if len(rp.users) == 0 && rp.anon == 0 {
			delete(pe.rooms, k)
		}
		p.dirtyIn[k] = true
	}
}

// typing relays "user is typing" to the room here and on every instance,
// at most once per user and room per TypingInterval. Never stored.
func (h *Hub) typing(c *client, name string) {
	if c.actor.Anonymous() {
		c.send(encodeError(store.CodeUnauthorized, "sign in to type", name))
		return
	}
	if c.actor.Banned {
		c.send(encodeError(store.CodeForbidden, "you are banned", name))
		return
	}
	c.mu.Lock()
	_, subscribed := c.rooms[name]
	c.mu.Unlock()
	if !subscribed {
		c.send(encodeError(store.CodeBadRequest, "subscribe to the room first", name))
		return
	}
	k := roomKey{c.tenant.ID, name}
	p := h.presence
	p.mu.Lock()
	tk := typingKey{k, c.actor.UserID}
	now := time.Now()
	if last, ok := p.typingAt[tk]; ok && now.Sub(last) < h.cfg.TypingInterval {
		p.mu.Unlock()
		return
	}
	p.typingAt[tk] = now
	for key, at := range p.typingAt {
		if now.Sub(at) > h.cfg.TypingInterval {
			delete(p.typingAt, key)
		}
	}
	p.mu.Unlock()
	u := []wireUser{{ID: c.actor.UserID, Name: c.actor.Username}}
	h.relayTyping(k, u, c)
	go p.publish(h.ctx, wire{K: "t", T: k.tenant, R: k.name, J: u})
}

// relayTyping sends a typing message to the room's local sessions except
// the typist's own.
func (h *Hub) relayTyping(k roomKey, users []wireUser, from *client) {
	if len(users) != 1 {
		return
	}
	u := users[0]
	b, _ := json.Marshal(typingMsg{Op: "typing", Room: k.name, User: store.UserRef{ID: u.ID, Username: u.Name}})
	h.sendRoom(k, b, func(c *client) bool { return c.actor.UserID != u.ID })
}

// sendRoom writes an unsequenced message (presence, typing) to the room's
// local sessions that keep accepts.
func (h *Hub) sendRoom(k roomKey, frame []byte, keep func(*client) bool) {
	r := h.rooms.get(k)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.subs {
		if keep == nil || keep(c) {
			c.send(frame)
		}
	}
}
