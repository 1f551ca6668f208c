package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// tenantTables are the tenant-owned tables; the test fails if the schema
// gains one this list does not know, so new tables get the same proof.
var tenantTables = []string{"users", "tokens", "boards", "posts", "comments", "reports", "audit_log", "rooms", "events",
	"post_revisions", "comment_revisions", "idempotency_keys", "post_reactions", "comment_reactions", "read_state",
	"notifications", "notification_counts", "search_docs", "activity_queue"}

func checkTenantTableList(t *testing.T, ctx context.Context, db *DB) {
	t.Helper()
	rows, err := db.Pool().Query(ctx, `
		SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, tb := range tenantTables {
		known[tb] = true
	}
	for _, tb := range have {
		if !known[tb] {
			t.Errorf("tenant table %s is not covered by the isolation tests: add it to tenantTables and give it a row in seedRestOfTenant", tb)
		}
	}
}

// seedRestOfTenant gives a community rows in the tables the forum methods do
// not write (reports and the audit log belong to moderation, idempotency
// keys to keyed requests), in the revisions tables without editing (which
// would bump the versions that the tests check are unchanged), and
// reactions. (read_state has the admin's row: writing the community's
// comment made it.)
// seededQueue is the ActivityDelay of the tests that seed activity_queue:
// long enough that the DB's own flusher, still due from the community's
// last comment, leaves the seeded row alone.
const seededQueue = time.Hour

func seedRestOfTenant(t *testing.T, ctx context.Context, db *DB, c community) {
	t.Helper()
	key := IdempotencyKey{Hash: []byte("key of " + c.tenant.Slug), Request: []byte("request"), Claim: []byte("claim")}
	if _, err := db.ClaimIdempotencyKey(ctx, c.tenant.ID, key, time.Hour, time.Minute); err != nil {
		t.Fatal(err)
	}
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO reports (tenant_id, reporter_id, target_type, target_id, reason)
			VALUES ($1, $2, 'post', $3, 'spam')`, c.tenant.ID, c.member.ID, c.post.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id)
			VALUES ($1, $2, 'post.pin', 'post', $3)`, c.tenant.ID, c.admin.ID, c.post.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO post_revisions (tenant_id, post_id, version, title, body, edited_by, edited_at)
			VALUES ($1, $2, 1, 'old title', 'old body', $3, now())`, c.tenant.ID, c.post.ID, c.member.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO comment_revisions (tenant_id, comment_id, version, body, edited_by, edited_at)
			VALUES ($1, $2, 1, 'old body', $3, now())`, c.tenant.ID, c.comment.ID, c.admin.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO post_reactions (tenant_id, post_id, user_id, kind)
			VALUES ($1, $2, $3, 'like')`, c.tenant.ID, c.post.ID, c.admin.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO comment_reactions (tenant_id, comment_id, user_id, kind)
			VALUES ($1, $2, $3, 'like')`, c.tenant.ID, c.comment.ID, c.member.ID); err != nil {
			return err
		}
		// Queued as a write would, and left there (see seededQueue).
		_, err := tx.Exec(ctx, `INSERT INTO activity_queue (tenant_id, board_id, post_id, comment_count, last_activity_at)
			VALUES ($1, $2, $3, 1, now())`, c.tenant.ID, c.board.ID, c.post.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The admin's comment on the member's post notified the member.
	err = db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE user_id = $1`, c.member.ID).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("the member has %d notifications, want 1 (the admin's comment)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countAll counts the rows of every tenant table that tx can see.
func countAll(t *testing.T, ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) map[string]int64 {
	t.Helper()
	n := map[string]int64{}
	for _, tb := range tenantTables {
		var c int64
		if err := q.QueryRow(ctx, `SELECT count(*) FROM `+tb).Scan(&c); err != nil {
			t.Fatalf("count %s: %v", tb, err)
		}
		n[tb] = c
	}
	return n
}

func tenantCounts(t *testing.T, ctx context.Context, db *DB, tenantID int64) map[string]int64 {
	t.Helper()
	var n map[string]int64
	if err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		n = countAll(t, ctx, tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIsolationSQL proves Row Level Security itself, below the store's own
// WHERE clauses: raw SQL as the app role inside WithTenant(B) cannot see,
// change, delete or create tenant A's rows.
func TestIsolationSQL(t *testing.T) {
	db, _ := openDB(t, Config{ActivityDelay: seededQueue})
	ctx := testCtx(t)
	checkTenantTableList(t, ctx, db)
	a := newCommunity(t, db, "tenant-a")
	b := newCommunity(t, db, "tenant-b")
	seedRestOfTenant(t, ctx, db, a)
	aBefore := tenantCounts(t, ctx, db, a.tenant.ID)
	for tb, n := range aBefore {
		if n == 0 {
			t.Fatalf("tenant A has no %s rows: the test would prove nothing about %s", tb, tb)
		}
	}
	bBefore := tenantCounts(t, ctx, db, b.tenant.ID)

	asB := func(fn func(tx *Tx) error) error { return db.WithTenant(ctx, b.tenant.ID, fn) }

	t.Run("SelectUpdateDelete", func(t *testing.T) {
		err := asB(func(tx *Tx) error {
			for _, tb := range tenantTables {
				var n int64
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+tb+` WHERE tenant_id = $1`, a.tenant.ID).Scan(&n); err != nil {
					return err
				}
				if n != 0 {
					t.Errorf("as B, %s shows %d rows of A", tb, n)
				}
				if tb == "audit_log" {
					// Append-only: the serving role has no UPDATE or DELETE
					// on it at all (TestServingRoleHasDataRightsOnly).
					continue
				}
				tag, err := tx.Exec(ctx, `UPDATE `+tb+` SET tenant_id = tenant_id WHERE tenant_id = $1`, a.tenant.ID)
				if err != nil {
					return fmt.Errorf("update %s: %w", tb, err)
				}
				if tag.RowsAffected() != 0 {
					t.Errorf("as B, UPDATE %s touched %d rows of A", tb, tag.RowsAffected())
				}
				tag, err = tx.Exec(ctx, `DELETE FROM `+tb+` WHERE tenant_id = $1`, a.tenant.ID)
				if err != nil {
					return fmt.Errorf("delete %s: %w", tb, err)
				}
				if tag.RowsAffected() != 0 {
					t.Errorf("as B, DELETE %s touched %d rows of A", tb, tag.RowsAffected())
				}
			}
			// By primary key, as a query that forgot its tenant filter would.
			for _, q := range []struct {
				sql string
				id  int64
			}{
				{`UPDATE posts SET title = 'pwned' WHERE id = $1`, a.post.ID},
				{`UPDATE boards SET name = 'pwned' WHERE id = $1`, a.board.ID},
				{`UPDATE users SET role = 'member' WHERE id = $1`, a.admin.ID},
				{`UPDATE tokens SET revoked_at = now() WHERE user_id = $1`, a.admin.ID},
				{`DELETE FROM posts WHERE id = $1`, a.post.ID},
				{`DELETE FROM users WHERE id = $1`, a.member.ID},
			} {
				tag, err := tx.Exec(ctx, q.sql, q.id)
				if err != nil {
					return fmt.Errorf("%s: %w", q.sql, err)
				}
				if tag.RowsAffected() != 0 {
					t.Errorf("as B, %q touched %d rows", q.sql, tag.RowsAffected())
				}
			}
			// B sees exactly its own rows.
			if got := countAll(t, ctx, tx); fmt.Sprint(got) != fmt.Sprint(bBefore) {
				t.Errorf("as B, row counts %v; B's own are %v", got, bBefore)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("InsertIntoA", func(t *testing.T) {
		inserts := map[string]struct {
			sql  string
			args []any
		}{
			"users":     {`INSERT INTO users (tenant_id, username, password_hash) VALUES ($1, 'intruder', 'x')`, []any{a.tenant.ID}},
			"tokens":    {`INSERT INTO tokens (tenant_id, user_id, kind, hash, expires_at) VALUES ($1, $2, 'session', '\x00', now() + interval '1 day')`, []any{a.tenant.ID, a.admin.ID}},
			"boards":    {`INSERT INTO boards (tenant_id, slug, name) VALUES ($1, 'intruder', 'Intruder')`, []any{a.tenant.ID}},
			"posts":     {`INSERT INTO posts (tenant_id, board_id, author_id, title, body) VALUES ($1, $2, $3, 't', 'b')`, []any{a.tenant.ID, a.board.ID, a.admin.ID}},
			"comments":  {`INSERT INTO comments (tenant_id, post_id, author_id, body) VALUES ($1, $2, $3, 'b')`, []any{a.tenant.ID, a.post.ID, a.admin.ID}},
			"reports":   {`INSERT INTO reports (tenant_id, reporter_id, target_type, target_id, reason) VALUES ($1, $2, 'post', $3, 'r')`, []any{a.tenant.ID, a.admin.ID, a.post.ID}},
			"audit_log": {`INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id) VALUES ($1, $2, 'post.pin', 'post', $3)`, []any{a.tenant.ID, a.admin.ID, a.post.ID}},
			"rooms":     {`INSERT INTO rooms (tenant_id, name, seq) VALUES ($1, 'board:999999', 1)`, []any{a.tenant.ID}},
			"events":    {`INSERT INTO events (tenant_id, room, seq, type, payload) VALUES ($1, 'tenant', 999999, 'board.created', '{}')`, []any{a.tenant.ID}},
			"post_revisions": {`INSERT INTO post_revisions (tenant_id, post_id, version, title, body, edited_by, edited_at)
				VALUES ($1, $2, 99, 't', 'b', $3, now())`, []any{a.tenant.ID, a.post.ID, a.admin.ID}},
			"comment_revisions": {`INSERT INTO comment_revisions (tenant_id, comment_id, version, body, edited_by, edited_at)
				VALUES ($1, $2, 99, 'b', $3, now())`, []any{a.tenant.ID, a.comment.ID, a.admin.ID}},
			"idempotency_keys": {`INSERT INTO idempotency_keys (tenant_id, key_hash, request_hash, claim, expires_at) VALUES ($1, '\x01', '\x02', '\x03', now() + interval '1 day')`, []any{a.tenant.ID}},
			"post_reactions": {`INSERT INTO post_reactions (tenant_id, post_id, user_id, kind) VALUES ($1, $2, $3, 'wow')`,
				[]any{a.tenant.ID, a.post.ID, a.member.ID}},
			"comment_reactions": {`INSERT INTO comment_reactions (tenant_id, comment_id, user_id, kind) VALUES ($1, $2, $3, 'wow')`,
				[]any{a.tenant.ID, a.comment.ID, a.admin.ID}},
			"read_state": {`INSERT INTO read_state (tenant_id, user_id, post_id, last_read_comment_id) VALUES ($1, $2, $3, $4)`,
				[]any{a.tenant.ID, a.member.ID, a.post.ID, a.comment.ID}},
			"notifications": {`INSERT INTO notifications (tenant_id, user_id, kind, actor_id, post_id)
				VALUES ($1, $2, 'reply', $3, $4)`, []any{a.tenant.ID, a.member.ID, a.admin.ID, a.post.ID}},
			"notification_counts": {`INSERT INTO notification_counts (tenant_id, user_id, unread) VALUES ($1, $2, 1)`, []any{a.tenant.ID, a.admin.ID}},
			"activity_queue": {`INSERT INTO activity_queue (tenant_id, board_id, post_id, comment_count, last_activity_at)
				VALUES ($1, $2, $3, 1, now())`, []any{a.tenant.ID, a.board.ID, a.post.ID}},
			"search_docs": {`INSERT INTO search_docs (tenant_id, post_id, comment_id, board_id, hidden, created_at, doc)
				VALUES ($1, $2, $3, $4, false, now(), 'x')`, []any{a.tenant.ID, a.post.ID, a.comment.ID, a.board.ID}},
		}
		for _, tb := range tenantTables {
			ins, ok := inserts[tb]
			if !ok {
				t.Errorf("no insert case for %s", tb)
				continue
			}
			err := asB(func(tx *Tx) error { _, err := tx.Exec(ctx, ins.sql, ins.args...); return err })
			if !isSQLState(err, "42501") {
				t.Errorf("as B, inserting into %s with A's tenant_id: err = %v, want a row level security violation (42501)", tb, err)
			}
		}
		// Nor can B move one of its own rows into A.
		err := asB(func(tx *Tx) error {
			_, err := tx.Exec(ctx, `UPDATE boards SET tenant_id = $1 WHERE id = $2`, a.tenant.ID, b.board.ID)
			return err
		})
		if !isSQLState(err, "42501") {
			t.Errorf("as B, moving a board to A: err = %v, want 42501", err)
		}
	})

	t.Run("CommentOnAsPost", func(t *testing.T) {
		missing := a.post.ID + b.post.ID + 1000
		// Raw SQL: the composite foreign key (tenant_id, post_id) finds no
		// post (B, A's id), exactly as for an id that exists nowhere.
		rawInsert := func(postID int64) error {
			return asB(func(tx *Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO comments (tenant_id, post_id, author_id, body) VALUES ($1, $2, $3, 'x')`,
					b.tenant.ID, postID, b.admin.ID)
				return mapErr(err, "comment")
			})
		}
		errA, errMissing := rawInsert(a.post.ID), rawInsert(missing)
		if !errors.Is(errA, ErrNotFound) || !errors.Is(errMissing, ErrNotFound) {
			t.Fatalf("raw comment on A's post: %v; on a missing post: %v; want both not_found", errA, errMissing)
		}
		if errA.Error() != errMissing.Error() {
			t.Errorf("A's post (%v) and a missing post (%v) must fail alike", errA, errMissing)
		}
		// Through the store: the same not_found as a missing post.
		_, errA = db.CreateComment(ctx, b.tenant.ID, ActorOf(b.admin), a.post.ID, "x")
		_, errMissing = db.CreateComment(ctx, b.tenant.ID, ActorOf(b.admin), missing, "x")
		if !errors.Is(errA, ErrNotFound) || errA.Error() != errMissing.Error() {
			t.Errorf("CreateComment on A's post: %v; on a missing post: %v; want the same not_found", errA, errMissing)
		}
	})

	t.Run("StoreMethodsAsB", func(t *testing.T) {
		actor := ActorOf(b.admin) // an admin of B, so not even role checks stand in the way
		checks := map[string]error{}
		_, checks["GetPost"] = db.GetPost(ctx, b.tenant.ID, actor, a.post.ID)
		_, checks["GetBoard"] = db.GetBoard(ctx, b.tenant.ID, a.board.ID)
		_, checks["GetUser"] = db.GetUser(ctx, b.tenant.ID, a.admin.ID)
		_, checks["ListPosts"] = db.ListPosts(ctx, b.tenant.ID, actor, a.board.ID, PageParams{Limit: 10})
		_, checks["ListComments"] = db.ListComments(ctx, b.tenant.ID, actor, a.post.ID, PageParams{Limit: 10})
		_, checks["CreatePost"] = db.CreatePost(ctx, b.tenant.ID, actor, a.board.ID, "t", "b")
		title := "pwned"
		_, checks["UpdatePost"] = db.UpdatePost(ctx, b.tenant.ID, actor, a.post.ID, PostPatch{Title: &title})
		checks["DeletePost"] = db.DeletePost(ctx, b.tenant.ID, actor, a.post.ID)
		checks["RoomExists"] = db.RoomExists(ctx, b.tenant.ID, actor, PostRoom(a.post.ID))
		checks["RoomExists(user)"] = db.RoomExists(ctx, b.tenant.ID, actor, UserRoom(a.member.ID))
		_, checks["GetUserPage"] = db.GetUserPage(ctx, b.tenant.ID, actor, a.member.Username)
		var aNote int64
		if err := db.WithTenant(ctx, a.tenant.ID, func(tx *Tx) error {
			return tx.QueryRow(ctx, `SELECT id FROM notifications WHERE user_id = $1`, a.member.ID).Scan(&aNote)
		}); err != nil {
			t.Fatal(err)
		}
		_, checks["MarkRead"] = db.MarkNotificationsRead(ctx, b.tenant.ID, ActorOf(b.member), []int64{aNote}, false)
		_, checks["PostRevisions"] = db.PostRevisions(ctx, b.tenant.ID, actor, a.post.ID, PageParams{Limit: 10})
		_, checks["CommentRevisions"] = db.CommentRevisions(ctx, b.tenant.ID, actor, a.comment.ID, PageParams{Limit: 10})
		_, checks["ReactToPost"] = db.ReactToPost(ctx, b.tenant.ID, actor, a.post.ID, "like", true)
		_, checks["ReactToPost off"] = db.ReactToPost(ctx, b.tenant.ID, actor, a.post.ID, "like", false)
		_, checks["ReactToComment"] = db.ReactToComment(ctx, b.tenant.ID, actor, a.comment.ID, "like", true)
		_, checks["ReactToComment off"] = db.ReactToComment(ctx, b.tenant.ID, actor, a.comment.ID, "like", false)
		checks["MarkRead"] = db.MarkRead(ctx, b.tenant.ID, actor, a.post.ID, nil)
		checks["MarkRead at A's comment"] = db.MarkRead(ctx, b.tenant.ID, actor, a.post.ID, &a.comment.ID)
		for name, err := range checks {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s with A's ids as B: %v, want not_found", name, err)
			}
		}
		if _, err := db.Authenticate(ctx, b.tenant.ID, a.adminToken); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("A's token in B: %v, want unauthorized", err)
		}
		if _, _, err := db.Login(ctx, b.tenant.ID, a.admin.Username, testPassword); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("A's user logging in to B: %v, want unauthorized", err)
		}
		evs, err := db.EventsAfter(ctx, b.tenant.ID, PostRoom(a.post.ID), 0, 100)
		if err != nil || len(evs) != 0 {
			t.Errorf("EventsAfter of A's post room as B: %d events, %v; want none", len(evs), err)
		}
		// A reply in B answering A's comment is refused exactly like one
		// answering a comment that exists nowhere.
		_, errA := db.CreateReply(ctx, b.tenant.ID, actor, b.post.ID, a.comment.ID, "x")
		_, errMissing := db.CreateReply(ctx, b.tenant.ID, actor, b.post.ID, a.comment.ID+b.comment.ID+1000, "x")
		if !errors.Is(errA, &Error{Code: CodeInvalid}) || fmt.Sprint(errA) != fmt.Sprint(errMissing) {
			t.Errorf("CreateReply to A's comment as B: %v; to a missing one: %v; want the same unprocessable", errA, errMissing)
		}
		evs, err = db.EventsAfter(ctx, b.tenant.ID, UserRoom(a.member.ID), 0, 100)
		if err != nil || len(evs) != 0 {
			t.Errorf("EventsAfter of A's member's user room as B: %d events, %v; want none", len(evs), err)
		}
		// B's member sees only B's own notification (the admin's welcome).
		list, err := db.ListNotifications(ctx, b.tenant.ID, ActorOf(b.member), false, PageParams{Limit: 50})
		if err != nil || len(list.Items) != 1 || list.Items[0].Post == nil || list.Items[0].Post.ID != b.post.ID {
			t.Errorf("B's member's notifications: %+v, %v; want only the one about B's post", list.Items, err)
		}
	})

	// Nothing of A changed.
	if got := tenantCounts(t, ctx, db, a.tenant.ID); fmt.Sprint(got) != fmt.Sprint(aBefore) {
		t.Errorf("A's row counts changed: %v, before %v", got, aBefore)
	}
	p, err := db.GetPost(ctx, a.tenant.ID, ActorOf(a.admin), a.post.ID)
	if err != nil || p.Title != a.post.Title || p.Version != 1 || p.CommentCount != 1 {
		t.Errorf("A's post after B's attempts: %+v, %v", p, err)
	}
	if _, err := db.Authenticate(ctx, a.tenant.ID, a.adminToken); err != nil {
		t.Errorf("A's admin token after B's attempts: %v", err)
	}
	if u, err := db.GetUser(ctx, a.tenant.ID, a.admin.ID); err != nil || u.Role != RoleAdmin {
		t.Errorf("A's admin after B's attempts: %+v, %v", u, err)
	}
}

// TestNoTenantSeesNothing: a transaction that never set app.tenant_id
// (a bug that skipped WithTenant) sees and touches no tenant rows, without
// an error, on a pooled connection that served tenants before and on a
// brand-new one.
func TestNoTenantSeesNothing(t *testing.T) {
	db, dbURL := openDB(t, Config{ActivityDelay: seededQueue})
	ctx := testCtx(t)
	c := newCommunity(t, db, "someone")
	seedRestOfTenant(t, ctx, db, c)

	check := func(t *testing.T, conn interface {
		Begin(context.Context) (pgx.Tx, error)
	}) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var setting *string
		if err := tx.QueryRow(ctx, `SELECT NULLIF(current_setting('app.tenant_id', true), '')`).Scan(&setting); err != nil || setting != nil {
			t.Fatalf("app.tenant_id = %v (err %v), want unset", setting, err)
		}
		for tb, n := range countAll(t, ctx, tx) {
			if n != 0 {
				t.Errorf("no tenant set: %s shows %d rows", tb, n)
			}
		}
		for _, tb := range tenantTables {
			if tb == "audit_log" {
				continue // append-only: no UPDATE or DELETE for the serving role
			}
			tag, err := tx.Exec(ctx, `UPDATE `+tb+` SET tenant_id = tenant_id`)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("no tenant set: UPDATE %s: %d rows, %v", tb, tag.RowsAffected(), err)
			}
			tag, err = tx.Exec(ctx, `DELETE FROM `+tb)
			if err != nil || tag.RowsAffected() != 0 {
				t.Errorf("no tenant set: DELETE %s: %d rows, %v", tb, tag.RowsAffected(), err)
			}
		}
		if _, err := tx.Exec(ctx, `SAVEPOINT s`); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO boards (tenant_id, slug, name) VALUES ($1, 'x', 'x')`, c.tenant.ID)
		if !isSQLState(err, "42501") {
			t.Errorf("no tenant set: insert a board: %v, want 42501", err)
		}
	}

	t.Run("PooledConnAfterTenantTx", func(t *testing.T) {
		conn, err := db.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		// This connection carried a tenant in an earlier transaction: the
		// setting must not outlive it.
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, fmt.Sprint(c.tenant.ID))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, conn)
	})
	t.Run("FreshConn", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		check(t, conn)
	})

	// The deletes above were no-ops: the tenant's rows are all there.
	for tb, n := range tenantCounts(t, ctx, db, c.tenant.ID) {
		if n == 0 {
			t.Errorf("tenant lost its %s rows", tb)
		}
	}
}

func isSQLState(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}
