package store

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// Every signed-in request resolves its tenant and its bearer token before
// doing anything else. Both answers are cached here, in memory, per DB.
//
// A tenant never changes through the app (the serving role may only
// SELECT and INSERT tenants), so a found tenant is kept for a minute: an
// operator's UPDATE as the owner shows within that minute.
//
// A session changes when it is revoked or its user is banned, unbanned or
// given another role. Each of those writes sends a Control on the bus, so
// a session is cached only while this DB's bus listener is connected and
// thereby sure to hear of it; see sessionCache.

const (
	// tenantTTL bounds how long an operator's manual change to a tenant
	// can go unseen.
	tenantTTL = time.Minute
	// maxTenants bounds the tenant cache; far more tenants than one
	// instance serves in a minute.
	maxTenants = 10000
	// sessionCacheTTL caps a cached session, whatever its token says: a change
	// that no Control announces (an operator's SQL, a lost NOTIFY while the
	// listener looked alive) is served stale for at most this long.
	sessionCacheTTL = time.Minute
	// maxSessions bounds the session cache (an entry is about 450 bytes
	// with its indexes: some 22 MB when full).
	maxSessions = 50000
	// evictionSample is how many entries a full cache looks at to choose
	// the one to evict.
	evictionSample = 8
)

// ttlMap is a map whose entries expire, bounded in size. When full, an
// insert evicts, among a few entries that Go's randomised map iteration
// yields, the first that has expired or else the one that expires
// soonest: a sampled approximation of "soonest to expire" that costs
// O(evictionSample), not a scan. Callers lock.
type ttlMap[K comparable, V any] struct {
	m   map[K]ttlEntry[V]
	max int
}

type ttlEntry[V any] struct {
	v     V
	until time.Time
}

func newTTLMap[K comparable, V any](max int) ttlMap[K, V] {
	return ttlMap[K, V]{m: map[K]ttlEntry[V]{}, max: max}
}

func (t *ttlMap[K, V]) get(k K, now time.Time) (V, bool) {
	e, ok := t.m[k]
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v until then; evicted is the entry it made room by dropping,
// if any.
func (t *ttlMap[K, V]) put(k K, v V, until, now time.Time) (evicted K, ev V, ok bool) {
	if _, exists := t.m[k]; !exists && len(t.m) >= t.max {
		evicted, ev, ok = t.evict(now)
	}
	t.m[k] = ttlEntry[V]{v: v, until: until}
	return evicted, ev, ok
}

func (t *ttlMap[K, V]) evict(now time.Time) (K, V, bool) {
	var victim K
	var ve ttlEntry[V]
	seen := 0
	for k, e := range t.m {
		if seen == 0 || e.until.Before(ve.until) {
			victim, ve = k, e
		}
		seen++
		if !now.Before(e.until) || seen == evictionSample {
			break
		}
	}
	if seen == 0 {
		var zero V
		return victim, zero, false
	}
	delete(t.m, victim)
	return victim, ve.v, true
}

// tenantCache holds found tenants by slug. Unknown slugs are not cached:
// they are chosen by whoever sends the request, so caching them would let
// a scan of made-up slugs push the real tenants out, and a tenant just
// created through another instance would stay unknown here for the
// negative entry's lifetime.
type tenantCache struct {
	mu           sync.RWMutex
	m            ttlMap[string, Tenant]
	now          func() time.Time
	hits, misses atomic.Int64
}

func newTenantCache() *tenantCache {
	return &tenantCache{m: newTTLMap[string, Tenant](maxTenants), now: time.Now}
}

func (c *tenantCache) get(slug string) (Tenant, bool) {
	c.mu.RLock()
	t, ok := c.m.get(slug, c.now())
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return t, ok
}

func (c *tenantCache) put(t Tenant) {
	now := c.now()
	c.mu.Lock()
	c.m.put(t.Slug, t, now.Add(tenantTTL), now)
	c.mu.Unlock()
}

func (c *tenantCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m.m)
}

// sessionKey names a cached session by tenant and the SHA-256 of its
// token: the raw token is never kept.
type sessionKey struct {
	tenantID int64
	hash     [sha256.Size]byte
}

func newSessionKey(tenantID int64, token string) sessionKey {
	return sessionKey{tenantID: tenantID, hash: sha256.Sum256([]byte(token))}
}

// idKey is a token or user id within its tenant.
type idKey struct{ tenantID, id int64 }

// sessionCache holds successful Authenticate results. Its rules:
//
//   - It serves and stores only while at least one bus listener of this
//     DB is connected (live > 0): with nobody listening, a revocation on
//     another instance would go unheard. Every connect and every loss
//     empties it.
//   - Every Control received, and every Control this instance commits,
//     drops the entries it concerns (a token; or a user's, for a ban,
//     unban or role change).
//   - A lookup reads the epoch before its query and stores its result
//     only if the epoch is unchanged: every invalidation (and every
//     connect or loss) moves the epoch, so a lookup that read the
//     database before an invalidation cannot store what it read after it.
//   - An entry ends at its token's expiry, at the end of its user's
//     temporary ban, and at sessionCacheTTL, whichever comes first.
//
// Callers get the cached Session by value; its pointer fields are shared
// and must not be written through.
type sessionCache struct {
	mu    sync.RWMutex
	live  int
	epoch uint64
	m     ttlMap[sessionKey, Session]
	// tokens and users index m for invalidation: a token has one hash, a
	// user any number of tokens.
	tokens       map[idKey]sessionKey
	users        map[idKey]map[int64]struct{}
	now          func() time.Time
	hits, misses atomic.Int64
}

func newSessionCache(max int) *sessionCache {
	return &sessionCache{m: newTTLMap[sessionKey, Session](max), tokens: map[idKey]sessionKey{},
		users: map[idKey]map[int64]struct{}{}, now: time.Now}
}

// get returns the cached session of k, or the epoch to hand to put once
// the database has answered.
func (c *sessionCache) get(k sessionKey) (s Session, epoch uint64, ok bool) {
	c.mu.RLock()
	if c.live > 0 {
		s, ok = c.m.get(k, c.now())
	}
	epoch = c.epoch
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return s, epoch, ok
}

// put caches s until at most until, unless the cache is off or something
// was invalidated since epoch was read.
func (c *sessionCache) put(k sessionKey, s Session, until time.Time, epoch uint64) {
	now := c.now()
	if limit := now.Add(sessionCacheTTL); until.After(limit) {
		until = limit
	}
	if !until.After(now) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live == 0 || epoch != c.epoch {
		return
	}
	if ek, es, ok := c.m.put(k, s, until, now); ok {
		c.unindexLocked(ek, es)
	}
	c.tokens[idKey{k.tenantID, s.TokenID}] = k
	uk := idKey{k.tenantID, s.User.ID}
	if c.users[uk] == nil {
		c.users[uk] = map[int64]struct{}{}
	}
	c.users[uk][s.TokenID] = struct{}{}
}

// apply drops what c makes stale. A kind it does not know empties the
// cache: better a few lookups than a stale session.
func (c *sessionCache) apply(ctl Control) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	switch ctl.Kind {
	case ControlRevoke:
		c.dropTokenLocked(idKey{ctl.TenantID, ctl.ID})
	case ControlBan, ControlRefresh:
		uk := idKey{ctl.TenantID, ctl.ID}
		for tokenID := range c.users[uk] {
			c.dropTokenLocked(idKey{ctl.TenantID, tokenID})
		}
	default:
		c.clearLocked()
	}
}

// flush empties the cache, for a control message that could not be read.
func (c *sessionCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.clearLocked()
}

// listening counts a bus listener of this DB in (after its Connected
// succeeded) or out (when its connection ended). Either way the cache
// starts over empty: what happened while nobody listened is unknown.
func (c *sessionCache) listening(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if up {
		c.live++
	} else {
		c.live--
	}
	c.epoch++
	c.clearLocked()
}

func (c *sessionCache) enabled() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.live > 0
}

func (c *sessionCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m.m)
}

func (c *sessionCache) dropTokenLocked(tok idKey) {
	k, ok := c.tokens[tok]
	if !ok {
		return
	}
	s := c.m.m[k].v
	delete(c.m.m, k)
	c.unindexLocked(k, s)
}

func (c *sessionCache) unindexLocked(k sessionKey, s Session) {
	delete(c.tokens, idKey{k.tenantID, s.TokenID})
	uk := idKey{k.tenantID, s.User.ID}
	delete(c.users[uk], s.TokenID)
	if len(c.users[uk]) == 0 {
		delete(c.users, uk)
	}
}

func (c *sessionCache) clearLocked() {
	clear(c.m.m)
	clear(c.tokens)
	clear(c.users)
}
