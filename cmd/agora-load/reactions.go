package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// The reaction-burst scenario: N subscribers in one post's room and a
// burst of R reactions on one comment of it, each a real change (user
// i/6 gives kind i%6), sent by W writers as fast as they go. It shows
// what a burst costs the fan-out: every reaction is one event, and a busy
// room's events should reach each subscriber packed several to a frame,
// far fewer than R frames each. Every subscriber must get all R events,
// gap free, the last with the final counts.
//
//	agora-load reaction-burst [flags]

// reactionKindsInOrder are the six kinds of the contract.
func reactionKindsInOrder() []string {
	return []string{"like", "love", "laugh", "wow", "sad", "thanks"}
}

type burstOptions struct {
	options
	Reactions int
}

func parseBurstOptions(args []string, stderr io.Writer) (burstOptions, error) {
	o := burstOptions{options: defaultOptions(), Reactions: 1000}
	o.Writers = 16
	fs := flag.NewFlagSet("agora-load reaction-burst", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.ServerBin, "server-bin", o.ServerBin, "agora binary to start (`task build` makes it)")
	fs.Var((*stringList)(&o.ServerFlags), "server-flag", "extra argument for `agora serve` (repeatable)")
	fs.BoolVar(&o.RateLimits, "server-rate-limits", o.RateLimits, "start the server with its rate limits on")
	fs.BoolVar(&o.TenantQuota, "server-tenant-quota", o.TenantQuota, "start the server with serve's tenant write quota (otherwise it gets one the writers cannot reach)")
	fs.BoolVar(&o.Pin, "pin", o.Pin, "pin the server to CPU 0 (taskset -c 0) and this tool to the other CPUs")
	fs.IntVar(&o.Subscribers, "subscribers", o.Subscribers, "WebSocket subscribers in the post's room (N)")
	fs.IntVar(&o.Reactions, "reactions", o.Reactions, "reactions in the burst (R), all on one comment")
	fs.IntVar(&o.Writers, "writers", o.Writers, "concurrent REST writers (W)")
	fs.IntVar(&o.SubUsers, "subscriber-users", o.SubUsers, "distinct users the subscribers sign in as")
	fs.IntVar(&o.ConnectConc, "connect-concurrency", o.ConnectConc, "WebSocket handshakes in flight at once")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "pause after connecting")
	fs.DurationVar(&o.Drain, "drain-timeout", o.Drain, "longest wait for deliveries after the last write")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return o, usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return o, usageError("unexpected arguments: " + fs.Args()[0])
	}
	switch {
	case o.Reactions < 1 || o.Reactions > 60000:
		return o, usageError("--reactions must be 1 to 60000")
	case o.Subscribers < 1 || o.Subscribers > maxSubscribers():
		return o, usageError(fmt.Sprintf("--subscribers must be 1 to %d", maxSubscribers()))
	case o.Writers < 1:
		return o, usageError("--writers must be positive")
	case o.SubUsers < 1:
		return o, usageError("--subscriber-users must be positive")
	case o.Drain <= 0 || o.Drain > 5*time.Minute:
		return o, usageError("--drain-timeout must be positive and at most 5m")
	}
	o.Label = "reaction-burst"
	return o, nil
}

// BurstReport is what the scenario measured.
type BurstReport struct {
	Command     string `json:"command"`
	Subscribers int    `json:"subscribers"`
	Reactions   int    `json:"reactions"`
	Writers     int    `json:"writers"`

	Sent         int            `json:"sent"`
	OK           int            `json:"ok"`
	Failed       int            `json:"failed"`
	WriteErrors  map[string]int `json:"write_errors,omitempty"`
	WriteSeconds float64        `json:"write_seconds"`
	WritesPerSec float64        `json:"writes_per_s"`
	REST         Latency        `json:"rest_latency"`
	// DrainSeconds: from the burst's first write until the last
	// subscriber had every event.
	DrainSeconds float64 `json:"drain_seconds"`
	// TailMS: from the last write's answer until then.
	TailMS float64 `json:"tail_after_last_write_ms"`

	Expected   int64 `json:"expected_deliveries"`
	Deliveries int64 `json:"deliveries"`
	Missing    int64 `json:"missing"`
	Gaps       int64 `json:"seq_gaps"`
	WrongFinal int   `json:"subscribers_with_wrong_final_counts"`
	Ended      int   `json:"subscribers_ended_early"`

	// Per subscriber, over the burst: frames that carried reaction events,
	// and reaction events per such frame.
	FramesPerSub      float64 `json:"frames_per_subscriber"`
	FramesPerSubMin   int64   `json:"frames_per_subscriber_min"`
	FramesPerSubMax   int64   `json:"frames_per_subscriber_max"`
	MessagesPerFrame  float64 `json:"messages_per_frame"`
	OtherMessages     int64   `json:"other_messages"`
	AvgEventBytes     int     `json:"avg_event_bytes"`
	UnpackedFrameRate float64 `json:"frames_vs_one_per_event"` // frames / (N x R)

	IdleCPUPercent     float64 `json:"idle_cpu_percent"`
	ServerCPUSeconds   float64 `json:"server_cpu_seconds"`
	ServerNetCPU       float64 `json:"server_cpu_seconds_net_of_idle"`
	ServerMsPerWrite   float64 `json:"server_cpu_ms_per_reaction"`
	ServerSPerMDeliv   float64 `json:"server_cpu_s_per_million_deliveries"`
	PgCPUSeconds       float64 `json:"postgres_cpu_seconds"`
	PgMsPerWrite       float64 `json:"postgres_cpu_ms_per_reaction"`
	ToolCPUSeconds     float64 `json:"tool_cpu_seconds"`
	MachineBusyPercent float64 `json:"machine_busy_pct"`
	WindowSeconds      float64 `json:"cpu_window_seconds"`
}

func (r *BurstReport) failed() bool {
	return r.Missing != 0 || r.Gaps != 0 || r.WrongFinal != 0 || r.Ended != 0 || r.Failed != 0
}

func reactionBurstMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseBurstOptions(args, stderr)
	if err != nil {
		return err
	}
	raiseFileLimit()
	e, err := newEnv(ctx, stderr)
	if err != nil {
		return err
	}
	defer e.close(stderr)
	if o.Pin {
		pinSelf(stderr)
	}
	rep, err := runBurst(ctx, o, e, stderr)
	if rep != nil {
		if o.JSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil && err == nil {
				err = jerr
			}
		} else {
			printBurst(stdout, rep)
		}
	}
	if err == nil && rep != nil && rep.failed() {
		err = errors.New("reactions failed, or events lost, out of order or with wrong counts: see the report")
	}
	return err
}

func runBurst(ctx context.Context, o burstOptions, e *env, logw io.Writer) (*BurstReport, error) {
	kinds := reactionKindsInOrder()
	reactors := (o.Reactions + len(kinds) - 1) / len(kinds)
	srv, err := startAgora(ctx, o.options, e, logw)
	if err != nil {
		return nil, err
	}
	defer func() { _ = srv.stop() }()
	// users[0] is the admin, who writes the comment; the rest react and
	// subscribe (as members: a moderator's frames are encoded apart).
	f, err := setupForum(ctx, srv, 1+max(reactors, o.SubUsers), 1, logw)
	if err != nil {
		return nil, err
	}
	admin := httpClient(nil, 2)
	defer admin.CloseIdleConnections()
	var comment struct {
		ID string `json:"id"`
	}
	if err := call(ctx, admin, http.MethodPost, f.path("posts/"+f.posts[0]+"/comments"), f.users[0],
		map[string]string{"body": "React to this."}, &comment, http.StatusCreated); err != nil {
		return nil, fmt.Errorf("create the comment: %w", err)
	}
	// A fresh process for the measurement: registration's argon2id
	// garbage stays out of it.
	if err := srv.stop(); err != nil {
		return nil, err
	}
	if srv, err = startAgora(ctx, o.options, e, logw); err != nil {
		return nil, err
	}
	f.base = srv.base
	srv.pgPID = e.postmaster()

	members := f.users[1:]
	subTokens := members[:min(len(members), o.SubUsers)]
	url := wsURL(srv.base) + "/api/v1/t/" + f.slug + "/ws"
	subscribe := []byte(`{"op":"subscribe","room":"post:` + f.posts[0] + `"}`)
	subs, err := connectBurst(ctx, url, subTokens, subscribe, o.Subscribers, o.ConnectConc, o.Reactions)
	defer closeBurst(subs)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "[%s] %d subscribers in post:%s\n", o.Label, len(subs), f.posts[0])
	srv.settle(ctx, o.Settle)

	idle0 := snapCPU(srv.pid, srv.pgPID)
	sleepCtx(ctx, idleWindow)
	idle1 := snapCPU(srv.pid, srv.pgPID)
	rep := &BurstReport{Command: burstCommand(o), Subscribers: len(subs), Reactions: o.Reactions, Writers: o.Writers,
		WriteErrors: map[string]int{}}
	idleRate := 0.0
	if w := idle1.at.Sub(idle0.at).Seconds(); w > 0 {
		idleRate = (idle1.server - idle0.server).Seconds() / w
		rep.IdleCPUPercent = 100 * idleRate
	}

	cpu0 := snapCPU(srv.pid, srv.pgPID)
	t0 := time.Now()
	jobs := make(chan int)
	var mu sync.Mutex
	var lat []int32
	var lastAnswer time.Duration
	var wg sync.WaitGroup
	client := httpClient(nil, o.Writers)
	defer client.CloseIdleConnections()
	for range o.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := f.path("comments/" + comment.ID + "/reactions/" + kinds[i%len(kinds)])
				start := time.Now()
				err := call(ctx, client, http.MethodPut, path, members[i/len(kinds)], nil, nil, http.StatusOK)
				mu.Lock()
				rep.Sent++
				if err != nil {
					rep.Failed++
					rep.WriteErrors[errKind(err)]++
				} else {
					rep.OK++
					lat = append(lat, int32(min(time.Since(start).Microseconds(), 1<<31-1)))
				}
				lastAnswer = max(lastAnswer, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < o.Reactions && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	rep.WriteSeconds = lastAnswer.Seconds()

	// Every subscriber has every event once the slowest has the last.
	deadline := time.Now().Add(o.Drain)
	want := int64(rep.OK)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		done := true
		for _, s := range subs {
			if s.reactions.Load() < want && !s.isDone() {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cpu1 := snapCPU(srv.pid, srv.pgPID)
	closeBurst(subs)
	var last time.Duration
	for _, s := range subs {
		last = max(last, time.Duration(s.lastAt.Load())-t0.Sub(s.epoch))
	}
	rep.DrainSeconds = last.Seconds()
	// The last event may arrive before the last answer is read.
	rep.TailMS = float64(max(last-lastAnswer, 0).Microseconds()) / 1000

	final := finalCounts(kinds, rep.OK, o.Reactions)
	rep.Expected = int64(len(subs)) * want
	var frames, bytesIn int64
	rep.FramesPerSubMin = -1
	for _, s := range subs {
		n := s.reactions.Load()
		rep.Deliveries += n
		rep.Missing += max(want-n, 0)
		rep.Gaps += s.gaps
		rep.OtherMessages += s.others
		bytesIn += s.eventBytes
		frames += s.burstFrames
		if rep.FramesPerSubMin < 0 || s.burstFrames < rep.FramesPerSubMin {
			rep.FramesPerSubMin = s.burstFrames
		}
		rep.FramesPerSubMax = max(rep.FramesPerSubMax, s.burstFrames)
		if s.early {
			rep.Ended++
		}
		if !sameCounts(s.final, final) {
			rep.WrongFinal++
		}
	}
	if len(subs) > 0 {
		rep.FramesPerSub = float64(frames) / float64(len(subs))
	}
	if frames > 0 {
		rep.MessagesPerFrame = float64(rep.Deliveries) / float64(frames)
	}
	if rep.Deliveries > 0 {
		rep.AvgEventBytes = int(bytesIn / rep.Deliveries)
	}
	if rep.Expected > 0 {
		rep.UnpackedFrameRate = float64(frames) / float64(rep.Expected)
	}
	if rep.WriteSeconds > 0 {
		rep.WritesPerSec = float64(rep.OK) / rep.WriteSeconds
	}
	slices.Sort(lat)
	rep.REST = latencyMS(lat)

	window := cpu1.at.Sub(cpu0.at).Seconds()
	rep.WindowSeconds = window
	if cpu0.serverErr == nil && cpu1.serverErr == nil {
		rep.ServerCPUSeconds = (cpu1.server - cpu0.server).Seconds()
		rep.ServerNetCPU = max(rep.ServerCPUSeconds-idleRate*window, 0)
		if rep.OK > 0 {
			rep.ServerMsPerWrite = rep.ServerNetCPU * 1000 / float64(rep.OK)
		}
		if rep.Deliveries > 0 {
			rep.ServerSPerMDeliv = rep.ServerNetCPU / float64(rep.Deliveries) * 1e6
		}
	}
	rep.PgCPUSeconds = (cpu1.pg - cpu0.pg).Seconds()
	if rep.OK > 0 {
		rep.PgMsPerWrite = rep.PgCPUSeconds * 1000 / float64(rep.OK)
	}
	rep.ToolCPUSeconds = (cpu1.tool - cpu0.tool).Seconds()
	if wall := cpu1.total - cpu0.total; wall > 0 {
		rep.MachineBusyPercent = 100 * (cpu1.busy - cpu0.busy).Seconds() / wall.Seconds()
	}
	return rep, nil
}

// finalCounts are the counts after the first ok of n planned reactions
// (user i/6, kind i%6), when all of them succeeded; nil otherwise (the
// check then only applies to complete bursts).
func finalCounts(kinds []string, ok, n int) map[string]int {
	if ok != n {
		return nil
	}
	out := map[string]int{}
	for i := range n {
		out[kinds[i%len(kinds)]]++
	}
	return out
}

func sameCounts(got []byte, want map[string]int) bool {
	if want == nil {
		return true
	}
	var ev struct {
		Data struct {
			Reactions map[string]int `json:"reactions"`
		} `json:"data"`
	}
	if json.Unmarshal(got, &ev) != nil || len(ev.Data.Reactions) != len(want) {
		return false
	}
	for k, v := range want {
		if ev.Data.Reactions[k] != v {
			return false
		}
	}
	return true
}

// burstSub is one subscriber of the burst. Its reader goroutine alone
// writes the plain fields; they are read after done.
type burstSub struct {
	conn  *websocket.Conn
	epoch time.Time
	want  int64

	reactions   atomic.Int64
	lastAt      atomic.Int64 // ns since epoch of the last reaction event
	burstFrames int64        // frames with at least one reaction event
	others      int64        // messages that are not reaction events
	eventBytes  int64
	gaps        int64 // a reaction event whose seq does not follow the one before
	lastSeq     int64
	final       []byte // the want-th reaction event

	closing atomic.Bool
	early   bool
	done    chan struct{}
}

func (s *burstSub) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

const reactionType = `"type":"comment.reactions"`

// account reads one frame: every line is a message.
func (s *burstSub) account(frame []byte, at time.Duration) {
	typ := []byte(reactionType)
	got := false
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if !bytes.Contains(line, typ) {
			s.others++
			continue
		}
		seq := seqOf(line)
		if s.lastSeq != 0 && seq != s.lastSeq+1 {
			s.gaps++
		}
		s.lastSeq = seq
		s.eventBytes += int64(len(line))
		if n := s.reactions.Add(1); n == s.want {
			s.final = bytes.Clone(line)
		}
		got = true
	}
	if got {
		s.burstFrames++
		s.lastAt.Store(int64(at))
	}
}

// seqOf reads "seq":N from an event line; 0 if there is none.
func seqOf(line []byte) int64 {
	i := bytes.Index(line, []byte(`"seq":`))
	if i < 0 {
		return 0
	}
	var v int64
	for _, c := range line[i+len(`"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	return v
}

func (s *burstSub) read() {
	defer close(s.done)
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			s.early = !s.closing.Load()
			return
		}
		buf := framePool.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err != nil {
			framePool.Put(buf)
			s.early = !s.closing.Load()
			return
		}
		s.account(buf.Bytes(), time.Since(s.epoch))
		framePool.Put(buf)
	}
}

// connectBurst opens n subscribers and waits until each is subscribed.
// The subscribers opened so far come back with an error too, for closing.
func connectBurst(ctx context.Context, url string, tokens []string, subscribe []byte, n, conc, want int) ([]*burstSub, error) {
	ips := min(max((n+2499)/2500, 1), 254)
	dialers := make([]*websocket.Dialer, ips)
	for i := range dialers {
		d := dialerFrom(net.IPv4(127, 0, 0, byte(i+1)))
		dialers[i] = &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 30 * time.Second,
			ReadBufferSize: 4096, WriteBufferSize: 256, WriteBufferPool: &sync.Pool{}}
	}
	subs := make([]*burstSub, n)
	epoch := time.Now()
	err := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		conn, _, err := dialers[i%ips].DialContext(ctx, url, http.Header{"Authorization": {"Bearer " + tokens[i%len(tokens)]}})
		if err != nil {
			return fmt.Errorf("subscriber %d: dial: %w", i, err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, subscribe); err != nil {
			conn.Close()
			return fmt.Errorf("subscriber %d: subscribe: %w", i, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		for subscribed := false; !subscribed; {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				conn.Close()
				return fmt.Errorf("subscriber %d: wait for subscribed: %w", i, err)
			}
			subscribed = bytes.Contains(msg, []byte(`"op":"subscribed"`))
		}
		_ = conn.SetReadDeadline(time.Time{})
		s := &burstSub{conn: conn, epoch: epoch, want: int64(want), done: make(chan struct{})}
		subs[i] = s
		go s.read()
		return nil
	})
	return slices.DeleteFunc(subs, func(s *burstSub) bool { return s == nil }), err
}

func closeBurst(subs []*burstSub) {
	for _, s := range subs {
		if s.closing.CompareAndSwap(false, true) {
			_ = s.conn.Close()
		}
	}
	for _, s := range subs {
		<-s.done
	}
}

func burstCommand(o burstOptions) string {
	cmd := ".agora/bin/agora-load reaction-burst --subscribers " + strconv.Itoa(o.Subscribers) +
		" --reactions " + strconv.Itoa(o.Reactions) + " --writers " + strconv.Itoa(o.Writers)
	if o.Pin {
		cmd += " --pin"
	}
	if o.RateLimits {
		cmd += " --server-rate-limits"
	}
	if o.TenantQuota {
		cmd += " --server-tenant-quota"
	}
	return cmd
}

func printBurst(w io.Writer, r *BurstReport) {
	fmt.Fprintf(w, "\n%s\n", r.Command)
	fmt.Fprintf(w, "%d subscribers in one post's room, %d reactions on one comment by %d writers\n\n", r.Subscribers, r.Reactions, r.Writers)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	row := func(name, v string) { fmt.Fprintf(tw, "%s\t%s\n", name, v) }
	row("reactions ok / failed", fmt.Sprintf("%d / %d %v", r.OK, r.Failed, r.WriteErrors))
	row("writes/s (REST p50 / p99 ms)", fmt.Sprintf("%.0f (%.1f / %.1f)", r.WritesPerSec, r.REST.P50, r.REST.P99))
	row("all delivered after (s)", f2(r.DrainSeconds))
	row("tail after the last write (ms)", f1(r.TailMS))
	row("deliveries (missing, gaps)", fmt.Sprintf("%d of %d (%d, %d)", r.Deliveries, r.Expected, r.Missing, r.Gaps))
	row("subscribers with wrong final counts", strconv.Itoa(r.WrongFinal))
	row("frames per subscriber (min-max)", fmt.Sprintf("%.1f (%d-%d)", r.FramesPerSub, r.FramesPerSubMin, r.FramesPerSubMax))
	row("reaction events per frame", f1(r.MessagesPerFrame))
	row("frames vs one per event", fmt.Sprintf("%.3f", r.UnpackedFrameRate))
	row("bytes per reaction event", strconv.Itoa(r.AvgEventBytes))
	row("server CPU s (net of idle)", fmt.Sprintf("%.2f (%.2f)", r.ServerCPUSeconds, r.ServerNetCPU))
	row("server CPU ms per reaction", f2(r.ServerMsPerWrite))
	row("server CPU s per million deliveries", f2(r.ServerSPerMDeliv))
	row("PostgreSQL CPU s (ms per reaction)", fmt.Sprintf("%.2f (%.2f)", r.PgCPUSeconds, r.PgMsPerWrite))
	row("this tool's CPU s", f2(r.ToolCPUSeconds))
	row("machine busy %", f1(r.MachineBusyPercent))
	row("server idle CPU %", f1(r.IdleCPUPercent))
	tw.Flush()
}
