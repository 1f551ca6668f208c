package realtime_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"agora/realtime"
	"agora/store"
)

func TestListenerLossLosesNothing(t *testing.T) {
	metrics := realtime.NewMetrics(nil)
	s := startInstance(t, "", func(c *realtime.Config) { c.Metrics = metrics })
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)
	c := mustDial(t, s.URL, "acme", "")
	c.subscribe(room, nil)

	const n = 60
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			s.CreateComment(t, "acme", f.admin, f.post.ID, fmt.Sprintf("c%d", i))
		}
	}()
	// Cut the LISTEN connection while the writes stream in.
	c.events(room, 10, 10*time.Second)
	conn, err := pgx.Connect(context.Background(), s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	err = conn.QueryRow(context.Background(), `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`,
		store.ListenerApplicationName).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener connections (err %v), want 1", killed, err)
	}
	<-done
	rest := c.events(room, n-10, 20*time.Second)
	if got := testutil.ToFloat64(metrics.ListenerReconnects); got < 1 {
		t.Errorf("listener reconnects = %v, want at least 1", got)
	}
	assertConsecutive(t, seqs(rest), 12) // post.created=1, first ten comments 2..11
	waitFor(t, 10*time.Second, "listener back", func() bool { return s.Hub.Ready(context.Background()) == nil })
}

// bulkEvents appends n comment-sized events to a room in one transaction
// and rings the doorbell once, as a burst of writers would, but fast. It
// writes the outbox tables directly: the write path itself has its own
// tests, this one is about fan-out under load.
func bulkEvents(t *testing.T, db *store.DB, tenantID int64, room string, n, bodyBytes int) {
	t.Helper()
	err := db.WithTenant(context.Background(), tenantID, func(tx *store.Tx) error {
		var last int64
		err := tx.QueryRow(context.Background(), `
			WITH r AS (
				UPDATE rooms SET seq = seq + $2 WHERE name = $1 RETURNING seq - $2 AS base, seq
			), e AS (
				INSERT INTO events (tenant_id, room, seq, type, payload)
				SELECT $3, $1, r.base + g, 'comment.created',
				       jsonb_build_object('id', g::text, 'body', repeat('x', $4::int))
				FROM r, generate_series(1, $2::int) g
			)
			SELECT seq FROM r`, room, n, tenantID, bodyBytes).Scan(&last)
		if err != nil {
			return err
		}
		_, err = tx.Exec(context.Background(), `SELECT pg_notify($1, $2)`, store.NotifyChannel,
			fmt.Sprintf("%d %s %d", tenantID, room, last))
		return err
	})
	if err != nil {
		t.Fatalf("bulk events: %v", err)
	}
}

func TestSlowConsumerIsClosedAndResumesFully(t *testing.T) {
	metrics := realtime.NewMetrics(nil)
	s := startInstance(t, "", func(c *realtime.Config) {
		// Room for the fast client, which decodes every event under the
		// race detector, to fall a little behind without being cut off;
		// the slow one has 10 MB coming and reads none of it.
		c.MaxPending = 1 << 20
		c.Metrics = metrics
	})
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)

	fast := mustDial(t, s.URL, "acme", "")
	fast.subscribe(room, nil)

	// The slow client has a tiny receive window and does not read.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		conn, err := nd.DialContext(ctx, network, addr)
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/t/acme/ws"
	slow, _, err := d.Dial(u, http.Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"op": "subscribe", "room": room}); err != nil {
		t.Fatal(err)
	}
	var m msg
	if err := slow.ReadJSON(&m); err != nil || m.Op != "subscribed" {
		t.Fatalf("slow subscribe: %v %+v", err, m)
	}
	// Wait until the hub has registered it (the presence count says so).
	fast.next(5*time.Second, "slow client's presence", func(m msg) bool { return m.Op == "presence" && m.Anonymous == 2 })

	const n = 10000
	// 10,000 events of 1 KB: more than the kernel's socket buffers can
	// hide (4 MB to send on this machine), so the queue must fill.
	bulkEvents(t, s.DB, f.tenant.ID, room, n, 1000)
	got := fast.events(room, n, 30*time.Second)
	assertConsecutive(t, seqs(got), 2)
	t.Logf("fast client has all %d events", n)

	// The slow one is cut off. Its close frame cannot overtake the data it
	// never read, so the server's count says why; then it resumes from the
	// last seq it knows and catches up fully.
	waitFor(t, 10*time.Second, "the slow consumer closed with 1013", func() bool {
		return testutil.ToFloat64(metrics.SlowCloses) == 1
	})
	_ = slow.Close()
	var last int64 = 1
	re := mustDial(t, s.URL, "acme", "")
	re.subscribe(room, &last)
	rest := re.events(room, int(int64(n)+1-last), 20*time.Second)
	assertConsecutive(t, seqs(rest), last+1)
}

func TestSilentClientLeavesPresence(t *testing.T) {
	// Long enough that bob's join is announced before his silence ends it,
	// even on a loaded machine.
	const pong = 2 * time.Second
	s := startInstance(t, "", func(c *realtime.Config) { c.PingInterval = 300 * time.Millisecond; c.PongTimeout = pong })
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)
	_, tok := s.Register(t, "acme", "bob")

	watcher := mustDial(t, s.URL, "acme", f.admin)
	watcher.subscribe(room, nil)

	// bob subscribes, then never reads again: pings go unanswered.
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/t/acme/ws"
	silent, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// bob never reads, so he never answers a ping: he is silent from now.
	silentSince := time.Now()
	if err := silent.WriteJSON(map[string]any{"op": "subscribe", "room": room}); err != nil {
		t.Fatal(err)
	}
	watcher.next(5*time.Second, "bob joins", func(m msg) bool {
		return m.Op == "presence" && hasUsername(m.Joins, "bob")
	})
	watcher.next(pong+2*time.Second, "bob leaves", func(m msg) bool {
		return m.Op == "presence" && hasUsername(m.Leaves, "bob")
	})
	if took := time.Since(silentSince); took > pong+time.Second {
		t.Fatalf("bob left after %v, want within pong timeout + 1s", took)
	}
}

func TestPresenceAndTypingCrossInstances(t *testing.T) {
	a := startInstance(t, "", nil)
	b := startInstance(t, a.DatabaseURL, nil)
	f := newForum(t, a, "acme")
	room := store.PostRoom(f.post.ID)
	_, bob := a.Register(t, "acme", "bob")

	onA := mustDial(t, a.URL, "acme", f.admin)
	onA.subscribe(room, nil)
	onB := mustDial(t, b.URL, "acme", bob)
	onB.subscribe(room, nil)
	onA.next(5*time.Second, "bob's join from B", func(m msg) bool {
		return m.Op == "presence" && hasUsername(m.Joins, "bob")
	})
	// A second tab of bob on A: still one bob.
	tab2 := mustDial(t, a.URL, "acme", bob)
	st := tab2.subscribe(room, nil)
	_ = st
	state := tab2.next(5*time.Second, "presence state", op("presence"))
	names := map[string]int{}
	for _, e := range state.State {
		names[e.User.Username]++
	}
	if names["bob"] != 1 || names["admin_acme"] != 1 || len(state.State) != 2 {
		t.Fatalf("presence state = %s, want admin_acme and bob once each", state.Raw)
	}

	onB.send(map[string]any{"op": "typing", "room": room})
	ty := onA.next(5*time.Second, "typing from B", op("typing"))
	if ty.User == nil || ty.User.Username != "bob" {
		t.Fatalf("typing = %s", ty.Raw)
	}
}

func TestDeadInstanceUsersLeaveEverywhere(t *testing.T) {
	tune := func(c *realtime.Config) {
		c.Heartbeat = 100 * time.Millisecond
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	a := startInstance(t, "", tune)
	b := startInstance(t, a.DatabaseURL, tune)
	f := newForum(t, a, "acme")
	room := store.PostRoom(f.post.ID)
	_, bob := a.Register(t, "acme", "bob")

	watcher := mustDial(t, a.URL, "acme", f.admin)
	watcher.subscribe(room, nil)
	onB := mustDial(t, b.URL, "acme", bob)
	onB.subscribe(room, nil)
	watcher.next(5*time.Second, "bob joins", func(m msg) bool {
		return m.Op == "presence" && hasUsername(m.Joins, "bob")
	})

	// B loses its database: it can no longer send heartbeats, as if it
	// had died. Its sockets stay open, so only the heartbeat can tell.
	b.DB.Close()
	died := time.Now()
	watcher.next(5*time.Second, "bob leaves", func(m msg) bool {
		return m.Op == "presence" && hasUsername(m.Leaves, "bob")
	})
	if took := time.Since(died); took > 500*time.Millisecond+time.Second {
		t.Fatalf("bob left %v after B died, want within the heartbeat timeout + 1s", took)
	}
}

func TestBanClosesSocketsOnEveryInstance(t *testing.T) {
	a := startInstance(t, "", nil)
	b := startInstance(t, a.DatabaseURL, nil)
	f := newForum(t, a, "acme")
	bobUser, bob := a.Register(t, "acme", "bob")

	var clients []*wsClient
	for _, inst := range []*instance{a, b} {
		c := mustDial(t, inst.URL, "acme", bob)
		c.subscribe("tenant", nil)
		clients = append(clients, c)
	}
	bystander := mustDial(t, b.URL, "acme", f.admin)
	bystander.subscribe("tenant", nil)

	banned := time.Now()
	a.MustDo(t, "POST", fmt.Sprintf("/api/v1/t/acme/mod/users/%d/ban", bobUser.ID), f.admin,
		map[string]any{"reason": "spam"}, 200, nil)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := c.closeCode(2 * time.Second); code != websocket.ClosePolicyViolation {
				t.Errorf("close code %d, want 1008", code)
			}
		}()
	}
	wg.Wait()
	if took := time.Since(banned); took > time.Second+200*time.Millisecond {
		t.Fatalf("sockets closed %v after the ban, want within 1s", took)
	}
	// The admin's session is untouched.
	bystander.send(map[string]any{"op": "subscribe", "room": "tenant"})
	bystander.next(2*time.Second, "bystander still served", op("subscribed"))
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	s := startInstance(t, "", nil)
	newForum(t, s, "acme")
	c := mustDial(t, s.URL, "acme", "")
	c.subscribe("tenant", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(2 * time.Second); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if s.Hub.Ready(ctx) == nil {
		t.Fatal("hub still ready after shutdown")
	}
}

func TestSinceOlderThanHistoryGetsReset(t *testing.T) {
	s := startInstance(t, "", nil)
	t.Cleanup(store.Pruner{DB: s.DB, Retention: store.Retention{PerRoom: 5, MaxAge: time.Hour},
		Interval: 20 * time.Millisecond}.Start())
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)
	for i := range 10 {
		s.CreateComment(t, "acme", f.admin, f.post.ID, fmt.Sprintf("c%d", i))
	}
	// seq 1 is post.created, 2..11 the comments; five are kept: 7..11.
	waitFor(t, 10*time.Second, "history pruned to 5 events", func() bool {
		st, err := s.DB.RoomState(context.Background(), f.tenant.ID, room)
		return err == nil && st.Oldest == 7
	})

	c := mustDial(t, s.URL, "acme", "")
	c.subscribe(room, ptr(int64(3)))
	reset := c.next(5*time.Second, "reset", func(m msg) bool { return m.Op == "reset" || m.Op == "event" })
	if reset.Op != "reset" || reset.Room != room || reset.Seq != 11 {
		t.Fatalf("since older than history: got %s, want reset at seq 11", reset.Raw)
	}

	// Within the window the replay is exact.
	c2 := mustDial(t, s.URL, "acme", "")
	c2.subscribe(room, ptr(int64(6)))
	assertConsecutive(t, seqs(c2.events(room, 5, 5*time.Second)), 7)
}

func hasUsername(es []presenceEntry, name string) bool {
	for _, e := range es {
		if e.User.Username == name {
			return true
		}
	}
	return false
}
