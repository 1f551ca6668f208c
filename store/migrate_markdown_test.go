package store

import (
	"testing"

	"agora/store/pgtest"
)

// markdownMigration is the version of the migration that adds body_html,
// edited_at and the revisions tables.
const markdownMigration = 3

// TestMarkdownMigrationWithData: migrating a database that already has
// posts and comments fills body_html with a safe rendering, and migrating
// down again removes the columns and tables and keeps the data.
func TestMarkdownMigrationWithData(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	before := versionBefore(t, markdownMigration)
	mg := ownerMigrator(t, url)
	if err := mg.m.Migrate(before); err != nil {
		t.Fatalf("down to %d: %v", before, err)
	}

	// Data as the old schema held it, written as the superuser (no tenant
	// setting needed) with SQL that names only columns of migration 1.
	super := superConn(t, url)
	const body = "Hello <b>world</b> & \"friends\"\n\nIt's  me\r\nat https://example.com\n\n\n  third  "
	const wantHTML = "<p>Hello &lt;b&gt;world&lt;/b&gt; &amp; &#34;friends&#34;</p>\n<p>It&#39;s  me\nat https://example.com</p>\n<p>third</p>"
	var tenantID, postID, commentID int64
	err := super.QueryRow(ctx, `
		WITH t AS (INSERT INTO tenants (slug, name) VALUES ('old-data', 'Old data') RETURNING id),
		u AS (INSERT INTO users (tenant_id, username, password_hash) SELECT id, 'old_user', 'x' FROM t RETURNING tenant_id, id),
		b AS (INSERT INTO boards (tenant_id, slug, name) SELECT tenant_id, 'general', 'General' FROM u RETURNING tenant_id, id),
		p AS (INSERT INTO posts (tenant_id, board_id, author_id, title, body)
		      SELECT b.tenant_id, b.id, u.id, 'Old post', $1 FROM b, u RETURNING tenant_id, id, author_id),
		c AS (INSERT INTO comments (tenant_id, post_id, author_id, body)
		      SELECT tenant_id, id, author_id, '<script>alert(1)</script>' FROM p RETURNING tenant_id, post_id, id)
		SELECT tenant_id, post_id, id FROM c`, body).Scan(&tenantID, &postID, &commentID)
	if err != nil {
		t.Fatal(err)
	}

	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up with data: %v", err)
	}
	db, _ := openDB(t, Config{URL: url})
	if _, err := db.CheckSafety(ctx, false); err != nil {
		t.Fatal(err)
	}
	p, err := db.GetPost(ctx, tenantID, Actor{}, postID)
	if err != nil {
		t.Fatal(err)
	}
	if p.BodyHTML != wantHTML || p.EditedAt != nil || p.Body != body {
		t.Errorf("old post after the migration: body_html %q, edited_at %v, body %q\nwant body_html %q", p.BodyHTML, p.EditedAt, p.Body, wantHTML)
	}
	cs, err := db.ListComments(ctx, tenantID, Actor{}, postID, PageParams{Limit: 10})
	if err != nil || len(cs.Items) != 1 || cs.Items[0].BodyHTML != "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" {
		t.Errorf("old comment after the migration: %+v, %v", cs.Items, err)
	}

	// The server then renders the old rows for real, once.
	if n, err := db.RenderStaleBodies(ctx); err != nil || n != 2 {
		t.Fatalf("RenderStaleBodies: %d, %v; want the old post and comment", n, err)
	}
	rendered, err := db.GetPost(ctx, tenantID, Actor{}, postID)
	wantRendered := "<p>Hello &lt;b&gt;world&lt;/b&gt; &amp; &#34;friends&#34;</p>\n<p>It&#39;s  me\nat " +
		`<a href="https://example.com" ` + linkRel + ">https://example.com</a></p>\n<p>third</p>"
	if err != nil || rendered.BodyHTML != wantRendered || rendered.Version != p.Version || !rendered.UpdatedAt.Equal(p.UpdatedAt) {
		t.Errorf("old post re-rendered: %q, version %d, updated_at %v (%v)\nwant %q, version %d, updated_at %v",
			rendered.BodyHTML, rendered.Version, rendered.UpdatedAt, err, wantRendered, p.Version, p.UpdatedAt)
	}
	if n, err := db.RenderStaleBodies(ctx); err != nil || n != 0 {
		t.Errorf("RenderStaleBodies again: %d, %v; want nothing left", n, err)
	}
	// The old rows can be edited, and their history starts with the text
	// they had.
	edit := "New *text*"
	if _, err := db.UpdatePost(ctx, tenantID, Actor{UserID: p.Author.ID, Role: RoleMember}, postID, PostPatch{Body: &edit}); err != nil {
		t.Fatal(err)
	}
	revs, err := db.PostRevisions(ctx, tenantID, Actor{UserID: p.Author.ID, Role: RoleMember}, postID, PageParams{Limit: 10})
	if err != nil || len(revs.Items) != 2 || revs.Items[0].Body != body || revs.Items[1].Body != edit {
		t.Errorf("history of the old post: %+v, %v", revs.Items, err)
	}
	// A row inserted by SQL that knows nothing of body_html still gets a
	// safe one.
	var fallback string
	err = super.QueryRow(ctx, `INSERT INTO comments (tenant_id, post_id, author_id, body) VALUES ($1, $2, $3, '<i>raw</i>')
		RETURNING body_html`, tenantID, postID, p.Author.ID).Scan(&fallback)
	if err != nil || fallback != "<p>&lt;i&gt;raw&lt;/i&gt;</p>" {
		t.Errorf("body_html of a comment inserted without one: %q, %v", fallback, err)
	}
	if n, err := db.RenderStaleBodies(ctx); err != nil || n != 1 {
		t.Errorf("RenderStaleBodies after the raw insert: %d, %v; want 1", n, err)
	}
	db.Close()

	if err := mg.m.Migrate(before); err != nil {
		t.Fatalf("down with data: %v", err)
	}
	var columns, tables, functions int
	err = super.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM information_schema.columns
		        WHERE table_schema = 'public' AND table_name IN ('posts', 'comments')
		          AND column_name IN ('body_html', 'body_html_stale', 'edited_at')),
		       (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('post_revisions', 'comment_revisions')),
		       (SELECT count(*) FROM pg_proc WHERE proname IN ('escaped_paragraphs', 'fill_body_html'))`).Scan(&columns, &tables, &functions)
	if err != nil || columns+tables+functions != 0 {
		t.Errorf("after down: %d columns, %d tables, %d functions of the migration left (%v)", columns, tables, functions, err)
	}
	var n int
	var gotBody string
	if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM comments), (SELECT body FROM posts WHERE id = $1)`, postID).Scan(&n, &gotBody); err != nil || n != 2 || gotBody != edit {
		t.Errorf("after down: %d comments, post body %q (%v); want the 2 comments and the edited body", n, gotBody, err)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
