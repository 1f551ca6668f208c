package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store/pgtest"
)

// The store's tests are in package store: the outbox tests call the
// unexported publish inside a transaction they roll back.
func TestMain(m *testing.M) { pgtest.Main(m, MigrateUp) }

const testPassword = "correct horse battery staple"

// fastHasher keeps tests that are not about password hashing quick under
// -race (one production hash costs ~0.2 s there, over 1 s on a loaded
// machine). The tests of hashing itself use DefaultHasher.
var fastHasher = Hasher{MemoryKiB: 64, Time: 1, Threads: 1}

// testCtx bounds a test's database work.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens the store on a fresh migrated database as the app role
// (cfg.Hasher zero: fastHasher).
func openDB(t *testing.T, cfg Config) (*DB, string) {
	t.Helper()
	if cfg.Hasher == (Hasher{}) {
		cfg.Hasher = fastHasher
	}
	if cfg.URL == "" {
		cfg.URL = pgtest.NewDatabase(t)
	}
	db, err := Open(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db, cfg.URL
}

// superConn connects to the database of rawURL as the cluster superuser,
// for the tricks the app role must not be able to do.
func superConn(t *testing.T, rawURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), pgtest.SuperuserURL(pgtest.DBName(t, rawURL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// community is one tenant with an admin, a member, a board, a post by
// the member and a comment on it by the admin.
type community struct {
	tenant      Tenant
	admin       User
	adminToken  string
	member      User
	memberToken string
	board       Board
	post        Post
	comment     Comment
}

func newCommunity(t *testing.T, db *DB, slug string) community {
	t.Helper()
	ctx := testCtx(t)
	var c community
	var err error
	user := strings.ReplaceAll(slug, "-", "_")
	if c.tenant, err = db.CreateTenant(ctx, slug, "Community "+slug); err != nil {
		t.Fatal(err)
	}
	if c.admin, c.adminToken, err = db.Register(ctx, c.tenant.ID, Registration{Username: user + "_admin", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	if c.member, c.memberToken, err = db.Register(ctx, c.tenant.ID, Registration{Username: user + "_member", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	if c.board, err = db.CreateBoard(ctx, c.tenant.ID, ActorOf(c.admin), NewBoard{Name: "General " + slug}); err != nil {
		t.Fatal(err)
	}
	if c.post, err = db.CreatePost(ctx, c.tenant.ID, ActorOf(c.member), c.board.ID, "Hello from "+slug, "First post."); err != nil {
		t.Fatal(err)
	}
	if c.comment, err = db.CreateComment(ctx, c.tenant.ID, ActorOf(c.admin), c.post.ID, "Welcome!"); err != nil {
		t.Fatal(err)
	}
	c.post.CommentCount = 1
	settle(t, db, c.tenant.ID)
	return c
}

// settle publishes the tenant's queued post.activity now, so that what a
// test reads of board rooms includes every write before it: the instance's
// own flush runs shortly after each write, and may still be on its way.
func settle(t *testing.T, db *DB, tenantID int64) {
	t.Helper()
	if _, err := db.FlushActivity(testCtx(t), tenantID); err != nil {
		t.Fatal(err)
	}
}

// listenConn is a dedicated connection LISTENing on the given channels.
func listenConn(t *testing.T, rawURL string, channels ...string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

const sentinelChannel = "agora_test_sentinel"

// drainUntilSentinel rings the sentinel channel from another connection
// and returns every notification on the event channel that the listener
// received before it. Postgres delivers notifications in commit order, so
// once the sentinel (committed after every write of interest) arrives,
// nothing of those writes is still in flight: no sleeping needed.
func drainUntilSentinel(t *testing.T, db *DB, listener *pgx.Conn) []Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	if _, err := db.Pool().Exec(ctx, "SELECT pg_notify($1, 'done')", sentinelChannel); err != nil {
		t.Fatal(err)
	}
	var got []Notification
	for {
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			t.Fatalf("waiting for notifications (have %d): %v", len(got), err)
		}
		switch n.Channel {
		case sentinelChannel:
			return got
		case NotifyChannel:
			p, err := ParseNotification(n.Payload)
			if err != nil {
				t.Fatalf("notification %q: %v", n.Payload, err)
			}
			if len(n.Payload) > 200 {
				t.Errorf("notification payload is %d bytes; it should carry ids only", len(n.Payload))
			}
			got = append(got, p)
		}
	}
}
