package memory_test

// The hub's rooms, fan-out and presence on the in-memory bus and history:
// real melody sessions over loopback WebSockets, no database.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"agora/realtime"
	"agora/realtime/memory"
	"agora/realtime/wstest"
	"agora/store"
)

var (
	_ realtime.Bus     = (*memory.Bus)(nil)
	_ realtime.History = (*memory.History)(nil)
)

const wait = 5 * time.Second

var tenant = store.Tenant{ID: 1, Slug: "acme", Public: true}

// user is who a test session signs in as; the zero user is anonymous.
type user struct {
	id    int64
	name  string
	role  store.Role
	token int64
}

var (
	ann  = user{1, "ann", store.RoleMember, 11}
	bob  = user{2, "bob", store.RoleMember, 12}
	moe  = user{3, "moe", store.RoleModerator, 13}
	dave = user{4, "dave", store.RoleMember, 14}
)

func (u user) actor() store.Actor { return store.Actor{UserID: u.id, Username: u.name, Role: u.role} }

// setup is one bus and one history shared by the hubs of a test.
type setup struct {
	bus  *memory.Bus
	hist *memory.History
}

func newSetup(t *testing.T, users ...user) *setup {
	s := &setup{bus: memory.NewBus(), hist: memory.NewHistory()}
	for _, u := range users {
		s.hist.SetStanding(tenant.ID, u.token, store.Standing{Valid: true, UserID: u.id, Role: u.role})
	}
	return s
}

// event appends an event to a room; ring also announces it.
func (s *setup) event(room, typ, payload string, hidden, ring bool) store.Event {
	e := s.hist.Append(store.Event{TenantID: tenant.ID, Room: room, Type: typ, Payload: json.RawMessage(payload), Hidden: hidden})
	if ring {
		s.bus.Ring(store.Notification{TenantID: tenant.ID, Room: room, Seq: e.Seq})
	}
	return e
}

// node is one hub behind an HTTP server that signs each request in as the
// user its query names.
type node struct {
	hub *realtime.Hub
	url string
	// handlers counts the HTTP handlers running ServeWS right now.
	handlers *atomic.Int64
}

func (s *setup) start(t *testing.T, tune func(*realtime.Config)) *node {
	t.Helper()
	cfg := realtime.Config{History: s.hist, Bus: s.bus, Log: zerolog.Nop(),
		PresenceFlush: 20 * time.Millisecond, Heartbeat: 100 * time.Millisecond,
		// Generous, so that a loaded machine never drops a live peer; the
		// tests of dead peers set their own.
		HeartbeatTimeout: 10 * time.Second}
	if tune != nil {
		tune(&cfg)
	}
	hub := realtime.New(cfg)
	hub.Run()
	handlers := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Add(-1)
		q := r.URL.Query()
		id, _ := strconv.ParseInt(q.Get("user"), 10, 64)
		tok, _ := strconv.ParseInt(q.Get("token"), 10, 64)
		hub.ServeWS(w, r, tenant, store.Actor{UserID: id, Username: q.Get("name"), Role: store.Role(q.Get("role"))}, tok)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = hub.Shutdown(ctx)
	})
	deadline := time.Now().Add(wait)
	for hub.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("hub not ready")
		}
		time.Sleep(time.Millisecond)
	}
	return &node{hub: hub, url: "ws" + strings.TrimPrefix(srv.URL, "http"), handlers: handlers}
}

type msg = wstest.Msg

// conn is a test session; next, subscribe and closeCode wait up to wait.
type conn struct{ *wstest.Client }

func (n *node) dial(t *testing.T, u user) *conn {
	t.Helper()
	q := fmt.Sprintf("?user=%d&name=%s&role=%s&token=%d", u.id, u.name, u.role, u.token)
	c, _, err := wstest.Dial(t, n.url+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &conn{c}
}

func (c *conn) next(what string, keep func(msg) bool) msg {
	c.T.Helper()
	return c.Next(wait, what, keep)
}

func (c *conn) subscribe(room string, since *int64) msg {
	c.T.Helper()
	return c.Subscribe(room, since)
}

func (c *conn) events(room string, n int) []msg {
	c.T.Helper()
	return c.Events(room, n, wait)
}

func (c *conn) closeCode() int {
	c.T.Helper()
	return c.CloseCode(wait)
}

func assertSeqs(t *testing.T, evs []msg, from int64) {
	t.Helper()
	for i, e := range evs {
		if e.Seq != from+int64(i) {
			t.Fatalf("event %d has seq %d, want %d: %s", i, e.Seq, from+int64(i), e.Raw)
		}
	}
}

func has(es []wstest.PresenceEntry, name string) bool {
	for _, e := range es {
		if e.User.Username == name {
			return true
		}
	}
	return false
}

const room = "post:1"

// TestFanOutInOrder: every subscriber gets every event once, in seq order;
// members get hidden objects redacted, moderators in full.
func TestFanOutInOrder(t *testing.T) {
	s := newSetup(t, ann, moe)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n := s.start(t, nil)
	member, mod := n.dial(t, ann), n.dial(t, moe)
	member.subscribe(room, nil)
	mod.subscribe(room, nil)

	const count = 50
	for i := range count {
		s.event(room, "comment.created", fmt.Sprintf(`{"id":"%d","body":"secret %d"}`, i+10, i), i%5 == 0, true)
	}
	for name, c := range map[string]*conn{"member": member, "moderator": mod} {
		evs := c.events(room, count)
		assertSeqs(t, evs, 2)
		for i, e := range evs {
			secret := strings.Contains(string(e.Data), "secret")
			if hidden := i%5 == 0; hidden && name == "member" && secret {
				t.Fatalf("member sees a hidden comment: %s", e.Raw)
			} else if !secret && (!hidden || name == "moderator") {
				t.Fatalf("%s: event %d lost its body: %s", name, i, e.Raw)
			}
		}
	}
}

// TestGapFilledFromHistory: a doorbell announces only the latest seq; the
// hub reads what came before it from History, and a resume with since
// replays exactly what was missed, then carries on live.
func TestGapFilledFromHistory(t *testing.T) {
	s := newSetup(t, ann, bob)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n := s.start(t, nil)
	live := n.dial(t, ann)
	live.subscribe(room, nil)

	for i := range 3 {
		s.event(room, "comment.created", fmt.Sprintf(`{"id":"%d"}`, i+10), false, false)
	}
	s.event(room, "comment.created", `{"id":"13"}`, false, true)
	assertSeqs(t, live.events(room, 4), 2)

	late := n.dial(t, bob)
	since := int64(3)
	if sub := late.subscribe(room, &since); sub.Seq != 5 {
		t.Fatalf("subscribed at seq %d, want 5", sub.Seq)
	}
	s.event(room, "comment.created", `{"id":"14"}`, false, true)
	assertSeqs(t, late.events(room, 3), 4)
}

// TestSinceOlderThanHistoryResets: a since that history no longer reaches
// gets a reset instead of a replay with a hole.
func TestSinceOlderThanHistoryResets(t *testing.T) {
	s := newSetup(t, ann)
	for i := range 10 {
		s.event(room, "comment.created", fmt.Sprintf(`{"id":"%d"}`, i), false, false)
	}
	s.hist.Prune(tenant.ID, room, 5) // keeps 6..10
	c := s.start(t, nil).dial(t, ann)
	since := int64(2)
	c.subscribe(room, &since)
	if m := c.next("reset", func(m msg) bool { return m.Op == "reset" || m.Op == "event" }); m.Op != "reset" || m.Seq != 10 {
		t.Fatalf("got %s, want a reset at seq 10", m.Raw)
	}
}

// TestPresenceAcrossHubs: two hubs on one bus show each other's users;
// a user who leaves, and every user of a hub that shuts down, leave the
// other's view.
func TestPresenceAcrossHubs(t *testing.T) {
	s := newSetup(t, ann, bob, dave)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	a, b := s.start(t, nil), s.start(t, nil)

	onA := a.dial(t, ann)
	onA.subscribe(room, nil)
	onB := b.dial(t, bob)
	onB.subscribe(room, nil)
	onA.next("bob joins from B", func(m msg) bool { return m.Op == "presence" && has(m.Joins, "bob") })
	onB.next("ann in B's view", func(m msg) bool {
		return m.Op == "presence" && (has(m.State, "ann") || has(m.Joins, "ann"))
	})

	_ = onB.Conn.Close()
	onA.next("bob leaves", func(m msg) bool { return m.Op == "presence" && has(m.Leaves, "bob") })

	daveOnB := b.dial(t, dave)
	daveOnB.subscribe(room, nil)
	onA.next("dave joins from B", func(m msg) bool { return m.Op == "presence" && has(m.Joins, "dave") })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	onA.next("dave leaves with B", func(m msg) bool { return m.Op == "presence" && has(m.Leaves, "dave") })
}

// TestTypingThrottled: a user typing in bursts is relayed once per
// interval, to the room's other sessions here and on the other hubs.
func TestTypingThrottled(t *testing.T) {
	s := newSetup(t, ann, bob, dave)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	s.event("post:2", "post.created", `{"id":"2"}`, false, false)
	tune := func(c *realtime.Config) { c.TypingInterval = time.Hour }
	a, b := s.start(t, tune), s.start(t, tune)
	local, remote := a.dial(t, ann), b.dial(t, ann)
	typist, other := a.dial(t, bob), a.dial(t, dave)
	for _, c := range []*conn{local, remote, typist, other} {
		c.subscribe(room, nil)
	}

	for range 5 {
		typist.Send(map[string]string{"op": "typing", "room": room})
	}
	// The typist's session handles its messages in order: once it has
	// answered this, all five were seen, and the one relay went out.
	typist.subscribe("post:2", nil)
	other.Send(map[string]string{"op": "typing", "room": room})

	isTyping := func(m msg) bool { return m.Op == "typing" }
	if m := local.next("bob typing", isTyping); m.User == nil || m.User.Username != "bob" {
		t.Fatalf("first typing = %s, want bob's", m.Raw)
	}
	if m := local.next("dave typing", isTyping); m.User == nil || m.User.Username != "dave" {
		t.Fatalf("second typing = %s, want dave's: bob's burst was relayed more than once", m.Raw)
	}
	if m := remote.next("bob typing from A", isTyping); m.User == nil {
		t.Fatalf("typing on B = %s", m.Raw)
	}
}

// TestControlClosesSessions: a control command on the bus closes the
// sessions it names, with API.md's codes, on every hub.
func TestControlClosesSessions(t *testing.T) {
	s := newSetup(t, ann, bob, moe, dave)
	a, b := s.start(t, nil), s.start(t, nil)
	banned, revoked, refreshed, bystander := a.dial(t, ann), b.dial(t, bob), a.dial(t, moe), b.dial(t, dave)
	for _, c := range []*conn{banned, revoked, refreshed, bystander} {
		c.subscribe("tenant", nil)
	}
	ctx := context.Background()
	for _, c := range []store.Control{
		{Kind: store.ControlBan, TenantID: tenant.ID + 1, ID: dave.id}, // another tenant's dave
		{Kind: store.ControlBan, TenantID: tenant.ID, ID: ann.id},
		{Kind: store.ControlRevoke, TenantID: tenant.ID, ID: bob.token},
		{Kind: store.ControlRefresh, TenantID: tenant.ID, ID: moe.id},
	} {
		if err := s.bus.PublishControl(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		c    *conn
		code int
	}{
		"banned":    {banned, websocket.ClosePolicyViolation},
		"revoked":   {revoked, websocket.ClosePolicyViolation},
		"refreshed": {refreshed, websocket.CloseGoingAway},
	} {
		if code := tc.c.closeCode(); code != tc.code {
			t.Errorf("%s: close code %d, want %d", name, code, tc.code)
		}
	}
	// Each hub handles the bus in order: the other tenant's ban came
	// first, and left this tenant's dave alone.
	bystander.subscribe("tenant", nil)
}

// TestReconnectRechecksStanding: control commands sent while a hub was
// not connected are lost; when it reconnects it checks every session
// against History and closes those whose standing changed before it
// delivers what it missed.
func TestReconnectRechecksStanding(t *testing.T) {
	s := newSetup(t, ann, bob, moe, dave)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n := s.start(t, nil)
	conns := map[user]*conn{}
	for _, u := range []user{ann, bob, moe, dave} {
		conns[u] = n.dial(t, u)
		conns[u].subscribe(room, nil)
	}

	// What happened while the hub was away, of which no message reaches it.
	s.hist.SetStanding(tenant.ID, moe.token, store.Standing{Valid: true, UserID: moe.id, Role: store.RoleMember})
	s.hist.SetStanding(tenant.ID, bob.token, store.Standing{Valid: true, UserID: bob.id, Role: bob.role, Banned: true})
	s.hist.SetStanding(tenant.ID, dave.token, store.Standing{UserID: dave.id, Role: dave.role})
	s.event(room, "comment.created", `{"id":"9","body":"secret"}`, true, false)
	s.bus.Drop()

	for u, code := range map[user]int{
		moe:  websocket.CloseGoingAway,
		bob:  websocket.ClosePolicyViolation,
		dave: websocket.ClosePolicyViolation,
	} {
		if got := conns[u].closeCode(); got != code {
			t.Errorf("%s: close code %d, want %d", u.name, got, code)
		}
	}
	if ev := conns[ann].events(room, 1)[0]; ev.Seq != 2 || strings.Contains(ev.Raw, "secret") {
		t.Fatalf("ann's catch-up = %s, want seq 2 redacted", ev.Raw)
	}
	for len(conns[moe].Msgs) > 0 {
		if m := <-conns[moe].Msgs; m.Op == "event" {
			t.Fatalf("the demoted moderator got %s", m.Raw)
		}
	}
}

// TestLargeRoomPresence: API.md's "Large rooms" over real sockets and two
// hubs. Past 100 users the room gets counts, never lists; a newcomer's
// state lists 100 with truncated; back at 100 or fewer the room gets the
// whole list again, then joins and leaves one by one.
func TestLargeRoomPresence(t *testing.T) {
	s := newSetup(t)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	// No peer may be dropped for a late heartbeat while 120 sockets come
	// and go on a busy machine: that would make half the room leave.
	tune := func(c *realtime.Config) {
		c.PresenceCountEvery = 100 * time.Millisecond
		c.HeartbeatTimeout = time.Minute
	}
	a, b := s.start(t, tune), s.start(t, tune)
	member := func(id int64) user { return user{id: id, name: fmt.Sprintf("u%d", id), role: store.RoleMember} }

	watcher := a.dial(t, member(1000))
	watcher.subscribe(room, nil)
	if st := watcher.next("state", wstest.Op("presence")); st.Count != 1 || st.Truncated || len(st.State) != 1 {
		t.Fatalf("first state: %s", st.Raw)
	}
	// Every presence message the watcher gets from now on must obey the
	// rule: lists only while at most 100 are present.
	var seen []msg
	watch := func(what string, done func(msg) bool) msg {
		t.Helper()
		return watcher.next(what, func(m msg) bool {
			if m.Op != "presence" {
				return false
			}
			seen = append(seen, m)
			listed := m.Joins != nil || m.Leaves != nil || m.State != nil
			if m.Count > 100 && listed {
				t.Fatalf("a room of %d lists users: %s", m.Count, m.Raw)
			}
			if !strings.Contains(m.Raw, `"count":`) || !strings.Contains(m.Raw, `"anonymous":`) {
				t.Fatalf("presence without count and anonymous: %s", m.Raw)
			}
			return done(m)
		})
	}

	var users []*conn
	for id := int64(1); id <= 120; id++ {
		n := a
		if id%2 == 0 {
			n = b
		}
		c := n.dial(t, member(id))
		c.subscribe(room, nil)
		users = append(users, c)
	}
	m := watch("count 121", func(m msg) bool { return m.Count == 121 })
	if m.Joins != nil || m.Anonymous != 0 {
		t.Fatalf("large room message %s", m.Raw)
	}

	// A newcomer: 100 listed, itself among them, counted.
	late := b.dial(t, member(2000))
	late.subscribe(room, nil)
	st := late.next("late state", wstest.Op("presence"))
	if len(st.State) != 100 || !st.Truncated || st.Count != 122 || !has(st.State, "u2000") {
		t.Fatalf("late state: %d listed, truncated %v, count %d, self listed %v", len(st.State), st.Truncated, st.Count, has(st.State, "u2000"))
	}
	watch("count 122", func(m msg) bool { return m.Count == 122 })
	anon := a.dial(t, user{})
	anon.subscribe(room, nil)
	if st := anon.next("anonymous state", wstest.Op("presence")); st.Anonymous != 1 || st.Count != 122 {
		t.Fatalf("anonymous state: %s", st.Raw)
	}
	watch("count 122, one anonymous", func(m msg) bool { return m.Count == 122 && m.Anonymous == 1 })

	// Down to 100 and below: the whole list, then one by one.
	for _, c := range users[:21] {
		_ = c.Conn.Close()
	}
	_ = late.Conn.Close()
	m = watch("the whole list again", func(m msg) bool { return m.State != nil })
	if len(m.State) != m.Count || m.Count > 100 || m.Truncated {
		t.Fatalf("list after the room shrank: %d listed, count %d, truncated %v", len(m.State), m.Count, m.Truncated)
	}
	view := map[string]bool{}
	for _, e := range m.State {
		view[e.User.Username] = true
	}
	for m.Count != 100 {
		m = watch("count 100", func(msg) bool { return true })
		for _, e := range m.Leaves {
			delete(view, e.User.Username)
		}
	}
	_ = users[21].Conn.Close()
	m = watch("a leave listed", func(m msg) bool { return m.Leaves != nil })
	if len(m.Leaves) != 1 || m.Leaves[0].User.Username != "u22" || m.Count != 99 || m.Anonymous != 1 {
		t.Fatalf("leave at 99: %s", m.Raw)
	}
	delete(view, "u22")
	if len(view) != 99 || !view["u1000"] || view["u1"] {
		t.Fatalf("watcher's view has %d users", len(view))
	}
}

// TestPeerBackFromSilence: an instance dropped for missing heartbeats
// that speaks again (a long pause, a slow bus) is asked for its whole
// view: its users come back instead of staying gone until they move.
func TestPeerBackFromSilence(t *testing.T) {
	s := newSetup(t, ann, bob)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	// A drops B after 100 ms of silence; B beats every 400 ms.
	a := s.start(t, func(c *realtime.Config) { c.Heartbeat, c.HeartbeatTimeout = 20*time.Millisecond, 100*time.Millisecond })
	b := s.start(t, func(c *realtime.Config) { c.Heartbeat = 400 * time.Millisecond })
	watcher := a.dial(t, ann)
	watcher.subscribe(room, nil)
	b.dial(t, bob).subscribe(room, nil)
	isPresence := func(m msg) bool { return m.Op == "presence" }
	joined := func(m msg) bool { return isPresence(m) && (has(m.Joins, "bob") || has(m.State, "bob")) }
	watcher.next("bob joins from B", joined)
	watcher.next("bob dropped with silent B", func(m msg) bool { return isPresence(m) && has(m.Leaves, "bob") })
	watcher.next("bob back with B's next heartbeat", joined)
}

// TestUpgradeReturnsTheHandler: once a connection is upgraded the HTTP
// handler returns (its goroutine would otherwise keep the HTTP server's
// call chain, buffers and request alive for the session's lifetime), and
// the session lives on; an upgrade the WebSocket library refuses is
// still answered through the handler.
func TestUpgradeReturnsTheHandler(t *testing.T) {
	s := newSetup(t, ann, bob)
	s.event(room, "post.created", `{"id":"1"}`, false, false)
	n := s.start(t, nil)
	a, b := n.dial(t, ann), n.dial(t, bob)
	a.subscribe(room, nil)
	b.subscribe(room, nil)
	if h := n.handlers.Load(); h != 0 {
		t.Fatalf("%d HTTP handlers still running for two open sessions", h)
	}
	s.event(room, "comment.created", comment(7, "still live"), false, true)
	for _, c := range []*conn{a, b} {
		if ev := c.events(room, 1)[0]; !strings.Contains(ev.Raw, "still live") {
			t.Fatalf("after the handler returned: %s", ev.Raw)
		}
	}

	// A handshake without its key: refused by the upgrade, 400.
	req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(n.url, "ws")+"/?user=1&name=ann", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without a key: %d, want 400", resp.StatusCode)
	}
}
