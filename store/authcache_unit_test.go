package store

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a settable now for the caches.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testSession(tokenID, userID int64) Session {
	return Session{TokenID: tokenID, User: User{ID: userID, Username: fmt.Sprintf("user%d", userID)}}
}

// liveSessionCache is a session cache as a connected listener leaves it.
func liveSessionCache(max int) (*sessionCache, *fakeClock) {
	clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newSessionCache(max)
	c.now = clk.now
	c.listening(true)
	return c, clk
}

// TestSessionCacheEpoch: a lookup that read the database before an
// invalidation does not store its answer after it, whichever kind of
// invalidation it was; one that read after it does.
func TestSessionCacheEpoch(t *testing.T) {
	const tenant, token, user = 1, 10, 100
	k := newSessionKey(tenant, "tok")
	for _, inv := range []struct {
		name string
		do   func(c *sessionCache)
	}{
		{"revoke", func(c *sessionCache) { c.apply(Control{Kind: ControlRevoke, TenantID: tenant, ID: token}) }},
		{"ban", func(c *sessionCache) { c.apply(Control{Kind: ControlBan, TenantID: tenant, ID: user}) }},
		{"refresh", func(c *sessionCache) { c.apply(Control{Kind: ControlRefresh, TenantID: tenant, ID: user}) }},
		// An invalidation of someone else moves the epoch all the same: the
		// epoch is one for the whole cache.
		{"other token", func(c *sessionCache) { c.apply(Control{Kind: ControlRevoke, TenantID: tenant, ID: token + 1}) }},
		{"unreadable", func(c *sessionCache) { c.flush() }},
		{"reconnect", func(c *sessionCache) { c.listening(false); c.listening(true) }},
	} {
		t.Run(inv.name, func(t *testing.T) {
			c, clk := liveSessionCache(10)
			_, epoch, ok := c.get(k) // the lookup starts: a miss
			if ok {
				t.Fatal("hit in an empty cache")
			}
			inv.do(c) // meanwhile the session is invalidated
			c.put(k, testSession(token, user), clk.now().Add(time.Hour), epoch)
			if _, _, ok := c.get(k); ok {
				t.Fatal("a lookup that started before the invalidation stored its answer")
			}
			_, epoch, _ = c.get(k) // a lookup after it may store
			c.put(k, testSession(token, user), clk.now().Add(time.Hour), epoch)
			if s, _, ok := c.get(k); !ok || s.TokenID != token {
				t.Fatalf("a lookup after the invalidation was not stored: %+v, %v", s, ok)
			}
		})
	}
}

// TestSessionCacheInvalidation: a revoke drops one token, a ban or
// refresh every token of that user in that tenant, and nothing else.
func TestSessionCacheInvalidation(t *testing.T) {
	c, clk := liveSessionCache(10)
	type entry struct {
		tenant, token, user int64
	}
	entries := []entry{{1, 10, 100}, {1, 11, 100}, {1, 12, 101}, {2, 20, 100}}
	keys := map[entry]sessionKey{}
	for _, e := range entries {
		keys[e] = newSessionKey(e.tenant, fmt.Sprint("tok", e.token))
		_, epoch, _ := c.get(keys[e])
		c.put(keys[e], testSession(e.token, e.user), clk.now().Add(time.Hour), epoch)
	}
	cached := func() map[entry]bool {
		got := map[entry]bool{}
		for _, e := range entries {
			if _, _, ok := c.get(keys[e]); ok {
				got[e] = true
			}
		}
		return got
	}
	if got := cached(); len(got) != 4 {
		t.Fatalf("cached %v, want all four", got)
	}
	c.apply(Control{Kind: ControlRevoke, TenantID: 1, ID: 11})
	if got := cached(); len(got) != 3 || got[entry{1, 11, 100}] {
		t.Fatalf("after revoking token 11: %v", got)
	}
	c.apply(Control{Kind: ControlBan, TenantID: 1, ID: 100})
	if got := cached(); len(got) != 2 || got[entry{1, 10, 100}] {
		t.Fatalf("after banning user 100 of tenant 1: %v (tenant 2's user 100 must stay)", got)
	}
	c.apply(Control{Kind: ControlRefresh, TenantID: 2, ID: 100})
	if got := cached(); len(got) != 1 || !got[entry{1, 12, 101}] {
		t.Fatalf("after refreshing user 100 of tenant 2: %v", got)
	}
	c.apply(Control{Kind: "something-new", TenantID: 9, ID: 9})
	if got := cached(); len(got) != 0 {
		t.Fatalf("an unknown control kind left %v", got)
	}
	if len(c.tokens) != 0 || len(c.users) != 0 {
		t.Fatalf("indexes not emptied: %v %v", c.tokens, c.users)
	}
}

// TestSessionCacheOff: with no listener connected nothing is stored or
// served, and a listener's loss empties the cache.
func TestSessionCacheOff(t *testing.T) {
	c := newSessionCache(10)
	k := newSessionKey(1, "tok")
	_, epoch, _ := c.get(k)
	c.put(k, testSession(1, 1), time.Now().Add(time.Hour), epoch)
	if c.len() != 0 {
		t.Fatal("stored with no listener")
	}
	c.listening(true)
	_, epoch, _ = c.get(k)
	c.put(k, testSession(1, 1), time.Now().Add(time.Hour), epoch)
	if _, _, ok := c.get(k); !ok {
		t.Fatal("not stored with a listener")
	}
	c.listening(false)
	if _, _, ok := c.get(k); ok || c.len() != 0 {
		t.Fatal("served or kept after the listener was lost")
	}
}

// TestSessionCacheExpiry: an entry ends when its own deadline passes, and
// at sessionCacheTTL however far its deadline is.
func TestSessionCacheExpiry(t *testing.T) {
	c, clk := liveSessionCache(10)
	short, long := newSessionKey(1, "short"), newSessionKey(1, "long")
	_, epoch, _ := c.get(short)
	c.put(short, testSession(1, 1), clk.now().Add(10*time.Second), epoch)
	c.put(long, testSession(2, 1), clk.now().Add(30*24*time.Hour), epoch)
	c.put(newSessionKey(1, "past"), testSession(3, 1), clk.now(), epoch)
	if c.len() != 2 {
		t.Fatalf("%d entries, want 2 (an answer already expired is not stored)", c.len())
	}
	clk.advance(10 * time.Second)
	if _, _, ok := c.get(short); ok {
		t.Error("served past its deadline")
	}
	if _, _, ok := c.get(long); !ok {
		t.Error("the long one went early")
	}
	clk.advance(sessionCacheTTL - 10*time.Second)
	if _, _, ok := c.get(long); ok {
		t.Errorf("served past the cap of %v", sessionCacheTTL)
	}
}

// TestSessionCacheBounded: a full cache evicts to make room, keeping its
// indexes in step, and prefers what expires soonest among those it
// samples (an expired entry first).
func TestSessionCacheBounded(t *testing.T) {
	const max = 100
	c, clk := liveSessionCache(max)
	_, epoch, _ := c.get(sessionKey{})
	for i := range int64(3 * max) {
		c.put(newSessionKey(1, fmt.Sprint(i)), testSession(i, i%7), clk.now().Add(time.Duration(i+1)*time.Second), epoch)
		if c.len() > max {
			t.Fatalf("%d entries after %d puts, max %d", c.len(), i+1, max)
		}
	}
	if len(c.tokens) != c.len() {
		t.Fatalf("token index %d, entries %d", len(c.tokens), c.len())
	}
	users := 0
	for _, toks := range c.users {
		users += len(toks)
	}
	if users != c.len() {
		t.Fatalf("user index %d, entries %d", users, c.len())
	}
	// Everything expired. While fewer than evictionSample entries are
	// live, every sample holds an expired one, which goes first.
	clk.advance(time.Hour)
	live := newSessionKey(1, "live")
	c.put(live, testSession(1000, 1), clk.now().Add(time.Minute), epoch)
	for i := range evictionSample - 2 {
		c.put(newSessionKey(2, fmt.Sprint(i)), testSession(2000+int64(i), 1), clk.now().Add(time.Minute), epoch)
		if _, _, ok := c.get(live); !ok {
			t.Fatalf("put %d evicted a live entry rather than an expired one", i)
		}
	}
}

// TestTenantCacheTTL: a found tenant is served for tenantTTL, then read
// again; the cache stays within its bound.
func TestTenantCacheTTL(t *testing.T) {
	clk := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTenantCache()
	c.now = clk.now
	c.put(Tenant{ID: 1, Slug: "a"})
	clk.advance(tenantTTL - time.Nanosecond)
	if got, ok := c.get("a"); !ok || got.ID != 1 {
		t.Fatalf("get before the TTL: %+v, %v", got, ok)
	}
	clk.advance(time.Nanosecond)
	if _, ok := c.get("a"); ok {
		t.Fatal("served at the TTL")
	}
	for i := range maxTenants + 10 {
		c.put(Tenant{ID: int64(i), Slug: fmt.Sprint("t", i)})
	}
	if n := c.len(); n != maxTenants {
		t.Fatalf("%d tenants cached, max %d", n, maxTenants)
	}
}
