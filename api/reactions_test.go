package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
)

// keysOf decodes a JSON object and returns its sorted keys.
func keysOf(t *testing.T, body []byte) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(decode[map[string]json.RawMessage](t, body)))
}

// TestReactionsHTTP: the answers' exact shape, the refusals' codes, and
// counts and the reader's own kinds in the reads, over HTTP.
func TestReactionsHTTP(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	postR := f.path(fmt.Sprintf("posts/%d/reactions/", f.post.ID))
	commentR := f.path(fmt.Sprintf("comments/%d/reactions/", f.comment.ID))

	for _, base := range []string{postR, commentR} {
		status, body := f.Do(t, "PUT", base+"like", f.memberToken, nil)
		if status != http.StatusOK || !slices.Equal(keysOf(t, body), []string{"my_reactions", "reactions"}) {
			t.Fatalf("PUT %slike: %d %s", base, status, body)
		}
		if string(body) != `{"reactions":{"like":1},"my_reactions":["like"]}`+"\n" {
			t.Errorf("PUT %slike: %s", base, body)
		}
		f.MustDo(t, "PUT", base+"like", f.memberToken, nil, http.StatusOK, nil)
		var st store.ReactionState
		f.MustDo(t, "PUT", base+"thanks", f.adminToken, nil, http.StatusOK, &st)
		if !maps.Equal(st.Reactions, map[string]int{"like": 1, "thanks": 1}) || !slices.Equal(st.MyReactions, []string{"thanks"}) {
			t.Errorf("admin's PUT %sthanks: %+v", base, st)
		}
		f.MustDo(t, "DELETE", base+"thanks", f.adminToken, nil, http.StatusOK, &st)
		_, body = f.Do(t, "DELETE", base+"thanks", f.adminToken, nil)
		if string(body) != `{"reactions":{"like":1},"my_reactions":[]}`+"\n" {
			t.Errorf("DELETE of a reaction the admin no longer has: %s", body)
		}
		f.MustDo(t, "DELETE", base+"like", f.memberToken, nil, http.StatusOK, nil)
		if _, body = f.Do(t, "DELETE", base+"like", f.memberToken, nil); string(body) != `{"reactions":{},"my_reactions":[]}`+"\n" {
			t.Errorf("no reactions left: %s, want {} and []", body)
		}

		for _, kind := range []string{"dislike", "LIKE", "like%20", "%F0%9F%91%8D"} {
			status, body := f.Do(t, "PUT", base+kind, f.memberToken, nil)
			if e := wantError(t, "PUT kind "+kind, status, body, http.StatusUnprocessableEntity, "unprocessable"); e.Error.Fields["kind"] == "" {
				t.Errorf("PUT kind %s: %s, want the kind named", kind, body)
			}
		}
		status, body = f.Do(t, "PUT", base+"like", "", nil)
		wantError(t, "anonymous PUT", status, body, http.StatusUnauthorized, "unauthorized")
		status, body = f.Do(t, "DELETE", base+"like", "", nil)
		wantError(t, "anonymous DELETE", status, body, http.StatusUnauthorized, "unauthorized")
	}

	// Reads: counts for everyone, the reader's kinds and read state for
	// signed-in readers only.
	f.MustDo(t, "PUT", postR+"wow", f.memberToken, nil, http.StatusOK, nil)
	f.MustDo(t, "PUT", commentR+"sad", f.memberToken, nil, http.StatusOK, nil)
	postPath := f.path(fmt.Sprintf("posts/%d", f.post.ID))
	status, body := f.Do(t, "GET", postPath, f.memberToken, nil)
	raw := decode[map[string]json.RawMessage](t, body)
	if status != http.StatusOK || string(raw["reactions"]) != `{"wow":1}` || string(raw["my_reactions"]) != `["wow"]` ||
		string(raw["last_read_comment_id"]) != strconv.Quote(fmt.Sprint(f.comment.ID)) || string(raw["unread_comments"]) != "0" {
		t.Errorf("GET post as the member (who wrote its comment): %s", body)
	}
	_, body = f.Do(t, "GET", postPath, f.adminToken, nil)
	raw = decode[map[string]json.RawMessage](t, body)
	if string(raw["my_reactions"]) != `[]` || string(raw["last_read_comment_id"]) != "null" || string(raw["unread_comments"]) != "1" {
		t.Errorf("GET post as the admin (never read it): %s", body)
	}
	_, body = f.Do(t, "GET", postPath, "", nil)
	raw = decode[map[string]json.RawMessage](t, body)
	for _, k := range []string{"my_reactions", "last_read_comment_id", "unread_comments"} {
		if _, ok := raw[k]; ok {
			t.Errorf("GET post anonymously carries %s: %s", k, body)
		}
	}
	if string(raw["reactions"]) != `{"wow":1}` {
		t.Errorf("GET post anonymously: reactions %s", raw["reactions"])
	}
	var posts page[map[string]json.RawMessage]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), f.memberToken, nil, http.StatusOK, &posts)
	if len(posts.Items) != 1 || string(posts.Items[0]["my_reactions"]) != `["wow"]` || string(posts.Items[0]["unread_comments"]) != "0" {
		t.Errorf("board list as the member: %v", posts.Items)
	}
	var comments page[map[string]json.RawMessage]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), f.memberToken, nil, http.StatusOK, &comments)
	if len(comments.Items) != 1 || string(comments.Items[0]["reactions"]) != `{"sad":1}` || string(comments.Items[0]["my_reactions"]) != `["sad"]` {
		t.Errorf("comments as the member: %v", comments.Items)
	}
	var anonymous page[map[string]json.RawMessage]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), "", nil, http.StatusOK, &anonymous)
	if _, ok := anonymous.Items[0]["my_reactions"]; ok || string(anonymous.Items[0]["reactions"]) != `{"sad":1}` {
		t.Errorf("comments anonymously: %v", anonymous.Items)
	}

	// Locked: 409 for members (PUT and DELETE, post and comments), not
	// for moderators.
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/posts/%d/lock", f.post.ID)), f.modToken, nil, http.StatusOK, nil)
	for _, url := range []string{postR + "like", commentR + "like", postR + "wow", commentR + "sad"} {
		for _, method := range []string{"PUT", "DELETE"} {
			status, body := f.Do(t, method, url, f.memberToken, nil)
			wantError(t, method+" in a locked post", status, body, http.StatusConflict, "conflict")
		}
	}
	f.MustDo(t, "PUT", commentR+"love", f.modToken, nil, http.StatusOK, nil)
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/posts/%d/unlock", f.post.ID)), f.modToken, nil, http.StatusOK, nil)

	// Hidden: members get 404, as reading it would.
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/comments/%d/hide", f.comment.ID)), f.modToken, nil, http.StatusOK, nil)
	status, body = f.Do(t, "PUT", commentR+"like", f.memberToken, nil)
	wantError(t, "PUT on a hidden comment", status, body, http.StatusNotFound, "not_found")
	f.MustDo(t, "PUT", commentR+"like", f.modToken, nil, http.StatusOK, nil)

	// Banned: 403, whatever the target.
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/ban", f.victim.ID)), f.modToken, map[string]string{"reason": "spam"}, http.StatusOK, nil)
	for _, method := range []string{"PUT", "DELETE"} {
		status, body := f.Do(t, method, postR+"like", f.victimToken, nil)
		wantError(t, "banned "+method, status, body, http.StatusForbidden, "forbidden")
	}

	// Unknown objects: 404.
	for _, url := range []string{f.path("posts/999999/reactions/like"), f.path("comments/999999/reactions/like"), f.path("posts/x/reactions/like")} {
		status, body := f.Do(t, "PUT", url, f.memberToken, nil)
		wantError(t, "PUT "+url, status, body, http.StatusNotFound, "not_found")
	}
}

// TestReactionRateLimit: a burst of clicks is fine, a script is stopped
// with 429 and Retry-After, and other users are not held up by it.
func TestReactionRateLimit(t *testing.T) {
	f := newForum(t, apitest.Options{})
	limit := api.DefaultRateLimits().Reactions.N
	kinds := []string{"like", "love", "laugh", "wow", "sad", "thanks"}
	url := func(i int) string {
		return f.path(fmt.Sprintf("posts/%d/reactions/%s", f.post.ID, kinds[i%len(kinds)]))
	}
	for i := range limit {
		method := "PUT"
		if i/len(kinds)%2 == 1 {
			method = "DELETE"
		}
		if status, body := f.Do(t, method, url(i), f.memberToken, nil); status != http.StatusOK {
			t.Fatalf("reaction %d of a burst of %d: %d %s", i+1, limit, status, body)
		}
	}
	r := f.Call(t, apitest.Request{Method: "PUT", Path: url(0), Token: f.memberToken})
	wantError(t, "past the limit", r.Status, r.Body, http.StatusTooManyRequests, "rate_limited")
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	f.MustDo(t, "PUT", url(0), f.adminToken, nil, http.StatusOK, nil)
}
