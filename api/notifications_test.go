package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"agora/api/apitest"
)

// notificationItem is a notification as a client written from API.md
// reads it: ids as strings, nulls where the contract has them.
type notificationItem struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Actor *struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"actor"`
	Post *struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"post"`
	CommentID *string `json:"comment_id"`
	Excerpt   string  `json:"excerpt"`
	Read      bool    `json:"read"`
	CreatedAt string  `json:"created_at"`
}

// TestNotificationsHTTP: a reply and a mention over HTTP reach the list,
// the unread count and mark-read, in the contract's shapes; bad input is
// the documented 4xx and writes nothing.
func TestNotificationsHTTP(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	carol, carolToken := f.Register(t, f.slug, "carol")
	commentsPath := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))

	// The admin answers bob's post, mentioning carol and bob.
	var first map[string]any
	f.MustDo(t, "POST", commentsPath, f.adminToken, map[string]any{"body": "Welcome @bob and @Carol!"}, http.StatusCreated, &first)
	if v, ok := first["reply_to"]; !ok || v != nil {
		t.Errorf("a plain comment: reply_to %v (present %v), want null", v, ok)
	}
	// carol replies to that comment: bob (the post's author) and the admin
	// are notified as replies.
	var reply map[string]any
	f.MustDo(t, "POST", commentsPath, carolToken, map[string]any{"body": "Thanks!", "reply_to": first["id"]}, http.StatusCreated, &reply)
	if reply["reply_to"] != first["id"] {
		t.Errorf("reply_to = %v, want %v", reply["reply_to"], first["id"])
	}

	list := func(token, query string) []notificationItem {
		t.Helper()
		var p page[notificationItem]
		f.MustDo(t, "GET", f.path("me/notifications"+query), token, nil, http.StatusOK, &p)
		return p.Items
	}
	count := func(token string) int {
		t.Helper()
		var c map[string]int
		f.MustDo(t, "GET", f.path("me/notifications/unread_count"), token, nil, http.StatusOK, &c)
		return c["unread_count"]
	}
	bob := list(f.memberToken, "")
	if len(bob) != 2 || bob[0].Kind != "reply" || bob[1].Kind != "reply" {
		t.Fatalf("bob's notifications: %+v, want two replies", bob)
	}
	n := bob[0]
	if n.Actor == nil || n.Actor.Username != "carol" || n.Actor.ID != fmt.Sprint(carol.ID) || n.Post == nil ||
		n.Post.ID != fmt.Sprint(f.post.ID) || n.Post.Title != f.post.Title || n.CommentID == nil || *n.CommentID != reply["id"] ||
		n.Excerpt != "Thanks!" || n.Read || !strings.HasSuffix(n.CreatedAt, "Z") {
		t.Errorf("bob's newest notification: %+v", n)
	}
	if c := list(carolToken, ""); len(c) != 1 || c[0].Kind != "mention" {
		t.Errorf("carol's notifications: %+v, want the mention", c)
	}
	if a := list(f.adminToken, ""); len(a) != 1 || a[0].Kind != "reply" {
		t.Errorf("the admin's notifications: %+v, want carol's reply", a)
	}
	if count(f.memberToken) != 2 {
		t.Errorf("bob's unread count: %d", count(f.memberToken))
	}

	// Keyset pages, newest first.
	var p1, p2 page[notificationItem]
	f.MustDo(t, "GET", f.path("me/notifications?limit=1"), f.memberToken, nil, http.StatusOK, &p1)
	if len(p1.Items) != 1 || p1.NextCursor == nil || p1.Items[0].ID != bob[0].ID {
		t.Fatalf("first page: %+v", p1)
	}
	f.MustDo(t, "GET", apitest.Query(f.path("me/notifications"), "limit", "1", "cursor", *p1.NextCursor), f.memberToken, nil, http.StatusOK, &p2)
	if len(p2.Items) != 1 || p2.Items[0].ID != bob[1].ID || p2.NextCursor != nil {
		t.Fatalf("second page: %+v", p2)
	}

	// Mark one read, then all.
	var res map[string]int
	f.MustDo(t, "POST", f.path("me/notifications/read"), f.memberToken, map[string]any{"ids": []string{bob[1].ID}}, http.StatusOK, &res)
	if res["unread_count"] != 1 {
		t.Errorf("after marking one: %v", res)
	}
	if u := list(f.memberToken, "?unread=true"); len(u) != 1 || u[0].ID != bob[0].ID {
		t.Errorf("unread only: %+v", u)
	}
	if all := list(f.memberToken, "?unread=false"); len(all) != 2 || all[1].Read != true || all[0].Read {
		t.Errorf("all, with read flags: %+v", all)
	}

	// Bad input: the documented 4xx, nothing marked.
	for _, c := range []struct {
		name, token string
		body        any
		status      int
		code        string
	}{
		{"carol's id", f.memberToken, map[string]any{"ids": []string{list(carolToken, "")[0].ID}}, 404, "not_found"},
		{"an id nobody has", f.memberToken, map[string]any{"ids": []string{"999999"}}, 404, "not_found"},
		{"not an id", f.memberToken, map[string]any{"ids": []string{"abc"}}, 422, "unprocessable"},
		{"a number, not a string", f.memberToken, `{"ids": [1]}`, 422, "unprocessable"},
		{"neither ids nor all", f.memberToken, map[string]any{}, 422, "unprocessable"},
		{"all false", f.memberToken, map[string]any{"all": false}, 422, "unprocessable"},
		{"ids and all", f.memberToken, map[string]any{"ids": []string{bob[0].ID}, "all": true}, 422, "unprocessable"},
		{"all is a string", f.memberToken, `{"all": "yes"}`, 422, "unprocessable"},
		{"too many ids", f.memberToken, map[string]any{"ids": make([]string, 201)}, 422, "unprocessable"},
		{"malformed JSON", f.memberToken, `{"ids": [`, 400, "bad_request"},
		{"anonymous", "", map[string]any{"all": true}, 401, "unauthorized"},
	} {
		status, body := f.Do(t, "POST", f.path("me/notifications/read"), c.token, c.body)
		wantError(t, "mark read, "+c.name, status, body, c.status, c.code)
	}
	for _, q := range []string{"?unread=yes", "?unread=1", "?limit=0", "?limit=abc"} {
		status, body := f.Do(t, "GET", f.path("me/notifications"+q), f.memberToken, nil)
		wantError(t, "list "+q, status, body, 422, "unprocessable")
	}
	status, body := f.Do(t, "GET", f.path("me/notifications?cursor=garbage"), f.memberToken, nil)
	wantError(t, "list with a bad cursor", status, body, 400, "bad_request")
	for _, path := range []string{"me/notifications", "me/notifications/unread_count"} {
		status, body := f.Do(t, "GET", f.path(path), "", nil)
		wantError(t, "anonymous "+path, status, body, 401, "unauthorized")
	}
	if count(f.memberToken) != 1 || count(carolToken) != 1 {
		t.Errorf("refused requests marked something: bob %d carol %d", count(f.memberToken), count(carolToken))
	}

	f.MustDo(t, "POST", f.path("me/notifications/read"), f.memberToken, map[string]any{"all": true}, http.StatusOK, &res)
	if res["unread_count"] != 0 || count(f.memberToken) != 0 || count(carolToken) != 1 {
		t.Errorf("after mark all: %v; bob %d carol %d", res, count(f.memberToken), count(carolToken))
	}
}

// TestReplyToHTTP: reply_to is a string id of a comment of the same post;
// anything else is 422 naming reply_to, and nothing is written.
func TestReplyToHTTP(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	commentsPath := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	first := f.CreateComment(t, f.slug, f.adminToken, f.post.ID, "first")
	other := f.CreatePost(t, f.slug, f.adminToken, f.board.ID, "Other", "other post")
	elsewhere := f.CreateComment(t, f.slug, f.adminToken, other.ID, "elsewhere")
	for name, body := range map[string]string{
		"another post's comment": fmt.Sprintf(`{"body": "x", "reply_to": "%d"}`, elsewhere.ID),
		"a missing comment":      `{"body": "x", "reply_to": "987654"}`,
		"not an id":              `{"body": "x", "reply_to": "first"}`,
		"empty":                  `{"body": "x", "reply_to": ""}`,
		"a number":               fmt.Sprintf(`{"body": "x", "reply_to": %d}`, first.ID),
	} {
		status, resp := f.Do(t, "POST", commentsPath, f.memberToken, body)
		e := wantError(t, "reply_to "+name, status, resp, 422, "unprocessable")
		if e.Error.Fields["reply_to"] == "" {
			t.Errorf("reply_to %s: fields %v do not name reply_to", name, e.Error.Fields)
		}
	}
	var got page[map[string]any]
	f.MustDo(t, "GET", commentsPath, f.memberToken, nil, http.StatusOK, &got)
	if len(got.Items) != 1 {
		t.Errorf("refused replies were written: %d comments", len(got.Items))
	}
	var n map[string]int
	f.MustDo(t, "GET", f.path("me/notifications/unread_count"), f.memberToken, nil, http.StatusOK, &n)
	if n["unread_count"] != 1 {
		t.Errorf("bob's unread count %d, want 1 (the admin's first comment)", n["unread_count"])
	}
	// null is no reply_to at all.
	var c map[string]any
	f.MustDo(t, "POST", commentsPath, f.memberToken, `{"body": "x", "reply_to": null}`, http.StatusCreated, &c)
	if c["reply_to"] != nil {
		t.Errorf("reply_to null came back as %v", c["reply_to"])
	}
}

// TestUserPageHTTP: GET users/{username} in the contract's shape, for
// anyone who may read the tenant; unknown names are 404.
func TestUserPageHTTP(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	cm := f.CreateComment(t, f.slug, f.memberToken, f.post.ID, "a comment by bob")
	for _, token := range []string{"", f.adminToken} {
		status, body := f.Do(t, "GET", f.path("users/BOB"), token, nil)
		if status != http.StatusOK {
			t.Fatalf("GET users/BOB: %d %s", status, body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "username", "role", "created_at", "recent"} {
			if raw[k] == nil {
				t.Errorf("the page lacks %s: %s", k, body)
			}
		}
		var up struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Role     string `json:"role"`
			Recent   []struct {
				Type string `json:"type"`
				Post struct {
					ID    string `json:"id"`
					Title string `json:"title"`
				} `json:"post"`
				CommentID *string `json:"comment_id"`
				Excerpt   string  `json:"excerpt"`
				CreatedAt string  `json:"created_at"`
			} `json:"recent"`
		}
		_ = json.Unmarshal(body, &up)
		if up.ID != fmt.Sprint(f.member.ID) || up.Username != "bob" || up.Role != "member" || len(up.Recent) != 2 {
			t.Fatalf("the page: %s", body)
		}
		c, p := up.Recent[0], up.Recent[1]
		if c.Type != "comment" || c.CommentID == nil || *c.CommentID != fmt.Sprint(cm.ID) || c.Post.ID != fmt.Sprint(f.post.ID) ||
			c.Post.Title != f.post.Title || c.Excerpt != "a comment by bob" {
			t.Errorf("the comment item: %+v", c)
		}
		if p.Type != "post" || p.CommentID != nil || p.Post.ID != fmt.Sprint(f.post.ID) || p.Excerpt != "First post." {
			t.Errorf("the post item: %+v", p)
		}
	}
	for _, name := range []string{"nobody", "b", "bob%20", "%27--"} {
		status, body := f.Do(t, "GET", f.path("users/"+name), f.adminToken, nil)
		wantError(t, "users/"+name, status, body, 404, "not_found")
	}
}
