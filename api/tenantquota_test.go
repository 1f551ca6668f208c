package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
)

// community is a tenant with an admin, a board and a post: three writes.
type community struct {
	tenant store.Tenant
	slug   string
	token  string
	post   store.Post
}

func newCommunity(t *testing.T, s *apitest.Server, slug string) community {
	t.Helper()
	tenant := s.NewTenant(t, slug)
	_, token := s.Register(t, slug, "owner")
	b := s.CreateBoard(t, slug, token, "General")
	return community{tenant: tenant, slug: slug, token: token, post: s.CreatePost(t, slug, token, b.ID, "Hello", "First post.")}
}

func (c community) comment(t *testing.T, s *apitest.Server, body string) apitest.Response {
	t.Helper()
	return s.Call(t, apitest.Request{Method: http.MethodPost, Token: c.token, Body: map[string]string{"body": body},
		Path: apitest.TenantPath(c.slug, fmt.Sprintf("posts/%d/comments", c.post.ID))})
}

// quotaServer serves with the per-user limits off: the tenant quota is a
// switch of its own and holds without them.
func quotaServer(t *testing.T, q api.TenantQuota, statementTimeout time.Duration) *apitest.Server {
	return apitest.Start(t, apitest.Options{Hasher: fastHasher,
		ConfigureStore: func(cfg *store.Config) { cfg.StatementTimeout = statementTimeout },
		Configure: func(_ testing.TB, _ *store.DB, cfg *api.Config) {
			cfg.RateLimits.Disabled = true
			cfg.TenantQuota = q
		}})
}

// TestTenantWriteQuota: a tenant past its budget of writes gets 429 with
// Retry-After and can still read, while another tenant writes on.
func TestTenantWriteQuota(t *testing.T) {
	s := quotaServer(t, api.TenantQuota{Writes: api.Rate{N: 8, Per: time.Hour}}, 0)
	a, b := newCommunity(t, s, "acme"), newCommunity(t, s, "globex")
	for i := range 5 {
		if r := a.comment(t, s, "within the quota "+strconv.Itoa(i)); r.Status != http.StatusCreated {
			t.Fatalf("acme's write %d of 8: status %d %s", 4+i, r.Status, r.Body)
		}
	}
	r := a.comment(t, s, "one too many")
	wantError(t, "acme past its quota", r.Status, r.Body, http.StatusTooManyRequests, "rate_limited")
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 3600 {
		t.Errorf("Retry-After %q, want the seconds until the quota has a write again", r.Header.Get("Retry-After"))
	}
	if st, body := s.Do(t, http.MethodGet, apitest.TenantPath(a.slug, fmt.Sprintf("posts/%d/comments", a.post.ID)), a.token, nil); st != http.StatusOK {
		t.Errorf("acme cannot read past its write quota: %d %s", st, body)
	}
	for i := range 5 {
		if r := b.comment(t, s, "globex writes on "+strconv.Itoa(i)); r.Status != http.StatusCreated {
			t.Fatalf("globex's write %d while acme is over its quota: status %d %s", 4+i, r.Status, r.Body)
		}
	}
}

// TestTenantWriteSlots: while a tenant's writes hold all its slots (here:
// stuck behind a row lock), its next write waits briefly and is 503 with
// Retry-After; another tenant's writes go through meanwhile, and the stuck
// ones finish once the lock goes.
func TestTenantWriteSlots(t *testing.T) {
	const wait = 300 * time.Millisecond
	// Writes stuck on the lock outlast the test, not the other way round:
	// a statement timeout must not be what answers them.
	const statementTimeout = 40 * time.Second
	s := quotaServer(t, api.TenantQuota{Slots: 2, SlotWait: wait}, statementTimeout)
	a, b := newCommunity(t, s, "acme"), newCommunity(t, s, "globex")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	// A comment counts itself on its post's row first: locking the row
	// holds acme's comments inside their transactions.
	if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, strconv.FormatInt(a.tenant.ID, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM posts WHERE id = $1 FOR UPDATE`, a.post.ID); err != nil {
		t.Fatal(err)
	}
	// Plain requests: a goroutine must not end the test.
	stuck := make(chan string, 2)
	for i := range 2 {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+apitest.TenantPath(a.slug, fmt.Sprintf("posts/%d/comments", a.post.ID)),
				strings.NewReader(`{"body": "stuck `+strconv.Itoa(i)+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+a.token)
			res, err := s.Client.Do(req)
			if err != nil {
				stuck <- err.Error()
				return
			}
			res.Body.Close()
			stuck <- res.Status
		}()
	}
	apitest.Eventually(t, 30*time.Second, func() bool {
		var n int
		err := s.DB.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return err == nil && n == 2
	}, "acme's two writes never queued on the post's lock")

	start := time.Now()
	r := a.comment(t, s, "no slot left")
	wantError(t, "acme's third write", r.Status, r.Body, http.StatusServiceUnavailable, "unavailable")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("a 503 without Retry-After")
	}
	if took := time.Since(start); took < wait || took > statementTimeout/4 {
		t.Errorf("refused after %v, want after waiting %v for a slot, not for the lock", took, wait)
	}
	if r := b.comment(t, s, "globex is not held up"); r.Status != http.StatusCreated {
		t.Errorf("globex's write while acme's slots are full: %d %s", r.Status, r.Body)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if st := <-stuck; st != "201 Created" {
			t.Errorf("a write held by the lock ended %s, want 201 once the lock went", st)
		}
	}
	if r := a.comment(t, s, "slots free again"); r.Status != http.StatusCreated {
		t.Errorf("acme's write after its slots came free: %d %s", r.Status, r.Body)
	}
}
