package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// Rate allows N requests per Per: a token bucket that holds N tokens and
// refills completely in Per, so a burst of N is fine and the sustained rate
// is N/Per. The zero Rate means "the default"; N < 0 means no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// RateLimits configures the rate limits. Every zero field takes its
// default (DefaultRateLimits). With Instances set, the limits hold across
// instances; without it each instance enforces them alone, and a client
// spread over k instances gets k times every limit.
type RateLimits struct {
	// Per signed-in user.
	Posts    Rate // POST boards/{board}/posts
	Comments Rate // POST posts/{post}/comments
	Edits    Rate // PATCH and DELETE of posts and comments
	Reports  Rate // POST reports
	// PUT and DELETE of reactions: clicking is quick, so the burst is
	// large, but a script reacting to everything still runs dry.
	Reactions Rate
	// Per client IP and username: failed logins only. Once they run out,
	// every login attempt for that username from that IP is refused until
	// the bucket refills, so password guessing stalls.
	FailedLogins Rate
	// Per client IP, any username: failed logins (a spray of usernames).
	FailedLoginsPerIP Rate
	// Per client IP: registrations (every attempt counts).
	Registrations Rate

	// MaxKeys bounds each limit's table of clients (0: 100,000). Idle
	// clients are forgotten once their bucket would be full again, which
	// loses nothing; past MaxKeys the oldest tenth is dropped.
	MaxKeys int
	// ClientIP finds the client's address for per-IP limits. nil: the TCP
	// peer, ignoring X-Forwarded-For, which any client can forge. Behind a
	// trusted proxy pass echo.ExtractIPFromXFFHeader(...) with its range.
	ClientIP echo.IPExtractor
	// Disabled turns every limit off (tests that create many objects).
	Disabled bool
	// Instances is how many instances share the limits, this one
	// included (nil: 1). Each bucket's rate and burst are divided by it,
	// so that a client whose requests a load balancer spreads over the
	// instances gets about the limit in all. It is called on every
	// limited request and must be cheap (an atomic load).
	Instances func() int
}

// DefaultRateLimits are limits a person using the forum never meets and a
// script meets within seconds.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		Posts:             Rate{N: 5, Per: time.Minute},
		Comments:          Rate{N: 10, Per: 10 * time.Second},
		Edits:             Rate{N: 30, Per: time.Minute},
		Reports:           Rate{N: 10, Per: time.Minute},
		Reactions:         Rate{N: 60, Per: time.Minute},
		FailedLogins:      Rate{N: 5, Per: time.Minute},
		FailedLoginsPerIP: Rate{N: 30, Per: time.Minute},
		Registrations:     Rate{N: 20, Per: time.Hour},
		MaxKeys:           100_000,
	}
}

// limiters is the rate-limit state of one Server.
type limiters struct {
	posts, comments, edits, reports *limiter
	reactions                       *limiter
	failedLogins, failedLoginsPerIP *limiter
	registrations                   *limiter
	clientIP                        echo.IPExtractor
}

func newLimiters(cfg RateLimits) *limiters {
	def := DefaultRateLimits()
	maxKeys := cfg.MaxKeys
	if maxKeys <= 0 {
		maxKeys = def.MaxKeys
	}
	mk := func(r, d Rate) *limiter {
		if cfg.Disabled {
			return nil
		}
		if r == (Rate{}) {
			r = d
		}
		return newLimiter(r, maxKeys).splitBy(cfg.Instances)
	}
	ip := cfg.ClientIP
	if ip == nil {
		ip = echo.ExtractIPDirect()
	}
	return &limiters{
		posts:             mk(cfg.Posts, def.Posts),
		comments:          mk(cfg.Comments, def.Comments),
		edits:             mk(cfg.Edits, def.Edits),
		reports:           mk(cfg.Reports, def.Reports),
		reactions:         mk(cfg.Reactions, def.Reactions),
		failedLogins:      mk(cfg.FailedLogins, def.FailedLogins),
		failedLoginsPerIP: mk(cfg.FailedLoginsPerIP, def.FailedLoginsPerIP),
		registrations:     mk(cfg.Registrations, def.Registrations),
		clientIP:          ip,
	}
}

// limiter is a table of token buckets, one per client key. A nil *limiter
// allows everything.
type limiter struct {
	perSecond float64 // refill rate
	burst     int
	idle      time.Duration // Per: how often idle clients are looked for
	maxKeys   int
	instances func() int // nil: this instance alone

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

// bucket holds tokens as of at; it refills at perSecond up to the burst.
type bucket struct {
	tokens float64
	at     time.Time
	last   time.Time // last use, for forgetting idle clients
}

func newLimiter(r Rate, maxKeys int) *limiter {
	if r.N < 0 {
		return nil
	}
	n, per := max(r.N, 1), r.Per
	if per <= 0 {
		per = time.Second
	}
	return &limiter{
		perSecond: float64(n) / per.Seconds(),
		burst:     n,
		idle:      per,
		maxKeys:   maxKeys,
		buckets:   map[string]*bucket{},
	}
}

// splitBy shares the limit among the instances that count reports.
func (l *limiter) splitBy(count func() int) *limiter {
	if l != nil {
		l.instances = count
	}
	return l
}

// share is this instance's part of a limit: the rate divided by the live
// instances, and the burst too, rounded to the nearest whole token and at
// least one (a bucket that can never hold a token would refuse forever).
// Rounding keeps a client spread round-robin over k instances within
// k*round(burst/k) <= burst + k/2 at once, at most 1.5 times the burst
// while k <= burst. When a peer dies, buckets keep their tokens and only
// refill faster; when one joins, they are cut to the smaller burst at
// once: a change of peers never hands out a burst.
type share struct {
	perSecond float64
	burst     float64
}

func (l *limiter) share() share {
	k := 1
	if l.instances != nil {
		k = max(l.instances(), 1)
	}
	if k == 1 {
		return share{l.perSecond, float64(l.burst)}
	}
	return share{l.perSecond / float64(k), max(1, math.Round(float64(l.burst)/float64(k)))}
}

// take spends one token of key's bucket. With none left it spends nothing
// and returns how long until one is available.
func (l *limiter) take(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	sh := l.share()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now, sh)
	refill(b, now, sh)
	if wait := sh.wait(b); wait > 0 {
		return wait
	}
	b.tokens--
	return 0
}

// refund gives back a token that take spent, for an attempt that turned
// out not to count. A bucket already forgotten is full: nothing to do.
func (l *limiter) refund(key string, now time.Time) {
	if l == nil {
		return
	}
	sh := l.share()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[key]; ok {
		refill(b, now, sh)
		b.tokens = min(b.tokens+1, sh.burst)
	}
}

// peek returns how long until key's bucket has a token, spending nothing.
func (l *limiter) peek(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	sh := l.share()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	refill(b, now, sh)
	return sh.wait(b)
}

// refill brings b's tokens up to now, never above the burst (which cuts a
// bucket down when the burst shrank). Callers' clocks may be read a
// moment apart, so time never runs backwards for a bucket.
func refill(b *bucket, now time.Time, sh share) {
	if now.After(b.at) {
		b.tokens += now.Sub(b.at).Seconds() * sh.perSecond
		b.at = now
	}
	b.tokens = min(sh.burst, b.tokens)
}

// full is how long an empty bucket takes to fill: Per alone, longer
// when the split burst was rounded up.
func (sh share) full() time.Duration {
	return time.Duration(sh.burst / sh.perSecond * float64(time.Second))
}

func (sh share) wait(b *bucket) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / sh.perSecond * float64(time.Second))
}

func (l *limiter) bucketLocked(key string, now time.Time, sh share) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) >= l.idle {
			l.sweepLocked(now, sh.full())
		}
		b = &bucket{tokens: sh.burst, at: now}
		l.buckets[key] = b
	}
	b.last = now
	return b
}

// sweepLocked forgets clients idle long enough for their bucket to be full
// again: a full bucket and no bucket behave the same, so this loses
// nothing. If that is not enough (a flood from many addresses), it drops
// the least recently used tenth so memory stays bounded, at the price of
// forgiving those clients.
func (l *limiter) sweepLocked(now time.Time, full time.Duration) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		return
	}
	type aged struct {
		key  string
		last time.Time
	}
	all := make([]aged, 0, len(l.buckets))
	for k, b := range l.buckets {
		all = append(all, aged{k, b.last})
	}
	drop := max(len(all)/10, len(all)-l.maxKeys+1)
	// A partial selection would do; a sort keeps it obvious, and it runs
	// once per tenth of MaxKeys new clients.
	slices.SortFunc(all, func(a, b aged) int { return a.last.Compare(b.last) })
	for _, a := range all[:drop] {
		delete(l.buckets, a.key)
	}
}

// size is the number of clients the limiter remembers.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// tooMany is the 429 answer: Retry-After in whole seconds, at least 1.
func tooMany(c echo.Context, wait time.Duration, msg string) error {
	secs := int64(math.Ceil(wait.Seconds()))
	c.Response().Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return apiError(codeRateLimited, msg)
}

func userKey(c echo.Context) string {
	return strconv.FormatInt(tenantOf(c).ID, 10) + ":" + strconv.FormatInt(actorOf(c).UserID, 10)
}

// limitUser limits a signed-in user's requests to one kind of write. It
// runs after requireUser.
func (s *Server) limitUser(l *limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if wait := l.take(userKey(c), time.Now()); wait > 0 {
				return tooMany(c, wait, "too many requests; slow down")
			}
			return next(c)
		}
	}
}

// limitRegistration limits account creation per client IP, whatever the
// tenant: a script signing up in many communities is still one script.
func (s *Server) limitRegistration(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := s.limits.clientIP(c.Request())
		if wait := s.limits.registrations.take(key, time.Now()); wait > 0 {
			return tooMany(c, wait, "too many registrations from your address; try again later")
		}
		return next(c)
	}
}

// limitLogin spends one failed attempt of the username (from this IP)
// and one of the IP before the password is checked, and gives both back
// unless the check failed. Spending first means concurrent guesses cannot
// all pass a check that only counts once they are done; giving back means
// successful logins cost nothing, so a person who types their password
// right never waits.
func (s *Server) limitLogin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ip := s.limits.clientIP(c.Request())
		username, err := peekUsername(c)
		if err != nil {
			return err
		}
		userKey := strconv.FormatInt(tenantOf(c).ID, 10) + "\x00" + ip + "\x00" + strings.ToLower(username)
		perUser, perIP := s.limits.failedLogins, s.limits.failedLoginsPerIP
		now := time.Now()
		if wait := perUser.take(userKey, now); wait > 0 {
			return tooMany(c, max(wait, perIP.peek(ip, now)), "too many failed logins; try again later")
		}
		if wait := perIP.take(ip, now); wait > 0 {
			perUser.refund(userKey, now)
			return tooMany(c, wait, "too many failed logins; try again later")
		}
		err = next(c)
		if !errors.Is(err, store.ErrUnauthorized) {
			now = time.Now()
			perUser.refund(userKey, now)
			perIP.refund(ip, now)
		}
		return err
	}
}

// peekUsername reads the username of a login body and puts the body back
// for the handler.
func peekUsername(c echo.Context) (string, error) {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return "", err // the body limit's 413
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var v struct {
		Username any `json:"username"`
	}
	_ = json.Unmarshal(body, &v) // a bad body is the handler's to reject
	name, _ := v.Username.(string)
	return name, nil
}
