package api_test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"agora/api/apitest"
)

// TestValidationMessages: a 422's message is written for the person who
// filled in the form, while code and fields stay what programs rely on.
func TestValidationMessages(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	posts := f.path(fmt.Sprintf("boards/%d/posts", f.board.ID))
	post := f.path(fmt.Sprintf("posts/%d", f.post.ID))
	comment := f.CreateComment(t, f.slug, f.memberToken, f.post.ID, "A comment.")

	for _, tc := range []struct {
		name         string
		method, path string
		token        string
		body         any
		message      string
		fields       map[string]string
	}{
		{"empty title", "POST", posts, f.memberToken, map[string]string{"title": " ", "body": "Text."},
			"The title can't be empty.", map[string]string{"title": "required"}},
		{"empty title and body", "POST", posts, f.memberToken, map[string]string{"title": "", "body": ""},
			"The title can't be empty. The text of the post can't be empty.", map[string]string{"title": "required", "body": "required"}},
		{"long title", "PATCH", post, f.memberToken, map[string]string{"title": strings.Repeat("t", 201)},
			"Titles can be at most 200 characters.", map[string]string{"title": "must be at most 200 characters"}},
		{"long post", "POST", posts, f.memberToken, map[string]string{"title": "T", "body": strings.Repeat("é", 20001)},
			"Posts can be at most 20,000 characters.", map[string]string{"body": "must be at most 20000 characters"}},
		{"long comment", "POST", post + "/comments", f.memberToken, map[string]string{"body": strings.Repeat("x", 20001)},
			"Comments can be at most 20,000 characters.", map[string]string{"body": "must be at most 20000 characters"}},
		{"empty comment edit", "PATCH", f.path(fmt.Sprintf("comments/%d", comment.ID)), f.memberToken, map[string]string{"body": ""},
			"The comment can't be empty.", map[string]string{"body": "required"}},
		{"registration", "POST", f.path("auth/register"), "", map[string]string{"username": "a b", "password": "short", "email": "nope"},
			"The username must be 3 to 32 letters, digits or underscores. The password must be 8 to 128 characters. That doesn't look like an email address.",
			map[string]string{"username": "must be 3 to 32 letters, digits or underscores", "password": "must be 8 to 128 characters", "email": "must be an email address"}},
		{"wrong type", "POST", posts, f.memberToken, `{"title": 5, "body": "x"}`,
			"The title must be a string.", map[string]string{"title": "must be a string"}},
		{"limit", "GET", f.path("boards?limit=0"), "", nil,
			"The limit must be a whole number from 1 to 200.", map[string]string{"limit": "must be a whole number from 1 to 200"}},
		{"empty board name", "POST", f.path("boards"), f.adminToken, map[string]string{"name": ""},
			"The board name must be 1 to 100 characters. The slug must be lowercase letters, digits and dashes (1 to 64).", nil},
		{"ban yourself", "POST", f.path(fmt.Sprintf("mod/users/%d/ban", f.admin.ID)), f.adminToken, map[string]string{"reason": "test"},
			"You cannot do this to yourself.", map[string]string{"user": "you cannot do this to yourself"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.Do(t, tc.method, tc.path, tc.token, tc.body)
			e := wantError(t, tc.name, status, body, http.StatusUnprocessableEntity, "unprocessable")
			if e.Error.Message != tc.message {
				t.Errorf("message %q, want %q", e.Error.Message, tc.message)
			}
			if tc.fields != nil && !maps.Equal(e.Error.Fields, tc.fields) {
				t.Errorf("fields %v, want %v", e.Error.Fields, tc.fields)
			}
			if len(e.Error.Fields) == 0 {
				t.Error("a 422 without fields")
			}
		})
	}
}
