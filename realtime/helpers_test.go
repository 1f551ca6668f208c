package realtime_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"agora/api"
	"agora/api/apitest"
	"agora/realtime"
	"agora/realtime/wstest"
	"agora/store"
	"agora/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, store.MigrateUp) }

// cheap keeps registration fast; password hashing has its own tests.
var cheap = store.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}

type instance struct {
	*apitest.Server
	Hub *realtime.Hub
}

// startInstance serves the API with a realtime hub on dbURL ("" for a
// fresh database), and waits until its listener is connected.
func startInstance(t *testing.T, dbURL string, tune func(*realtime.Config)) *instance {
	t.Helper()
	if dbURL == "" {
		dbURL = pgtest.NewDatabase(t)
	}
	var hub *realtime.Hub
	srv := apitest.Start(t, apitest.Options{DatabaseURL: dbURL, Hasher: cheap, Verbose: testing.Verbose(), Configure: func(tb testing.TB, db *store.DB, cfg *api.Config) {
		rc := realtime.Config{History: db, Bus: store.NewBus(db, dbURL), Log: cfg.Log,
			Heartbeat: 200 * time.Millisecond, PresenceFlush: 50 * time.Millisecond}
		if tune != nil {
			tune(&rc)
		}
		hub = realtime.New(rc)
		hub.Run()
		cfg.WebSocket = hub
		cfg.Ready = map[string]api.Check{"listener": hub.Ready}
		cfg.RateLimits.Disabled = true
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hub.Shutdown(ctx)
		})
	}})
	waitFor(t, 10*time.Second, "listener connected", func() bool { return hub.Ready(context.Background()) == nil })
	return &instance{Server: srv, Hub: hub}
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type (
	msg           = wstest.Msg
	presenceEntry = wstest.PresenceEntry
)

// wsClient is a wstest.Client under the names these tests use.
type wsClient struct {
	*wstest.Client
	t      testing.TB
	conn   *websocket.Conn
	msgs   chan msg
	closed chan struct{}
}

func dial(t testing.TB, base, tenant, token string, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return dialPath(t, base, "/api/v1/t/"+tenant+"/ws", header)
}

func mustDial(t testing.TB, base, tenant, token string) *wsClient {
	t.Helper()
	c, resp, err := dial(t, base, tenant, token, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d)", err, status)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	c.Send(v)
}

// next returns the next message that matches keep, failing after d.
func (c *wsClient) next(d time.Duration, what string, keep func(msg) bool) msg {
	c.t.Helper()
	return c.Next(d, what, keep)
}

func op(name string) func(msg) bool { return wstest.Op(name) }

// subscribe subscribes and waits for subscribed.
func (c *wsClient) subscribe(room string, since *int64) msg {
	c.t.Helper()
	return c.Subscribe(room, since)
}

// events collects n events of room, in arrival order.
func (c *wsClient) events(room string, n int, d time.Duration) []msg {
	c.t.Helper()
	return c.Events(room, n, d)
}

// closeCode waits for the server to close the connection and returns the
// close code (1006 when the connection just dropped).
func (c *wsClient) closeCode(d time.Duration) int {
	c.t.Helper()
	return c.CloseCode(d)
}

func ptr[T any](v T) *T { return &v }

func seqs(ms []msg) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func assertConsecutive(t testing.TB, got []int64, from int64) {
	t.Helper()
	for i, s := range got {
		if s != from+int64(i) {
			t.Fatalf("seq %d at index %d, want %d (gap or duplicate): %v", s, i, from+int64(i), got)
		}
	}
}

// forum sets up a tenant with an admin, a board and a post.
type forum struct {
	tenant store.Tenant
	admin  string // token
	board  store.Board
	post   store.Post
}

func newForum(t *testing.T, s *instance, slug string) forum {
	t.Helper()
	f := forum{tenant: s.NewTenant(t, slug)}
	_, f.admin = s.Register(t, slug, "admin_"+strings.ReplaceAll(slug, "-", "_"))
	f.board = s.CreateBoard(t, slug, f.admin, "General")
	f.post = s.CreatePost(t, slug, f.admin, f.board.ID, "Hello", "First post")
	return f
}

func decode(line string, v any) error { return json.Unmarshal([]byte(line), v) }
