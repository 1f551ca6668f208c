package store

import (
	"testing"

	"agora/store/pgtest"
)

// reactionsMigration is the version of the migration that adds reactions
// and read state and makes comment_count count visible comments only.
const reactionsMigration = 8

// TestReactionsMigrationWithData: migrating a database whose counters
// counted hidden comments recounts them, gives commenters read state up to
// their own newest comment, and migrating down counts hidden comments
// again, as the code of that version expects.
func TestReactionsMigrationWithData(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	before := versionBefore(t, reactionsMigration)
	mg := ownerMigrator(t, url)
	if err := mg.m.Migrate(before); err != nil {
		t.Fatalf("down to %d: %v", before, err)
	}

	// A post with three comments, one hidden, counted 3 the old way, by
	// two users; and a post nobody commented on. Written as the superuser.
	super := superConn(t, url)
	var tenantID, postID, quietID, aliceID, bobID, aliceLast int64
	err := super.QueryRow(ctx, `
		WITH t AS (INSERT INTO tenants (slug, name) VALUES ('old-counts', 'Old counts') RETURNING id),
		a AS (INSERT INTO users (tenant_id, username, password_hash) SELECT id, 'alice', 'x' FROM t RETURNING tenant_id, id),
		b AS (INSERT INTO users (tenant_id, username, password_hash) SELECT id, 'bob', 'x' FROM t RETURNING tenant_id, id),
		bd AS (INSERT INTO boards (tenant_id, slug, name) SELECT id, 'general', 'General' FROM t RETURNING tenant_id, id),
		p AS (INSERT INTO posts (tenant_id, board_id, author_id, title, body, comment_count)
		      SELECT bd.tenant_id, bd.id, a.id, 'Busy', 'body', 3 FROM bd, a RETURNING tenant_id, id),
		q AS (INSERT INTO posts (tenant_id, board_id, author_id, title, body)
		      SELECT bd.tenant_id, bd.id, a.id, 'Quiet', 'body' FROM bd, a RETURNING id)
		SELECT p.tenant_id, p.id, q.id, a.id, b.id FROM p, q, a, b`).Scan(&tenantID, &postID, &quietID, &aliceID, &bobID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range []struct {
		author int64
		hidden bool
	}{{aliceID, false}, {bobID, true}, {aliceID, false}} {
		if err := super.QueryRow(ctx, `INSERT INTO comments (tenant_id, post_id, author_id, body, hidden)
			VALUES ($1, $2, $3, 'c', $4) RETURNING id`, tenantID, postID, cm.author, cm.hidden).Scan(&aliceLast); err != nil {
			t.Fatal(err)
		}
	}

	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up with data: %v", err)
	}
	db, _ := openDB(t, Config{URL: url})
	if _, err := db.CheckSafety(ctx, false); err != nil {
		t.Fatal(err)
	}
	alice, bob := Actor{UserID: aliceID, Role: RoleMember}, Actor{UserID: bobID, Role: RoleMember}
	p, err := db.GetPost(ctx, tenantID, alice, postID)
	if err != nil || p.CommentCount != 2 || len(p.Reactions) != 0 || p.Reactions == nil {
		t.Fatalf("old post after the migration: %+v (%v), want 2 visible comments and no reactions", p, err)
	}
	// Alice's newest comment is the post's newest: all read. Bob's only
	// one is hidden, and the visible comments around it are not his.
	wantReading(t, "alice", *p.PostReading, aliceLast, 0)
	wantReading(t, "bob", readingOf(t, db, tenantID, bob, postID), aliceLast-1, 1)
	wantReading(t, "alice on the quiet post", readingOf(t, db, tenantID, alice, quietID), 0, 0)
	db.Close()

	if err := mg.m.Migrate(before); err != nil {
		t.Fatalf("down with data: %v", err)
	}
	var count, tables, columns int
	err = super.QueryRow(ctx, `
		SELECT (SELECT comment_count FROM posts WHERE id = $1),
		       (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		        AND tablename IN ('post_reactions', 'comment_reactions', 'read_state')),
		       (SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'
		        AND table_name IN ('posts', 'comments') AND column_name = 'reactions')`, postID).Scan(&count, &tables, &columns)
	if err != nil || count != 3 || tables+columns != 0 {
		t.Errorf("after down: comment_count %d, %d tables and %d columns of the migration left (%v); want 3, none", count, tables, columns, err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
