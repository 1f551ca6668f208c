package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// TenantQuota shares the write path among tenants, so that one
// community's flood (a spam wave, a runaway integration, a script spread
// over many accounts) cannot take it from the others. It holds whether
// RateLimits are on or off. The zero value is no quota: serve sets one.
//
// A write is any POST, PUT, PATCH or DELETE under /api/v1/t/{tenant}. The
// quota is checked before the tenant is looked up or the caller
// authenticated, so a refused write costs no database round trip.
type TenantQuota struct {
	// Writes is each tenant's budget of writes across all instances (split
	// by Instances like RateLimits). Past it, writes are 429 rate_limited
	// with Retry-After: the tenant's traffic exceeds its quota. Zero or
	// N < 0: no budget.
	Writes Rate
	// Slots is how many of one tenant's writes this instance runs at once
	// (a share of its database pool, which is per instance, so this is
	// not split); 0: no cap. A write finding them taken waits up to
	// SlotWait [1s] for one, then is 503 unavailable with Retry-After:
	// the tenant's share of the server is overloaded right now, which is
	// no single client's fault and is over as soon as writes drain.
	Slots    int
	SlotWait time.Duration
	// Instances is how many instances share Writes (nil: 1); called on
	// every write, so it must be cheap.
	Instances func() int
	// MaxKeys bounds the table of tenants' buckets [100,000].
	MaxKeys int
}

// quota is the tenant quota state of one Server; nil: none.
type quota struct {
	writes *limiter
	slots  *slots
}

func newQuota(cfg TenantQuota) *quota {
	q := &quota{}
	if cfg.Writes.N > 0 {
		maxKeys := cfg.MaxKeys
		if maxKeys <= 0 {
			maxKeys = 100_000
		}
		q.writes = newLimiter(cfg.Writes, maxKeys).splitBy(cfg.Instances)
	}
	if cfg.Slots > 0 {
		wait := cfg.SlotWait
		if wait <= 0 {
			wait = time.Second
		}
		q.slots = newSlots(cfg.Slots, wait)
	}
	if q.writes == nil && q.slots == nil {
		return nil
	}
	return q
}

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// tenantQuota spends one of the tenant's writes and holds one of its
// slots for the rest of the request. Tenants are keyed by their slug, as
// in the path: it is known before any lookup, and a slug that names no
// tenant only ever costs a bucket that the table's bound sweeps away.
func (s *Server) tenantQuota(next echo.HandlerFunc) echo.HandlerFunc {
	if s.quota == nil {
		return next
	}
	return func(c echo.Context) error {
		if !isWrite(c.Request().Method) {
			return next(c)
		}
		slug := c.Param("tenant")
		if wait := s.quota.writes.take(slug, time.Now()); wait > 0 {
			return tooMany(c, wait, "this community is writing more than its quota; try again later")
		}
		if sl := s.quota.slots; sl != nil {
			t, ok := sl.acquire(c.Request().Context(), slug)
			if !ok {
				c.Response().Header().Set("Retry-After", "1")
				return apiError(store.CodeUnavailable, "this community's writes are queueing; try again in a moment")
			}
			defer sl.release(slug, t)
		}
		return next(c)
	}
}

// slots caps each tenant's writes in flight on this instance.
type slots struct {
	max  int
	wait time.Duration

	mu sync.Mutex
	in map[string]*tenantSlots
}

// tenantSlots is one tenant's semaphore. users counts its holders and
// waiters: the entry goes when the last one leaves, so the table holds
// only tenants writing right now.
type tenantSlots struct {
	sem   chan struct{}
	users int
}

func newSlots(n int, wait time.Duration) *slots {
	return &slots{max: n, wait: wait, in: map[string]*tenantSlots{}}
}

// acquire takes one of key's slots, waiting up to s.wait (or until ctx
// ends). ok false: none came free; otherwise release(key, t) once.
func (s *slots) acquire(ctx context.Context, key string) (t *tenantSlots, ok bool) {
	s.mu.Lock()
	t = s.in[key]
	if t == nil {
		t = &tenantSlots{sem: make(chan struct{}, s.max)}
		s.in[key] = t
	}
	t.users++
	s.mu.Unlock()
	select {
	case t.sem <- struct{}{}:
		return t, true
	default:
	}
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
	select {
	case t.sem <- struct{}{}:
		return t, true
	case <-timer.C:
	case <-ctx.Done():
	}
	s.leave(key, t)
	return nil, false
}

func (s *slots) release(key string, t *tenantSlots) {
	<-t.sem
	s.leave(key, t)
}

func (s *slots) leave(key string, t *tenantSlots) {
	s.mu.Lock()
	if t.users--; t.users == 0 {
		delete(s.in, key)
	}
	s.mu.Unlock()
}
