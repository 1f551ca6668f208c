package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
	"agora/store/pgtest"
)

// keyedForum is a forum plus the superuser connection the tests use to
// look at (and age) idempotency records behind the API's back.
type keyedForum struct {
	*forum
	super *pgx.Conn
}

func newKeyedForum(t *testing.T, opts apitest.Options) *keyedForum {
	t.Helper()
	f := newForum(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL(dbName(t, f.DatabaseURL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { super.Close(context.Background()) })
	return &keyedForum{forum: f, super: super}
}

// keyed sends a POST with an Idempotency-Key.
func (f *keyedForum) keyed(t *testing.T, path, token, key string, body any) apitest.Response {
	t.Helper()
	return f.Call(t, apitest.Request{Method: http.MethodPost, Path: path, Token: token, Body: body,
		Header: http.Header{"Idempotency-Key": {key}}})
}

// count runs a count(*) as the superuser (no row level security).
func (f *keyedForum) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := f.super.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *keyedForum) comments(t *testing.T) int {
	t.Helper()
	return f.count(t, `SELECT count(*) FROM comments`)
}

func wantFresh(t *testing.T, what string, r apitest.Response, status int) {
	t.Helper()
	if r.Status != status || r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("%s: %d, Idempotent-Replayed %q; want %d, not replayed; body %s",
			what, r.Status, r.Header.Get("Idempotent-Replayed"), status, r.Body)
	}
}

func wantReplay(t *testing.T, what string, r, first apitest.Response) {
	t.Helper()
	if r.Status != first.Status || !bytes.Equal(r.Body, first.Body) || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("%s: %d %s, Idempotent-Replayed %q; want a replay of %d %s",
			what, r.Status, r.Body, r.Header.Get("Idempotent-Replayed"), first.Status, first.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != first.Header.Get("Content-Type") {
		t.Errorf("%s: Content-Type %q, first answer had %q", what, ct, first.Header.Get("Content-Type"))
	}
}

func TestIdempotentReplay(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{})
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Posted once, whatever the network does."}

	first := f.keyed(t, comments, f.memberToken, "retry-1", body)
	wantFresh(t, "first request", first, http.StatusCreated)
	for i := range 2 {
		wantReplay(t, fmt.Sprintf("retry %d", i+1), f.keyed(t, comments, f.memberToken, "retry-1", body), first)
	}
	if n := f.comments(t); n != 1 {
		t.Errorf("%d comments after a request and two retries, want 1", n)
	}

	t.Run("DifferentBodyIsConflict", func(t *testing.T) {
		r := f.keyed(t, comments, f.memberToken, "retry-1", map[string]string{"body": "Something else."})
		wantError(t, "same key, other body", r.Status, r.Body, http.StatusConflict, "conflict")
		if r.Header.Get("Retry-After") != "" || r.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("a reused key's 409 carries Retry-After %q, Idempotent-Replayed %q; want neither",
				r.Header.Get("Retry-After"), r.Header.Get("Idempotent-Replayed"))
		}
		other := f.CreatePost(t, f.slug, f.memberToken, f.board.ID, "Other", "Another thread.")
		r = f.keyed(t, f.path(fmt.Sprintf("posts/%d/comments", other.ID)), f.memberToken, "retry-1", body)
		wantError(t, "same key and body, other path", r.Status, r.Body, http.StatusConflict, "conflict")
		if n := f.comments(t); n != 1 {
			t.Errorf("%d comments after reusing the key, want 1", n)
		}
	})

	t.Run("ClientErrorIsKept", func(t *testing.T) {
		first := f.keyed(t, comments, f.memberToken, "empty-1", map[string]string{"body": ""})
		wantError(t, "empty comment", first.Status, first.Body, http.StatusUnprocessableEntity, "unprocessable")
		wantReplay(t, "retry of the empty comment", f.keyed(t, comments, f.memberToken, "empty-1", map[string]string{"body": ""}), first)
	})

}

// TestIdempotencyInFlight holds the post's row lock so that the first
// request stops inside its write, after claiming the key.
func TestIdempotencyInFlight(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{})
	ctx := t.Context()
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Slow to arrive."}

	lock, err := f.super.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.Background())
	if _, err := lock.Exec(ctx, `SELECT 1 FROM posts WHERE id = $1 FOR UPDATE`, f.post.ID); err != nil {
		t.Fatal(err)
	}
	firstDone := make(chan apitest.Response, 1)
	go func() { firstDone <- f.keyed(t, comments, f.memberToken, "slow-1", body) }()
	// The lock's own connection watches (it is idle between statements);
	// its transaction reads committed rows, the claim among them.
	apitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		err := lock.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE status IS NULL`).Scan(&n)
		return err == nil && n == 1
	}, "the first request never claimed its key")

	r := f.keyed(t, comments, f.memberToken, "slow-1", body)
	wantError(t, "retry while the first runs", r.Status, r.Body, http.StatusConflict, "conflict")
	if r.Header.Get("Retry-After") == "" {
		t.Error("the in-flight 409 has no Retry-After")
	}

	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	first := <-firstDone
	wantFresh(t, "first request", first, http.StatusCreated)
	wantReplay(t, "retry after the first finished", f.keyed(t, comments, f.memberToken, "slow-1", body), first)
	if n := f.comments(t); n != 1 {
		t.Errorf("%d comments, want 1", n)
	}
}

// TestIdempotencyConcurrent: requests that race with one key write once.
func TestIdempotencyConcurrent(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{})
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Sent ten times at once."}
	const n = 10
	var wg sync.WaitGroup
	res := make([]apitest.Response, n)
	for i := range n {
		wg.Go(func() { res[i] = f.keyed(t, comments, f.memberToken, "burst-1", body) })
	}
	wg.Wait()
	fresh, replayed, inFlight := 0, 0, 0
	var created []byte
	for _, r := range res {
		switch {
		case r.Status == http.StatusCreated && r.Header.Get("Idempotent-Replayed") == "":
			fresh++
			created = r.Body
		case r.Status == http.StatusCreated && r.Header.Get("Idempotent-Replayed") == "true":
			replayed++
		case r.Status == http.StatusConflict && r.Header.Get("Retry-After") != "":
			inFlight++
		default:
			t.Errorf("unexpected answer %d %s (headers %v)", r.Status, r.Body, r.Header)
		}
	}
	if fresh != 1 {
		t.Errorf("%d requests created the comment, want exactly 1 (replayed %d, in flight %d)", fresh, replayed, inFlight)
	}
	for _, r := range res {
		if r.Status == http.StatusCreated && !bytes.Equal(r.Body, created) {
			t.Errorf("a replay differs from the first answer: %s vs %s", r.Body, created)
		}
	}
	if got := f.comments(t); got != 1 {
		t.Errorf("%d comments after %d concurrent requests with one key, want 1", got, n)
	}
	if got := f.count(t, `SELECT count(*) FROM idempotency_keys`); got != 1 {
		t.Errorf("%d idempotency rows, want 1", got)
	}
}

// TestIdempotencyServerErrorNotKept: a 5xx gives the key up, so the retry
// runs again (and a 429 is not kept either).
func TestIdempotencyServerErrorNotKept(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{Configure: func(tb testing.TB, db *store.DB, cfg *api.Config) {
		cfg.RateLimits.Comments = api.Rate{N: 3, Per: time.Hour}
	}})
	ctx := t.Context()
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Third time lucky."}

	if _, err := f.super.Exec(ctx, `
		CREATE FUNCTION fail_comment() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'the disk is on fire'; END $$;
		CREATE TRIGGER fail_comment BEFORE INSERT ON comments FOR EACH ROW EXECUTE FUNCTION fail_comment()`); err != nil {
		t.Fatal(err)
	}
	r := f.keyed(t, comments, f.memberToken, "flaky-1", body)
	wantError(t, "failing write", r.Status, r.Body, http.StatusInternalServerError, "internal")
	if n := f.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Errorf("%d idempotency rows after a 500, want none", n)
	}
	if _, err := f.super.Exec(ctx, `DROP TRIGGER fail_comment ON comments; DROP FUNCTION fail_comment()`); err != nil {
		t.Fatal(err)
	}
	first := f.keyed(t, comments, f.memberToken, "flaky-1", body)
	wantFresh(t, "retry after the 500", first, http.StatusCreated)
	wantReplay(t, "retry after the 201", f.keyed(t, comments, f.memberToken, "flaky-1", body), first)
	if n := f.comments(t); n != 1 {
		t.Errorf("%d comments, want 1", n)
	}

	// The failed attempt spent a token, the 201 another: one left.
	wantFresh(t, "last comment within the limit", f.keyed(t, comments, f.memberToken, "flaky-2", map[string]string{"body": "Fine."}), http.StatusCreated)
	r = f.keyed(t, comments, f.memberToken, "limited-1", map[string]string{"body": "One too many."})
	wantError(t, "over the limit", r.Status, r.Body, http.StatusTooManyRequests, "rate_limited")
	if n := f.count(t, `SELECT count(*) FROM idempotency_keys`); n != 2 {
		t.Errorf("%d idempotency rows after a 429, want the 2 of the 201s", n)
	}
}

// TestIdempotencyScopes: a key belongs to one user of one tenant, or for a
// registration to one client address in one tenant; login ignores it.
func TestIdempotencyScopes(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{})
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Same words, same key."}
	f.NewTenant(t, "other")

	t.Run("OtherUserSameKey", func(t *testing.T) {
		wantFresh(t, "bob", f.keyed(t, comments, f.memberToken, "shared-1", body), http.StatusCreated)
		wantFresh(t, "alice, same key", f.keyed(t, comments, f.adminToken, "shared-1", body), http.StatusCreated)
		// Another session of bob's is still bob.
		var login struct{ Token string }
		f.MustDo(t, http.MethodPost, f.path("auth/login"), "",
			map[string]string{"username": f.member.Username, "password": apitest.Password}, http.StatusOK, &login)
		r := f.keyed(t, comments, login.Token, "shared-1", body)
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("bob's key from his other session: %d %s, want a replay", r.Status, r.Body)
		}
	})

	t.Run("OtherTenantSameKey", func(t *testing.T) {
		_, token := f.Register(t, "other", "carol")
		board := f.CreateBoard(t, "other", token, "General")
		post := f.CreatePost(t, "other", token, board.ID, "Hi", "There.")
		r := f.keyed(t, apitest.TenantPath("other", fmt.Sprintf("posts/%d/comments", post.ID)), token, "shared-1", body)
		wantFresh(t, "same key in another tenant", r, http.StatusCreated)
	})

	t.Run("RegisterByAddress", func(t *testing.T) {
		reg := map[string]string{"username": "dave", "password": apitest.Password}
		first := f.keyed(t, f.path("auth/register"), "", "signup-1", reg)
		wantFresh(t, "register", first, http.StatusCreated)
		tokens := f.count(t, `SELECT count(*) FROM tokens`)
		retry := f.keyed(t, f.path("auth/register"), "", "signup-1", reg)
		wantReplay(t, "retried registration", retry, first)
		if n := f.count(t, `SELECT count(*) FROM tokens`); n != tokens {
			t.Errorf("the replay made %d new tokens, want none", n-tokens)
		}
		token := decode[struct{ Token string }](t, retry.Body).Token
		f.MustDo(t, http.MethodGet, f.path("me"), token, nil, http.StatusOK, nil)
		// Signed in or not, registration is keyed by the address.
		r := f.Call(t, apitest.Request{Method: http.MethodPost, Path: f.path("auth/register"), Token: token, Body: reg,
			Header: http.Header{"Idempotency-Key": {"signup-1"}}})
		wantReplay(t, "retried registration with the new token", r, first)
		// The same address and key in another tenant is another key.
		r = f.keyed(t, apitest.TenantPath("other", "auth/register"), "", "signup-1", reg)
		wantFresh(t, "register in another tenant", r, http.StatusCreated)
	})

	t.Run("LoginIgnoresKey", func(t *testing.T) {
		login := map[string]string{"username": f.member.Username, "password": apitest.Password}
		var tokens []string
		for _, token := range []string{"", f.memberToken, ""} {
			r := f.Call(t, apitest.Request{Method: http.MethodPost, Path: f.path("auth/login"), Token: token, Body: login,
				Header: http.Header{"Idempotency-Key": {"login-1"}}})
			wantFresh(t, "login", r, http.StatusOK)
			tokens = append(tokens, decode[struct{ Token string }](t, r.Body).Token)
		}
		if tokens[0] == tokens[1] || tokens[1] == tokens[2] {
			t.Errorf("logins with one key got the same token: %v", tokens)
		}
		r := f.keyed(t, f.path("auth/login"), "", "", login)
		wantFresh(t, "login with an empty key", r, http.StatusOK)
	})

	t.Run("AnonymousIgnoresKey", func(t *testing.T) {
		r := f.keyed(t, comments, "", "", body)
		wantError(t, "anonymous comment with an empty key", r.Status, r.Body, http.StatusUnauthorized, "unauthorized")
	})
}

func TestIdempotencyInvalidKeys(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{Configure: noLimits})
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Keyed."}
	for name, keys := range map[string][]string{
		"empty":       {""},
		"201 chars":   {strings.Repeat("k", 201)},
		"non-ASCII":   {"clé"},
		"tab":         {"a\tb"},
		"sent twice":  {"one", "two"},
		"only spaces": {"   "}, // trimmed to nothing on the way
	} {
		r := f.Call(t, apitest.Request{Method: http.MethodPost, Path: comments, Token: f.memberToken, Body: body,
			Header: http.Header{"Idempotency-Key": keys}})
		wantError(t, name, r.Status, r.Body, http.StatusBadRequest, "bad_request")
	}
	if n := f.comments(t); n != 0 {
		t.Errorf("%d comments after requests with invalid keys, want none", n)
	}
	for name, key := range map[string]string{
		"200 chars":     strings.Repeat("k", 200),
		"one char":      "k",
		"printable mix": `a b~!"#$%&'()*+,-./:;<=>?@[\]^_{|}` + "`",
	} {
		wantFresh(t, name, f.keyed(t, comments, f.memberToken, key, body), http.StatusCreated)
	}
}

// TestIdempotencyExpiry: after 24 hours a key is new again.
func TestIdempotencyExpiry(t *testing.T) {
	f := newKeyedForum(t, apitest.Options{})
	comments := f.path(fmt.Sprintf("posts/%d/comments", f.post.ID))
	body := map[string]string{"body": "Said again tomorrow."}
	wantFresh(t, "first", f.keyed(t, comments, f.memberToken, "daily-1", body), http.StatusCreated)
	if _, err := f.super.Exec(t.Context(), `UPDATE idempotency_keys SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	wantFresh(t, "same key a day later", f.keyed(t, comments, f.memberToken, "daily-1", body), http.StatusCreated)
	if n := f.comments(t); n != 2 {
		t.Errorf("%d comments, want 2", n)
	}
	if n := f.count(t, `SELECT count(*) FROM idempotency_keys WHERE expires_at > now() + interval '23 hours'`); n != 1 {
		t.Errorf("%d fresh 24-hour keys, want 1", n)
	}
}
