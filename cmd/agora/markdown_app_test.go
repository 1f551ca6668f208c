package main

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/migrations"
	"agora/store/pgtest"
)

// TestMarkdownMigrationOfOldData: `agora migrate up` (what `task migrate`
// runs) takes a database that has posts from before formatting, the
// server then renders them for real in the background, and
// `agora migrate down N` takes the schema back with the data kept.
func TestMarkdownMigrationOfOldData(t *testing.T) {
	env := withNewDatabase(t, map[string]string{"AGORA_LOG_FORMAT": "json"})
	dbURL := env["DATABASE_URL"]
	// Down to just before migration 3, however many came after it.
	files, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, f := range files {
		if v, _ := strconv.Atoi(regexp.MustCompile(`^\d+`).FindString(f)); v >= 3 {
			steps++
		}
	}
	// This package's test databases start empty.
	if _, err := runCmd(t, env, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, env, "migrate", "down", strconv.Itoa(steps)); err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL(pgtest.DBName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	var postID int64
	err = super.QueryRow(ctx, `
		WITH t AS (INSERT INTO tenants (slug, name) VALUES ('old', 'Old') RETURNING id),
		u AS (INSERT INTO users (tenant_id, username, password_hash) SELECT id, 'old_user', 'x' FROM t RETURNING tenant_id, id),
		b AS (INSERT INTO boards (tenant_id, slug, name) SELECT tenant_id, 'general', 'General' FROM u RETURNING tenant_id, id)
		INSERT INTO posts (tenant_id, board_id, author_id, title, body)
		SELECT b.tenant_id, b.id, u.id, 'Old', 'See https://example.com <b>now</b>' FROM b, u RETURNING id`).Scan(&postID)
	if err != nil {
		t.Fatal(err)
	}

	if out, err := runCmd(t, env, "migrate", "up"); err != nil || !strings.HasPrefix(out, "schema version ") {
		t.Fatalf("migrate up with data: %q, %v", out, err)
	}
	srv := startServer(t, dbURL, "127.0.0.1:0")
	want := `<p>See <a href="https://example.com" rel="nofollow ugc noopener">https://example.com</a> &lt;b&gt;now&lt;/b&gt;</p>`
	var got string
	for deadline := time.Now().Add(20 * time.Second); got != want; {
		if time.Now().After(deadline) {
			t.Fatalf("the old post's body_html is %q, want %q", got, want)
		}
		res, err := http.Get(srv.URL + "/api/v1/t/old/posts/" + strconv.FormatInt(postID, 10))
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			BodyHTML string `json:"body_html"`
		}
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET the old post: %d, %v", res.StatusCode, err)
		}
		got = p.BodyHTML
		if got != want {
			time.Sleep(20 * time.Millisecond) // polling a condition, with the deadline above
		}
	}
	srv.stop()

	if _, err := runCmd(t, env, "migrate", "down", strconv.Itoa(steps)); err != nil {
		t.Fatalf("migrate down with data: %v", err)
	}
	var columns int
	var body string
	err = super.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'body_html'),
		       (SELECT body FROM posts WHERE id = $1)`, postID).Scan(&columns, &body)
	if err != nil || columns != 0 || body != "See https://example.com <b>now</b>" {
		t.Errorf("after migrate down: %d body_html columns, body %q, %v", columns, body, err)
	}
}
