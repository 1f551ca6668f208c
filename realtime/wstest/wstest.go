// Package wstest is a WebSocket client for tests of the realtime
// protocol: it reads every frame, splits it into messages, and lets a
// test wait for the one it expects.
package wstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"agora/store"
)

// Msg is any server message.
type Msg struct {
	Op        string          `json:"op"`
	Room      string          `json:"room"`
	Seq       int64           `json:"seq"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	State     []PresenceEntry `json:"state"`
	Joins     []PresenceEntry `json:"joins"`
	Leaves    []PresenceEntry `json:"leaves"`
	Truncated bool            `json:"truncated"`
	Count     int             `json:"count"`
	Anonymous int             `json:"anonymous"`
	User      *store.UserRef  `json:"user"`
	// Raw is the message as it came.
	Raw string `json:"-"`
}

type PresenceEntry struct {
	User  store.UserRef `json:"user"`
	Since time.Time     `json:"since"`
}

// Client is one test connection.
type Client struct {
	T    testing.TB
	Conn *websocket.Conn
	// Msgs queues every message in arrival order.
	Msgs chan Msg
	// Closed is closed once the connection has ended.
	Closed chan struct{}

	mu  sync.Mutex
	err error
}

// Dial connects to a ws:// URL; the connection closes when tb ends.
func Dial(tb testing.TB, url string, header http.Header) (*Client, *http.Response, error) {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		return nil, resp, err
	}
	tb.Cleanup(func() { _ = conn.Close() })
	c := &Client{T: tb, Conn: conn, Msgs: make(chan Msg, 100000), Closed: make(chan struct{})}
	go c.read()
	return c, resp, nil
}

func (c *Client) read() {
	defer close(c.Closed)
	for {
		_, data, err := c.Conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m Msg
			if err := json.Unmarshal(line, &m); err != nil {
				m = Msg{Op: "unparseable"}
			}
			m.Raw = string(line)
			c.Msgs <- m
		}
	}
}

// Send writes v as a text frame: bytes and strings as they are, anything
// else as JSON.
func (c *Client) Send(v any) {
	c.T.Helper()
	b, ok := v.([]byte)
	if !ok {
		if s, isStr := v.(string); isStr {
			b = []byte(s)
		} else {
			b, _ = json.Marshal(v)
		}
	}
	if err := c.Conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.T.Fatalf("write: %v", err)
	}
}

// Next returns the next message that matches keep, failing after d.
func (c *Client) Next(d time.Duration, what string, keep func(Msg) bool) Msg {
	c.T.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-c.Msgs:
			if keep(m) {
				return m
			}
		case <-timer.C:
			c.T.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// Op keeps the messages of one op.
func Op(name string) func(Msg) bool { return func(m Msg) bool { return m.Op == name } }

// Subscribe subscribes and waits for subscribed; an error frame fails.
func (c *Client) Subscribe(room string, since *int64) Msg {
	c.T.Helper()
	req := map[string]any{"op": "subscribe", "room": room}
	if since != nil {
		req["since"] = *since
	}
	c.Send(req)
	return c.Next(5*time.Second, "subscribed "+room, func(m Msg) bool {
		if m.Op == "error" {
			c.T.Fatalf("subscribe %s: %s", room, m.Raw)
		}
		return m.Op == "subscribed" && m.Room == room
	})
}

// Events collects n events of room, in arrival order.
func (c *Client) Events(room string, n int, d time.Duration) []Msg {
	c.T.Helper()
	out := make([]Msg, 0, n)
	for len(out) < n {
		out = append(out, c.Next(d, fmt.Sprintf("event %d of %d in %s", len(out)+1, n, room), func(m Msg) bool {
			return m.Op == "event" && m.Room == room
		}))
	}
	return out
}

// CloseCode waits for the server to close the connection and returns the
// close code (1006 when the connection just dropped).
func (c *Client) CloseCode(d time.Duration) int {
	c.T.Helper()
	select {
	case <-c.Closed:
	case <-time.After(d):
		c.T.Fatalf("connection still open after %v", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ce, ok := c.err.(*websocket.CloseError); ok {
		return ce.Code
	}
	return websocket.CloseAbnormalClosure
}
