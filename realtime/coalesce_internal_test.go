package realtime

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"agora/store"
)

// pipeClient is one session over an in-memory pipe, read by hand: a
// pipe's write waits for its read, so the test decides when the
// session's frame in flight is written.
type pipeClient struct {
	c  *client
	br *bufio.Reader
}

func newPipeHub(t *testing.T, writers int) *Hub {
	h := New(Config{Log: zerolog.Nop(), PingInterval: time.Hour, PongTimeout: 2 * time.Hour, WriteConcurrency: writers})
	t.Cleanup(func() { _ = h.m.Close() })
	return h
}

func newPipeClient(t *testing.T, h *Hub) *pipeClient {
	t.Helper()
	h.mu.Lock()
	before := len(h.clients)
	h.mu.Unlock()
	c := newClient(h, store.Tenant{ID: 1}, store.Actor{UserID: int64(before + 1), Username: "ann"}, 0, uint64(before+1), "", trace.TraceID{})
	srvEnd, cliEnd := net.Pipe()
	t.Cleanup(func() { cliEnd.Close() })
	req := httptest.NewRequest(http.MethodGet, "/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	go func() {
		_ = h.m.HandleRequestWithKeys(&pipeWriter{header: http.Header{}, conn: srvEnd}, req, map[string]any{clientKey: c})
	}()
	br := bufio.NewReader(cliEnd)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.clients)
		h.mu.Unlock()
		if n == before+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session did not connect")
		}
		time.Sleep(time.Millisecond)
	}
	return &pipeClient{c: c, br: br}
}

// frame reads one unmasked server text frame.
func (p *pipeClient) frame(t *testing.T) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x81 {
		t.Fatalf("frame header %#x, want a final text frame", h[0])
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(p.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(p.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.br, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// idle waits until the session has written everything: melody's notice
// of a write comes a moment after the bytes were read.
func (p *pipeClient) idle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.c.outMu.Lock()
		busy := p.c.inflight || p.c.inLine || len(p.c.pending) > 0
		p.c.outMu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the session did not go idle")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSendCoalesces: what is sent while a session's frame is on its way
// goes out in one frame after it, in order; a session that keeps up gets
// each message at once, in a frame of its own.
func TestSendCoalesces(t *testing.T) {
	p := newPipeClient(t, newPipeHub(t, 0))
	p.c.send([]byte(`{"m":1}`)) // in flight: the pipe waits for our read
	p.c.send([]byte(`{"m":2}`))
	p.c.send([]byte(`{"m":3}`))
	if got := p.frame(t); got != `{"m":1}` {
		t.Fatalf("first frame %q", got)
	}
	if got := p.frame(t); got != "{\"m\":2}\n{\"m\":3}" {
		t.Fatalf("second frame %q, want messages 2 and 3 packed", got)
	}
	p.idle(t)
	p.c.send([]byte(`{"m":4}`))
	if got := p.frame(t); got != `{"m":4}` {
		t.Fatalf("a message sent to an idle session: frame %q", got)
	}

	// Packed frames stay under liveFrame, in order.
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, 40<<10) }
	p.idle(t)
	p.c.send([]byte(`{"m":5}`))
	p.c.send(big('a'))
	p.c.send(big('b'))
	p.c.send([]byte(`{"m":6}`))
	var got []string
	for range 4 {
		f := p.frame(t)
		if len(f) > liveFrame {
			t.Fatalf("a frame of %d bytes", len(f))
		}
		got = append(got, f[:1]+f[len(f)-1:])
		if strings.HasPrefix(f, "b") {
			break
		}
	}
	if strings.Join(got, " ") != "{} aa b}" {
		t.Fatalf("frames (first and last byte) %v, want {} aa b}", got)
	}
}

// TestSendTooFarBehind: a session whose pending messages pass MaxPending
// is closed as a slow consumer (it resumes with since).
func TestSendTooFarBehind(t *testing.T) {
	p := newPipeClient(t, newPipeHub(t, 0))
	p.c.send([]byte(`{"m":1}`)) // in flight, never read
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for range 5 {
		p.c.send(chunk)
	}
	if !p.c.closing.Load() || p.c.closeReason() != disconnects.Slow {
		t.Fatalf("closing %v, reason %+v; want a slow consumer's close", p.c.closing.Load(), p.c.closeReason())
	}
}

// TestGateTakesTurns: with one write slot, a second session's messages
// wait for the first session's frame to be written, then go out packed;
// the slot comes back when a session ends with a frame on its way.
func TestGateTakesTurns(t *testing.T) {
	h := newPipeHub(t, 1)
	a, b := newPipeClient(t, h), newPipeClient(t, h)
	a.c.send([]byte(`{"a":1}`)) // takes the slot; the pipe waits for our read
	b.c.send([]byte(`{"b":1}`))
	b.c.send([]byte(`{"b":2}`))
	b.c.outMu.Lock()
	waiting := b.c.inLine && !b.c.inflight
	b.c.outMu.Unlock()
	if !waiting {
		t.Fatal("b wrote while a held the only slot")
	}
	if got := a.frame(t); got != `{"a":1}` {
		t.Fatalf("a's frame %q", got)
	}
	if got := b.frame(t); got != "{\"b\":1}\n{\"b\":2}" {
		t.Fatalf("b's frame %q, want both of b's messages packed", got)
	}
	b.idle(t)

	// a takes the slot again and its session ends before the frame is
	// written: the slot must come back, or b would wait forever.
	a.idle(t)
	a.c.send([]byte(`{"a":2}`))
	b.c.send([]byte(`{"b":3}`))
	a.c.ended()
	if got := b.frame(t); got != `{"b":3}` {
		t.Fatalf("b's frame after a ended: %q", got)
	}

	// Sessions that ended while in line are passed over.
	b.idle(t)
	gone, last := newPipeClient(t, h), newPipeClient(t, h)
	b.c.send([]byte(`{"b":4}`))
	gone.c.send([]byte(`{"gone":1}`))
	last.c.send([]byte(`{"last":1}`))
	gone.c.closing.Store(true)
	if got := b.frame(t); got != `{"b":4}` {
		t.Fatalf("b's frame %q", got)
	}
	if got := last.frame(t); got != `{"last":1}` {
		t.Fatalf("the last in line got %q", got)
	}
}
