package realtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"agora/store"
	"agora/store/pgtest"
)

// Microbenchmarks of the fan-out path: the room index, encoding an event
// once, packing a batch, and handing frames to real melody sessions whose
// connections are in-memory pipes (no sockets, so 10,000 of them fit in a
// benchmark; the kernel's share of a real fan-out is in the load tool's
// figures, not here). Run with
//
//	go test -run XXX -bench . -benchmem -count 5 ./realtime/

// benchEvent is a comment.created event with a 300-byte body, shaped like
// the real payload.
func benchEvent(seq int64) store.Event {
	payload, _ := json.Marshal(map[string]any{
		"id": strconv.FormatInt(1000+seq, 10), "post_id": "17",
		"author":  map[string]string{"id": "42", "username": "someone"},
		"body":    strings.Repeat("x", 300),
		"version": 1, "hidden": false,
		"created_at": "2026-01-02T03:04:05.123456Z", "updated_at": "2026-01-02T03:04:05.123456Z",
	})
	return store.Event{TenantID: 1, Room: "post:17", Seq: seq, Type: "comment.created",
		Payload: payload, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)}
}

func benchEvents(n int) []store.Event {
	evs := make([]store.Event, n)
	for i := range evs {
		evs[i] = benchEvent(int64(i + 1))
	}
	return evs
}

// BenchmarkIndex is a subscribe and an unsubscribe's worth of index work
// (acquire, a delivery's get, release) from many goroutines over 1,000
// rooms of 10 tenants.
func BenchmarkIndex(b *testing.B) {
	ix := newIndex()
	keys := make([]roomKey, 1000)
	for i := range keys {
		keys[i] = roomKey{tenant: int64(i % 10), name: "post:" + strconv.Itoa(i)}
	}
	// Rooms that stay open, as in a live instance: acquire and release
	// then mostly find an existing room.
	for _, k := range keys {
		ix.acquire(k)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			k := keys[i%len(keys)]
			r, _ := ix.acquire(k)
			if ix.get(k) != r {
				panic("get found another room")
			}
			ix.release(r)
			i++
		}
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	e := benchEvent(42)
	b.ReportAllocs()
	b.SetBytes(int64(len(encodeEvent(e, e.Payload))))
	for b.Loop() {
		encodeEvent(e, e.Payload)
	}
}

// BenchmarkEncodeBatch is a live delivery's encoding: once per batch, for
// every session of the room.
func BenchmarkEncodeBatch(b *testing.B) {
	for _, n := range []int{1, 50} {
		evs := benchEvents(n)
		encode := func() []byte {
			batch := make([]ringEntry, len(evs))
			for i, e := range evs {
				batch[i] = newRingEntry(e)
			}
			return joinFrames(batch, false)
		}
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(encode())))
			for b.Loop() {
				encode()
			}
		})
	}
}

// BenchmarkPack is a replay's framing: encoded events into 64 KiB frames.
func BenchmarkPack(b *testing.B) {
	for _, n := range []int{1, 50} {
		msgs := make([][]byte, n)
		for i, e := range benchEvents(n) {
			msgs[i] = encodeFor(e, false)
		}
		if got := pack(msgs, replayFrame); bytes.Count(bytes.Join(got, nil), []byte(`"op":"event"`)) != n {
			b.Fatalf("pack lost messages")
		}
		b.Run("events="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pack(msgs, replayFrame)
			}
		})
	}
}

// pipeWriter is the http.ResponseWriter of an upgrade whose connection is
// one end of an in-memory pipe.
type pipeWriter struct {
	header http.Header
	conn   net.Conn
}

func (w *pipeWriter) Header() http.Header       { return w.header }
func (w *pipeWriter) Write([]byte) (int, error) { return 0, errors.New("pipeWriter: hijacked") }
func (w *pipeWriter) WriteHeader(int)           {}
func (w *pipeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// countingReader swallows a connection's bytes and counts the event
// messages in them (never split: it keeps the tail of each read).
type countingReader struct {
	events atomic.Int64
	bytes  atomic.Int64
}

func (cr *countingReader) drain(conn net.Conn) {
	needle := []byte(`"op":"event"`)
	buf := make([]byte, 64<<10)
	keep := 0
	for {
		n, err := conn.Read(buf[keep:])
		if n > 0 {
			cr.bytes.Add(int64(n))
			chunk := buf[:keep+n]
			cr.events.Add(int64(bytes.Count(chunk, needle)))
			// Carry a tail too short to hold a whole needle (so nothing
			// is counted twice) that may start one.
			keep = min(len(needle)-1, len(chunk))
			copy(buf, chunk[len(chunk)-keep:])
		}
		if err != nil {
			return
		}
	}
}

// pipeSessions connects n members (or moderators) to a fresh hub through
// melody over in-memory pipes, each read by a countingReader.
type pipeSessions struct {
	hub     *Hub
	clients []*client
	readers []*countingReader
	conns   []net.Conn
}

func newPipeSessions(tb testing.TB, db *store.DB, tenant store.Tenant, n int, role store.Role) *pipeSessions {
	tb.Helper()
	h := New(Config{
		History: db, Log: zerolog.Nop(),
		// No pings or pong deadlines during a benchmark.
		PingInterval: time.Hour, PongTimeout: 2 * time.Hour,
	})
	h.listening.Store(true) // as if the bus were connected
	ps := &pipeSessions{hub: h}
	for i := range n {
		c := newClient(h, tenant, store.Actor{UserID: int64(i + 1), Username: "u" + strconv.Itoa(i), Role: role}, 0, uint64(i+1), "", trace.TraceID{})
		srvEnd, cliEnd := net.Pipe()
		cr := &countingReader{}
		go cr.drain(cliEnd)
		req := httptest.NewRequest(http.MethodGet, "/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		go func() {
			_ = h.m.HandleRequestWithKeys(&pipeWriter{header: http.Header{}, conn: srvEnd}, req, map[string]any{clientKey: c})
		}()
		ps.clients = append(ps.clients, c)
		ps.readers = append(ps.readers, cr)
		ps.conns = append(ps.conns, cliEnd)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		h.mu.Lock()
		k := len(h.clients)
		h.mu.Unlock()
		if k == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d pipe sessions connected", k, n)
		}
		time.Sleep(time.Millisecond)
	}
	tb.Cleanup(func() {
		_ = h.m.Close()
		for _, c := range ps.conns {
			c.Close()
		}
	})
	return ps
}

// idle waits until every session has written out what it was handed.
func (ps *pipeSessions) idle(tb testing.TB) {
	deadline := time.Now().Add(time.Minute)
	busy := func(c *client) bool {
		c.outMu.Lock()
		defer c.outMu.Unlock()
		return c.inflight || len(c.pending) > 0
	}
	for _, c := range ps.clients {
		for busy(c) {
			if time.Now().After(deadline) {
				tb.Fatal("sessions did not drain within a minute")
			}
			runtime.Gosched()
		}
	}
}

func (ps *pipeSessions) events() int64 {
	var n int64
	for _, r := range ps.readers {
		n += r.events.Load()
	}
	return n
}

// room puts every session in one live room.
func (ps *pipeSessions) room() *room {
	r := &room{key: roomKey{tenant: 1, name: "post:17"}, subs: map[*client]*sub{}, ready: make(chan struct{}), started: true}
	close(r.ready)
	for _, c := range ps.clients {
		r.subs[c] = &sub{}
	}
	return r
}

// BenchmarkDeliver is one live batch handed to every session of a room
// and written out to each session's connection: encode once, one frame per
// session, melody's queue and write pump, the WebSocket framing. ns/op is
// per batch; ns/delivery per event per session.
func BenchmarkDeliver(b *testing.B) {
	for _, tc := range []struct{ sessions, events int }{{100, 1}, {10000, 1}, {10000, 50}} {
		b.Run(fmt.Sprintf("sessions=%d/events=%d", tc.sessions, tc.events), func(b *testing.B) {
			ps := newPipeSessions(b, nil, store.Tenant{ID: 1}, tc.sessions, store.RoleMember)
			r := ps.room()
			evs := benchEvents(tc.events)
			before := ps.events()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r.mu.Lock()
				r.lastSeq = 0
				r.mu.Unlock()
				ps.hub.deliver(r, 0, evs, ps.hub.linkGen.Load())
				ps.idle(b)
			}
			b.StopTimer()
			n := int64(b.N) * int64(tc.sessions) * int64(tc.events)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/delivery")
			// Every byte was written before idle returned; the readers may
			// still be counting the last of them.
			waitCount(b, func() bool { return ps.events()-before == n }, func() string {
				return fmt.Sprintf("the sessions received %d events, want %d", ps.events()-before, n)
			})
		})
	}
}

func waitCount(tb testing.TB, ok func() bool, what func() string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatal(what())
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkReplay10k is a resume: 10,000 missed comment events read from
// PostgreSQL, encoded, packed and written to one session. The target is
// under a second.
func BenchmarkReplay10k(b *testing.B) {
	const missed = 10000
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(b)
	db, err := store.Open(ctx, store.Config{URL: dbURL, Hasher: store.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	tenant, err := db.CreateTenant(ctx, "bench", "Bench")
	if err != nil {
		b.Fatal(err)
	}
	u, _, err := db.Register(ctx, tenant.ID, store.Registration{Username: "admin", Password: "benchmark-password"})
	if err != nil {
		b.Fatal(err)
	}
	actor := store.ActorOf(u)
	board, err := db.CreateBoard(ctx, tenant.ID, actor, store.NewBoard{Name: "Bench"})
	if err != nil {
		b.Fatal(err)
	}
	post, err := db.CreatePost(ctx, tenant.ID, actor, board.ID, "Resume", "a busy thread")
	if err != nil {
		b.Fatal(err)
	}
	// One comment through the store shows the real payload; the other
	// 9,999 are copies of it written in bulk by the superuser (hours of
	// REST calls under the rate limits, milliseconds this way).
	if _, err := db.CreateComment(ctx, tenant.ID, actor, post.ID, strings.Repeat("x", 300)); err != nil {
		b.Fatal(err)
	}
	roomName := store.PostRoom(post.ID)
	st, err := db.RoomState(ctx, tenant.ID, roomName)
	if err != nil {
		b.Fatal(err)
	}
	bulkComments(b, dbURL, tenant.ID, post.ID, u.ID, roomName, missed-1)
	upTo := st.Seq + missed - 1
	if st2, err := db.RoomState(ctx, tenant.ID, roomName); err != nil || st2.Seq != upTo {
		b.Fatalf("room at seq %d (%v), want %d", st2.Seq, err, upTo)
	}
	since := upTo - missed

	ps := newPipeSessions(b, db, tenant, 1, store.RoleMember)
	r := &room{key: roomKey{tenant: tenant.ID, name: roomName}, subs: map[*client]*sub{}}
	before := ps.events()
	b.ResetTimer()
	for b.Loop() {
		if err := ps.hub.replay(ctx, ps.clients[0], r, since, upTo); err != nil {
			b.Fatal(err)
		}
		ps.idle(b)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/replay")
	want := int64(b.N) * missed
	waitCount(b, func() bool { return ps.events()-before == want }, func() string {
		return fmt.Sprintf("the session received %d events, want %d", ps.events()-before, want)
	})
}

// bulkComments inserts n copies of the room's last comment, with their
// events, as the superuser (who is not subject to row level security).
func bulkComments(tb testing.TB, appURL string, tenantID, postID, authorID int64, room string, n int) {
	tb.Helper()
	ctx := context.Background()
	u, err := url.Parse(appURL)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.SuperuserURL(strings.TrimPrefix(u.Path, "/")))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		WITH last AS (
			SELECT payload FROM events WHERE tenant_id = $1 AND room = $2 ORDER BY seq DESC LIMIT 1
		), r AS (
			UPDATE rooms SET seq = seq + $5 WHERE tenant_id = $1 AND name = $2 RETURNING seq - $5 AS base
		), c AS (
			INSERT INTO comments (tenant_id, post_id, author_id, body)
			SELECT $1, $3, $4, repeat('x', 300) FROM generate_series(1, $5)
			RETURNING id
		), numbered AS (
			SELECT id, row_number() OVER (ORDER BY id) AS n FROM c
		)
		INSERT INTO events (tenant_id, room, seq, type, payload)
		SELECT $1, $2, r.base + numbered.n, 'comment.created',
		       last.payload || jsonb_build_object('id', numbered.id::text)
		FROM numbered, r, last`, tenantID, room, postID, authorID, n)
	if err != nil {
		tb.Fatalf("bulk comments: %v", err)
	}
}
