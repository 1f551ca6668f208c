package realtime

import (
	"context"
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
	log     zerolog.Logger
	opened  time.Time

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

	mu        sync.Mutex
	rooms     map[string]*room // rooms this session is subscribed to
	closeCode int
	closeText string
}

func newClient(h *Hub, t store.Tenant, a store.Actor, tokenID int64, log zerolog.Logger) *client {
	c := &client{
		hub: h, tenant: t, actor: a, tokenID: tokenID, log: log, opened: time.Now(),
		limiter: rate.NewLimiter(h.cfg.InboundRate, h.cfg.InboundBurst),
		drained: make(chan struct{}, 1),
		done:    make(chan struct{}),
		rooms:   map[string]*room{},
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c
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
// room locked, so the close itself runs elsewhere.
func (c *client) slow() {
	if c.closing.Load() {
		return
	}
	c.hub.metrics.SlowCloses.Inc()
	go c.closeNow(websocket.CloseTryAgainLater, "slow consumer: resume with since")
}

// closeNow sends a close frame directly on the connection (the send queue
// may be full) and ends the session.
func (c *client) closeNow(code int, reason string) {
	if c.markClosing(code, reason) {
		c.writeClose(code, reason)
	}
}

// stop ends the session without waiting for the close frame to go out:
// from its return on, nothing more is sent to the session.
func (c *client) stop(code int, reason string) {
	if c.markClosing(code, reason) {
		c.log.Info().Str("reason", reason).Msg("closing session: its standing changed")
		go c.writeClose(code, reason)
	}
}

func (c *client) markClosing(code int, reason string) bool {
	if !c.closing.CompareAndSwap(false, true) {
		return false
	}
	c.setCloseReason(code, reason)
	return true
}

func (c *client) writeClose(code int, reason string) {
	conn := c.session.WebsocketConnection()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(time.Second))
	_ = conn.Close()
}

func (c *client) setCloseReason(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode == 0 {
		c.closeCode, c.closeText = code, reason
	}
}

func (c *client) closeReason() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode == 0 {
		return websocket.CloseAbnormalClosure, "connection lost"
	}
	return c.closeCode, c.closeText
}

func (h *Hub) onMessage(s *melody.Session, msg []byte) {
	c := clientOf(s)
	if c == nil || c.closing.Load() {
		return
	}
	c.msgsIn.Add(1)
	if !utf8.Valid(msg) {
		h.metrics.Rejected.WithLabelValues("invalid_utf8").Inc()
		c.closeNow(websocket.CloseInvalidFramePayloadData, "invalid UTF-8")
		return
	}
	if !c.limiter.Allow() {
		h.metrics.Rejected.WithLabelValues("rate_limited").Inc()
		c.floods++
		if c.floods >= h.cfg.FloodClose {
			c.closeNow(websocket.ClosePolicyViolation, "too many messages")
			return
		}
		c.send(encodeError("rate_limited", "slow down: too many messages", ""))
		return
	}
	c.floods = 0
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
		h.typing(c, in.Room)
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

// control closes the sessions a control notification names.
func (h *Hub) control(_ context.Context, ctl store.Control) {
	var keep func(*client) bool
	var reason string
	code := websocket.ClosePolicyViolation
	switch ctl.Kind {
	case store.ControlBan:
		keep = func(c *client) bool { return c.tenant.ID == ctl.TenantID && c.actor.UserID == ctl.ID }
		reason = "banned"
	case store.ControlRevoke:
		keep = func(c *client) bool {
			return c.tenant.ID == ctl.TenantID && c.tokenID != 0 && c.tokenID == ctl.ID
		}
		reason = "token revoked"
	case store.ControlRefresh:
		// A session's role and ban state are fixed at connect; asking the
		// client to reconnect (1001, resume with since: nothing is lost)
		// is simpler and safer than patching them under its feet.
		keep = func(c *client) bool { return c.tenant.ID == ctl.TenantID && c.actor.UserID == ctl.ID }
		reason = "your role changed: reconnect"
		code = websocket.CloseGoingAway
	default:
		h.log.Warn().Str("kind", ctl.Kind).Msg("unknown control notification")
		return
	}
	h.forEachClient(keep, func(c *client) { c.stop(code, reason) })
}
