package realtime_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"agora/api/apitest"
	"agora/realtime"
	"agora/store"
	"agora/store/pgtest"
)

// holdProxy forwards TCP connections to Postgres. While it is held, new
// connections are accepted but not forwarded, so a test decides how long a
// reconnecting listener stays away.
type holdProxy struct {
	url  string
	mu   sync.Mutex
	gate chan struct{} // closed while open
}

// startHoldProxy returns a proxy in front of dbURL's server, open.
func startHoldProxy(t *testing.T, dbURL string) *holdProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	u.Host = lis.Addr().String()
	p := &holdProxy{url: u.String(), gate: make(chan struct{})}
	close(p.gate)
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go p.forward(conn, target)
		}
	}()
	return p
}

func (p *holdProxy) forward(conn net.Conn, target string) {
	defer conn.Close()
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	<-gate
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

func (p *holdProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.gate)
}

// killListener terminates the instance's LISTEN backend, as a failover or
// a network cut would.
func killListener(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var killed int
	err = conn.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`,
		store.ListenerApplicationName).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener connections (err %v), want 1", killed, err)
	}
}

// TestControlSurvivesListenerOutage: Postgres drops the control
// notifications sent while no listener is connected, so a demotion and a
// ban committed in that window must still close the sockets once the
// listener is back, before the room's catch-up reaches them.
func TestControlSurvivesListenerOutage(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	px := startHoldProxy(t, dbURL)
	s := startInstance(t, dbURL, func(c *realtime.Config) { c.Bus = store.NewBus(c.History.(*store.DB), px.url) })
	f := newForum(t, s, "acme")
	room := store.PostRoom(f.post.ID)
	moeUser, moe := s.Register(t, "acme", "moe")
	rolePath := apitest.TenantPath("acme", fmt.Sprintf("mod/users/%d/role", moeUser.ID))
	s.MustDo(t, http.MethodPut, rolePath, f.admin, map[string]string{"role": "moderator"}, http.StatusOK, nil)
	bobUser, bob := s.Register(t, "acme", "bob")

	mod := mustDial(t, s.URL, "acme", moe)
	mod.subscribe(room, nil)
	banned := mustDial(t, s.URL, "acme", bob)
	banned.subscribe(room, nil)
	admin := mustDial(t, s.URL, "acme", f.admin)
	admin.subscribe(room, nil)

	px.hold()
	killListener(t, dbURL)
	waitFor(t, 5*time.Second, "listener down", func() bool { return s.Hub.Ready(context.Background()) != nil })

	// Inside the window: nobody listens, so these notifications are gone.
	s.MustDo(t, http.MethodPut, rolePath, f.admin, map[string]string{"role": "member"}, http.StatusOK, nil)
	s.MustDo(t, http.MethodPost, apitest.TenantPath("acme", fmt.Sprintf("mod/users/%d/ban", bobUser.ID)), f.admin,
		map[string]any{"reason": "spam"}, http.StatusOK, nil)
	const secret = "words only moderators may read"
	cm := s.CreateComment(t, "acme", f.admin, f.post.ID, secret)
	s.MustDo(t, http.MethodPost, apitest.TenantPath("acme", fmt.Sprintf("mod/comments/%d/hide", cm.ID)), f.admin, nil, http.StatusOK, nil)

	px.release()
	waitFor(t, 10*time.Second, "listener back", func() bool { return s.Hub.Ready(context.Background()) == nil })
	back := time.Now()

	for name, tc := range map[string]struct {
		c    *wsClient
		code int
	}{
		"demoted moderator": {mod, websocket.CloseGoingAway},
		"banned user":       {banned, websocket.ClosePolicyViolation},
	} {
		if code := tc.c.closeCode(2 * time.Second); code != tc.code {
			t.Errorf("%s: close code %d, want %d", name, code, tc.code)
		}
		if took := time.Since(back); took > time.Second {
			t.Errorf("%s: socket closed %v after the listener was back, want within 1s", name, took)
		}
	}
	// The session that kept its standing catches up as before...
	evs := admin.events(room, 2, wait)
	if evs[0].Type != "comment.created" || !strings.Contains(evs[0].Raw, secret) {
		t.Fatalf("admin's catch-up = %s", evs[0].Raw)
	}
	// ...and the demoted one got none of it.
	for len(mod.msgs) > 0 {
		if m := <-mod.msgs; strings.Contains(m.Raw, secret) || m.Op == "event" {
			t.Fatalf("demoted moderator received %s", m.Raw)
		}
	}
}

// TestListenerRetryDelayResets: each outage starts over at the shortest
// retry delay. Were the delay to keep doubling across outages (100 ms,
// 200 ms, ... 3.2 s by the sixth), every outage would keep the instance
// away longer than the one before.
func TestListenerRetryDelayResets(t *testing.T) {
	metrics := realtime.NewMetrics(nil)
	s := startInstance(t, "", func(c *realtime.Config) { c.Metrics = metrics })
	for i := range 6 {
		killListener(t, s.DatabaseURL)
		lost := time.Now()
		waitFor(t, 10*time.Second, "listener back", func() bool {
			return testutil.ToFloat64(metrics.ListenerReconnects) == float64(i+1) && s.Hub.Ready(context.Background()) == nil
		})
		if took := time.Since(lost); i == 5 && took > 2*time.Second {
			t.Fatalf("outage %d: listener back after %v, want the first retry delay again (100 ms)", i+1, took)
		}
	}
}
