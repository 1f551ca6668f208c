package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"agora/api/apitest"
)

// TestFormattingAndHistory: posts and comments carry body_html and
// edited_at, and their edit history answers the author and moderators
// with the documented items, everyone else 404.
func TestFormattingAndHistory(t *testing.T) {
	f := newForum(t, apitest.Options{})
	_, carolToken := f.Register(t, f.slug, "carol")
	postPath := f.path(fmt.Sprintf("posts/%d", f.post.ID))

	status, body := f.Do(t, "GET", postPath, "", nil)
	raw := decode[map[string]any](t, body)
	if status != http.StatusOK || raw["body_html"] != "<p>First post.</p>" || raw["edited_at"] != nil {
		t.Fatalf("unedited post: %d %s", status, body)
	}
	if _, ok := raw["edited_at"]; !ok {
		t.Errorf("edited_at is missing, want null: %s", body)
	}

	status, body = f.Do(t, "PATCH", postPath, f.memberToken, map[string]string{"body": "Now with <b>tags</b> and @alice"})
	raw = decode[map[string]any](t, body)
	wantHTML := `<p>Now with &lt;b&gt;tags&lt;/b&gt; and <a class="mention" href="/t/acme/u/alice">@alice</a></p>`
	if status != http.StatusOK || raw["body_html"] != wantHTML || raw["edited_at"] == nil {
		t.Fatalf("edited post: %d %s", status, body)
	}

	type revision struct {
		Version  int     `json:"version"`
		Title    *string `json:"title"`
		Body     string  `json:"body"`
		EditedBy struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"edited_by"`
		EditedAt string `json:"edited_at"`
	}
	type revisions struct {
		Items      []revision `json:"items"`
		NextCursor *string    `json:"next_cursor"`
	}
	for name, token := range map[string]string{"author": f.memberToken, "moderator": f.adminToken} {
		var got revisions
		f.MustDo(t, "GET", postPath+"/revisions", token, nil, http.StatusOK, &got)
		if len(got.Items) != 2 || got.NextCursor != nil {
			t.Fatalf("%s: %+v", name, got)
		}
		first, second := got.Items[0], got.Items[1]
		if first.Version != 1 || first.Title == nil || *first.Title != "Hello" || first.Body != "First post." ||
			first.EditedBy.Username != "bob" || first.EditedBy.ID != fmt.Sprint(f.member.ID) || first.EditedAt == "" {
			t.Errorf("%s: original %+v", name, first)
		}
		if second.Version != 2 || second.Title == nil || second.Body != "Now with <b>tags</b> and @alice" || second.EditedBy.Username != "bob" {
			t.Errorf("%s: edit %+v", name, second)
		}
		if second.EditedAt != raw["edited_at"] {
			t.Errorf("%s: revision edited_at %s, post edited_at %v", name, second.EditedAt, raw["edited_at"])
		}
	}
	for name, token := range map[string]string{"another member": carolToken, "anonymous": ""} {
		status, body := f.Do(t, "GET", postPath+"/revisions", token, nil)
		wantError(t, name+" reads the post's history", status, body, http.StatusNotFound, "not_found")
	}
	status, body = f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d/revisions", f.post.ID+1000)), f.adminToken, nil)
	wantError(t, "history of a missing post", status, body, http.StatusNotFound, "not_found")

	// Moderation is no edit: edited_at stays, the history gains nothing.
	var locked map[string]any
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/posts/%d/lock", f.post.ID)), f.adminToken, nil, http.StatusOK, &locked)
	if locked["edited_at"] != raw["edited_at"] {
		t.Errorf("lock moved edited_at from %v to %v", raw["edited_at"], locked["edited_at"])
	}

	// A comment's history has no titles; the post's author cannot read
	// the history of someone else's comment.
	c := f.CreateComment(t, f.slug, f.adminToken, f.post.ID, "Nice *post*")
	if c.BodyHTML != "<p>Nice <em>post</em></p>" || c.EditedAt != nil {
		t.Errorf("created comment: %+v", c)
	}
	commentPath := f.path(fmt.Sprintf("comments/%d", c.ID))
	f.MustDo(t, "PATCH", commentPath, f.adminToken, map[string]string{"body": "Nice post!"}, http.StatusOK, nil)
	status, body = f.Do(t, "GET", commentPath+"/revisions", f.adminToken, nil)
	items := decode[map[string][]map[string]any](t, body)["items"]
	if status != http.StatusOK || len(items) != 2 || items[0]["body"] != "Nice *post*" || items[1]["body"] != "Nice post!" {
		t.Fatalf("comment history: %d %s", status, body)
	}
	for _, it := range items {
		if _, ok := it["title"]; ok {
			t.Errorf("comment revision with a title: %v", it)
		}
	}
	for name, token := range map[string]string{"the post's author": f.memberToken, "anonymous": ""} {
		status, body := f.Do(t, "GET", commentPath+"/revisions", token, nil)
		wantError(t, name+" reads the comment's history", status, body, http.StatusNotFound, "not_found")
	}
}
