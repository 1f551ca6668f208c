package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"agora/api/apitest"
	"agora/store"
)

func TestForumHappyPaths(t *testing.T) {
	f := newForum(t, apitest.Options{})

	// Boards.
	if f.board.Slug != "general" || f.board.Version != 1 {
		t.Errorf("board %+v: want slug general, version 1", f.board)
	}
	status, body := f.Do(t, "POST", f.path("boards"), f.adminToken, map[string]string{"name": "General"})
	wantError(t, "duplicate board slug", status, body, http.StatusConflict, "conflict")

	// The post, as JSON: ids are strings, the documented fields are there.
	status, body = f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), "", nil)
	if status != http.StatusOK {
		t.Fatalf("get post: %d %s", status, body)
	}
	raw := decode[map[string]any](t, body)
	for _, k := range []string{"id", "board_id", "author", "title", "body", "version", "comment_count", "locked", "pinned", "hidden", "created_at", "updated_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("post has no %q: %s", k, body)
		}
	}
	if _, ok := raw["id"].(string); !ok {
		t.Errorf("post id is not a string: %s", body)
	}
	if a, _ := raw["author"].(map[string]any); a["id"] != fmt.Sprint(f.member.ID) || a["username"] != "bob" {
		t.Errorf("author = %v", raw["author"])
	}

	// Edit: version grows by one per change, not for a no-op.
	var p store.Post
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.memberToken, map[string]string{"title": "Hello, edited"}, http.StatusOK, &p)
	if p.Title != "Hello, edited" || p.Body != f.post.Body || p.Version != 2 {
		t.Errorf("after PATCH: %+v", p)
	}
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.memberToken, map[string]string{"title": "Hello, edited"}, http.StatusOK, &p)
	if p.Version != 2 {
		t.Errorf("a PATCH that changes nothing moved the version to %d", p.Version)
	}
	// A moderator (the admin) may edit someone else's post.
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.adminToken, map[string]string{"body": "Moderated."}, http.StatusOK, &p)
	if p.Body != "Moderated." || p.Version != 3 || p.Author.ID != f.member.ID {
		t.Errorf("after the admin's PATCH: %+v", p)
	}

	// Comments: create, edit, delete, and the post's counter follows.
	c := f.CreateComment(t, f.slug, f.adminToken, f.post.ID, "Nice post")
	if c.PostID != f.post.ID || c.Author.ID != f.admin.ID || c.Version != 1 {
		t.Errorf("comment %+v", c)
	}
	var c2 store.Comment
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("comments/%d", c.ID)), f.adminToken, map[string]string{"body": "Nice post!"}, http.StatusOK, &c2)
	if c2.Body != "Nice post!" || c2.Version != 2 {
		t.Errorf("edited comment %+v", c2)
	}
	status, body = f.Do(t, "PATCH", f.path(fmt.Sprintf("comments/%d", c.ID)), f.memberToken, map[string]string{"body": "not yours"})
	wantError(t, "member edits the admin's comment", status, body, http.StatusForbidden, "forbidden")
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), "", nil, http.StatusOK, &p)
	if p.CommentCount != 1 || p.Version != 3 {
		t.Errorf("post after a comment: count %d version %d; want 1, 3 (counters change no version)", p.CommentCount, p.Version)
	}
	status, body = f.Do(t, "DELETE", f.path(fmt.Sprintf("comments/%d", c.ID)), f.adminToken, nil)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Errorf("delete comment: %d %s", status, body)
	}
	status, body = f.Do(t, "DELETE", f.path(fmt.Sprintf("comments/%d", c.ID)), f.adminToken, nil)
	wantError(t, "delete a deleted comment", status, body, http.StatusNotFound, "not_found")

	// Delete the post: gone, with its comments.
	f.CreateComment(t, f.slug, f.memberToken, f.post.ID, "last words")
	status, body = f.Do(t, "DELETE", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.memberToken, nil)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Errorf("delete post: %d %s", status, body)
	}
	status, body = f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), "", nil)
	wantError(t, "deleted post", status, body, http.StatusNotFound, "not_found")
	status, body = f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), "", nil)
	wantError(t, "comments of a deleted post", status, body, http.StatusNotFound, "not_found")

	// Operations endpoints.
	for _, path := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		status, body := f.Do(t, "GET", path, "", nil)
		if status != http.StatusOK || !json.Valid(body) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
}

func TestPlatformTenants(t *testing.T) {
	s := apitest.Start(t, apitest.Options{AdminToken: "operator-secret", Hasher: fastHasher})
	var tn store.Tenant
	s.MustDo(t, "POST", "/api/v1/tenants", "operator-secret", map[string]string{"slug": "acme", "name": "Acme"}, http.StatusCreated, &tn)
	if tn.Slug != "acme" || tn.Name != "Acme" || tn.ID == 0 {
		t.Errorf("tenant %+v", tn)
	}
	var list page[store.Tenant]
	s.MustDo(t, "GET", "/api/v1/tenants", "operator-secret", nil, http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].Slug != "acme" || list.NextCursor != nil {
		t.Errorf("tenants %+v", list)
	}
	// The new tenant works at once.
	if _, tok := s.Register(t, "acme", "alice"); tok == "" {
		t.Error("no token")
	}

	// Without a configured token the platform endpoints do not exist.
	s2 := apitest.Start(t, apitest.Options{DatabaseURL: s.DatabaseURL, Hasher: fastHasher})
	status, body := s2.Do(t, "GET", "/api/v1/tenants", "", nil)
	wantError(t, "platform endpoints disabled", status, body, http.StatusNotFound, "not_found")
	status, body = s2.Do(t, "GET", "/api/v1/tenants", "operator-secret", nil)
	wantError(t, "platform endpoints disabled, with a token", status, body, http.StatusNotFound, "not_found")
	// Both servers share the database, as instances would.
	s2.MustDo(t, "GET", apitest.TenantPath("acme", "boards"), "", nil, http.StatusOK, nil)
}

// TestPagination creates 5 posts and 5 comments and pages through both
// with limit=2: every item exactly once, in the documented order.
func TestPagination(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	var posts []store.Post
	for i := 1; i <= 5; i++ {
		posts = append(posts, f.CreatePost(t, f.slug, f.memberToken, f.board.ID, fmt.Sprintf("p%d", i), "body"))
	}
	// Activity: a comment on p2 makes it the newest. p4 is pinned (the
	// moderation API has its own tests; here a plain UPDATE, as the app
	// role, inside the tenant's transaction).
	f.CreateComment(t, f.slug, f.memberToken, posts[1].ID, "bump")
	err := f.DB.WithTenant(context.Background(), mustTenant(t, f).ID, func(tx *store.Tx) error {
		_, err := tx.Exec(context.Background(), `UPDATE posts SET pinned = true WHERE id = $1`, posts[3].ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p4", "p2", "p5", "p3", "p1", f.post.Title}
	got := pageAll[store.Post](t, f, f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), 2)
	var titles []string
	for _, p := range got {
		titles = append(titles, p.Title)
	}
	if strings.Join(titles, ",") != strings.Join(want, ",") {
		t.Errorf("posts %v, want %v (pinned first, then newest activity)", titles, want)
	}
	if !got[0].Pinned {
		t.Errorf("first post is not marked pinned: %+v", got[0])
	}

	// Comments: oldest first.
	post := posts[0]
	var wantBodies []string
	for i := 1; i <= 5; i++ {
		c := f.CreateComment(t, f.slug, f.memberToken, post.ID, fmt.Sprintf("c%d", i))
		wantBodies = append(wantBodies, c.Body)
	}
	var bodies []string
	for _, c := range pageAll[store.Comment](t, f, f.path(fmt.Sprintf("posts/%d/comments", post.ID)), 2) {
		bodies = append(bodies, c.Body)
	}
	if strings.Join(bodies, ",") != strings.Join(wantBodies, ",") {
		t.Errorf("comments %v, want %v (oldest first)", bodies, wantBodies)
	}

	// Boards page the same way.
	f.CreateBoard(t, f.slug, f.adminToken, "Second")
	f.CreateBoard(t, f.slug, f.adminToken, "Third")
	var names []string
	for _, b := range pageAll[store.Board](t, f, f.path("boards"), 2) {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "General,Second,Third" {
		t.Errorf("boards %v", names)
	}

	// Default limit: everything in one page, no cursor.
	var all page[store.Post]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), "", nil, http.StatusOK, &all)
	if len(all.Items) != 6 || all.NextCursor != nil {
		t.Errorf("default page: %d items, cursor %v", len(all.Items), all.NextCursor)
	}
}

// pageAll follows next_cursor to the end, checking page sizes and that no
// item comes twice.
func pageAll[T any](t *testing.T, f *forum, path string, limit int) []T {
	t.Helper()
	var out []T
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatalf("%s: pagination does not end", path)
		}
		q := apitest.Query(path, "limit", fmt.Sprint(limit))
		if cursor != "" {
			q = apitest.Query(path, "limit", fmt.Sprint(limit), "cursor", cursor)
		}
		status, body := f.Do(t, "GET", q, "", nil)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", q, status, body)
		}
		pg := decode[page[json.RawMessage]](t, body)
		if pg.Items == nil {
			t.Fatalf("GET %s: items is not a list: %s", q, body)
		}
		if len(pg.Items) > limit {
			t.Fatalf("GET %s: %d items", q, len(pg.Items))
		}
		for _, raw := range pg.Items {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &id)
			if seen[id.ID] {
				t.Errorf("GET %s: item %s again", q, id.ID)
			}
			seen[id.ID] = true
			var v T
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		if pg.NextCursor == nil {
			return out
		}
		if len(pg.Items) != limit {
			t.Errorf("GET %s: a short page (%d) with a next cursor", q, len(pg.Items))
		}
		cursor = *pg.NextCursor
	}
}
