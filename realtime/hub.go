// Package realtime is Agora's WebSocket side: melody sessions, the
// protocol, the room index and fan-out of committed events, presence and
// typing. It reads history and talks to the other instances through the
// History and Bus it is given (seams.go); store implements both on
// Postgres.
package realtime

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/time/rate"

	"agora/store"
)

// Config tunes the hub. Zero values take the defaults in brackets.
type Config struct {
	History History
	Bus     Bus
	Log     zerolog.Logger
	// InstanceID names this instance to the others (random).
	InstanceID string

	PingInterval time.Duration // [20s]
	PongTimeout  time.Duration // [30s]
	WriteTimeout time.Duration // [10s]
	// MaxPending is how many bytes of messages may wait for a session's
	// turn to write before it is a slow consumer, closed with 1013 (it
	// resumes with since, nothing is lost) [4 MiB]. The bytes are shared
	// by every session of a room: each holds only references.
	MaxPending int
	// WriteConcurrency is how many sessions may have a frame being
	// written at once [128]; the others' messages wait, packed, for their
	// turn (gate.go).
	WriteConcurrency int
	// MaxMessage is the largest client message [4096].
	MaxMessage int64
	// MaxRooms per session [100].
	MaxRooms int
	// InboundRate and InboundBurst limit client messages per session
	// [20/s, 40]. Floods get error frames; FloodClose of them in a row
	// close the session with 1008 [50].
	InboundRate  rate.Limit
	InboundBurst int
	FloodClose   int
	// AllowedOrigins are origins besides the request's own host that may
	// open WebSockets ("https://forum.example.com").
	AllowedOrigins []string
	// MaxUserSessions is the most WebSockets one user may hold open per
	// tenant on this instance [20]; MaxTenantSessions the most a tenant
	// may [10,000]. Past either the upgrade is refused with 429. They hold
	// whatever the rate limits are.
	MaxUserSessions   int
	MaxTenantSessions int

	// PresenceFlush is the coalescing window for join/leave frames [250ms].
	PresenceFlush time.Duration
	// PresenceCountEvery is the least time between two presence messages
	// of a room of more than 100 users [1s] (API.md, "Large rooms").
	PresenceCountEvery time.Duration
	// Heartbeat is how often this instance tells the others it lives [5s];
	// an instance silent for HeartbeatTimeout [3 x Heartbeat] is dead and
	// its users leave presence.
	Heartbeat        time.Duration
	HeartbeatTimeout time.Duration
	// TypingInterval is the least time between two typing relays of one
	// user in one room [2s].
	TypingInterval time.Duration

	// HistoryMemoryEvents is how many recent events each room keeps in
	// memory for resumes [1,000; negative: none]; HistoryMemoryBytes
	// bounds them all together [64 MiB].
	HistoryMemoryEvents int
	HistoryMemoryBytes  int64
	// ReplayReads bounds the History reads of replays running at once
	// [8, half of the store's default pool]: the resumes of a reconnect
	// storm that miss the recent events in memory wait here, in line,
	// rather than take every database connection from the writes.
	ReplayReads int

	// Sweep is how often local rooms are compared with their seq in
	// History [2s]: the safety net for a doorbell that never rang (an
	// instance that died between commit and announcement).
	Sweep time.Duration

	// Metrics receives counts; nil: none.
	Metrics *Metrics
	// Tracer traces the fan-out of events whose write was traced; nil:
	// no tracing.
	Tracer trace.TracerProvider
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PingInterval, 20*time.Second)
	def(&c.PongTimeout, 30*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PresenceFlush, 250*time.Millisecond)
	def(&c.PresenceCountEvery, time.Second)
	def(&c.Heartbeat, 5*time.Second)
	def(&c.HeartbeatTimeout, 3*c.Heartbeat)
	def(&c.TypingInterval, 2*time.Second)
	def(&c.Sweep, 2*time.Second)
	if c.MaxPending <= 0 {
		c.MaxPending = 4 << 20
	}
	if c.WriteConcurrency <= 0 {
		c.WriteConcurrency = 128
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = 4096
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = 100
	}
	if c.InboundRate <= 0 {
		c.InboundRate = 20
	}
	if c.InboundBurst <= 0 {
		c.InboundBurst = 40
	}
	if c.FloodClose <= 0 {
		c.FloodClose = 50
	}
	if c.HistoryMemoryEvents == 0 {
		c.HistoryMemoryEvents = 1000
	}
	if c.HistoryMemoryBytes <= 0 {
		c.HistoryMemoryBytes = 64 << 20
	}
	if c.ReplayReads <= 0 {
		c.ReplayReads = 8
	}
	if c.MaxUserSessions <= 0 {
		c.MaxUserSessions = 20
	}
	if c.MaxTenantSessions <= 0 {
		c.MaxTenantSessions = 10000
	}
	if c.InstanceID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c.InstanceID = hex.EncodeToString(b)
	}
	if c.Tracer == nil {
		c.Tracer = noop.NewTracerProvider()
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
}

// Hub is one instance's registry of WebSocket sessions and the rooms they
// are in. Presence, the bus handler and fan-out are its parts.
type Hub struct {
	cfg     Config
	log     zerolog.Logger
	history History
	// replayHistory is History for replays, counted apart from the rest.
	replayHistory History
	bus           Bus
	m             *melody.Melody
	rooms         *index
	recent        *recent
	gate          *gate
	presence      *presence
	typing        *typingThrottle
	metrics       *Metrics
	tracer        trace.Tracer

	// ctx lives from New until Shutdown; background work stops with it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the hub starts (spawn); once stopped is
	// set, Shutdown is waiting on it and spawn starts nothing more.
	spawnMu sync.Mutex
	stopped bool
	wg      sync.WaitGroup

	// listening: the bus is connected and every session's standing was
	// checked on connecting; linkGen counts those connections.
	listening atomic.Bool
	linkGen   atomic.Uint64
	closing   atomic.Bool
	nextID    atomic.Uint64

	mu      sync.Mutex
	clients map[*client]struct{}
	tenants map[int64]int // open sessions per tenant

	// quotaMu guards the quotas' counts: sessions open or being opened,
	// per tenant and per user. A slot is taken before the upgrade and
	// given back when the session ends or the upgrade failed.
	quotaMu   sync.Mutex
	perTenant map[int64]int
	perUser   map[userKey]int

	checksMu sync.Mutex
	checks   map[checkKey]*check // room checks under way
}

type userKey struct{ tenant, user int64 }

// New builds a hub; call Run to start its background work.
func New(cfg Config) *Hub {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:     cfg,
		log:     cfg.Log.With().Str("component", "realtime").Str("instance", cfg.InstanceID).Logger(),
		history: countingHistory{History: cfg.History, queries: cfg.Metrics.historyQuery},
		// replayHistory is the same History, counted apart.
		replayHistory: boundedHistory{
			History: countingHistory{History: cfg.History, queries: cfg.Metrics.historyQuery, prefix: "replay_"},
			slots:   make(chan struct{}, cfg.ReplayReads),
		},
		bus:       cfg.Bus,
		metrics:   cfg.Metrics,
		ctx:       ctx,
		cancel:    cancel,
		clients:   map[*client]struct{}{},
		tenants:   map[int64]int{},
		perTenant: map[int64]int{},
		perUser:   map[userKey]int{},
		checks:    map[checkKey]*check{},
		typing:    newTypingThrottle(cfg.TypingInterval),
		tracer:    cfg.Tracer.Tracer("agora/realtime"),
	}
	h.rooms = newIndex()
	h.gate = newGate(cfg.WriteConcurrency)
	h.recent = &recent{perRoom: max(cfg.HistoryMemoryEvents, 0), budget: cfg.HistoryMemoryBytes, gauge: cfg.Metrics.RecentBytes}
	h.presence = newPresence(h)

	m := melody.New()
	m.Config.PingPeriod = cfg.PingInterval
	m.Config.PongWait = cfg.PongTimeout
	m.Config.WriteWait = cfg.WriteTimeout
	m.Config.MaxMessageSize = cfg.MaxMessage
	// One frame of ours at a time is in a session's queue (client.go),
	// and room for melody's own close message.
	m.Config.MessageBufferSize = 2
	// Origins are checked in ServeWS, where the refusal can be the API's
	// JSON error; compression stays off (a compressed frame can inflate
	// past the read limit). Write buffers come from a pool, so an idle
	// connection holds none.
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true }
	m.Upgrader.EnableCompression = false
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	// A small read buffer of the session's own rather than the HTTP
	// server's 4 KiB one, which it would otherwise keep: client messages
	// are a few dozen bytes (a larger one takes a few reads).
	m.Upgrader.ReadBufferSize = 512
	m.HandleConnect(h.onConnect)
	m.HandleDisconnect(h.onDisconnect)
	m.HandleMessage(h.onMessage)
	m.HandleMessageBinary(func(s *melody.Session, _ []byte) {
		if c := clientOf(s); c != nil {
			c.send(encodeError(store.CodeBadRequest, "binary frames are not part of the protocol", ""))
		}
	})
	m.HandleSentMessage(func(s *melody.Session, _ []byte) {
		if c := clientOf(s); c != nil {
			c.sent()
		}
	})
	m.HandlePong(func(s *melody.Session) {
		if c := clientOf(s); c != nil {
			c.lastSeen.Store(time.Now().UnixNano())
		}
	})
	m.HandleError(h.onError)
	h.m = m
	return h
}

// Run starts the bus, the sweep and presence. They stop at Shutdown.
func (h *Hub) Run() {
	h.spawn(func() {
		h.bus.Run(h.ctx, listener{h})
		h.listening.Store(false)
	})
	h.spawn(func() { every(h.ctx, h.cfg.Sweep, h.sweep) })
	h.spawn(func() { h.presence.run(h.ctx) })
}

// spawn runs fn on a goroutine counted in the hub's wait group. Once
// Shutdown waits on the group it starts nothing and returns false.
func (h *Hub) spawn(fn func()) bool {
	h.spawnMu.Lock()
	defer h.spawnMu.Unlock()
	if h.stopped {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

// Ready reports whether the bus is connected: without it this instance
// would serve stale rooms.
func (h *Hub) Ready(context.Context) error {
	if !h.listening.Load() {
		return errors.New("realtime listener is not connected")
	}
	return nil
}

// ServeWS upgrades an authenticated request. tokenID is the session token
// actor signed in with (0: anonymous). Refusals happen before the upgrade,
// as plain API errors.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request, tenant store.Tenant, actor store.Actor, tokenID int64) {
	if h.closing.Load() {
		shuttingDown(w)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, store.CodeBadRequest, "this endpoint speaks WebSocket only")
		return
	}
	if !h.originAllowed(r) {
		h.metrics.Rejected.WithLabelValues("origin").Inc()
		writeError(w, http.StatusForbidden, store.CodeForbidden, "origin not allowed")
		return
	}
	if !tenant.Public && actor.Anonymous() {
		writeError(w, http.StatusUnauthorized, store.CodeUnauthorized, "sign in first")
		return
	}
	if msg := h.reserve(tenant.ID, actor); msg != "" {
		w.Header().Set("Retry-After", strconv.Itoa(quotaRetryAfter))
		writeError(w, http.StatusTooManyRequests, codeRateLimited, msg)
		return
	}
	c := newClient(h, tenant, actor, tokenID, h.nextID.Add(1), w.Header().Get("X-Request-Id"),
		trace.SpanContextFromContext(r.Context()).TraceID())
	// melody's handler blocks for the session's lifetime. Run on this
	// goroutine, it would keep the whole HTTP server and middleware call
	// chain alive with it: a deep stack, net/http's per-connection read
	// and write buffers, the request and its headers. So it runs on a
	// goroutine of its own, with a request that holds only what the
	// upgrade reads, and this one returns once the connection is
	// hijacked (or the upgrade was refused).
	uw, req, keys := newUpgradeWriter(w), upgradeRequest(r), map[string]any{clientKey: c}
	done := make(chan struct{})
	tenantID := tenant.ID
	started := h.spawn(func() { h.runSession(uw, req, keys, c, tenantID, done) })
	if !started {
		h.unreserve(tenant.ID, actor)
		shuttingDown(w)
		return
	}
	select {
	case <-uw.hijacked:
	case <-done:
	}
}

// runSession is melody's handler for one session, on a goroutine that
// holds nothing else: it returns when the session ends.
func (h *Hub) runSession(uw *upgradeWriter, req *http.Request, keys map[string]any, c *client, tenantID int64, done chan struct{}) {
	defer close(done)
	defer h.unreserve(tenantID, c.actor)
	if err := h.m.HandleRequestWithKeys(uw, req, keys); err != nil {
		c.log(zerolog.WarnLevel).Err(err).Msg("websocket upgrade failed")
	}
}

// upgradeRequest is what of r the upgrade reads.
func upgradeRequest(r *http.Request) *http.Request {
	h := make(http.Header, len(upgradeHeaders))
	for _, k := range upgradeHeaders {
		if v, ok := r.Header[k]; ok {
			h[k] = v
		}
	}
	u := *r.URL
	u.RawQuery = "" // a ticket may travel there
	// No context: the request's ends with the handler, and nothing of the
	// session needs one.
	return &http.Request{Method: r.Method, URL: &u, Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: h, Host: r.Host, RemoteAddr: r.RemoteAddr}
}

// upgradeHeaders are the request headers gorilla's upgrade reads.
var upgradeHeaders = []string{"Connection", "Upgrade", "Sec-Websocket-Version", "Sec-Websocket-Key",
	"Sec-Websocket-Protocol", "Sec-Websocket-Extensions"}

// upgradeWriter is the upgrade's view of the handler's ResponseWriter. Its
// header is a copy, which the upgrade may still read after the handler
// returned, and it says when the connection is hijacked: from then on the
// handler's part is done.
type upgradeWriter struct {
	w        http.ResponseWriter
	header   http.Header
	hijacked chan struct{}
}

func newUpgradeWriter(w http.ResponseWriter) *upgradeWriter {
	return &upgradeWriter{w: w, header: w.Header().Clone(), hijacked: make(chan struct{})}
}

func (u *upgradeWriter) Header() http.Header { return u.header }

// WriteHeader and Write answer a refused upgrade, while the handler waits.
func (u *upgradeWriter) WriteHeader(status int) {
	maps.Copy(u.w.Header(), u.header)
	u.w.WriteHeader(status)
}

func (u *upgradeWriter) Write(b []byte) (int, error) { return u.w.Write(b) }

func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := u.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err == nil {
		close(u.hijacked)
	}
	return conn, brw, err
}

// quotaRetryAfter is the Retry-After of a refusal over quota, in seconds:
// a slot frees up when one of the sessions ends, which nobody can predict.
const quotaRetryAfter = 5

// codeRateLimited is API.md's code for 429 (store has no error of it).
const codeRateLimited store.Code = "rate_limited"

// reserve takes a session slot of the tenant and of the user (none for
// anonymous sessions), or says why it cannot. The slot is held for the
// whole session: ServeWS returns when melody's handler does, at its end.
func (h *Hub) reserve(tenantID int64, a store.Actor) (refusal string) {
	h.quotaMu.Lock()
	defer h.quotaMu.Unlock()
	uk := userKey{tenantID, a.UserID}
	switch {
	case h.perTenant[tenantID] >= h.cfg.MaxTenantSessions:
		h.metrics.Rejected.WithLabelValues("tenant_quota").Inc()
		return "this community has too many open connections, try again later"
	case !a.Anonymous() && h.perUser[uk] >= h.cfg.MaxUserSessions:
		h.metrics.Rejected.WithLabelValues("user_quota").Inc()
		return "too many open connections: at most " + strconv.Itoa(h.cfg.MaxUserSessions) + " per user, close one first"
	}
	h.perTenant[tenantID]++
	if !a.Anonymous() {
		h.perUser[uk]++
	}
	return ""
}

func (h *Hub) unreserve(tenantID int64, a store.Actor) {
	h.quotaMu.Lock()
	defer h.quotaMu.Unlock()
	if h.perTenant[tenantID]--; h.perTenant[tenantID] <= 0 {
		delete(h.perTenant, tenantID)
	}
	if a.Anonymous() {
		return
	}
	uk := userKey{tenantID, a.UserID}
	if h.perUser[uk]--; h.perUser[uk] <= 0 {
		delete(h.perUser, uk)
	}
}

// originAllowed: no Origin (not a browser), the request's own host, or a
// configured origin.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range h.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	return false
}

// shuttingDown refuses an upgrade while this instance stops. Like every
// 503 of the API it carries Retry-After; the load balancer will have
// another instance by then.
func shuttingDown(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, store.CodeUnavailable, "server is shutting down")
}

func writeError(w http.ResponseWriter, status int, code store.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": string(code), "message": msg}})
}

// Shutdown closes every session with 1001, stops the bus and background
// work, and tells the other instances this one is gone, all within ctx.
func (h *Hub) Shutdown(ctx context.Context) error {
	if !h.closing.CompareAndSwap(false, true) {
		return nil
	}
	h.mu.Lock()
	clients := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.mu.Unlock()
	// Close frames go out 64 at a time: each may wait up to a second on a
	// client that does not read.
	sem := make(chan struct{}, 64)
	var err error
loop:
	for _, c := range clients {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			err = ctx.Err()
			break loop
		}
		h.spawn(func() {
			defer func() { <-sem }()
			c.closeNow(disconnects.Shutdown)
		})
	}
	h.cancel()
	h.spawnMu.Lock()
	h.stopped = true
	h.spawnMu.Unlock()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// After the presence loop stopped, so that no delta can follow it.
	h.presence.goodbye(ctx)
	// Whatever is left (sessions not reached in time) ends here.
	_ = h.m.Close()
	return err
}

func (h *Hub) onConnect(s *melody.Session) {
	c := clientOf(s)
	c.session = s
	// melody keeps the request for handlers that read it; ours do not.
	s.Request = nil
	h.mu.Lock()
	h.clients[c] = struct{}{}
	if h.tenants[c.tenant.ID]++; h.tenants[c.tenant.ID] == 1 {
		h.metrics.Tenants.Inc()
	}
	h.mu.Unlock()
	// Shutdown sets closing before it lists clients: a session that
	// registered too late to be listed sees closing here.
	if h.closing.Load() {
		c.stop(disconnects.Shutdown)
	}
	h.metrics.Sessions.Inc()
	c.log(zerolog.InfoLevel).Bool("anonymous", c.actor.Anonymous()).Msg("session open")
}

func (h *Hub) onDisconnect(s *melody.Session) {
	c := clientOf(s)
	h.mu.Lock()
	delete(h.clients, c)
	if h.tenants[c.tenant.ID]--; h.tenants[c.tenant.ID] == 0 {
		delete(h.tenants, c.tenant.ID)
		h.metrics.Tenants.Dec()
	}
	h.mu.Unlock()
	c.leaveAll()
	c.ended()
	h.metrics.Sessions.Dec()
	d := c.closeReason()
	c.log(zerolog.InfoLevel).Int("code", d.Code).Str("reason", d.Reason).
		Dur("duration", time.Since(c.opened)).
		Int64("messages_in", c.msgsIn.Load()).Int64("messages_out", c.msgsOut.Load()).
		Msg("session closed")
}

func (h *Hub) onError(s *melody.Session, err error) {
	c := clientOf(s)
	if c == nil {
		return
	}
	switch {
	case errors.Is(err, melody.ErrMessageBufferFull):
		c.slow()
	case errors.Is(err, websocket.ErrReadLimit):
		h.metrics.Rejected.WithLabelValues("too_big").Inc()
		c.setCloseReason(disconnects.TooBig)
	default:
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			c.setCloseReason(Disconnect{ce.Code, ce.Text})
		}
	}
}

// forEachClient calls fn for every session matching keep.
func (h *Hub) forEachClient(keep func(*client) bool, fn func(*client)) {
	h.mu.Lock()
	var match []*client
	for c := range h.clients {
		if keep(c) {
			match = append(match, c)
		}
	}
	h.mu.Unlock()
	for _, c := range match {
		fn(c)
	}
}
