package realtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"agora/api"
	"agora/api/apitest"
	"agora/realtime"
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
		rc := realtime.Config{Store: db, Log: cfg.Log, ListenURL: dbURL,
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

// msg is any server message.
type msg struct {
	Op        string          `json:"op"`
	Room      string          `json:"room"`
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	State     []presenceEntry `json:"state"`
	Joins     []presenceEntry `json:"joins"`
	Leaves    []presenceEntry `json:"leaves"`
	Anonymous int             `json:"anonymous"`
	User      *store.UserRef  `json:"user"`
	raw       string
}

type presenceEntry struct {
	User  store.UserRef `json:"user"`
	Since time.Time     `json:"since"`
}

// wsClient reads every frame, splits it on newlines, and queues messages.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	msgs   chan msg
	frames int
	mu     sync.Mutex
	closed chan struct{}
	err    error
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

func (c *wsClient) read() {
	defer close(c.closed)
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.frames++
		c.mu.Unlock()
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m msg
			if err := json.Unmarshal(line, &m); err != nil {
				m = msg{Op: "unparseable"}
			}
			m.raw = string(line)
			c.msgs <- m
		}
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, ok := v.([]byte)
	if !ok {
		if s, isStr := v.(string); isStr {
			b = []byte(s)
		} else {
			b, _ = json.Marshal(v)
		}
	}
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next message that matches keep, failing after d.
func (c *wsClient) next(d time.Duration, what string, keep func(msg) bool) msg {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-c.msgs:
			if keep(m) {
				return m
			}
		case <-timer.C:
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

func op(name string) func(msg) bool { return func(m msg) bool { return m.Op == name } }

// subscribe subscribes and waits for subscribed.
func (c *wsClient) subscribe(room string, since *int64) msg {
	c.t.Helper()
	req := map[string]any{"op": "subscribe", "room": room}
	if since != nil {
		req["since"] = *since
	}
	c.send(req)
	return c.next(5*time.Second, "subscribed "+room, func(m msg) bool {
		if m.Op == "error" {
			c.t.Fatalf("subscribe %s: %s", room, m.raw)
		}
		return m.Op == "subscribed" && m.Room == room
	})
}

// events collects n events of room, in arrival order.
func (c *wsClient) events(room string, n int, d time.Duration) []msg {
	c.t.Helper()
	out := make([]msg, 0, n)
	for len(out) < n {
		out = append(out, c.next(d, fmt.Sprintf("event %d of %d in %s", len(out)+1, n, room), func(m msg) bool {
			return m.Op == "event" && m.Room == room
		}))
	}
	return out
}

// closeCode waits for the server to close the connection and returns the
// close code (1006 when the connection just dropped).
func (c *wsClient) closeCode(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(d):
		c.t.Fatalf("connection still open after %v", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.err.(*websocket.CloseError); ok {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
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
