package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"agora/api/apitest"
	"agora/store"
	"agora/store/pgtest"
)

// anyClientError accepts any 4xx where the contract does not pin one.
const anyClientError = -1

// TestBadInput throws malformed, mistyped, oversized, unauthorised and
// hostile input at the API: each gets its documented status and the error
// envelope, every response has an X-Request-Id, and nothing is a 500.
func TestBadInput(t *testing.T) {
	f := newForum(t, apitest.Options{AdminToken: "operator-secret", Configure: noLimits})
	ctx := context.Background()
	postPath := f.path(fmt.Sprintf("posts/%d", f.post.ID))
	postsPath := f.path(fmt.Sprintf("boards/%d/posts", f.board.ID))
	commentsPath := postPath + "/comments"

	// Tokens that must not work: expired (by SQL) and revoked (by logout).
	_, expired := f.Register(t, f.slug, "expiring")
	sess, err := f.DB.Authenticate(ctx, mustTenant(t, f).ID, expired)
	if err != nil {
		t.Fatal(err)
	}
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL(dbName(t, f.DatabaseURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(ctx)
	if tag, err := super.Exec(ctx, `UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, sess.TokenID); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("expire token: %v, %v", tag, err)
	}
	_, revoked := f.Register(t, f.slug, "revoking")
	f.MustDo(t, "POST", f.path("auth/logout"), revoked, nil, http.StatusNoContent, nil)

	big := `{"title":"big","body":"` + strings.Repeat("x", 3<<20) + `"}`
	oneMiBJSON := `{"body":"` + strings.Repeat("y", 1<<20-11) + `"}` // exactly 1 MiB: allowed by the limit, too long for a body
	if len(oneMiBJSON) != 1<<20 {
		t.Fatalf("oneMiBJSON is %d bytes", len(oneMiBJSON))
	}

	type tc struct {
		name   string
		req    apitest.Request
		status int
		code   string
		fields []string // fields the 422 must name
	}
	tok := func(method, path, token string, body any) apitest.Request {
		return apitest.Request{Method: method, Path: path, Token: token, Body: body}
	}
	cases := []tc{
		// Malformed bodies.
		{"malformed JSON", tok("POST", postsPath, f.memberToken, `{"title": "x", "body": `), 400, "bad_request", nil},
		{"not JSON", tok("POST", postsPath, f.memberToken, `title=x&body=y`), 400, "bad_request", nil},
		{"JSON array", tok("POST", postsPath, f.memberToken, `[{"title":"x","body":"y"}]`), 400, "bad_request", nil},
		{"JSON string", tok("POST", commentsPath, f.memberToken, `"body"`), 400, "bad_request", nil},
		{"empty body", tok("POST", commentsPath, f.memberToken, ""), 400, "bad_request", nil},
		{"trailing data", tok("POST", commentsPath, f.memberToken, `{"body":"x"} {"body":"y"}`), 400, "bad_request", nil},
		{"deeply nested", tok("POST", commentsPath, f.memberToken, strings.Repeat("[", 20000)+strings.Repeat("]", 20000)), 400, "bad_request", nil},
		{"invalid UTF-8 escape", tok("POST", commentsPath, f.memberToken, `{"body":"\ud800\u"}`), 400, "bad_request", nil},

		// Wrong types and missing fields: 422 naming the field.
		{"title is a number", tok("POST", postsPath, f.memberToken, `{"title": 5, "body": "x"}`), 422, "unprocessable", []string{"title"}},
		{"body is an object", tok("POST", commentsPath, f.memberToken, `{"body": {"text": "x"}}`), 422, "unprocessable", []string{"body"}},
		{"username is a bool", tok("POST", f.path("auth/register"), "", `{"username": true, "password": "12345678"}`), 422, "unprocessable", []string{"username"}},
		{"email is a number", tok("POST", f.path("auth/register"), "", `{"username": "dave", "password": "12345678", "email": 7}`), 422, "unprocessable", []string{"email"}},
		{"board name is a list", tok("POST", f.path("boards"), f.adminToken, `{"name": ["x"]}`), 422, "unprocessable", []string{"name"}},
		{"missing title and body", tok("POST", postsPath, f.memberToken, `{}`), 422, "unprocessable", []string{"title", "body"}},
		{"null title", tok("POST", postsPath, f.memberToken, `{"title": null, "body": "x"}`), 422, "unprocessable", []string{"title"}},
		{"blank title", tok("POST", postsPath, f.memberToken, `{"title": "   ", "body": "x"}`), 422, "unprocessable", []string{"title"}},
		{"missing comment body", tok("POST", commentsPath, f.memberToken, `{}`), 422, "unprocessable", []string{"body"}},
		{"missing body in comment edit", tok("PATCH", f.path("comments/1"), f.memberToken, `{}`), 422, "unprocessable", []string{"body"}},
		{"register without fields", tok("POST", f.path("auth/register"), "", `{}`), 422, "unprocessable", []string{"username", "password"}},
		{"username with a space", tok("POST", f.path("auth/register"), "", map[string]string{"username": "a b", "password": apitest.Password}), 422, "unprocessable", []string{"username"}},
		{"short password", tok("POST", f.path("auth/register"), "", map[string]string{"username": "dave", "password": "short"}), 422, "unprocessable", []string{"password"}},
		{"password of 129", tok("POST", f.path("auth/register"), "", map[string]string{"username": "dave", "password": strings.Repeat("p", 129)}), 422, "unprocessable", []string{"password"}},
		{"title of 201", tok("POST", postsPath, f.memberToken, map[string]string{"title": strings.Repeat("t", 201), "body": "x"}), 422, "unprocessable", []string{"title"}},
		{"title of 201 emoji", tok("POST", postsPath, f.memberToken, map[string]string{"title": strings.Repeat("😀", 201), "body": "x"}), 422, "unprocessable", []string{"title"}},
		{"PATCH title of 201", tok("PATCH", postPath, f.memberToken, map[string]string{"title": strings.Repeat("t", 201)}), 422, "unprocessable", []string{"title"}},
		{"body of 20001", tok("POST", commentsPath, f.memberToken, map[string]string{"body": strings.Repeat("b", 20001)}), 422, "unprocessable", []string{"body"}},
		{"NUL in a title", tok("POST", postsPath, f.memberToken, `{"title": "a\u0000b", "body": "x"}`), 422, "unprocessable", nil},
		{"NUL in a comment", tok("POST", commentsPath, f.memberToken, `{"body": "\u0000"}`), 422, "unprocessable", nil},
		{"1 MiB comment", tok("POST", commentsPath, f.memberToken, oneMiBJSON), 422, "unprocessable", []string{"body"}},

		// Size.
		{"3 MiB body", tok("POST", postsPath, f.memberToken, big), 413, "payload_too_large", nil},
		{"3 MiB body, chunked", tok("POST", postsPath, f.memberToken, io.MultiReader(strings.NewReader(big))), 413, "payload_too_large", nil},
		{"1 MiB + 1 body", tok("POST", commentsPath, f.memberToken, oneMiBJSON+" "), 413, "payload_too_large", nil},

		// Tenants and routes that do not exist.
		{"unknown tenant", tok("GET", apitest.TenantPath("nope", "boards"), "", nil), 404, "not_found", nil},
		{"unknown tenant, with a token", tok("GET", apitest.TenantPath("nope", "me"), f.memberToken, nil), 404, "not_found", nil},
		{"tenant slug with NUL", tok("GET", "/api/v1/t/a%00b/boards", "", nil), 404, "not_found", nil},
		{"tenant slug too long", tok("GET", apitest.TenantPath(strings.Repeat("a", 300), "boards"), "", nil), 404, "not_found", nil},
		{"unknown route", tok("GET", f.path("nothing-here"), "", nil), 404, "not_found", nil},
		{"unknown API route", tok("GET", "/api/v2/whatever", "", nil), 404, "not_found", nil},
		{"missing post", tok("GET", f.path("posts/999999"), "", nil), 404, "not_found", nil},
		{"post id not a number", tok("GET", f.path("posts/abc"), "", nil), 404, "not_found", nil},
		{"post id negative", tok("GET", f.path("posts/-1"), "", nil), 404, "not_found", nil},
		{"post id overflows", tok("GET", f.path("posts/99999999999999999999"), "", nil), 404, "not_found", nil},
		// Ids are canonical decimals, as in room names: another spelling of
		// an existing post's id names nothing.
		{"post id with leading zeros", tok("GET", f.path(fmt.Sprintf("posts/00%d", f.post.ID)), "", nil), 404, "not_found", nil},
		{"post id with a plus sign", tok("GET", f.path(fmt.Sprintf("posts/+%d", f.post.ID)), "", nil), 404, "not_found", nil},
		{"post id in exponent form", tok("GET", f.path(fmt.Sprintf("posts/%de0", f.post.ID)), "", nil), 404, "not_found", nil},
		{"post id zero", tok("GET", f.path("posts/0"), "", nil), 404, "not_found", nil},
		{"post id past int64", tok("GET", f.path("posts/9223372036854775808"), "", nil), 404, "not_found", nil},
		{"comments of a zero-padded post id", tok("GET", f.path(fmt.Sprintf("posts/0%d/comments", f.post.ID)), "", nil), 404, "not_found", nil},
		{"board id with leading zeros", tok("GET", f.path(fmt.Sprintf("boards/0%d/posts", f.board.ID)), "", nil), 404, "not_found", nil},
		{"PATCH of a zero-padded post id", tok("PATCH", f.path(fmt.Sprintf("posts/0%d", f.post.ID)), f.memberToken, map[string]string{"title": "renamed"}), 404, "not_found", nil},
		{"comment on a missing post", tok("POST", f.path("posts/999999/comments"), f.memberToken, map[string]string{"body": "x"}), 404, "not_found", nil},
		{"post on a missing board", tok("POST", f.path("boards/999999/posts"), f.memberToken, map[string]string{"title": "x", "body": "x"}), 404, "not_found", nil},

		// Tokens.
		{"garbage token", tok("GET", f.path("me"), "garbage", nil), 401, "unauthorized", nil},
		{"expired token", tok("GET", f.path("me"), expired, nil), 401, "unauthorized", nil},
		{"revoked token", tok("GET", f.path("me"), revoked, nil), 401, "unauthorized", nil},
		{"expired token on a public read", tok("GET", f.path("boards"), expired, nil), 401, "unauthorized", nil},
		{"Basic auth", apitest.Request{Method: "GET", Path: f.path("me"), Header: http.Header{"Authorization": {"Basic YWxpY2U6eA=="}}}, 401, "unauthorized", nil},
		{"Bearer without token", apitest.Request{Method: "GET", Path: f.path("me"), Header: http.Header{"Authorization": {"Bearer "}}}, 401, "unauthorized", nil},
		{"anonymous write", tok("POST", commentsPath, "", map[string]string{"body": "x"}), 401, "unauthorized", nil},

		// Permissions.
		{"member creates a board", tok("POST", f.path("boards"), f.memberToken, map[string]string{"name": "Mine"}), 403, "forbidden", nil},
		{"admin edits a post: allowed, so a stranger's edit below is 403", tok("PATCH", postPath, f.adminToken, map[string]string{"body": "First post."}), 200, "", nil},

		// Lists.
		{"limit not a number", tok("GET", postsPath+"?limit=abc", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit zero", tok("GET", postsPath+"?limit=0", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit negative", tok("GET", f.path("boards?limit=-5"), "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit fractional", tok("GET", commentsPath+"?limit=1.5", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit 201", tok("GET", postsPath+"?limit=201", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit far above the maximum", tok("GET", postsPath+"?limit=100000", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit past int64", tok("GET", commentsPath+"?limit=99999999999999999999", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit with a plus sign", tok("GET", postsPath+"?limit=%2B5", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit zero-padded", tok("GET", postsPath+"?limit=05", "", nil), 422, "unprocessable", []string{"limit"}},
		{"limit empty", tok("GET", postsPath+"?limit=", "", nil), 200, "", nil},
		{"limit 200", tok("GET", postsPath+"?limit=200", "", nil), 200, "", nil},
		{"limit 1", tok("GET", f.path("boards?limit=1"), "", nil), 200, "", nil},
		{"cursor not base64", tok("GET", postsPath+"?cursor=%21%21%21", "", nil), 400, "bad_request", nil},
		{"cursor not JSON", tok("GET", commentsPath+"?cursor="+b64("not json"), "", nil), 400, "bad_request", nil},
		{"cursor of the wrong shape", tok("GET", postsPath+"?cursor="+b64(`{"p":"x"}`), "", nil), 400, "bad_request", nil},
		{"cursor of another list", tok("GET", f.path("boards?cursor="+b64(`{"p":true,"a":"2020-01-01T00:00:00Z","i":1}`)), "", nil), 400, "bad_request", nil},

		// Platform endpoints.
		{"tenants without the operator token", tok("GET", "/api/v1/tenants", "", nil), 401, "unauthorized", nil},
		{"tenants with a user token", tok("GET", "/api/v1/tenants", f.adminToken, nil), 401, "unauthorized", nil},
		{"tenant with a bad slug", tok("POST", "/api/v1/tenants", "operator-secret", map[string]string{"slug": "Bad Slug!", "name": "x"}), 422, "unprocessable", []string{"slug"}},
		{"tenant with a one-letter slug", tok("POST", "/api/v1/tenants", "operator-secret", map[string]string{"slug": "a", "name": "x"}), 422, "unprocessable", []string{"slug"}},
		{"tenant without a name", tok("POST", "/api/v1/tenants", "operator-secret", map[string]string{"slug": "fine"}), 422, "unprocessable", []string{"name"}},
		{"duplicate tenant", tok("POST", "/api/v1/tenants", "operator-secret", map[string]string{"slug": f.slug, "name": "Again"}), 409, "conflict", nil},
		{"wrong method", tok("DELETE", f.path("boards"), f.adminToken, nil), anyClientError, "", nil},
	}

	// A stranger who may not edit the post.
	_, stranger := f.Register(t, f.slug, "stranger")
	cases = append(cases,
		tc{"PATCH by a non-author", tok("PATCH", postPath, stranger, map[string]string{"title": "mine now"}), 403, "forbidden", nil},
		tc{"DELETE by a non-author", tok("DELETE", postPath, stranger, nil), 403, "forbidden", nil},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.Call(t, c.req)
			if r.Status == http.StatusInternalServerError {
				t.Fatalf("500: %s", r.Body)
			}
			if r.Header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id")
			}
			if c.status == anyClientError && r.Status >= 400 && r.Status < 500 {
				c.status = r.Status
			}
			if r.Status != c.status {
				t.Fatalf("status %d, want %d; body %.300s", r.Status, c.status, r.Body)
			}
			if r.Status < 400 {
				return
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			e := apitest.DecodeError(t, r.Body)
			if c.code != "" && e.Error.Code != c.code {
				t.Errorf("code %q, want %q (%s)", e.Error.Code, c.code, r.Body)
			}
			for _, field := range c.fields {
				if e.Error.Fields[field] == "" {
					t.Errorf("the 422 does not name field %q: %s", field, r.Body)
				}
			}
			if strings.Contains(strings.ToLower(string(r.Body)), "sqlstate") || strings.Contains(string(r.Body), "pgx") {
				t.Errorf("the error leaks internals: %s", r.Body)
			}
		})
	}

	// Nothing above changed the post.
	var p store.Post
	f.MustDo(t, "GET", postPath, "", nil, http.StatusOK, &p)
	if p.Title != f.post.Title || p.Body != f.post.Body || p.Version != 1 {
		t.Errorf("post after bad input: %+v", p)
	}
}

// TestHostileTextVerbatim: SQL-looking, HTML and emoji text is stored and
// returned byte for byte.
func TestHostileTextVerbatim(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	texts := []string{
		`'); DROP TABLE posts; --`,
		`Robert"); DELETE FROM users WHERE ('1'='1`,
		`1 OR 1=1; SELECT pg_sleep(10); --`,
		`<script>alert("x")</script> & &amp; \u0000`,
		"👩‍👩‍👧‍👦 🇺🇦 ñ é 漢字 עברית \u200b zero-width",
		"tab\tnewline\nreturn\r\"quote\" \\backslash $1 %s %d",
		strings.Repeat("😀", 200), // the maximum title, in characters
	}
	for _, text := range texts {
		p := f.CreatePost(t, f.slug, f.memberToken, f.board.ID, text, text)
		var got store.Post
		f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", p.ID)), "", nil, http.StatusOK, &got)
		if got.Title != text || got.Body != text || p.Title != text {
			t.Errorf("post text changed:\n got %q\nwant %q", got.Title, text)
		}
		c := f.CreateComment(t, f.slug, f.memberToken, p.ID, text)
		var comments page[store.Comment]
		f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", p.ID)), "", nil, http.StatusOK, &comments)
		if len(comments.Items) != 1 || comments.Items[0].Body != text || c.Body != text {
			t.Errorf("comment text changed: %+v, want %q", comments.Items, text)
		}
	}
	// The tables the SQL-looking text talks about are all still there.
	var boards page[store.Board]
	f.MustDo(t, "GET", f.path("boards"), "", nil, http.StatusOK, &boards)
	var me store.User
	f.MustDo(t, "GET", f.path("me"), f.memberToken, nil, http.StatusOK, &me)
	if len(boards.Items) != 1 || me.ID != f.member.ID {
		t.Errorf("after hostile text: boards %v, me %+v", boards.Items, me)
	}
}

// TestRequestID: every response carries X-Request-Id; a sane one sent by
// the client is echoed, an unsafe one replaced.
func TestRequestID(t *testing.T) {
	s := apitest.Start(t, apitest.Options{Hasher: fastHasher})
	r := s.Call(t, apitest.Request{Method: "GET", Path: "/healthz", Header: http.Header{"X-Request-Id": {"client-chosen-42"}}})
	if r.Status != 200 || r.Header.Get("X-Request-Id") != "client-chosen-42" {
		t.Errorf("sane id: %d, X-Request-Id %q", r.Status, r.Header.Get("X-Request-Id"))
	}
	r = s.Call(t, apitest.Request{Method: "GET", Path: "/nowhere", Header: http.Header{"X-Request-Id": {"evil\tid with spaces"}}})
	if id := r.Header.Get("X-Request-Id"); id == "" || strings.ContainsAny(id, " \t") {
		t.Errorf("unsafe id came back as %q", id)
	}
	a := s.Call(t, apitest.Request{Method: "GET", Path: "/healthz"}).Header.Get("X-Request-Id")
	b := s.Call(t, apitest.Request{Method: "GET", Path: "/healthz"}).Header.Get("X-Request-Id")
	if a == "" || a == b {
		t.Errorf("generated ids %q and %q: want fresh ones", a, b)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func dbName(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func mustTenant(t *testing.T, f *forum) store.Tenant {
	t.Helper()
	tn, err := f.DB.TenantBySlug(context.Background(), f.slug)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}
