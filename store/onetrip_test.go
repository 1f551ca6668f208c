package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store/pgtest"
)

// tripCounter is a TCP proxy in front of Postgres that counts the round
// trips its clients make: every round trip of the protocol ends with the
// server's ReadyForQuery ('Z'), one per Sync or simple query.
type tripCounter struct {
	ln    net.Listener
	trips atomic.Int64
}

func newTripCounter(t *testing.T, target string) *tripCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &tripCounter{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(server, client); _ = server.Close() }()
			go func() { defer wg.Done(); tc.countServer(client, server); _ = client.Close() }()
		}
	}()
	return tc
}

// countServer forwards what the server sends and counts its
// ReadyForQuery messages. Every server message is a type byte and a
// length (the URL asks for no TLS, so there is no negotiation byte).
func (tc *tripCounter) countServer(client, server net.Conn) {
	head := make([]byte, 5)
	for {
		if _, err := io.ReadFull(server, head); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if head[0] == 'Z' {
			tc.trips.Add(1)
		}
		if _, err := client.Write(head); err != nil {
			return
		}
		if _, err := io.CopyN(client, server, int64(n)); err != nil {
			return
		}
	}
}

// via is rawURL pointing at the proxy.
func (tc *tripCounter) via(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = tc.ln.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable")
	q.Del("host")
	u.RawQuery = q.Encode()
	return u.String()
}

// countedDB is a store whose round trips tc counts: one pool connection,
// NOTIFY inside the transaction, and the queued post.activity flushed only
// when asked, so that nothing else talks through the proxy while a test
// counts.
func countedDB(t *testing.T) (*DB, *tripCounter) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTripCounter(t, u.Host)
	db, _ := openDB(t, Config{URL: tc.via(t, dbURL), MaxConns: 1, Doorbell: DoorbellInTx, ActivityDelay: time.Hour})
	return db, tc
}

// TestCreateCommentOneRoundTrip: a comment, with its notification,
// post.activity and read.updated, is one round trip to Postgres; one that
// mentions someone is two (the names are looked up first, to link them).
func TestCreateCommentOneRoundTrip(t *testing.T) {
	db, tc := countedDB(t)
	ctx := testCtx(t)
	c := newCommunity(t, db, "trips")
	tid := c.tenant.ID
	writer := registerUser(t, db, tid, "writer")
	// Warm the connection's statement cache: the first use of a statement
	// on a connection prepares it.
	for range 2 {
		if _, err := db.CreateComment(ctx, tid, ActorOf(writer), c.post.ID, "warm @"+c.member.Username); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateReply(ctx, tid, ActorOf(writer), c.post.ID, c.comment.ID, "warm"); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range []struct {
		name    string
		replyTo int64
		body    string
		trips   int64
	}{
		{"comment", 0, "plain", 1},
		{"reply", c.comment.ID, "a reply, notifying two people", 1},
		{"mention", 0, "hello @" + c.member.Username, 2},
	} {
		before := tc.trips.Load()
		if _, err := db.CreateReply(ctx, tid, ActorOf(writer), c.post.ID, tt.replyTo, tt.body); err != nil {
			t.Fatal(err)
		}
		if got := tc.trips.Load() - before; got != tt.trips {
			t.Errorf("%s: %d round trips, want %d", tt.name, got, tt.trips)
		}
	}
}

// TestCreateCommentEventsMatchEncoding: the events create_comment builds in
// SQL read exactly as the server's own encoding of the same objects, so a
// client cannot tell which side wrote an event.
func TestCreateCommentEventsMatchEncoding(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "encoding")
	tid := c.tenant.ID
	writer := registerUser(t, db, tid, "writer")
	before := map[string]int64{}
	for _, room := range []string{PostRoom(c.post.ID), BoardRoom(c.board.ID), UserRoom(writer.ID), UserRoom(c.admin.ID), UserRoom(c.member.ID)} {
		st, err := db.RoomState(ctx, tid, room)
		if err != nil {
			t.Fatal(err)
		}
		before[room] = st.Seq
	}
	created, err := db.CreateReply(ctx, tid, ActorOf(writer), c.post.ID, c.comment.ID, "**Thanks** @"+c.member.Username)
	if err != nil {
		t.Fatal(err)
	}

	listed, err := db.ListComments(ctx, tid, Actor{}, c.post.ID, PageParams{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	last := listed.Items[len(listed.Items)-1]
	if last.ID != created.ID {
		t.Fatalf("last listed comment %d, want %d", last.ID, created.ID)
	}
	ev := onlyEvent(t, db, tid, PostRoom(c.post.ID), "comment.created", before)
	sameJSON(t, "comment.created", ev.Payload, last)
	sameJSON(t, "the created comment", mustJSON(t, created), last)

	post, err := db.GetPost(ctx, tid, Actor{}, c.post.ID)
	if err != nil {
		t.Fatal(err)
	}
	settle(t, db, tid)
	ev = onlyEvent(t, db, tid, BoardRoom(c.board.ID), "post.activity", before)
	sameJSON(t, "post.activity", ev.Payload,
		activity{ID: post.ID, CommentCount: post.CommentCount, LastActivityAt: post.LastActivityAt})

	ev = onlyEvent(t, db, tid, UserRoom(writer.ID), "read.updated", before)
	sameJSON(t, "read.updated", ev.Payload, readUpdated{PostID: c.post.ID, LastReadCommentID: created.ID})

	for _, u := range []User{c.admin, c.member} {
		ev := onlyEvent(t, db, tid, UserRoom(u.ID), "notification.created", before)
		items := notes(t, db, tid, u)
		sameJSON(t, "notification.created for "+u.Username, ev.Payload,
			notificationCreated{Notification: items[0], UnreadCount: unread(t, db, tid, u)})
	}
}

// TestJSONTimeMatchesGo: json_time writes a time as encoding/json does.
func TestJSONTimeMatchesGo(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	paris := time.FixedZone("Paris", 3600)
	for _, tm := range []time.Time{
		time.Date(2026, 12, 1, 11, 12, 21, 0, time.UTC),
		time.Date(2026, 12, 1, 11, 12, 21, 100_000_000, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123_456_000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 1_000, time.UTC),
		time.Date(2026, 6, 30, 0, 30, 0, 120_000, paris),
	} {
		var got string
		if err := db.pool.QueryRow(ctx, `SELECT json_time($1)`, tm).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(tm.UTC())
		if `"`+got+`"` != string(want) {
			t.Errorf("json_time(%v) = %q, want %s", tm, got, want)
		}
	}
}

// TestCreateCommentRefusals: what create_comment raises comes back as the
// store's errors, and nothing is written.
func TestCreateCommentRefusals(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "refusals")
	tid := c.tenant.ID
	other, err := db.CreatePost(ctx, tid, ActorOf(c.member), c.board.ID, "Other", "Another post.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, tid, ActorOf(c.admin), c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	seqs := func() [2]int64 {
		var out [2]int64
		for i, id := range []int64{c.post.ID, other.ID} {
			st, err := db.RoomState(ctx, tid, PostRoom(id))
			if err != nil {
				t.Fatal(err)
			}
			out[i] = st.Seq
		}
		return out
	}
	before := seqs()
	if _, err := db.CreateComment(ctx, tid, ActorOf(c.member), 1<<40, "no such post"); !errors.Is(err, ErrNotFound) {
		t.Errorf("comment on a missing post: %v, want not found", err)
	}
	if _, err := db.CreateReply(ctx, tid, ActorOf(c.member), other.ID, c.comment.ID, "wrong post"); !errors.Is(err, errReplyTo) {
		t.Errorf("reply into another post: %v, want %v", err, errReplyTo)
	}
	if _, err := db.CreateComment(ctx, tid, ActorOf(c.member), c.post.ID, "locked"); !errors.Is(err, errLocked) {
		t.Errorf("comment on a locked post: %v, want %v", err, errLocked)
	}
	if after := seqs(); after != before {
		t.Errorf("post room seqs %v -> %v: a refused comment published", before, after)
	}
	for id, want := range map[int64]int{c.post.ID: 1, other.ID: 0} {
		post, err := db.GetPost(ctx, tid, ActorOf(c.admin), id)
		if err != nil {
			t.Fatal(err)
		}
		if post.CommentCount != want {
			t.Errorf("post %d: comment_count %d after refusals, want %d", id, post.CommentCount, want)
		}
	}
}

// onlyEvent is the one event a room got since before[room], checked to
// be of type typ.
func onlyEvent(t *testing.T, db *DB, tenantID int64, room, typ string, before map[string]int64) Event {
	t.Helper()
	evs, err := db.EventsAfter(testCtx(t), tenantID, room, before[room], 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != typ {
		t.Fatalf("events in %s: %v, want one %s", room, evs, typ)
	}
	return evs[0]
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameJSON compares payload with the server's encoding of want, as JSON
// values (jsonb keeps its own key order), and also byte for byte in
// Go's key order, so that a time or a number spelled differently fails.
func sameJSON(t *testing.T, what string, payload []byte, want any) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(payload, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mustJSON(t, want), &b); err != nil {
		t.Fatal(err)
	}
	ga, gb := mustJSON(t, a), mustJSON(t, b)
	if !bytes.Equal(ga, gb) {
		t.Errorf("%s:\n got %s\nwant %s", what, ga, gb)
	}
}

// TestRealtimeReadsOneRoundTrip: what every subscription and resume asks
// (does the room exist, where does its history stand, what came after a
// seq) is one round trip each.
func TestRealtimeReadsOneRoundTrip(t *testing.T) {
	db, tc := countedDB(t)
	ctx := testCtx(t)
	c := newCommunity(t, db, "reads")
	tid := c.tenant.ID
	reads := map[string]func() error{
		"post exists":  func() error { return db.RoomExists(ctx, tid, ActorOf(c.member), PostRoom(c.post.ID)) },
		"board exists": func() error { return db.RoomExists(ctx, tid, Actor{}, BoardRoom(c.board.ID)) },
		"room state":   func() error { _, err := db.RoomState(ctx, tid, PostRoom(c.post.ID)); return err },
		"events after": func() error { _, err := db.EventsAfter(ctx, tid, PostRoom(c.post.ID), 0, 100); return err },
	}
	for name, read := range reads {
		if err := read(); err != nil { // prepares its statement
			t.Fatalf("%s: %v", name, err)
		}
		before := tc.trips.Load()
		if err := read(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := tc.trips.Load() - before; got != 1 {
			t.Errorf("%s: %d round trips, want 1", name, got)
		}
	}
	if err := db.RoomExists(ctx, tid, Actor{}, PostRoom(c.post.ID+1000)); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing post's room: %v, want not found", err)
	}
}

// TestCrossRepliesDoNotDeadlock: two people answering each other's posts
// at the same time take the same user rooms (one's read.updated, the
// other's notification) and must take them in the same order: a deadlock
// costs Postgres's deadlock_timeout (1 s) before one of them is run again.
func TestCrossRepliesDoNotDeadlock(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	db, _ := openDB(t, Config{URL: dbURL})
	ctx := testCtx(t)
	c := newCommunity(t, db, "cross")
	tid := c.tenant.ID
	ann, bob := registerUser(t, db, tid, "ann"), registerUser(t, db, tid, "bob")
	annPost, err := db.CreatePost(ctx, tid, ActorOf(ann), c.board.ID, "Ann's", "Post.")
	if err != nil {
		t.Fatal(err)
	}
	// Another board: the board room would otherwise order the two.
	other, err := db.CreateBoard(ctx, tid, ActorOf(c.admin), NewBoard{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	bobPost, err := db.CreatePost(ctx, tid, ActorOf(bob), other.ID, "Bob's", "Post.")
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 60
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for _, w := range []struct {
		who  User
		post int64
	}{{ann, bobPost.ID}, {bob, annPost.ID}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if _, err := db.CreateComment(ctx, tid, ActorOf(w.who), w.post, "answer "+strconv.Itoa(i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A backend reports its deadlocks to the statistics when it exits.
	db.Close()
	su, err := pgx.Connect(ctx, pgtest.SuperuserURL(pgtest.DBName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	var deadlocks int64
	err = su.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks)
	if err != nil {
		t.Fatal(err)
	}
	if deadlocks != 0 {
		t.Errorf("%d deadlocks in %d pairs of crossing replies, want 0", deadlocks, rounds)
	}
}
