package realtime

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"agora/store"
)

const clientKey = "agora.client"

func clientOf(s *melody.Session) *client {
	v, _ := s.Get(clientKey)
	c, _ := v.(*client)
	return c
}

// client is our state for one WebSocket session.
type client struct {
	hub     *Hub
	session *melody.Session
	tenant  store.Tenant
	actor   store.Actor
	tokenID int64
	opened  time.Time
	// id and reqID (the upgrade's X-Request-Id) name the session in its
	// log lines, which carry them field by field: a logger of its own
	// would cost every session its buffer, and keeping the request's
	// would keep the request's.
	id    uint64
	reqID string

	limiter  *rate.Limiter
	floods   int // rate-limited messages in a row; only the read goroutine touches it
	lastSeen atomic.Int64

	// queued counts frames handed to melody and not yet written; replay
	// waits on it so a long history never overflows the send queue.
	queued  atomic.Int64
	drained chan struct{}

	msgsIn, msgsOut atomic.Int64

	closing atomic.Bool
	done    chan struct{}

	mu     sync.Mutex
	rooms  map[string]*room // rooms this session is subscribed to
	closed Disconnect       // why the session ended, once it has
}

func newClient(h *Hub, t store.Tenant, a store.Actor, tokenID int64, id uint64, reqID string) *client {
	c := &client{
		hub: h, tenant: t, actor: a, tokenID: tokenID, id: id, reqID: reqID, opened: time.Now(),
		limiter: rate.NewLimiter(h.cfg.InboundRate, h.cfg.InboundBurst),
		drained: make(chan struct{}, 1),
		done:    make(chan struct{}),
		rooms:   map[string]*room{},
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
}

// log starts a log line of the session at level; nil (whose methods do
// nothing) when the hub's logger drops that level.
func (c *client) log(level zerolog.Level) *zerolog.Event {
	ev := c.hub.log.WithLevel(level)
	if ev == nil {
		return nil
	}
	ev = ev.Uint64("session", c.id).Str("tenant", c.tenant.Slug)
	if c.reqID != "" {
		ev = ev.Str("request_id", c.reqID)
	}
	if !c.actor.Anonymous() {
		ev = ev.Str("user", c.actor.Username)
	}
	return ev
}

// send hands one frame to melody. melody never blocks: when the queue is
// full it drops the frame and reports ErrMessageBufferFull, and onError
// closes the session with 1013, so nothing is lost silently.
func (c *client) send(frame []byte) {
	if c.closing.Load() {
		return
	}
	c.queued.Add(1)
	c.msgsOut.Add(1)
	c.hub.metrics.BytesOut.Add(float64(len(frame)))
	if err := c.session.Write(frame); err != nil {
		c.queued.Add(-1)
	}
}

// sent is melody's notice that one frame left.
func (c *client) sent() {
	c.queued.Add(-1)
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// waitQueue blocks until at most n frames are queued, for replays.
func (c *client) waitQueue(n int64) error {
	timer := time.NewTimer(c.hub.cfg.WriteTimeout)
	defer timer.Stop()
	for c.queued.Load() > n {
		select {
		case <-c.drained:
		case <-c.done:
			return errors.New("session closed")
		case <-timer.C:
			c.slow()
			return errors.New("client does not read")
		}
	}
	return nil
}

// slow closes a session that cannot keep up. Called from fan-out with a
// room locked, so the close frame goes out elsewhere.
func (c *client) slow() {
	if c.closing.Load() {
		return
	}
	c.hub.metrics.SlowCloses.Inc()
	c.stop(disconnects.Slow)
}

// closeNow sends a close frame directly on the connection (the send queue
// may be full) and ends the session.
func (c *client) closeNow(d Disconnect) {
	if c.markClosing(d) {
		c.writeClose(d)
	}
}

// stop ends the session without waiting for its close frame to go out:
// from its return on, nothing more is sent to the session.
func (c *client) stop(d Disconnect) {
	if c.markClosing(d) && !c.hub.spawn(func() { c.writeClose(d) }) {
		c.writeClose(d) // the hub is shutting down
	}
}

func (c *client) markClosing(d Disconnect) bool {
	if !c.closing.CompareAndSwap(false, true) {
		return false
	}
	c.setCloseReason(d)
	return true
}

func (c *client) writeClose(d Disconnect) {
	conn := c.session.WebsocketConnection()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(d.Code, d.Reason),
		time.Now().Add(time.Second))
	_ = conn.Close()
}

func (c *client) setCloseReason(d Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == (Disconnect{}) {
		c.closed = d
	}
}

func (c *client) closeReason() Disconnect {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == (Disconnect{}) {
		return disconnects.Lost
	}
	return c.closed
}

func (h *Hub) onMessage(s *melody.Session, msg []byte) {
	c := clientOf(s)
	if c == nil || c.closing.Load() {
		return
	}
	c.msgsIn.Add(1)
	if !utf8.Valid(msg) {
		h.metrics.Rejected.WithLabelValues("invalid_utf8").Inc()
		c.closeNow(disconnects.InvalidUTF8)
		return
	}
	if !c.limiter.Allow() {
		h.metrics.Rejected.WithLabelValues("rate_limited").Inc()
		c.floods++
		if c.floods >= h.cfg.FloodClose {
			c.closeNow(disconnects.Flood)
			return
		}
		c.send(encodeError(codeRateLimited, "slow down: too many messages", ""))
		return
	}
	c.floods = 0
	// The rest on a goroutine of its own, waited for: decoding a message
	// and acting on it (JSON, a room check or replay deep in the database
	// driver) grow a stack that would stay with the session's read
	// goroutine, idle most of its life.
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.handle(c, msg)
	}()
	<-done
}

// handle acts on one client message, in the order they came.
func (h *Hub) handle(c *client, msg []byte) {
	in, err := decodeInbound(msg)
	if err != nil {
		h.metrics.Rejected.WithLabelValues("bad_request").Inc()
		c.send(encodeError(store.CodeBadRequest, err.Error(), in.Room))
		return
	}
	switch in.Op {
	case opSubscribe:
		h.subscribe(h.ctx, c, in.Room, in.Since)
	case opUnsubscribe:
		h.unsubscribe(c, in.Room)
	case opTyping:
		h.typed(c, in.Room)
	}
}

// leaveAll drops the session from every room when it ends.
func (c *client) leaveAll() {
	c.closing.Store(true)
	close(c.done)
	c.mu.Lock()
	rooms := c.rooms
	c.rooms = map[string]*room{}
	c.mu.Unlock()
	for _, r := range rooms {
		c.hub.leave(c, r)
	}
}

// standingChanged closes a session whose token, role or ban changed.
func (c *client) standingChanged(d Disconnect) {
	c.log(zerolog.InfoLevel).Str("reason", d.Reason).Msg("closing session: its standing changed")
	c.stop(d)
}
