package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestMetricsAndLogs runs the whole program through a realtime scenario,
// then checks that /metrics counted it with bounded labels and that no
// secret reached the log.
func TestMetricsAndLogs(t *testing.T) {
	const adminToken = "operator-secret-0f9e8d"
	env := withNewDatabase(t, map[string]string{
		"AGORA_ADDR":        "127.0.0.1:0",
		"AGORA_ADMIN_TOKEN": adminToken,
		"AGORA_LOG_LEVEL":   "debug",
		"AGORA_SEED_DEMO":   "true",
		"AGORA_DATA_DIR":    t.TempDir(),
	})
	var stdout, stderr syncBuffer
	base, _ := serving(t, env, &stdout, &stderr)
	m := regexp.MustCompile(`demo admin: (\S+) / (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no demo credentials in %q", stdout.String())
	}
	adminPassword := m[2]

	call := func(method, path, token string, body any, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var login struct{ Token string }
	if st := call("POST", "/api/v1/t/demo/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}, &login); st != 200 {
		t.Fatalf("login: %d", st)
	}
	const memberPassword = "member-pass-77aa"
	var reg struct{ Token string }
	if st := call("POST", "/api/v1/t/demo/auth/register", "", map[string]string{"username": "mia", "password": memberPassword}, &reg); st != 201 {
		t.Fatalf("register: %d", st)
	}
	var post struct{ ID string }
	if st := call("POST", "/api/v1/t/demo/boards/1/posts", login.Token, map[string]string{"title": "Hi", "body": "there"}, &post); st != 201 {
		t.Fatalf("post: %d", st)
	}
	var ticket struct{ Ticket string }
	if st := call("POST", "/api/v1/t/demo/ws/ticket", reg.Token, nil, &ticket); st != 200 {
		t.Fatalf("ticket: %d", st)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/t/demo/ws?ticket="+ticket.Ticket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	room := "post:" + post.ID
	if err := ws.WriteJSON(map[string]string{"op": "subscribe", "room": room}); err != nil {
		t.Fatal(err)
	}
	readUntil := func(op string) {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v", op, err)
			}
			for _, line := range strings.Split(string(data), "\n") {
				var msg struct{ Op string }
				if json.Unmarshal([]byte(line), &msg) == nil && msg.Op == op {
					return
				}
			}
		}
	}
	readUntil("subscribed")
	if st := call("POST", "/api/v1/t/demo/posts/"+post.ID+"/comments", login.Token, map[string]string{"body": "hello"}, nil); st != 201 {
		t.Fatalf("comment: %d", st)
	}
	readUntil("event")

	// The upgrade is counted once its handler returns, just after the
	// connection is hijacked: wait for it.
	const wsRequests = `agora_http_requests_total{method="GET",route="/api/v1/t/:tenant/ws",status="101"}`
	_, text := get(t, base+"/metrics")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(text, wsRequests+" "); _, text = get(t, base+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics:\n%s", wsRequests, text)
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, within the deadline above
	}
	value := func(series string) float64 {
		t.Helper()
		for _, line := range strings.Split(text, "\n") {
			if name, v, ok := strings.Cut(line, " "); ok && name == series {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return f
			}
		}
		t.Fatalf("no series %s in /metrics", series)
		return 0
	}
	atLeast := map[string]float64{
		"agora_ws_sessions":                  1,
		"agora_ws_tenants":                   1,
		"agora_ws_subscriptions":             1,
		"agora_ws_rooms":                     1,
		"agora_presence_members":             1,
		"agora_listener_events_total":        1,
		"agora_ws_deliveries_total":          1,
		"agora_ws_sent_bytes_total":          1,
		"agora_fanout_latency_seconds_count": 1,
		"agora_db_pool_connections":          1,
		`agora_http_requests_total{method="POST",route="/api/v1/t/:tenant/posts/:post/comments",status="201"}`: 1,
		`agora_http_requests_total{method="POST",route="/api/v1/t/:tenant/auth/login",status="200"}`:           1,
		wsRequests: 1,
		// An upgrade is timed like any request: until the connection is handed over.
		`agora_http_request_duration_seconds_count{method="GET",route="/api/v1/t/:tenant/ws"}`: 1,
		`agora_auth_cache_hits_total{cache="tenant"}`:                                          1,
		`agora_auth_cache_misses_total{cache="session"}`:                                       1,
		"go_goroutines": 1,
	}
	for series, min := range atLeast {
		if v := value(series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	if strings.Contains(text, `route="/api/v1/t/demo`) || strings.Contains(text, "post:"+post.ID) {
		t.Error("/metrics labels carry raw paths or room ids: unbounded label values")
	}

	logs := stderr.String()
	for name, secret := range map[string]string{
		"admin password": adminPassword, "member password": memberPassword,
		"admin session token": login.Token, "member session token": reg.Token,
		"ws ticket": ticket.Ticket, "operator token": adminToken,
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	// The upgrade's access log line says what the client got.
	upgraded := false
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg    string `json:"message"`
			Route  string `json:"route"`
			Status int    `json:"status"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "request" && l.Route == "/api/v1/t/:tenant/ws" {
			upgraded = upgraded || l.Status == 101
		}
	}
	if !upgraded {
		t.Error("no access log line of the WebSocket upgrade with status 101")
	}
	// A WebSocket session's lines carry the request's identity.
	found := false
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg       string `json:"message"`
			RequestID string `json:"request_id"`
			Tenant    string `json:"tenant"`
			User      string `json:"user"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "session open" {
			found = l.RequestID != "" && l.Tenant == "demo" && l.User == "mia"
		}
	}
	if !found {
		t.Error(`no "session open" log line with request_id, tenant=demo and user=mia`)
	}
}
