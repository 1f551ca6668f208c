package realtime_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"agora/api/apitest"
	"agora/realtime"
	"agora/realtime/wstest"
	"agora/store"
)

// The protocol tests check API.md's "Realtime" section message by message:
// exact shapes, every error, and that the connection stays usable after
// the errors that are not fatal.

const wait = 5 * time.Second

// exactKeys fails unless raw is a JSON object with exactly these keys.
func exactKeys(t testing.TB, raw string, want ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", raw, err)
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys of %s = %v, want %v", raw, got, want)
	}
}

// inRoom keeps the messages of one room.
func inRoom(room string) func(msg) bool { return func(m msg) bool { return m.Room == room } }

// errorFrame waits for the next error frame and checks its shape and code.
func (c *wsClient) errorFrame(code, room string) msg {
	c.t.Helper()
	m := c.next(wait, "error "+code, op("error"))
	if m.Code != code || m.Message == "" || m.Room != room {
		c.t.Fatalf("error frame = %s, want code %q, a message and room %q", m.Raw, code, room)
	}
	if room == "" {
		exactKeys(c.t, m.Raw, "op", "code", "message")
	} else {
		exactKeys(c.t, m.Raw, "op", "code", "message", "room")
	}
	return m
}

// quiet fails if a message matching bad arrives within d. Only for
// proving an absence; presence of messages is always awaited.
func (c *wsClient) quiet(d time.Duration, what string, bad func(msg) bool) {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-c.msgs:
			if bad(m) {
				c.t.Fatalf("unexpected %s: %s", what, m.Raw)
			}
		case <-timer.C:
			return
		}
	}
}

// isOpen reports whether the server has not closed the connection.
func (c *wsClient) isOpen() bool {
	select {
	case <-c.closed:
		return false
	default:
		return true
	}
}

// sendRaw writes one frame and returns the error, for tests that expect
// the server to hang up.
func (c *wsClient) sendRaw(typ int, b []byte) error { return c.conn.WriteMessage(typ, b) }

// dialPath opens a WebSocket to base+path (path may carry a query).
func dialPath(t testing.TB, base, path string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	wc, resp, err := wstest.Dial(t, "ws"+strings.TrimPrefix(base, "http")+path, header)
	if err != nil {
		return nil, resp, err
	}
	return &wsClient{Client: wc, t: t, conn: wc.Conn, msgs: wc.Msgs, closed: wc.Closed}, resp, nil
}

// refused checks a dial that must fail before the upgrade with status and
// the API's error envelope carrying code.
func refused(t testing.TB, what string, resp *http.Response, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: upgraded, want %d", what, status)
	}
	if resp == nil {
		t.Fatalf("%s: %v, want HTTP %d", what, err, status)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want JSON", what, ct)
	}
	if e := apitest.DecodeError(t, body); e.Error.Code != code {
		t.Fatalf("%s: error code %q, want %q: %s", what, e.Error.Code, code, body)
	}
}

func ticket(t testing.TB, s *instance, tenant, token string) string {
	t.Helper()
	var out struct {
		Ticket    string    `json:"ticket"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	s.MustDo(t, http.MethodPost, apitest.TenantPath(tenant, "ws/ticket"), token, nil, http.StatusOK, &out)
	if out.Ticket == "" {
		t.Fatal("empty ticket")
	}
	if ttl := time.Until(out.ExpiresAt); ttl <= 0 || ttl > 61*time.Second {
		t.Fatalf("ticket expires in %v, want within 60 s", ttl)
	}
	return out.Ticket
}

func login(t testing.TB, s *instance, tenant, username string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	s.MustDo(t, http.MethodPost, apitest.TenantPath(tenant, "auth/login"), "",
		map[string]string{"username": username, "password": apitest.Password}, http.StatusOK, &out)
	return out.Token
}

// subscribeOK sends a subscribe and checks the answer's exact shape and
// order: subscribed, then the room's presence state. It returns both.
func (c *wsClient) subscribeOK(room string, since *int64) (sub, state msg) {
	c.t.Helper()
	return c.subscribeAnswer(room, since, false)
}

// resubscribeOK is subscribeOK for a room the connection has: presence
// changes sent before the new subscribed are expected there.
func (c *wsClient) resubscribeOK(room string, since *int64) (sub, state msg) {
	c.t.Helper()
	return c.subscribeAnswer(room, since, true)
}

func (c *wsClient) subscribeAnswer(room string, since *int64, again bool) (sub, state msg) {
	c.t.Helper()
	req := map[string]any{"op": "subscribe", "room": room}
	if since != nil {
		req["since"] = *since
	}
	c.send(req)
	sub = c.next(wait, "subscribed "+room, func(m msg) bool {
		if m.Op == "error" {
			c.t.Fatalf("subscribe %s: %s", room, m.Raw)
		}
		if again && m.Op == "presence" && m.State == nil {
			return false
		}
		return m.Room == room
	})
	if sub.Op != "subscribed" {
		c.t.Fatalf("first message for %s after subscribe = %s, want subscribed", room, sub.Raw)
	}
	if want := fmt.Sprintf(`{"op":"subscribed","room":%q,"seq":%d}`, room, sub.Seq); sub.Raw != want {
		c.t.Fatalf("subscribed = %s, want %s", sub.Raw, want)
	}
	state = c.next(wait, "presence state "+room, inRoom(room))
	if state.Op != "presence" {
		c.t.Fatalf("message after subscribed = %s, want the presence state", state.Raw)
	}
	exactKeys(c.t, state.Raw, "op", "room", "state", "count", "anonymous")
	return sub, state
}

func hasUser(state []presenceEntry, id int64) bool {
	for _, e := range state {
		if e.User.ID == id {
			return !e.Since.IsZero() && e.User.Username != ""
		}
	}
	return false
}

func TestProtocol(t *testing.T) {
	s := startInstance(t, "", func(c *realtime.Config) {
		// Roomy inbound limits: the flood tests have their own instance.
		c.InboundRate, c.InboundBurst = 10000, 10000
		c.TypingInterval = 400 * time.Millisecond
	})
	f := newForum(t, s, "acme")
	other := newForum(t, s, "globex")
	var adminID int64
	{
		var me store.User
		s.MustDo(t, http.MethodGet, apitest.TenantPath("acme", "me"), f.admin, nil, http.StatusOK, &me)
		adminID = me.ID
	}
	memberUser, member := s.Register(t, "acme", "mia")
	postRoom := store.PostRoom(f.post.ID)
	boardRoom := store.BoardRoom(f.board.ID)

	t.Run("SubscribeEachRoomKind", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", f.admin)
		for _, room := range []string{"tenant", boardRoom, postRoom} {
			sub, state := c.subscribeOK(room, nil)
			// board.created, post.created and post.created are each the
			// room's only event so far.
			if sub.Seq != 1 {
				t.Fatalf("%s: seq %d, want the room's latest, 1", room, sub.Seq)
			}
			if !hasUser(state.State, adminID) || state.Anonymous != 0 {
				t.Fatalf("%s: presence state %s, want the admin and no anonymous reader", room, state.Raw)
			}
			for _, e := range state.State {
				b, _ := json.Marshal(e)
				exactKeys(t, string(b), "user", "since")
			}
			if !strings.Contains(state.Raw, fmt.Sprintf(`"user":{"id":"%d","username":"admin_acme"}`, adminID)) {
				t.Fatalf("presence user shape: %s", state.Raw)
			}
		}
		// A new event comes with the room's next seq, in the documented
		// shape.
		sub, _ := mustDial(t, s.URL, "acme", "").subscribeOK("tenant", nil)
		s.CreateBoard(t, "acme", f.admin, "Second")
		ev := c.events("tenant", 1, wait)[0]
		if ev.Seq != sub.Seq+1 || ev.Type != "board.created" {
			t.Fatalf("event = %s, want board.created with seq %d", ev.Raw, sub.Seq+1)
		}
		exactKeys(t, ev.Raw, "op", "room", "seq", "type", "data", "at")
		if _, err := time.Parse(time.RFC3339Nano, mustString(t, ev.Raw, "at")); err != nil {
			t.Fatalf("at: %v", err)
		}
	})

	t.Run("ResubscribeResyncs", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", member)
		sub, _ := c.subscribeOK(postRoom, nil)
		base := sub.Seq
		s.CreateComment(t, "acme", f.admin, f.post.ID, "before resync")
		if ev := c.events(postRoom, 1, wait)[0]; ev.Seq != base+1 {
			t.Fatalf("live event seq %d, want %d", ev.Seq, base+1)
		}

		// Again, with since: subscribed, presence state, the replay.
		sub, state := c.resubscribeOK(postRoom, &base)
		if sub.Seq != base+1 || !hasUser(state.State, memberUser.ID) {
			t.Fatalf("resync: %s then %s", sub.Raw, state.Raw)
		}
		if ev := c.events(postRoom, 1, wait)[0]; ev.Seq != base+1 || ev.Type != "comment.created" {
			t.Fatalf("replayed %s, want seq %d", ev.Raw, base+1)
		}
		// Again without since: no replay.
		if sub, _ = c.resubscribeOK(postRoom, nil); sub.Seq != base+1 {
			t.Fatalf("resubscribe seq %d, want %d", sub.Seq, base+1)
		}
		// Live delivery continues once per event: the session is in the
		// room once however often it subscribed.
		s.CreateComment(t, "acme", f.admin, f.post.ID, "after resync 1")
		s.CreateComment(t, "acme", f.admin, f.post.ID, "after resync 2")
		got := seqs(c.events(postRoom, 2, wait))
		if !slices.Equal(got, []int64{base + 2, base + 3}) {
			t.Fatalf("live seqs after resync = %v, want [%d %d]", got, base+2, base+3)
		}
		c.quiet(150*time.Millisecond, "duplicate event", op("event"))
	})

	t.Run("Unsubscribe", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		witness := mustDial(t, s.URL, "acme", "")
		c.subscribeOK(boardRoom, nil)
		witness.subscribeOK(boardRoom, nil)
		c.send(`{"op":"unsubscribe","room":"` + boardRoom + `"}`)
		// The leave shows in presence: one anonymous reader left.
		witness.next(wait, "presence with one anonymous reader", func(m msg) bool {
			return m.Op == "presence" && m.Room == boardRoom && m.State == nil && m.Anonymous == 1
		})
		s.CreatePost(t, "acme", f.admin, f.board.ID, "Unheard", "body")
		witness.events(boardRoom, 1, wait)
		c.quiet(150*time.Millisecond, "event after unsubscribe", op("event"))

		// Not subscribed (any more, or ever): an error naming the room.
		c.send(`{"op":"unsubscribe","room":"` + boardRoom + `"}`)
		c.errorFrame("bad_request", boardRoom)
		c.send(`{"op":"unsubscribe","room":"tenant"}`)
		c.errorFrame("bad_request", "tenant")
		c.subscribeOK(boardRoom, nil)
	})

	// The view a client builds from the state and the joins and leaves
	// after it ends up true, even when others come and go within one flush
	// window around its subscribe.
	t.Run("PresenceViewConverges", func(t *testing.T) {
		p := s.CreatePost(t, "acme", f.admin, f.board.ID, "Presence", "body")
		room := store.PostRoom(p.ID)
		samUser, sam := s.Register(t, "acme", "sam")
		anon := mustDial(t, s.URL, "acme", "")
		anon.subscribeOK(room, nil)
		anon.next(wait, "own presence flushed", func(m msg) bool {
			return m.Op == "presence" && m.State == nil && m.Anonymous == 1
		})

		mia := mustDial(t, s.URL, "acme", member)
		anon2 := mustDial(t, s.URL, "acme", "")
		watcher := mustDial(t, s.URL, "acme", f.admin)
		mia.subscribeOK(room, nil)
		anon2.subscribeOK(room, nil)
		_, state := watcher.subscribeOK(room, nil)
		for _, c := range []*wsClient{mia, anon2} {
			c.send(`{"op":"unsubscribe","room":"` + room + `"}`)
			// The error for a second one proves the first was handled.
			c.send(`{"op":"unsubscribe","room":"` + room + `"}`)
			c.errorFrame("bad_request", room)
		}

		view := map[int64]bool{}
		for _, e := range state.State {
			view[e.User.ID] = true
		}
		anonymous := state.Anonymous
		// sam's join is flushed after mia and anon2 left, so once it is
		// seen every earlier change has been sent too.
		mustDial(t, s.URL, "acme", sam).subscribeOK(room, nil)
		for !view[samUser.ID] {
			m := watcher.next(wait, "sam's join", func(m msg) bool { return m.Op == "presence" && m.Room == room })
			for _, e := range m.Joins {
				view[e.User.ID] = true
			}
			for _, e := range m.Leaves {
				delete(view, e.User.ID)
			}
			anonymous = m.Anonymous
		}
		if len(view) != 2 || !view[adminID] || anonymous != 1 {
			t.Fatalf("watcher's view: users %v, %d anonymous; want admin %d and sam %d, 1 anonymous", view, anonymous, adminID, samUser.ID)
		}
	})

	t.Run("Typing", func(t *testing.T) {
		tab1 := mustDial(t, s.URL, "acme", f.admin)
		tab2 := mustDial(t, s.URL, "acme", f.admin)
		mia := mustDial(t, s.URL, "acme", member)
		anon := mustDial(t, s.URL, "acme", "")
		for _, c := range []*wsClient{tab1, tab2, mia, anon} {
			c.subscribeOK(postRoom, nil)
		}
		typing := `{"op":"typing","room":"` + postRoom + `"}`
		adminTyping := fmt.Sprintf(`{"op":"typing","room":%q,"user":{"id":"%d","username":"admin_acme"}}`, postRoom, adminID)
		miaTyping := fmt.Sprintf(`{"op":"typing","room":%q,"user":{"id":"%d","username":"mia"}}`, postRoom, memberUser.ID)

		first := time.Now()
		tab1.send(typing)
		for _, c := range []*wsClient{mia, anon} {
			if m := c.next(wait, "typing", op("typing")); m.Raw != adminTyping {
				t.Fatalf("typing relay = %s, want %s", m.Raw, adminTyping)
			}
		}
		// Within the interval a second typing is swallowed. The error
		// frame after it proves the server has handled both.
		tab1.send(typing)
		tab1.send(`{"op":"unsubscribe","room":"tenant"}`)
		tab1.errorFrame("bad_request", "tenant")
		// Mia types: her relay goes to everyone but her, and it is the
		// next typing each sees (the admin's second one never went out;
		// the admin's own tabs never got the first).
		mia.send(typing)
		for _, c := range []*wsClient{tab1, tab2, anon} {
			if m := c.next(wait, "typing", op("typing")); m.Raw != miaTyping {
				t.Fatalf("next typing = %s, want %s", m.Raw, miaTyping)
			}
		}
		mia.send(`{"op":"unsubscribe","room":"tenant"}`)
		if m := mia.next(wait, "error", func(m msg) bool { return m.Op == "error" || m.Op == "typing" }); m.Op != "error" {
			t.Fatalf("typist got %s", m.Raw)
		}
		// After the interval the admin's typing is relayed again.
		for {
			tab1.send(typing)
			select {
			case m := <-mia.msgs:
				if m.Op != "typing" {
					continue
				}
				if m.Raw != adminTyping {
					t.Fatalf("typing = %s", m.Raw)
				}
				if since := time.Since(first); since < 400*time.Millisecond {
					t.Fatalf("second relay %v after the first, want >= the 400ms interval", since)
				}
			case <-time.After(50 * time.Millisecond):
				if time.Since(first) > wait {
					t.Fatal("typing never relayed again")
				}
				continue
			}
			break
		}

		anon.send(typing)
		anon.errorFrame("unauthorized", postRoom)
		mia.send(`{"op":"typing","room":"tenant"}`)
		mia.errorFrame("bad_request", "tenant")
	})

	t.Run("Ping", func(t *testing.T) {
		for _, token := range []string{f.admin, ""} {
			c := mustDial(t, s.URL, "acme", token)
			c.subscribeOK("tenant", nil)
			for range 3 {
				c.send(`{"op":"ping"}`)
				if m := c.next(wait, "pong", func(m msg) bool { return m.Op != "presence" }); m.Raw != `{"op":"pong"}` {
					t.Fatalf("answer to ping: %s, want exactly {\"op\":\"pong\"}", m.Raw)
				}
			}
			// A ping changes nothing else: the subscription still works.
			s.CreateBoard(t, "acme", f.admin, "After the pings "+fmt.Sprint(token != ""))
			if m := c.next(wait, "board.created", op("event")); m.Type != "board.created" {
				t.Fatalf("after the pings: %s", m.Raw)
			}
		}
	})

	t.Run("BadRequests", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", f.admin)
		for _, tc := range []struct{ frame, room string }{
			{`not json`, ""},
			{`{`, ""},
			{`[]`, ""},
			{`"subscribe"`, ""},
			{`null`, ""},
			{`{}`, ""},
			{`{"op":"dance","room":"tenant"}`, "tenant"},
			{`{"op":"subscribe"}`, ""},
			{`{"op":"subscribe","room":""}`, ""},
			{`{"op":"subscribe","room":"lobby"}`, "lobby"},
			{`{"op":"subscribe","room":"board:0"}`, "board:0"},
			{`{"op":"subscribe","room":"post:01"}`, "post:01"},
			{`{"op":"subscribe","room":"post:x"}`, "post:x"},
			{`{"op":"subscribe","room":"tenant","since":-1}`, "tenant"},
			{`{"op":"subscribe","room":"tenant","since":"1"}`, "tenant"},
			{`{"op":"unsubscribe","room":"tenant","since":0}`, "tenant"},
			{`{"op":"typing","room":"tenant","since":0}`, "tenant"},
			{`{"op":"ping","room":"tenant"}`, "tenant"},
			{`{"op":"ping","since":3}`, ""},
			{`{"op":"subscribe","room":"tenant"}{"op":"subscribe","room":"tenant"}`, ""},
			{`{"op":"subscribe","room":"tenant"}` + "\n" + `{"op":"typing","room":"tenant"}`, ""},
			{`{"op":"subscribe","room":"tenant"}}`, ""},
		} {
			c.send(tc.frame)
			m := c.next(wait, "answer to "+tc.frame, func(m msg) bool { return m.Op != "presence" })
			if m.Op != "error" || m.Code != "bad_request" || m.Message == "" {
				t.Fatalf("%s: got %s, want a bad_request error frame", tc.frame, m.Raw)
			}
			if m.Room != "" && m.Room != tc.room {
				t.Fatalf("%s: error names room %q", tc.frame, m.Room)
			}
		}
		if err := c.sendRaw(websocket.BinaryMessage, []byte(`{"op":"subscribe","room":"tenant"}`)); err != nil {
			t.Fatal(err)
		}
		c.errorFrame("bad_request", "")
		// Still open and usable.
		c.subscribeOK("tenant", nil)
	})

	t.Run("NotFound", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", f.admin)
		for _, room := range []string{
			store.BoardRoom(other.board.ID), store.PostRoom(other.post.ID), // another tenant's
			"board:999999999", "post:999999999", // nobody's
		} {
			c.send(map[string]any{"op": "subscribe", "room": room, "since": 0})
			c.errorFrame("not_found", room)
		}
		// Nothing of the other tenant leaks in afterwards.
		s.CreateComment(t, "globex", other.admin, other.post.ID, "private")
		c.subscribeOK(postRoom, nil)
		c.quiet(150*time.Millisecond, "event of another tenant", op("event"))
	})

	t.Run("TooManyRooms", func(t *testing.T) {
		rooms := []string{"tenant", boardRoom, postRoom}
		for len(rooms) < 101 {
			b := s.CreateBoard(t, "acme", f.admin, fmt.Sprintf("Room %d", len(rooms)))
			rooms = append(rooms, store.BoardRoom(b.ID))
		}
		// Pipelined: the presence flushes of a hundred rooms land on the
		// session while it subscribes; they must not close a client that
		// reads as slow (1013).
		c := mustDial(t, s.URL, "acme", "")
		for _, room := range rooms[:100] {
			c.send(map[string]any{"op": "subscribe", "room": room})
		}
		for got := 0; got < 100; {
			select {
			case m := <-c.msgs:
				if m.Op == "error" {
					t.Fatalf("subscribe within the limit: %s", m.Raw)
				}
				if m.Op == "subscribed" {
					got++
				}
			case <-time.After(wait):
				t.Fatalf("%d of 100 subscribed, then nothing; closed with %d", got, c.closeCode(wait))
			}
		}
		c.send(map[string]any{"op": "subscribe", "room": rooms[100]})
		c.errorFrame("bad_request", rooms[100])
		// Re-syncing a room it has is not a new room.
		c.resubscribeOK(rooms[50], nil)
		c.send(map[string]any{"op": "unsubscribe", "room": rooms[0]})
		c.subscribeOK(rooms[100], nil)
		if !c.isOpen() {
			t.Fatalf("closed with %d", c.closeCode(wait))
		}
	})

	t.Run("MessageTooBig", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		req := `{"op":"subscribe","room":"tenant"}`
		exact := req + strings.Repeat(" ", 4096-len(req)) // 4 KiB is allowed
		c.send(exact)
		c.next(wait, "subscribed", op("subscribed"))
		_ = c.sendRaw(websocket.TextMessage, []byte(exact+" "))
		if code := c.closeCode(wait); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})

	t.Run("InvalidUTF8", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		_ = c.sendRaw(websocket.TextMessage, []byte("{\"op\":\"subscribe\",\"room\":\"tenant\xff\"}"))
		if code := c.closeCode(wait); code != websocket.CloseInvalidFramePayloadData {
			t.Fatalf("close code %d, want 1007", code)
		}
	})
}

func mustString(t testing.TB, raw, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("%s: %q is not a string", raw, key)
	}
	return s
}

func TestInboundFlood(t *testing.T) {
	s := startInstance(t, "", func(c *realtime.Config) {
		c.InboundRate, c.InboundBurst, c.FloodClose = 5, 5, 25
	})
	newForum(t, s, "acme")
	notSubscribed := []byte(`{"op":"unsubscribe","room":"tenant"}`) // one error frame each

	t.Run("RateLimited", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		const n = 20
		for range n {
			c.send(notSubscribed)
		}
		limited := 0
		for range n {
			m := c.next(wait, "error frame", op("error"))
			switch m.Code {
			case "rate_limited":
				exactKeys(t, m.Raw, "op", "code", "message")
				limited++
			case "bad_request":
			default:
				t.Fatalf("unexpected %s", m.Raw)
			}
		}
		// A burst of 5 passes; refills at 5/s cannot cover the rest.
		if limited < 10 || limited > n-5 {
			t.Fatalf("%d of %d messages rate limited, want 10..%d", limited, n, n-5)
		}
		if !c.isOpen() {
			t.Fatal("a short flood closed the connection")
		}
		// Usable again once the bucket refills.
		deadline := time.Now().Add(wait)
		for {
			c.send(`{"op":"subscribe","room":"tenant"}`)
			m := c.next(wait, "answer", func(m msg) bool { return m.Op == "subscribed" || m.Op == "error" })
			if m.Op == "subscribed" {
				break
			}
			if m.Code != "rate_limited" || time.Now().After(deadline) {
				t.Fatalf("subscribe after a flood: %s", m.Raw)
			}
			time.Sleep(100 * time.Millisecond) // the bucket refills in time, not on an event
		}
	})

	// Pings are client messages like any other: a flood of them is rate
	// limited (the rate_limited frames instead of pongs), then closed.
	t.Run("PingsCount", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		const n = 20
		for range n {
			c.send(`{"op":"ping"}`)
		}
		pongs, limited := 0, 0
		for range n {
			m := c.next(wait, "pong or error", func(m msg) bool { return m.Op == "pong" || m.Op == "error" })
			switch {
			case m.Op == "pong":
				pongs++
			case m.Code == "rate_limited":
				limited++
			default:
				t.Fatalf("unexpected %s", m.Raw)
			}
		}
		if pongs < 5 || limited < 10 {
			t.Fatalf("%d pongs and %d rate_limited for %d pings, want the burst of 5 answered and at least 10 limited", pongs, limited, n)
		}
		deadline := time.Now().Add(wait)
		for c.sendRaw(websocket.TextMessage, []byte(`{"op":"ping"}`)) == nil && c.isOpen() && time.Now().Before(deadline) {
		}
		if code := c.closeCode(wait); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d after a ping flood, want 1008", code)
		}
	})

	t.Run("SustainedFloodCloses", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		deadline := time.Now().Add(wait)
		for c.sendRaw(websocket.TextMessage, notSubscribed) == nil && c.isOpen() && time.Now().Before(deadline) {
		}
		// The close frame jumps the send queue, so the rate_limited frames
		// queued just before it may or may not make it out first.
		if code := c.closeCode(wait); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want 1008", code)
		}
	})
}

func TestUpgradeAuth(t *testing.T) {
	s := startInstance(t, "", func(c *realtime.Config) {
		c.AllowedOrigins = []string{"https://forum.example.com"}
	})
	f := newForum(t, s, "acme")
	newForum(t, s, "globex")
	alice, aliceToken := s.Register(t, "acme", "alice")
	room := store.PostRoom(f.post.ID)
	wsPath := "/api/v1/t/acme/ws"

	t.Run("BadBearer", func(t *testing.T) {
		_, resp, err := dial(t, s.URL, "acme", "not-a-token", nil)
		refused(t, "bad bearer", resp, err, http.StatusUnauthorized, "unauthorized")
		h := http.Header{"Authorization": {"Basic YTpi"}}
		_, resp, err = dialPath(t, s.URL, wsPath, h)
		refused(t, "basic auth", resp, err, http.StatusUnauthorized, "unauthorized")
	})

	t.Run("UnknownTenant", func(t *testing.T) {
		_, resp, err := dial(t, s.URL, "nope", "", nil)
		refused(t, "unknown tenant", resp, err, http.StatusNotFound, "not_found")
	})

	t.Run("PlainGET", func(t *testing.T) {
		r := s.Call(t, apitest.Request{Method: http.MethodGet, Path: wsPath, Token: aliceToken})
		if r.Status != http.StatusBadRequest || apitest.DecodeError(t, r.Body).Error.Code != "bad_request" {
			t.Fatalf("plain GET: %d %s", r.Status, r.Body)
		}
	})

	t.Run("Origin", func(t *testing.T) {
		for _, o := range []string{"https://evil.example", "http://127.0.0.1:1", "null", "https://forum.example.com.evil.example"} {
			_, resp, err := dial(t, s.URL, "acme", aliceToken, http.Header{"Origin": {o}})
			refused(t, "Origin "+o, resp, err, http.StatusForbidden, "forbidden")
		}
		for _, o := range []string{s.URL, "https://forum.example.com"} {
			c, resp, err := dial(t, s.URL, "acme", aliceToken, http.Header{"Origin": {o}})
			if err != nil {
				t.Fatalf("Origin %s: %v (%v)", o, err, resp)
			}
			c.subscribeOK("tenant", nil)
		}
	})

	t.Run("AnonymousReadOnly", func(t *testing.T) {
		c := mustDial(t, s.URL, "acme", "")
		_, state := c.subscribeOK(room, nil)
		if state.Anonymous < 1 {
			t.Fatalf("presence %s does not count the anonymous reader", state.Raw)
		}
		c.send(`{"op":"typing","room":"` + room + `"}`)
		c.errorFrame("unauthorized", room)
	})

	t.Run("Ticket", func(t *testing.T) {
		if st, _ := s.Do(t, http.MethodPost, apitest.TenantPath("acme", "ws/ticket"), "", nil); st != http.StatusUnauthorized {
			t.Fatalf("anonymous ticket: %d, want 401", st)
		}
		tk := ticket(t, s, "acme", aliceToken)
		c, resp, err := dialPath(t, s.URL, wsPath+"?ticket="+tk, nil)
		if err != nil {
			t.Fatalf("ticket dial: %v (%v)", err, resp)
		}
		// The session is alice's: she is present and may type.
		_, state := c.subscribeOK(room, nil)
		if !hasUser(state.State, alice.ID) {
			t.Fatalf("presence %s lacks the ticket's user", state.Raw)
		}
		witness := mustDial(t, s.URL, "acme", "")
		witness.subscribeOK(room, nil)
		c.send(`{"op":"typing","room":"` + room + `"}`)
		if m := witness.next(wait, "typing", op("typing")); m.User == nil || m.User.ID != alice.ID {
			t.Fatalf("typing = %s", m.Raw)
		}

		_, resp, err = dialPath(t, s.URL, wsPath+"?ticket="+tk, nil)
		refused(t, "used ticket", resp, err, http.StatusUnauthorized, "unauthorized")
		_, resp, err = dialPath(t, s.URL, wsPath+"?ticket=garbage", nil)
		refused(t, "garbage ticket", resp, err, http.StatusUnauthorized, "unauthorized")
		// A ticket is for its tenant only.
		_, resp, err = dialPath(t, s.URL, "/api/v1/t/globex/ws?ticket="+ticket(t, s, "acme", aliceToken), nil)
		refused(t, "ticket of another tenant", resp, err, http.StatusUnauthorized, "unauthorized")
	})

	t.Run("TicketDiesWithItsSession", func(t *testing.T) {
		tok := login(t, s, "acme", "alice")
		tk := ticket(t, s, "acme", tok)
		s.MustDo(t, http.MethodPost, apitest.TenantPath("acme", "auth/logout"), tok, nil, http.StatusNoContent, nil)
		_, resp, err := dialPath(t, s.URL, wsPath+"?ticket="+tk, nil)
		refused(t, "ticket after logout", resp, err, http.StatusUnauthorized, "unauthorized")
	})
}

func TestLogoutClosesThatTokensSessions(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	_, token1 := s.Register(t, "acme", "alice")
	token2 := login(t, s, "acme", "alice")

	bearer := mustDial(t, s.URL, "acme", token1)
	byTicket, resp, err := dialPath(t, s.URL, "/api/v1/t/acme/ws?ticket="+ticket(t, s, "acme", token1), nil)
	if err != nil {
		t.Fatalf("ticket dial: %v (%v)", err, resp)
	}
	otherToken := mustDial(t, s.URL, "acme", token2)
	for _, c := range []*wsClient{bearer, byTicket, otherToken} {
		c.subscribeOK("tenant", nil)
	}

	s.MustDo(t, http.MethodPost, apitest.TenantPath("acme", "auth/logout"), token1, nil, http.StatusNoContent, nil)
	for name, c := range map[string]*wsClient{"bearer": bearer, "ticket": byTicket} {
		if code := c.closeCode(wait); code != websocket.ClosePolicyViolation {
			t.Fatalf("%s session of the revoked token: close %d, want 1008", name, code)
		}
	}
	// The same user's session with another token lives on.
	otherToken.subscribeOK(store.PostRoom(f.post.ID), nil)
	if !otherToken.isOpen() {
		t.Fatal("session of another token was closed")
	}
	_, resp, err = dial(t, s.URL, "acme", token1, nil)
	refused(t, "revoked token", resp, err, http.StatusUnauthorized, "unauthorized")
}

func TestHiddenCommentIsRedactedInReplay(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	modUser, modToken := s.Register(t, "acme", "moe")
	_, member := s.Register(t, "acme", "mia")
	s.MustDo(t, http.MethodPut, apitest.TenantPath("acme", fmt.Sprintf("mod/users/%d/role", modUser.ID)), f.admin,
		map[string]string{"role": "moderator"}, http.StatusOK, nil)
	room := store.PostRoom(f.post.ID)

	const secret = "the words a moderator hid"
	cm := s.CreateComment(t, "acme", member, f.post.ID, secret)
	st, body := s.Do(t, http.MethodPost, apitest.TenantPath("acme", fmt.Sprintf("mod/comments/%d/hide", cm.ID)), modToken, nil)
	if st == http.StatusNotFound {
		t.Skipf("hide route missing: %s", body)
	}
	if st != http.StatusOK {
		t.Fatalf("hide: %d %s", st, body)
	}

	zero := int64(0)
	replay := func(token string) []msg {
		c := mustDial(t, s.URL, "acme", token)
		c.subscribeOK(room, &zero)
		evs := c.events(room, 3, wait) // post.created, comment.created, comment.updated
		assertConsecutive(t, seqs(evs), 1)
		return evs
	}
	for name, token := range map[string]string{"member": member, "anonymous": ""} {
		evs := replay(token)
		for _, ev := range evs {
			if strings.Contains(ev.Raw, secret) {
				t.Fatalf("%s sees hidden text: %s", name, ev.Raw)
			}
		}
		created := evs[1]
		if created.Type != "comment.created" {
			t.Fatalf("%s: second event %s", name, created.Raw)
		}
		var data map[string]any
		_ = json.Unmarshal(created.Data, &data)
		if data["id"] != fmt.Sprint(cm.ID) || data["hidden"] != true || data["body"] != nil || data["author"] != nil {
			t.Fatalf("%s: redacted comment.created data = %s, want id and hidden:true only", name, created.Data)
		}
		if evs[2].Type != "comment.updated" || !strings.Contains(string(evs[2].Data), `"changes":{"hidden":true}`) {
			t.Fatalf("%s: hide event = %s", name, evs[2].Raw)
		}
	}
	for name, token := range map[string]string{"moderator": modToken, "admin": f.admin} {
		evs := replay(token)
		var c store.Comment
		if err := json.Unmarshal(evs[1].Data, &c); err != nil || c.Body != secret || c.ID != cm.ID {
			t.Fatalf("%s: comment.created = %s, want the full comment", name, evs[1].Raw)
		}
	}
}
