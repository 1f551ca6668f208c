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
	"go.opentelemetry.io/otel/trace"
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
	// id, reqID (the upgrade's X-Request-Id) and traceID (the upgrade's
	// trace; zero without tracing) name the session in its log lines,
	// which carry them field by field: a logger of its own would cost
	// every session its buffer, and keeping the request's would keep the
	// request's.
	id      uint64
	reqID   string
	traceID trace.TraceID

	limiter  *rate.Limiter
	floods   int // rate-limited messages in a row; only the read goroutine touches it
	lastSeen atomic.Int64
	// closing: the session is ending. It sits here rather than next to
	// done because it packs with outMu and the two flags below into one
	// word, which keeps a client in the same allocation size class.
	closing atomic.Bool

	// The way out. One frame at a time is in melody's queue, and only
	// while the session holds a slot of the hub's write gate; what is sent
	// meanwhile waits here, and goes out packed into as few frames as it
	// fits when the session's turn comes: a session that keeps up on a
	// server that keeps up gets each message at once, one that is behind
	// gets them many to a frame, for one write.
	outMu        sync.Mutex
	inflight     bool     // a frame was handed to melody and not yet written
	inLine       bool     // waiting for a slot of the gate
	pending      [][]byte // messages waiting
	pendingBytes int
	drained      chan struct{} // a frame was written

	msgsIn, msgsOut atomic.Int64

	done chan struct{}

	mu     sync.Mutex
	rooms  map[string]*room // rooms this session is subscribed to
	closed Disconnect       // why the session ended, once it has
}

func newClient(h *Hub, t store.Tenant, a store.Actor, tokenID int64, id uint64, reqID string, traceID trace.TraceID) *client {
	c := &client{
		hub: h, tenant: t, actor: a, tokenID: tokenID, id: id, reqID: reqID, traceID: traceID, opened: time.Now(),
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
	if c.traceID.IsValid() {
		ev = ev.Str("trace_id", c.traceID.String())
	}
	if !c.actor.Anonymous() {
		ev = ev.Str("user", c.actor.Username)
	}
	return ev
}

// liveFrame is the largest frame pending messages are packed into.
const liveFrame = 64 << 10

// send sends one message or frame: at once if nothing is on its way and
// the gate has a slot, else after what is. melody never blocks: with one
// frame at a time in its queue it is never full, and a session too far
// behind is closed as slow, so nothing is lost silently.
func (c *client) send(msg []byte) {
	if c.closing.Load() {
		return
	}
	c.msgsOut.Add(1)
	c.outMu.Lock()
	if !c.inflight && !c.inLine && len(c.pending) == 0 && c.hub.gate.acquire() {
		c.inflight = true
		c.outMu.Unlock()
		c.write(msg)
		return
	}
	c.pending = append(c.pending, msg)
	c.pendingBytes += len(msg)
	over := c.pendingBytes > c.hub.cfg.MaxPending
	queue := !c.inflight && !c.inLine
	c.inLine = c.inLine || queue
	c.outMu.Unlock()
	if queue {
		c.hub.gate.wait(c)
	}
	if over {
		c.slow()
	}
}

// turn is the session's slot of the gate: what waits goes out, packed. It
// reports false, taking nothing, if nothing waits any more (the session
// ended).
func (c *client) turn() bool {
	c.outMu.Lock()
	c.inLine = false
	if len(c.pending) == 0 || c.closing.Load() {
		c.pending, c.pendingBytes = nil, 0
		c.outMu.Unlock()
		return false
	}
	frames := pack(c.pending, liveFrame)
	next := frames[0]
	c.pending, c.pendingBytes = nil, 0
	if len(frames) > 1 {
		c.pending = frames[1:]
		for _, f := range c.pending {
			c.pendingBytes += len(f)
		}
	}
	c.inflight = true
	c.outMu.Unlock()
	c.write(next)
	return true
}

// write hands one frame to melody; the session holds a slot.
func (c *client) write(frame []byte) {
	c.hub.metrics.BytesOut.Add(float64(len(frame)))
	if err := c.session.Write(frame); err != nil {
		// Closed: nothing more goes out, and no notice of this frame
		// will come.
		c.ended()
	}
}

// sent is melody's notice that one frame left. The slot goes to the next
// in line; if more waits here, this session gets in line behind it.
func (c *client) sent() {
	c.outMu.Lock()
	if !c.inflight {
		c.outMu.Unlock() // ended meanwhile: the slot went back then
		return
	}
	c.inflight = false
	queue := len(c.pending) > 0 && !c.closing.Load()
	c.inLine = queue
	c.outMu.Unlock()
	c.hub.gate.release()
	if queue {
		c.hub.gate.wait(c)
	}
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// ended gives back the slot of a session that ended (or whose write
// failed) with a frame on its way: melody's notice of it never comes.
// Whichever of ended and sent sees the frame in flight gives it back.
func (c *client) ended() {
	c.outMu.Lock()
	held := c.inflight
	c.inflight = false
	c.pending, c.pendingBytes = nil, 0
	c.outMu.Unlock()
	if held {
		c.hub.gate.release()
	}
}

// waitQueue blocks until nothing waits behind the frame in flight, for
// replays: a long history goes out a frame at a time as the client reads.
func (c *client) waitQueue() error {
	timer := time.NewTimer(c.hub.cfg.WriteTimeout)
	defer timer.Stop()
	for {
		c.outMu.Lock()
		idle := len(c.pending) == 0
		c.outMu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-c.drained:
		case <-c.done:
			return errors.New("session closed")
		case <-timer.C:
			c.slow()
			return errors.New("client does not read")
		}
	}
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
	case opPing:
		c.send(pongFrame)
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
