package api_test

import (
	"encoding/json"
	"testing"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
	"agora/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, store.MigrateUp) }

// fastHasher keeps tests that are not about passwords quick under -race
// (one production argon2id hash costs ~0.2 s there, over 1 s on a loaded
// machine). TestAuthFlow and TestLoginTiming use the production parameters.
var fastHasher = store.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}

// noLimits turns the rate limits off for tests that write more than a
// person would.
func noLimits(tb testing.TB, db *store.DB, cfg *api.Config) { cfg.RateLimits.Disabled = true }

// forum is a server with one tenant, its admin, a member, a board and a
// post by the member.
type forum struct {
	*apitest.Server
	slug        string
	admin       store.User
	adminToken  string
	member      store.User
	memberToken string
	board       store.Board
	post        store.Post
}

func newForum(t *testing.T, opts apitest.Options) *forum {
	t.Helper()
	if opts.Hasher == (store.Hasher{}) {
		opts.Hasher = fastHasher
	}
	s := apitest.Start(t, opts)
	f := &forum{Server: s, slug: "acme"}
	s.NewTenant(t, f.slug)
	f.admin, f.adminToken = s.Register(t, f.slug, "alice")
	f.member, f.memberToken = s.Register(t, f.slug, "bob")
	f.board = s.CreateBoard(t, f.slug, f.adminToken, "General")
	f.post = s.CreatePost(t, f.slug, f.memberToken, f.board.ID, "Hello", "First post.")
	return f
}

func (f *forum) path(rest string) string { return apitest.TenantPath(f.slug, rest) }

// decode unmarshals a JSON body or fails the test.
func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// wantError checks status, the envelope, and the machine code.
func wantError(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) apitest.ErrorBody {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d; body %s", what, status, wantStatus, body)
		return apitest.ErrorBody{}
	}
	if err := apitest.CheckErrorEnvelope(body); err != nil {
		t.Errorf("%s: %v", what, err)
		return apitest.ErrorBody{}
	}
	e := decode[apitest.ErrorBody](t, body)
	if e.Error.Code != wantCode {
		t.Errorf("%s: code %q, want %q", what, e.Error.Code, wantCode)
	}
	return e
}

type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}
