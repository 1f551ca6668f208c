package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// bitset marks which comments (by their index in the room) a subscriber
// has received.
type bitset []uint64

// set marks k and reports whether it was already marked.
func (b *bitset) set(k int) bool {
	w := k >> 6
	if w >= len(*b) {
		grown := make(bitset, max(w+1, 2*len(*b)))
		copy(grown, *b)
		*b = grown
	}
	m := uint64(1) << (k & 63)
	was := (*b)[w]&m != 0
	(*b)[w] |= m
	return was
}

func (b bitset) has(k int) bool {
	w := k >> 6
	return w < len(b) && b[w]&(1<<(k&63)) != 0
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// andCount is |b ∩ c|.
func (b bitset) andCount(c bitset) int {
	n := 0
	for i := range min(len(b), len(c)) {
		n += bits.OnesCount64(b[i] & c[i])
	}
	return n
}

// marker starts every comment body the tool writes:
// "agl1 r=<room> k=<index in room> t=<ns since the run's epoch> xxxx...".
const marker = "agl1 r="

// parseMarker reads room, index and send time from a message containing
// a body written by this tool.
func parseMarker(line []byte) (room, k int, t int64, ok bool) {
	i := bytes.Index(line, []byte(marker))
	if i < 0 {
		return 0, 0, 0, false
	}
	p := line[i+len(marker):]
	num := func(prefix string) (int64, bool) {
		if !bytes.HasPrefix(p, []byte(prefix)) {
			return 0, false
		}
		p = p[len(prefix):]
		var v int64
		n := 0
		for n < len(p) && p[n] >= '0' && p[n] <= '9' {
			v = v*10 + int64(p[n]-'0')
			n++
		}
		if n == 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	r, ok1 := num("")
	kk, ok2 := num(" k=")
	tt, ok3 := num(" t=")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, false
	}
	return int(r), int(kk), tt, true
}

// body renders a comment body of size bytes.
func body(room, k int, t int64, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, marker...)
	b = strconv.AppendInt(b, int64(room), 10)
	b = append(b, " k="...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, " t="...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, ' ')
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// subscriber is one WebSocket client. Its counters are written by its own
// reader goroutine only; the atomics are there for the drain poller.
type subscriber struct {
	room int
	conn *websocket.Conn

	got      bitset
	lat      []int32 // µs from REST call start to receipt, first copies only
	unique   atomic.Int64
	dups     int64
	foreign  int64 // a tool comment of another room
	frames   int64
	msgs     int64
	errMsgs  int64
	evBytes  int64 // bytes of comment messages, for the bare server's size
	lastRecv atomic.Int64

	closing atomic.Bool
	endErr  error
	early   bool // the connection ended before the tool closed it
	done    chan struct{}
}

// dialSpec says how to open and subscribe one connection.
type dialSpec struct {
	url       func(room int) string
	header    func(i int) http.Header
	subscribe func(room int) []byte // nil: the server subscribes on connect
}

var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// subscriberSet is every subscriber of one phase.
type subscriberSet struct {
	subs   []*subscriber
	epoch  time.Time
	connAt time.Duration // time to connect and subscribe them all
	failed int
}

// connectAll opens n subscribers, subscriber i in room i%rooms, from
// source addresses 127.0.0.1..ips, conc at a time, and waits until every
// one is subscribed.
func connectAll(ctx context.Context, spec dialSpec, n, rooms, ips, conc int, epoch time.Time) (*subscriberSet, error) {
	set := &subscriberSet{subs: make([]*subscriber, n), epoch: epoch}
	dialers := make([]*websocket.Dialer, ips)
	for i := range dialers {
		d := dialerFrom(net.IPv4(127, 0, 0, byte(i+1)))
		dialers[i] = &websocket.Dialer{
			NetDialContext:   d.DialContext,
			HandshakeTimeout: 30 * time.Second,
			ReadBufferSize:   4096,
			WriteBufferSize:  256,
			WriteBufferPool:  &sync.Pool{},
		}
	}
	perIP := (n + ips - 1) / ips
	t0 := time.Now()
	var failed atomic.Int64
	var firstErr atomic.Value
	err := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		s := &subscriber{room: i % rooms, done: make(chan struct{})}
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = s.open(ctx, dialers[i/perIP], spec, i); err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
			close(s.done)
			set.subs[i] = s
			s.endErr = err
			return nil
		}
		set.subs[i] = s
		go s.read(epoch)
		return nil
	})
	set.connAt = time.Since(t0)
	set.failed = int(failed.Load())
	if err != nil {
		set.closeAll()
		return nil, err
	}
	if set.failed == n && n > 0 {
		e, _ := firstErr.Load().(error)
		set.closeAll()
		return nil, fmt.Errorf("no subscriber could connect: %w", e)
	}
	return set, nil
}

func (s *subscriber) open(ctx context.Context, d *websocket.Dialer, spec dialSpec, i int) error {
	conn, resp, err := d.DialContext(ctx, spec.url(s.room), spec.header(i))
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return fmt.Errorf("dial: %w", err)
	}
	if spec.subscribe != nil {
		if err := conn.WriteMessage(websocket.TextMessage, spec.subscribe(s.room)); err != nil {
			conn.Close()
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	// Wait for "subscribed": from then on every event of the room is ours.
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			conn.Close()
			return fmt.Errorf("wait for subscribed: %w", err)
		}
		for _, line := range bytes.Split(msg, []byte{'\n'}) {
			switch {
			case bytes.Contains(line, []byte(`"op":"subscribed"`)):
				_ = conn.SetReadDeadline(time.Time{})
				s.conn = conn
				return nil
			case bytes.Contains(line, []byte(`"op":"error"`)):
				conn.Close()
				return fmt.Errorf("subscribe refused: %s", line)
			}
		}
	}
}

// read consumes frames until the connection ends, splitting each on
// newlines and accounting every tool comment in it.
func (s *subscriber) read(epoch time.Time) {
	defer close(s.done)
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			s.endErr, s.early = err, !s.closing.Load()
			return
		}
		buf := framePool.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		now := time.Since(epoch)
		if err != nil {
			framePool.Put(buf)
			s.endErr, s.early = err, !s.closing.Load()
			return
		}
		s.frames++
		s.account(buf.Bytes(), now)
		framePool.Put(buf)
	}
}

func (s *subscriber) account(frame []byte, now time.Duration) {
	got := false
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		s.msgs++
		room, k, t, ok := parseMarker(line)
		if !ok {
			if bytes.Contains(line, []byte(`"op":"error"`)) {
				s.errMsgs++
			}
			continue
		}
		if room != s.room {
			s.foreign++
			continue
		}
		if s.got.set(k) {
			s.dups++
			continue
		}
		s.unique.Add(1)
		s.evBytes += int64(len(line))
		us := (now - time.Duration(t)).Microseconds()
		s.lat = append(s.lat, int32(min(max(us, 0), 1<<31-1)))
		got = true
	}
	if got {
		s.lastRecv.Store(int64(now))
	}
}

// closeAll ends every connection and waits for the readers.
func (set *subscriberSet) closeAll() {
	for _, s := range set.subs {
		if s != nil && s.conn != nil {
			s.closing.Store(true)
			_ = s.conn.Close()
		}
	}
	for _, s := range set.subs {
		if s != nil {
			<-s.done
		}
	}
}

func (set *subscriberSet) uniqueTotal() int64 {
	var n int64
	for _, s := range set.subs {
		n += s.unique.Load()
	}
	return n
}

// ended counts subscribers whose connection ended before the tool closed
// it, by close code (or "error").
func (set *subscriberSet) ended() map[string]int {
	out := map[string]int{}
	for _, s := range set.subs {
		if s.conn == nil {
			out["connect failed"]++
			continue
		}
		if !s.early {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(s.endErr, &ce) {
			out["close "+strconv.Itoa(ce.Code)]++
		} else {
			out["error"]++
		}
	}
	return out
}

func (set *subscriberSet) live() int {
	n := 0
	for _, s := range set.subs {
		select {
		case <-s.done:
		default:
			n++
		}
	}
	return n
}
