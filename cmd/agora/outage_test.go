package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"agora/store/pgtest"
)

// TestDatabaseOutage stops PostgreSQL the way a crash would (pg_ctl stop
// -m immediate) while writers keep writing, then starts it again. During
// the outage writes are 503 unavailable with Retry-After and /readyz is
// 503; no request is ever a 500; requests sent after the restart succeed;
// every write that was acknowledged is in the database afterwards; and a
// subscriber of the room gets every acknowledged comment, the first
// written after the restart within 5 s of it.
func TestDatabaseOutage(t *testing.T) {
	env := withNewDatabase(t, map[string]string{
		"AGORA_ADDR":        "127.0.0.1:0",
		"AGORA_LOG_FORMAT":  "json",
		"AGORA_SEED_DEMO":   "true",
		"AGORA_DATA_DIR":    t.TempDir(),
		"AGORA_RATE_LIMITS": "false",
		// The writers write flat out; the tenant's write quota would
		// answer them 429, which is not what this test is about.
		"AGORA_TENANT_WRITE_RATE":  "0",
		"AGORA_DB_ACQUIRE_TIMEOUT": "1s",
	})
	dbURL := env["DATABASE_URL"]
	ctx := t.Context()
	// The test cluster runs with synchronous_commit off, which an
	// immediate stop turns into lost commits that were acknowledged: not
	// what a production server does, so this database commits durably.
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = super.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{pgtest.DBName(t, dbURL)}.Sanitize()+" SET synchronous_commit = on")
	super.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	var stdout syncBuffer
	base, _ := serving(t, env, &stdout, nil)
	waitReady := func(want int, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			status, body := get(t, base+"/readyz")
			if status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %s, want %d within %v", status, body, want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK, 30*time.Second)

	m := regexp.MustCompile(`demo admin: (\S+) / (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no demo credentials on stdout: %q", stdout.String())
	}
	admin := restLogin(t, base, m[1], m[2])
	var boards struct{ Items []struct{ ID string } }
	if err := json.Unmarshal(mustGetJSON(t, base+"/api/v1/t/demo/boards", admin), &boards); err != nil || len(boards.Items) == 0 {
		t.Fatalf("boards: %v %+v", err, boards)
	}
	var post struct{ ID string }
	if err := json.Unmarshal(mustPostJSON(t, base+"/api/v1/t/demo/boards/"+boards.Items[0].ID+"/posts", admin,
		map[string]string{"title": "Outage", "body": "Keep writing."}), &post); err != nil || post.ID == "" {
		t.Fatalf("post: %v %+v", err, post)
	}
	room := "post:" + post.ID
	w := watch(t, base, admin, room)

	// Writers comment in a loop until told to stop, recording every
	// outcome with the time the request was sent.
	type outcome struct {
		sent       time.Time
		status     int
		retryAfter string
		id         string
		body       string
	}
	const writers = 4
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	count := func(pred func(outcome) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, o := range outcomes {
			if pred(o) {
				n++
			}
		}
		return n
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range writers {
		token := restRegister(t, base, fmt.Sprintf("writer%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(map[string]string{"body": fmt.Sprintf("writer %d comment %d", i, n)})
				req, _ := http.NewRequest("POST", base+"/api/v1/t/demo/posts/"+post.ID+"/comments", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				o := outcome{sent: time.Now()}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				o.status, o.retryAfter, o.body = resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
				if o.status == http.StatusCreated {
					var c struct{ ID string }
					_ = json.Unmarshal(b, &c)
					o.id = c.ID
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if o.status == http.StatusServiceUnavailable {
					// As a client honouring Retry-After would, only faster.
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)
	waitFor := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				mu.Lock()
				seen := map[int]int{}
				for _, o := range outcomes {
					seen[o.status]++
				}
				mu.Unlock()
				t.Fatalf("waiting for %s: gave up after %v; writes so far: %v", what, within, seen)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	created := func(o outcome) bool { return o.status == http.StatusCreated }
	waitFor("writes before the outage", 30*time.Second, func() bool { return count(created) >= 20 })

	stopped := time.Now()
	pgtest.StopCluster(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			pgtest.StartCluster(t) // the other tests of the binary need it
		}
	})
	// Long enough for pooled connections to go stale and the realtime
	// listener to back off a few times.
	waitFor("two seconds of 503s", 30*time.Second, func() bool {
		return count(func(o outcome) bool {
			return o.status == http.StatusServiceUnavailable && o.sent.After(stopped.Add(2*time.Second))
		}) >= writers
	})
	waitReady(http.StatusServiceUnavailable, 10*time.Second)

	pgtest.StartCluster(t)
	restarted = true
	back := time.Now()
	afterRestart := func(o outcome) bool { return o.sent.After(back) }
	waitFor("writes after the restart", 30*time.Second, func() bool {
		return count(func(o outcome) bool { return afterRestart(o) && created(o) }) >= 20
	})
	waitReady(http.StatusOK, 10*time.Second)
	stopWriters()

	acked := map[string]bool{}
	var firstAfter string
	var firstAfterSent time.Time
	statuses := map[int]int{}
	for _, o := range outcomes {
		statuses[o.status]++
		switch {
		case o.status == http.StatusInternalServerError:
			t.Errorf("500 at %v into the test: %s", o.sent.Sub(stopped), o.body)
		case o.status == http.StatusServiceUnavailable && (o.retryAfter == "" || !strings.Contains(o.body, `"unavailable"`)):
			t.Errorf("503 with Retry-After %q and body %s, want Retry-After and code unavailable", o.retryAfter, o.body)
		case o.status != http.StatusCreated && afterRestart(o):
			t.Errorf("%d for a write sent %v after the restart: %s", o.status, o.sent.Sub(back), o.body)
		case o.status != http.StatusCreated && o.status != http.StatusServiceUnavailable:
			t.Errorf("write answered %d: %s", o.status, o.body)
		}
		if created(o) {
			acked[o.id] = true
			if afterRestart(o) && (firstAfter == "" || o.sent.Before(firstAfterSent)) {
				firstAfter, firstAfterSent = o.id, o.sent
			}
		}
	}
	t.Logf("outage of %v; writes: %v", back.Sub(stopped), statuses)

	// Every acknowledged comment is stored.
	conn, err := pgx.Connect(ctx, pgtest.SuperuserURL(pgtest.DBName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(ctx, `SELECT id::text FROM comments WHERE post_id = $1`, post.ID)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range ids {
		stored[id] = true
	}
	lost := 0
	for id := range acked {
		if !stored[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged comments are not in the database", lost, len(acked))
	}

	// The subscriber gets every acknowledged comment, and live delivery is
	// back within 5 s of the restart.
	deadline := time.Now().Add(30 * time.Second)
	for missing := len(acked); missing > 0; {
		missing = 0
		for id := range acked {
			if _, ok := w.seen(id); !ok {
				missing++
			}
		}
		if missing > 0 && time.Now().After(deadline) {
			t.Fatalf("the subscriber never got %d of %d acknowledged comments", missing, len(acked))
		}
		if missing > 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	at, _ := w.seen(firstAfter)
	t.Logf("first comment written after the restart delivered %v after it; subscriber reconnected %d times", at.Sub(back), w.reconnects())
	if at.Sub(back) > 5*time.Second {
		t.Errorf("the first comment written after the restart reached the subscriber %v after the restart, want within 5 s", at.Sub(back))
	}
}

// watcher follows one room over WebSocket, reconnecting with since (as a
// client does) if the connection drops, and records when each
// comment.created event arrived.
type watcher struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	redials int
}

func (w *watcher) seen(id string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.arrived[id]
	return at, ok
}

func (w *watcher) reconnects() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.redials
}

func watch(t *testing.T, base, token, room string) *watcher {
	t.Helper()
	w := &watcher{arrived: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	subscribed := make(chan struct{})
	go func() {
		defer close(done)
		var since *int64
		first := true
		for ctx.Err() == nil {
			h := http.Header{"Authorization": {"Bearer " + token}}
			c, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/t/demo/ws", h)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			stopClose := context.AfterFunc(ctx, func() { c.Close() })
			_ = c.WriteJSON(map[string]any{"op": "subscribe", "room": room, "since": since})
			for {
				_, frame, err := c.ReadMessage()
				if err != nil {
					break
				}
				for _, line := range strings.Split(string(frame), "\n") {
					var msg struct {
						Op, Room, Type string
						Seq            int64
						Data           struct{ ID string }
					}
					if json.Unmarshal([]byte(line), &msg) != nil || msg.Room != room {
						continue
					}
					switch msg.Op {
					case "subscribed":
						if first {
							first = false
							close(subscribed)
						}
						if since == nil {
							since = &msg.Seq
						}
					case "event":
						seq := msg.Seq
						since = &seq
						if msg.Type == "comment.created" {
							w.mu.Lock()
							if _, ok := w.arrived[msg.Data.ID]; !ok {
								w.arrived[msg.Data.ID] = time.Now()
							}
							w.mu.Unlock()
						}
					}
				}
			}
			stopClose()
			c.Close()
			w.mu.Lock()
			w.redials++
			w.mu.Unlock()
		}
	}()
	select {
	case <-subscribed:
	case <-time.After(30 * time.Second):
		t.Fatalf("no subscribed for %s", room)
	}
	return w
}

func mustGetJSON(t *testing.T, url, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return mustDo(t, req, http.StatusOK)
}

func mustPostJSON(t *testing.T, url, token string, body any) []byte {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return mustDo(t, req, http.StatusCreated)
}

func mustDo(t *testing.T, req *http.Request, want int) []byte {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, b, want)
	}
	return b
}
