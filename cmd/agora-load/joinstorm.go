package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A join storm: distinct signed-in users joining one room at once, as a
// live thread draws a crowd. What matters is what the room's presence
// costs its clients: with every join listed to everyone it grows with the
// square of the crowd, with API.md's "Large rooms" rule with the crowd.
// Each size is measured in a fresh room, sizes interleaved over pairs
// (1,500 then 3,000, then 3,000 then 1,500, ...), so that both see the
// same machine.

// StormResult is one storm.
type StormResult struct {
	Users int `json:"users"`
	// JoinSeconds: first dial to the last client subscribed.
	JoinSeconds float64 `json:"join_seconds"`
	// SettleSeconds: first dial to every client seeing the final count.
	SettleSeconds float64 `json:"settle_seconds"`
	Settled       bool    `json:"settled"`
	// PresenceBytes is every presence message received by every client;
	// StateBytes the part that was their first state.
	PresenceBytes    int64   `json:"presence_bytes"`
	StateBytes       int64   `json:"state_bytes"`
	PresenceMessages int64   `json:"presence_messages"`
	KBPerClient      float64 `json:"presence_kb_per_client"`
	StateKBPerClient float64 `json:"state_kb_per_client"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	Failed           int     `json:"failed"`
}

// StormPair is one interleaved pair: the small size and the large one.
type StormPair struct {
	Small, Large StormResult
	// BytesRatio is Large's presence bytes over Small's, all clients.
	BytesRatio float64 `json:"bytes_ratio"`
	CPURatio   float64 `json:"cpu_ratio"`
}

// JoinStorm is the scenario's report.
type JoinStorm struct {
	Sizes []int       `json:"sizes"`
	Pairs []StormPair `json:"pairs"`
}

// median and spread of f over the pairs.
func (js *JoinStorm) stat(f func(StormPair) float64) (med, lo, hi float64) {
	return statOf(js.Pairs, f)
}

// statOf is the median and spread of f over a paired scenario's pairs.
func statOf[P any](pairs []P, f func(P) float64) (med, lo, hi float64) {
	v := make([]float64, len(pairs))
	for i, p := range pairs {
		v[i] = f(p)
	}
	return medianSpread(v)
}

func medianSpread(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	med = v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return med, v[0], v[n-1]
}

// stormClient is one member of the crowd.
type stormClient struct {
	conn     *websocket.Conn
	bytes    atomic.Int64
	state    atomic.Int64
	msgs     atomic.Int64
	count    atomic.Int64 // the latest count it was told
	done     chan struct{}
	closing  atomic.Bool
	gotState bool
}

var countKey = []byte(`"count":`)

func (c *stormClient) read() {
	defer close(c.done)
	for {
		_, frame, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			if !bytes.Contains(line, []byte(`"op":"presence"`)) {
				continue
			}
			c.bytes.Add(int64(len(line)))
			c.msgs.Add(1)
			if !c.gotState && bytes.Contains(line, []byte(`"state":`)) {
				c.gotState = true
				c.state.Add(int64(len(line)))
			}
			if i := bytes.Index(line, countKey); i >= 0 {
				n, _ := strconv.ParseInt(string(digits(line[i+len(countKey):])), 10, 64)
				c.count.Store(n)
			}
		}
	}
}

func digits(b []byte) []byte {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	return b[:n]
}

// runJoinStorm registers the largest crowd once, then runs the storms.
func runJoinStorm(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	if e == nil {
		return nil, usageError("--join-storm needs the server the tool starts")
	}
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	sizes := o.stormSizes()
	crowd := slices.Max(sizes)
	fmt.Fprintf(logw, "[%s] registering %d users (argon2id: this takes a while)\n", o.Label, crowd+1)
	f, err := setupOnce(ctx, o, e, logw, crowd+1, 2*o.Pairs)
	if err != nil {
		return nil, err
	}
	// A fresh process for the storms: registration's garbage is not theirs.
	srv, err := startAgora(ctx, o, e, logw)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	f.base = srv.base
	base := wsURL(srv.base) + "/api/v1/t/" + f.slug + "/ws"
	js := &JoinStorm{Sizes: sizes}
	room := 0
	for pair := range o.Pairs {
		order := []int{sizes[0], sizes[1]}
		if pair%2 == 1 {
			order = []int{sizes[1], sizes[0]}
		}
		var got [2]StormResult
		for _, n := range order {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			r, err := storm(ctx, srv, base, f.users[1:n+1], f.posts[room], o.ConnectConc)
			room++
			if err != nil {
				return rep, err
			}
			fmt.Fprintf(logw, "[%s] pair %d: %d users joined in %.2fs, settled in %.2fs (%v): %.2f KB of presence per client (state %.2f), server CPU %.2fs\n",
				o.Label, pair+1, n, r.JoinSeconds, r.SettleSeconds, r.Settled, r.KBPerClient, r.StateKBPerClient, r.ServerCPUSeconds)
			if n == sizes[0] {
				got[0] = r
			} else {
				got[1] = r
			}
		}
		js.Pairs = append(js.Pairs, StormPair{Small: got[0], Large: got[1],
			BytesRatio: ratio(float64(got[1].PresenceBytes), float64(got[0].PresenceBytes)),
			CPURatio:   ratio(got[1].ServerCPUSeconds, got[0].ServerCPUSeconds)})
	}
	rep.JoinStorm = js
	return rep, nil
}

// storm joins every token's user to one post room at once, waits until
// every client has been told the final count, and closes them all.
func storm(ctx context.Context, srv *server, url string, tokens []string, post string, conc int) (StormResult, error) {
	n := len(tokens)
	res := StormResult{Users: n}
	dialer := &websocket.Dialer{
		NetDialContext:   dialerFrom(net.IPv4(127, 0, 0, 1)).DialContext,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferSize:  256,
		WriteBufferPool:  &sync.Pool{},
	}
	clients := make([]*stormClient, n)
	sub := []byte(`{"op":"subscribe","room":"post:` + post + `"}`)
	cpu0, _ := procCPU(srv.pid)
	t0 := time.Now()
	var failed atomic.Int64
	err := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		conn, _, err := dialer.DialContext(ctx, url, http.Header{"Authorization": {"Bearer " + tokens[i]}})
		if err != nil {
			failed.Add(1)
			return nil
		}
		c := &stormClient{conn: conn, done: make(chan struct{})}
		clients[i] = c
		go c.read()
		if err := conn.WriteMessage(websocket.TextMessage, sub); err != nil {
			failed.Add(1)
		}
		return nil
	})
	joined := time.Since(t0)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.closing.Store(true)
				_ = c.conn.Close()
			}
		}
		for _, c := range clients {
			if c != nil {
				<-c.done
			}
		}
		// Let the room empty before the next storm.
		sleepCtx(ctx, 2*time.Second)
	}()
	if err != nil {
		return res, err
	}
	res.Failed = int(failed.Load())
	live := int64(n - res.Failed)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		all := true
		for _, c := range clients {
			if c != nil && c.count.Load() != live {
				all = false
				break
			}
		}
		if all {
			res.Settled = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.SettleSeconds = time.Since(t0).Seconds()
	// A last second: a large room's count messages come at most once a
	// second, and one may still be on its way.
	sleepCtx(ctx, 1500*time.Millisecond)
	cpu1, _ := procCPU(srv.pid)
	res.JoinSeconds = joined.Seconds()
	res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	for _, c := range clients {
		if c != nil {
			res.PresenceBytes += c.bytes.Load()
			res.StateBytes += c.state.Load()
			res.PresenceMessages += c.msgs.Load()
		}
	}
	if live > 0 {
		res.KBPerClient = float64(res.PresenceBytes) / 1024 / float64(live)
		res.StateKBPerClient = float64(res.StateBytes) / 1024 / float64(live)
	}
	return res, nil
}
