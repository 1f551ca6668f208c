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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// A reconnect storm: N subscribers over R rooms on instance A, which dies
// (SIGKILL); comments go on through instance B meanwhile; then every
// subscriber reconnects to B at once and resumes with since. Each must
// get every comment of its room exactly once, seqs gap free, and B's
// database load should grow with the rooms, not the clients. The
// baseline is the same storm against a B that keeps no recent events in
// memory (--history-memory-events=0), interleaved in pairs.

// ReconnectResult is one storm.
type ReconnectResult struct {
	Memory      bool `json:"memory"`
	Subscribers int  `json:"subscribers"`
	Rooms       int  `json:"rooms"`
	// Missed is the comments written per room while A was dead.
	Missed int `json:"missed_per_room"`
	// LiveSeconds: first reconnect to the last client having received
	// everything up to the seq it subscribed at; LiveP50 the median
	// client's.
	LiveSeconds float64 `json:"live_seconds"`
	LiveP50     float64 `json:"live_p50_seconds"`
	Resumed     int     `json:"resumed"`
	Failed      int     `json:"failed"`
	Resets      int64   `json:"resets"`
	Errors      int64   `json:"error_messages"`
	Lost        int64   `json:"lost"`
	Duplicated  int64   `json:"duplicated"`
	SeqGaps     int64   `json:"seq_gaps"`
	// Queries is B's History calls during the storm, by kind;
	// QueriesPerResume the sum over the clients resumed of those the
	// resumes made (checking and opening rooms, replays), leaving out the
	// fan-out's reads of the comments written meanwhile.
	Queries          map[string]float64 `json:"history_queries"`
	QueriesPerResume float64            `json:"history_queries_per_resume"`
	ServerCPUSeconds float64            `json:"server_cpu_seconds"`
}

// ReconnectPair is one storm with recent events in memory and one
// without.
type ReconnectPair struct {
	Memory   ReconnectResult `json:"memory"`
	NoMemory ReconnectResult `json:"no_memory"`
}

// ReconnectStorm is the scenario's report.
type ReconnectStorm struct {
	Pairs []ReconnectPair `json:"pairs"`
}

func (rs *ReconnectStorm) stat(f func(ReconnectPair) float64) (med, lo, hi float64) {
	return statOf(rs.Pairs, f)
}

// rclient is one subscriber: its room's events as it saw them.
type rclient struct {
	room int
	conn *websocket.Conn
	done chan struct{}

	mu          sync.Mutex
	lastSeq     int64
	got         bitset
	dups, gaps  int64
	resets      int64
	errs        int64
	subscribed  int64 // seq in the last subscribed
	resubscribe bool  // the next subscribed is the resume's
	liveAt      time.Duration
	epoch       time.Time
	// retry: the server answered the subscription with an error (history
	// unavailable: "subscribe again", as the protocol asks), so read
	// subscribes again from the last seq it has.
	retry bool
	// wmu orders the connection's writes: the first subscribe, and read's
	// retries.
	wmu       sync.Mutex
	subscribe func(since int64) []byte
}

// send writes one message on the connection.
func (c *rclient) send(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, msg)
}

func (c *rclient) read() {
	defer close(c.done)
	for {
		_, frame, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		now := time.Since(c.epoch)
		c.mu.Lock()
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			c.account(line, now)
		}
		retry, since := c.retry, c.lastSeq
		c.retry = false
		c.mu.Unlock()
		if retry {
			if err := c.send(c.subscribe(since)); err != nil {
				return
			}
		}
	}
}

var seqKey = []byte(`"seq":`)

func lineSeq(line []byte) int64 {
	i := bytes.Index(line, seqKey)
	if i < 0 {
		return -1
	}
	n, _ := strconv.ParseInt(string(digits(line[i+len(seqKey):])), 10, 64)
	return n
}

// account takes one message (c.mu held).
func (c *rclient) account(line []byte, now time.Duration) {
	switch {
	case bytes.HasPrefix(line, []byte(`{"op":"event"`)):
		seq := lineSeq(line)
		switch {
		case c.lastSeq == 0 || seq == c.lastSeq+1:
		case seq <= c.lastSeq:
			c.dups++
			return
		default:
			c.gaps++
		}
		c.lastSeq = seq
		if _, k, _, ok := parseMarker(line); ok {
			c.got.set(k)
		}
	case bytes.HasPrefix(line, []byte(`{"op":"subscribed"`)):
		c.subscribed = lineSeq(line)
		if c.lastSeq == 0 {
			c.lastSeq = c.subscribed
		}
	case bytes.HasPrefix(line, []byte(`{"op":"reset"`)):
		c.resets++
	case bytes.HasPrefix(line, []byte(`{"op":"error"`)):
		c.errs++
		c.retry = bytes.Contains(line, []byte(`"code":"unavailable"`))
	}
	if c.resubscribe && c.subscribed > 0 && c.lastSeq >= c.subscribed && c.liveAt == 0 {
		c.liveAt = now
	}
}

// runReconnectStorm registers the users once, then runs the pairs.
func runReconnectStorm(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	if e == nil {
		return nil, usageError("--reconnect-storm needs the servers the tool starts")
	}
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	f, err := setupOnce(ctx, o, e, logw, userCount(o), o.Rooms)
	if err != nil {
		return nil, err
	}
	rs := &ReconnectStorm{}
	for pair := range o.Pairs {
		var got ReconnectPair
		order := []bool{true, false}
		if pair%2 == 1 {
			order = []bool{false, true}
		}
		for _, memory := range order {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			r, err := reconnectStorm(ctx, o, e, f, memory, logw)
			if err != nil {
				return rep, err
			}
			fmt.Fprintf(logw, "[%s] pair %d, memory %v: %d resumed (%d failed), last live after %.2fs (median %.2fs), lost %d, dup %d, gaps %d, resets %d, errors answered %d (subscribed again); %.3f history queries per resume %v\n",
				o.Label, pair+1, memory, r.Resumed, r.Failed, r.LiveSeconds, r.LiveP50, r.Lost, r.Duplicated, r.SeqGaps, r.Resets, r.Errors, r.QueriesPerResume, r.Queries)
			if memory {
				got.Memory = r
			} else {
				got.NoMemory = r
			}
		}
		rs.Pairs = append(rs.Pairs, got)
	}
	rep.Reconnect = rs
	return rep, nil
}

// Comments per room: before A dies, while it is dead, and during the storm.
const (
	stormBefore = 1
	stormMissed = 5
	stormLive   = 2
)

func reconnectStorm(ctx context.Context, o options, e *env, f *forum, memory bool, logw io.Writer) (ReconnectResult, error) {
	res := ReconnectResult{Memory: memory, Subscribers: o.Subscribers, Rooms: o.Rooms, Missed: stormMissed}
	a, err := startAgora(ctx, o, e, logw)
	if err != nil {
		return res, err
	}
	defer a.stop()
	ob := o
	if !memory {
		ob.ServerFlags = append(slices.Clone(o.ServerFlags), "--history-memory-events=0")
	}
	b, err := startAgora(ctx, ob, e, logw)
	if err != nil {
		return res, err
	}
	defer b.stop()

	epoch := time.Now()
	subTokens := f.users[1:]
	subTokens = subTokens[:min(len(subTokens), o.subUsers())]
	clients := make([]*rclient, o.Subscribers)
	dialer := func(i int) *websocket.Dialer {
		return &websocket.Dialer{
			NetDialContext:   dialerFrom(net.IPv4(127, 0, 0, byte(1+i%200))).DialContext,
			HandshakeTimeout: 60 * time.Second,
			ReadBufferSize:   4096,
			WriteBufferSize:  256,
			WriteBufferPool:  &sync.Pool{},
		}
	}
	dialers := make([]*websocket.Dialer, 200)
	for i := range dialers {
		dialers[i] = dialer(i)
	}
	open := func(ctx context.Context, base string, c *rclient, i int, since int64) error {
		url := wsURL(base) + "/api/v1/t/" + f.slug + "/ws"
		var conn *websocket.Conn
		var err error
		for attempt := range 5 {
			conn, _, err = dialers[i%len(dialers)].DialContext(ctx, url,
				http.Header{"Authorization": {"Bearer " + subTokens[i%len(subTokens)]}})
			if err == nil || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, time.Duration(attempt+1)*200*time.Millisecond)
		}
		if err != nil {
			return err
		}
		room := f.posts[c.room]
		c.conn, c.done = conn, make(chan struct{})
		c.subscribe = func(since int64) []byte {
			msg := `{"op":"subscribe","room":"post:` + room + `"`
			if since > 0 {
				msg += `,"since":` + strconv.FormatInt(since, 10)
			}
			return []byte(msg + "}")
		}
		go c.read()
		return c.send(c.subscribe(since))
	}
	for i := range clients {
		clients[i] = &rclient{room: i % o.Rooms, epoch: epoch}
	}
	defer func() {
		for _, c := range clients {
			if c.conn != nil {
				_ = c.conn.Close()
				<-c.done
			}
		}
	}()
	t0 := time.Now()
	if err := parallel(ctx, len(clients), o.ConnectConc, func(ctx context.Context, i int) error {
		return open(ctx, a.base, clients[i], i, 0)
	}); err != nil {
		return res, fmt.Errorf("connect to A: %w", err)
	}
	if err := waitAll(ctx, clients, 60*time.Second, func(c *rclient) bool { return c.subscribed > 0 }); err != nil {
		return res, fmt.Errorf("subscribe on A: %w", err)
	}
	fmt.Fprintf(logw, "[%s] %d subscribers on A in %.1fs\n", o.Label, len(clients), time.Since(t0).Seconds())

	// Comments, and what each room was written.
	committed := make([]bitset, o.Rooms)
	perRoom := make([]int, o.Rooms)
	var cmu sync.Mutex
	client := httpClient(nil, 16)
	defer client.CloseIdleConnections()
	pool := writerPool(o, f.users)
	write := func(ctx context.Context, base string, n int, conc int) error {
		fb := *f
		fb.base = base
		w := agoraWriter(&fb, pool, client)
		return parallel(ctx, n*o.Rooms, conc, func(ctx context.Context, i int) error {
			room := i % o.Rooms
			cmu.Lock()
			k := perRoom[room]
			perRoom[room]++
			cmu.Unlock()
			_, err := w(ctx, room, k, func() []byte { return body(room, k, int64(time.Since(epoch)), o.BodyBytes) })
			if err != nil {
				return err
			}
			cmu.Lock()
			committed[room].set(k)
			cmu.Unlock()
			return nil
		})
	}
	if err := write(ctx, a.base, stormBefore, toolWrites); err != nil {
		return res, fmt.Errorf("write through A: %w", err)
	}
	received := func(c *rclient) bool { return c.got.andCount(committed[c.room]) == committed[c.room].count() }
	if err := waitAll(ctx, clients, 60*time.Second, received); err != nil {
		return res, fmt.Errorf("deliveries on A: %w", err)
	}

	// A dies; life goes on through B.
	a.proc.kill()
	for _, c := range clients {
		<-c.done
		c.conn = nil
	}
	if err := write(ctx, b.base, stormMissed, toolWrites); err != nil {
		return res, fmt.Errorf("write through B: %w", err)
	}
	q0, _ := historyQueries(ctx, b.base)
	cpu0, _ := procCPU(b.pid)

	// Everyone back at once, resuming where they were.
	storm0 := time.Since(epoch)
	var failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = parallel(ctx, len(clients), 256, func(ctx context.Context, i int) error {
			c := clients[i]
			c.mu.Lock()
			since := c.lastSeq
			c.resubscribe, c.subscribed, c.liveAt = true, 0, 0
			c.mu.Unlock()
			if err := open(ctx, b.base, c, i, since); err != nil {
				failed.Add(1)
			}
			return nil
		})
	}()
	liveErr := write(ctx, b.base, stormLive, 4)
	wg.Wait()
	res.Failed = int(failed.Load())
	if liveErr != nil {
		return res, fmt.Errorf("write during the storm: %w", liveErr)
	}
	_ = waitAll(ctx, clients, 120*time.Second, func(c *rclient) bool { return c.conn == nil || (c.liveAt > 0 && received(c)) })
	q1, _ := historyQueries(ctx, b.base)
	cpu1, _ := procCPU(b.pid)
	res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	res.Queries = map[string]float64{}
	var sum float64
	for k, v := range q1 {
		if d := v - q0[k]; d > 0 {
			res.Queries[k] = d
			// The fan-out's reads (events_after) are the live writes'.
			if k != "events_after" && k != "room_seqs" && k != "standings" {
				sum += d
			}
		}
	}
	var live []float64
	for _, c := range clients {
		c.mu.Lock()
		if c.conn != nil {
			res.Resumed++
			want := int64(committed[c.room].count())
			have := int64(c.got.andCount(committed[c.room]))
			res.Lost += want - have
			res.Duplicated += c.dups
			res.SeqGaps += c.gaps
			res.Resets += c.resets
			res.Errors += c.errs
			if c.liveAt > 0 {
				live = append(live, (c.liveAt - storm0).Seconds())
			}
		}
		c.mu.Unlock()
	}
	if res.Resumed > 0 {
		res.QueriesPerResume = sum / float64(res.Resumed)
	}
	slices.Sort(live)
	if n := len(live); n > 0 {
		res.LiveSeconds, res.LiveP50 = live[n-1], live[n/2]
	}
	if len(live) < res.Resumed {
		res.LiveSeconds = -1 // some never became live
	}
	return res, nil
}

// waitAll waits until ok holds for every client (under its lock).
func waitAll(ctx context.Context, clients []*rclient, d time.Duration, ok func(*rclient) bool) error {
	deadline := time.Now().Add(d)
	for {
		missing := 0
		for _, c := range clients {
			c.mu.Lock()
			if !ok(c) {
				missing++
			}
			c.mu.Unlock()
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d clients not there after %s", missing, len(clients), d)
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// historyQueries reads the realtime side's History calls by kind from a
// server's /metrics.
func historyQueries(ctx context.Context, base string) (map[string]float64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	out := map[string]float64{}
	const prefix = `agora_realtime_history_queries_total{kind="`
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		kind, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[kind] = v
		}
	}
	return out, nil
}
