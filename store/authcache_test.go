package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cacheBus is a BusHandler that reports Connected and Lost together with
// what the session cache looked like at that moment, and can hold a
// Connected back until the test lets it go.
type cacheBus struct {
	db        *DB
	connected chan cacheState
	lost      chan cacheState
	controls  chan Control
	hold      chan chan struct{} // a Connected takes one, if any, and waits for it to close
}

// cacheState is the session cache as a handler saw it.
type cacheState struct {
	enabled bool
	entries int
}

func (h *cacheBus) state() cacheState {
	return cacheState{enabled: h.db.sessions.enabled(), entries: h.db.sessions.len()}
}

func (h *cacheBus) Connected(ctx context.Context) error {
	h.connected <- h.state()
	select {
	case gate := <-h.hold:
		select {
		case <-gate:
		case <-ctx.Done():
		}
	default:
	}
	return nil
}
func (h *cacheBus) Lost(error, time.Duration) { h.lost <- h.state() }
func (h *cacheBus) Doorbell(Notification)     {}
func (h *cacheBus) Control(c Control) {
	select {
	case h.controls <- c:
	default:
	}
}
func (h *cacheBus) Presence([]byte)          {}
func (h *cacheBus) Unreadable(string, error) {}

// runBus runs db's bus until the test ends and waits until the session
// cache is on.
func runBus(t *testing.T, db *DB, url string) (*Bus, *cacheBus) {
	t.Helper()
	h := &cacheBus{db: db, connected: make(chan cacheState, 10), lost: make(chan cacheState, 10), controls: make(chan Control, 100), hold: make(chan chan struct{}, 1)}
	ctx, stop := context.WithCancel(context.Background())
	bus := NewBus(db, url)
	done := make(chan struct{})
	go func() { defer close(done); bus.Run(ctx, h) }()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "the session cache to come on", db.sessions.enabled)
	return bus, h
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		<-tick.C
	}
}

func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// revokeBehindTheBack revokes a token as the superuser, sending no
// Control: only the cache can still accept it afterwards.
func revokeBehindTheBack(t *testing.T, dbURL string, tokenID int64) {
	t.Helper()
	if tag, err := superConn(t, dbURL).Exec(testCtx(t), `UPDATE tokens SET revoked_at = now() WHERE id = $1`, tokenID); err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("revoke token %d: %v, %v", tokenID, tag, err)
	}
}

func authenticated(t *testing.T, db *DB, tenantID int64, token string) Session {
	t.Helper()
	s, err := db.Authenticate(testCtx(t), tenantID, token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return s
}

func unauthorized(db *DB, tenantID int64, token string) bool {
	_, err := db.Authenticate(context.Background(), tenantID, token)
	return errors.Is(err, ErrUnauthorized)
}

// TestSessionCacheServes: with the bus listening, a session once found is
// served without a round trip, even after the database no longer agrees
// (which only a write that sends no Control can bring about); the Control
// on the bus then ends it. Failures are not cached.
func TestSessionCacheServes(t *testing.T) {
	db, statements := openCountingDB(t, Config{Doorbell: DoorbellInTx, ActivityDelay: time.Hour})
	dbURL := db.pool.p.Config().ConnString()
	c := newCommunity(t, db, "cache-serves")
	bus, _ := runBus(t, db, dbURL)

	s := authenticated(t, db, c.tenant.ID, c.memberToken)
	before := statements.Load()
	again := authenticated(t, db, c.tenant.ID, c.memberToken)
	if n := statements.Load() - before; n != 0 {
		t.Fatalf("a cached session took %d round trips", n)
	}
	if again.TokenID != s.TokenID || again.User != s.User {
		t.Fatalf("cached %+v, found %+v", again, s)
	}
	if db.sessions.hits.Load() < 1 {
		t.Error("the hit was not counted")
	}

	revokeBehindTheBack(t, dbURL, s.TokenID)
	if got := authenticated(t, db, c.tenant.ID, c.memberToken); got.TokenID != s.TokenID {
		t.Fatalf("cached session %+v", got)
	}
	if err := bus.PublishControl(testCtx(t), Control{Kind: ControlRevoke, TenantID: c.tenant.ID, ID: s.TokenID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoke on the bus to end the cached session", func() bool { return unauthorized(db, c.tenant.ID, c.memberToken) })

	// A failure goes to the database every time.
	before = statements.Load()
	for range 2 {
		if !unauthorized(db, c.tenant.ID, c.memberToken) {
			t.Fatal("the revoked token came back")
		}
	}
	if n := statements.Load() - before; n != 2 {
		t.Errorf("two failed lookups took %d round trips, want 2: failures must not be cached", n)
	}

	// A ban on the bus ends every session of that user.
	admin := authenticated(t, db, c.tenant.ID, c.adminToken)
	revokeBehindTheBack(t, dbURL, admin.TokenID)
	authenticated(t, db, c.tenant.ID, c.adminToken)
	if err := bus.PublishControl(testCtx(t), Control{Kind: ControlBan, TenantID: c.tenant.ID, ID: c.admin.ID}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ban on the bus to end the cached session", func() bool { return unauthorized(db, c.tenant.ID, c.adminToken) })
}

// TestSessionCacheLocalWrites: a logout, ban, unban or role change made
// through this DB ends its cached sessions as its transaction commits,
// before any NOTIFY could have come back: here the listener is counted in
// by hand and never hears anything. A rolled back Control changes
// nothing.
func TestSessionCacheLocalWrites(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "cache-local")
	db.sessions.listening(true)
	admin := ActorOf(c.admin)
	member := func() Session { return authenticated(t, db, c.tenant.ID, c.memberToken) }
	cached := func() bool {
		_, _, ok := db.sessions.get(newSessionKey(c.tenant.ID, c.memberToken))
		return ok
	}

	s := member()
	if !cached() {
		t.Fatal("not cached")
	}
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		if err := notifyControl(ctx, tx, ControlRevoke, c.tenant.ID, s.TokenID); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil || !cached() {
		t.Fatalf("a rolled back revoke (%v) ended the cached session", err)
	}

	if _, err := db.SetRole(ctx, c.tenant.ID, admin, c.member.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	if got := member(); got.User.Role != RoleModerator {
		t.Fatalf("after the role change: %s", got.User.Role)
	}
	if _, err := db.BanUser(ctx, c.tenant.ID, admin, c.member.ID, Ban{Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	if got := member(); !got.User.Banned {
		t.Fatal("after the ban: not banned")
	}
	if _, err := db.UnbanUser(ctx, c.tenant.ID, admin, c.member.ID, ""); err != nil {
		t.Fatal(err)
	}
	if got := member(); got.User.Banned {
		t.Fatal("after the unban: banned")
	}
	if err := db.Logout(ctx, c.tenant.ID, s.TokenID); err != nil {
		t.Fatal(err)
	}
	if !unauthorized(db, c.tenant.ID, c.memberToken) {
		t.Fatal("the token still works after logout")
	}
}

// TestSessionCacheOffWithoutBus: with no bus listening nothing is cached,
// so a revocation that sends no Control counts at once.
func TestSessionCacheOffWithoutBus(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	c := newCommunity(t, db, "cache-off")
	s := authenticated(t, db, c.tenant.ID, c.memberToken)
	authenticated(t, db, c.tenant.ID, c.memberToken)
	revokeBehindTheBack(t, dbURL, s.TokenID)
	if !unauthorized(db, c.tenant.ID, c.memberToken) {
		t.Fatal("a revoked token was served with no bus listening")
	}
	if n := db.sessions.len(); n != 0 {
		t.Fatalf("%d sessions cached with no bus", n)
	}
}

// TestSessionCacheListenerLoss: when the listener's connection dies the
// cache is emptied and off before the loss is reported, stays off until
// the new connection's Connected has succeeded, and starts over empty.
func TestSessionCacheListenerLoss(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "cache-loss")
	_, h := runBus(t, db, dbURL)
	receive(t, "the first Connected", h.connected)

	s := authenticated(t, db, c.tenant.ID, c.memberToken)
	revokeBehindTheBack(t, dbURL, s.TokenID)
	authenticated(t, db, c.tenant.ID, c.memberToken) // cached

	gate := make(chan struct{})
	h.hold <- gate
	var killed int
	if err := db.Pool().QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, ListenerApplicationName).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d listeners (%v), want 1", killed, err)
	}
	if st := receive(t, "Lost", h.lost); st != (cacheState{}) {
		t.Fatalf("at Lost the cache is %+v, want off and empty", st)
	}
	if st := receive(t, "Connected again", h.connected); st != (cacheState{}) {
		t.Fatalf("at Connected the cache is %+v, want off and empty", st)
	}
	// Connected is held: listening again, but not yet caught up.
	authenticated(t, db, c.tenant.ID, c.adminToken)
	if n := db.sessions.len(); n != 0 || db.sessions.enabled() {
		t.Fatalf("before Connected returned: %d cached, enabled %v", n, db.sessions.enabled())
	}
	close(gate)
	waitFor(t, "the cache to come back on", db.sessions.enabled)
	if !unauthorized(db, c.tenant.ID, c.memberToken) {
		t.Fatal("a session cached before the outage survived it")
	}
}

// TestSessionCacheLifetime: a cached session ends when its token expires
// and when its user's temporary ban runs out, as the database reckons
// them, and in any case after sessionCacheTTL.
func TestSessionCacheLifetime(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "cache-life")
	_, h := runBus(t, db, dbURL)
	super := superConn(t, dbURL)
	until := func(token string) time.Time {
		t.Helper()
		db.sessions.mu.RLock()
		defer db.sessions.mu.RUnlock()
		e, ok := db.sessions.m.m[newSessionKey(c.tenant.ID, token)]
		if !ok {
			t.Fatal("not cached")
		}
		return e.until
	}

	start := time.Now()
	authenticated(t, db, c.tenant.ID, c.memberToken)
	if u := until(c.memberToken); u.After(time.Now().Add(sessionCacheTTL)) || u.Before(start.Add(sessionCacheTTL)) {
		t.Errorf("a 30-day session is cached until %v, want %v from now", u, sessionCacheTTL)
	}

	// The admin's token expires in 2 s; the member is banned for 2 s.
	admin := authenticated(t, db, c.tenant.ID, c.adminToken)
	var expires time.Time
	if err := super.QueryRow(ctx, `UPDATE tokens SET expires_at = now() + interval '2 seconds' WHERE id = $1 RETURNING expires_at`,
		admin.TokenID).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	db.sessions.apply(Control{Kind: ControlRevoke, TenantID: c.tenant.ID, ID: admin.TokenID}) // forget the old expiry
	authenticated(t, db, c.tenant.ID, c.adminToken)
	if u := until(c.adminToken); u.After(expires) {
		t.Errorf("cached until %v, after the token expires at %v", u, expires)
	}
	banEnd := time.Now().Add(2 * time.Second)
	if _, err := db.BanUser(ctx, c.tenant.ID, ActorOf(c.admin), c.member.ID, Ban{Reason: "cool off", Until: &banEnd}); err != nil {
		t.Fatal(err)
	}
	// A lookup racing with the ban's Control coming back is not stored.
	if got := receive(t, "the ban's Control", h.controls); got.Kind != ControlBan {
		t.Fatalf("got %+v, want the ban", got)
	}
	if s := authenticated(t, db, c.tenant.ID, c.memberToken); !s.User.Banned {
		t.Fatal("not banned")
	}
	if u := until(c.memberToken); u.After(banEnd) {
		t.Errorf("banned session cached until %v, after the ban ends at %v", u, banEnd)
	}
	waitFor(t, "the admin's token to expire", func() bool { return unauthorized(db, c.tenant.ID, c.adminToken) })
	waitFor(t, "the member's ban to run out", func() bool {
		return !authenticated(t, db, c.tenant.ID, c.memberToken).User.Banned
	})
}

// TestTenantCache: a found tenant is served from memory, so an owner's
// UPDATE shows only once tenantTTL has passed; unknown slugs are not
// remembered, so a tenant created later is found at once.
func TestTenantCache(t *testing.T) {
	db, statements := openCountingDB(t, Config{Doorbell: DoorbellInTx, ActivityDelay: time.Hour})
	dbURL := db.pool.p.Config().ConnString()
	clk := &fakeClock{t: time.Now()}
	db.tenants.now = clk.now
	ctx := testCtx(t)
	if _, err := db.TenantBySlug(ctx, "later"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	created, err := db.CreateTenant(ctx, "later", "Later")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.TenantBySlug(ctx, "later"); err != nil || got.ID != created.ID || got.Name != "Later" {
		t.Fatalf("TenantBySlug = %+v, %v, want %+v", got, err, created)
	}
	if _, err := superConn(t, dbURL).Exec(ctx, `UPDATE tenants SET name = 'Renamed' WHERE id = $1`, created.ID); err != nil {
		t.Fatal(err)
	}
	before := statements.Load()
	if got, err := db.TenantBySlug(ctx, "later"); err != nil || got.Name != "Later" {
		t.Fatalf("cached tenant: %+v, %v", got, err)
	}
	if n := statements.Load() - before; n != 0 {
		t.Fatalf("a cached tenant took %d round trips", n)
	}
	clk.advance(tenantTTL)
	if got, err := db.TenantBySlug(ctx, "later"); err != nil || got.Name != "Renamed" {
		t.Fatalf("after the TTL: %+v, %v, want the new name", got, err)
	}
}

// TestRedeemTicketRace: of redeemers racing for one ticket exactly one
// wins, in one round trip each.
func TestRedeemTicketRace(t *testing.T) {
	db, statements := openCountingDB(t, Config{Doorbell: DoorbellInTx, ActivityDelay: time.Hour})
	ctx := testCtx(t)
	c := newCommunity(t, db, "ticket-race")
	s := authenticated(t, db, c.tenant.ID, c.memberToken)
	const rounds, racers = 10, 6
	for round := range rounds {
		ticket, _, err := db.CreateTicket(ctx, c.tenant.ID, c.member.ID, s.TokenID)
		if err != nil {
			t.Fatal(err)
		}
		before := statements.Load()
		var wins, losses atomic.Int64
		var start, done sync.WaitGroup
		start.Add(1)
		for range racers {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				got, err := db.RedeemTicket(ctx, c.tenant.ID, ticket)
				switch {
				case err == nil && got.TokenID == s.TokenID && got.User.ID == c.member.ID:
					wins.Add(1)
				case errors.Is(err, ErrUnauthorized):
					losses.Add(1)
				default:
					t.Errorf("RedeemTicket = %+v, %v", got, err)
				}
			}()
		}
		start.Done()
		done.Wait()
		if wins.Load() != 1 || losses.Load() != racers-1 {
			t.Fatalf("round %d: %d won, %d lost, want 1 and %d", round, wins.Load(), losses.Load(), racers-1)
		}
		if n := statements.Load() - before; n != racers {
			t.Fatalf("round %d: %d redemptions took %d round trips", round, racers, n)
		}
	}
}
