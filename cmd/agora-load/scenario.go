package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// planned is the most comments the write phase can post.
func planned(o options) int {
	if o.Rate <= 0 {
		return o.MaxComments
	}
	return min(o.MaxComments, int(math.Ceil(o.Rate*o.Duration.Seconds())))
}

// userCount is how many users a run registers: the subscribers' users, one
// poster per five rooms (posts are limited to 5 a minute per user), and
// enough writers for the comment limit.
func userCount(o options) int {
	if o.Users > 0 {
		return o.Users
	}
	n := 1 + min(o.subUsers(), max(o.Subscribers, 1))
	if !o.RateLimits {
		return n
	}
	n = max(n, (o.Rooms+4)/5+1)
	return max(n, usersFor(planned(o), o.Duration))
}

// writerPool spreads comments over the users within the server's comment
// limit, or over all of them freely when it has none.
func writerPool(o options, tokens []string) *userPool {
	if !o.RateLimits {
		return newUserPool(tokens, math.Inf(1), math.Inf(1))
	}
	return newUserPool(tokens, commentBurst, commentPerSec)
}

func wsURL(base string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	return u.String()
}

// runScenario measures Agora and, with --baseline, the bare server.
func runScenario(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	epoch := time.Now()
	logDir := ""
	var srv *server
	if e != nil {
		logDir = e.dir
		fmt.Fprintf(logw, "[%s] starting agora serve (pin=%v)\n", o.Label, o.Pin)
		var err error
		if srv, err = startAgora(ctx, o, e, logw); err != nil {
			return nil, err
		}
	} else {
		dir, err := os.MkdirTemp("", "agora-load-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		logDir = dir
		srv = &server{base: o.URL, adminToken: o.AdminToken, pid: o.ServerPID}
	}
	stopped := false
	stopSrv := func() {
		if !stopped {
			stopped = true
			if err := srv.stop(); err != nil {
				fmt.Fprintln(logw, err)
			}
		}
	}
	defer stopSrv()

	f, err := setupForum(ctx, srv, userCount(o), o.Rooms, logw)
	if err != nil {
		return nil, err
	}
	if srv.proc != nil {
		// Registration hashes passwords with argon2id (19 MiB each): a
		// fresh process for the measurement keeps that garbage out of its
		// RSS. Tokens and posts live in the database and carry over.
		stopSrv()
		if srv, err = startAgora(ctx, o, e, logw); err != nil {
			return nil, err
		}
		stopped = false
		f.base = srv.base
	}
	srv.pgPID = e.postmaster()
	// Subscribers sign in as users other than the admin (a moderator gets
	// frames of its own), as many distinct ones as --subscriber-users.
	subTokens := f.users[1:]
	if len(subTokens) == 0 {
		subTokens = f.users
	}
	subTokens = subTokens[:min(len(subTokens), o.subUsers())]
	base := wsURL(srv.base) + "/api/v1/t/" + f.slug + "/ws"
	spec := dialSpec{
		url: func(int) string { return base },
		header: func(i int) http.Header {
			return http.Header{"Authorization": {"Bearer " + subTokens[i%len(subTokens)]}}
		},
		subscribe: func(room int) []byte {
			return []byte(`{"op":"subscribe","room":"post:` + f.posts[room] + `"}`)
		},
	}
	pool := writerPool(o, f.users)
	client := httpClient(nil, o.Writers)
	defer client.CloseIdleConnections()
	ph, err := measure(ctx, "agora", srv, spec, agoraWriter(f, pool, client), pool.starvedFor, o, epoch, logw)
	if err != nil {
		return nil, err
	}
	rep.Agora = ph
	stopSrv()

	if !o.Baseline {
		return rep, nil
	}
	evBytes := ph.AvgEventBytes
	if evBytes <= 0 {
		evBytes = o.BodyBytes + 340
	}
	bph, err := measureBare(ctx, o, e, logDir, 1, evBytes, epoch, logw)
	if err != nil {
		return rep, err
	}
	rep.Baseline = bph
	rep.Ratios = ratios(ph, bph)
	if o.Repeat <= 1 || e == nil {
		return rep, nil
	}
	// More pairs, the order alternating, each server fresh.
	rep.Pairs = []ScenarioPair{{Agora: ph, Baseline: bph, Ratios: rep.Ratios}}
	for i := 1; i < o.Repeat; i++ {
		oi := o
		oi.Label = fmt.Sprintf("%s.pair%d", o.Label, i+1)
		var pair ScenarioPair
		for _, agora := range []bool{i%2 == 0, i%2 == 1} {
			var err error
			if agora {
				var a *server
				if a, err = startAgora(ctx, oi, e, logw); err != nil {
					return rep, err
				}
				a.pgPID = e.postmaster()
				fa := *f
				fa.base = a.base
				abase := wsURL(a.base) + "/api/v1/t/" + f.slug + "/ws"
				aspec := spec
				aspec.url = func(int) string { return abase }
				pair.Agora, err = measure(ctx, "agora", a, aspec, agoraWriter(&fa, pool, client), pool.starvedFor, oi, epoch, logw)
				if serr := a.stop(); serr != nil {
					fmt.Fprintln(logw, serr)
				}
			} else {
				pair.Baseline, err = measureBare(ctx, oi, e, logDir, i+1, evBytes, epoch, logw)
			}
			if err != nil {
				return rep, err
			}
		}
		pair.Ratios = ratios(pair.Agora, pair.Baseline)
		rep.Pairs = append(rep.Pairs, pair)
	}
	return rep, nil
}

// ScenarioPair is one interleaved measurement of Agora and its baseline.
type ScenarioPair struct {
	Agora    *Phase             `json:"agora"`
	Baseline *Phase             `json:"baseline"`
	Ratios   map[string]float64 `json:"ratios"`
}

// measureBare starts a bare melody server and measures it.
func measureBare(ctx context.Context, o options, e *env, logDir string, serial, evBytes int, epoch time.Time, logw io.Writer) (*Phase, error) {
	fmt.Fprintf(logw, "[%s] starting the bare melody server (pin=%v)\n", o.Label, o.Pin)
	bare, err := startBare(ctx, o, logDir, serial)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := bare.stop(); err != nil {
			fmt.Fprintln(logw, err)
		}
	}()
	bare.pgPID = e.postmaster()
	bbase := wsURL(bare.base) + "/ws?room=r"
	bspec := dialSpec{
		url:    func(room int) string { return bbase + strconv.Itoa(room) },
		header: func(int) http.Header { return nil },
	}
	bclient := httpClient(nil, o.Writers)
	defer bclient.CloseIdleConnections()
	bph, err := measure(ctx, "bare melody", bare, bspec, bareWriter(bare.base, bclient, evBytes), nil, o, epoch, logw)
	if err != nil {
		return nil, err
	}
	bph.Dropped = bareStats(ctx, bare.base)
	return bph, nil
}

// measure is one phase against one server: connect, settle, write, drain.
func measure(ctx context.Context, name string, s *server, spec dialSpec, write writeFunc,
	starved func() time.Duration, o options, epoch time.Time, logw io.Writer) (*Phase, error) {
	ph := &Phase{Target: name, Subscribers: o.Subscribers, Rooms: o.Rooms}
	ph.GCForced = s.settle(ctx, time.Second)
	ph.RSSBeforeKB = rss(s.pid)
	heap0, stack0, g0, memOK := s.memStats(ctx)
	ips := o.SourceIPs
	if ips <= 0 {
		ips = min(max((o.Subscribers+2499)/2500, 1), 254)
	}
	var connectProf chan string
	if o.ProfileDir != "" && s.pprofBase != "" {
		// The connect phase's own profile: as long as it takes, about.
		connectProf = make(chan string, 1)
		go func() {
			connectProf <- download(ctx, s.pprofBase+"/debug/pprof/profile?seconds=3", time.Minute,
				filepath.Join(o.ProfileDir, strings.TrimSuffix(profileName(o.Label, name), ".pprof")+".connect.pprof"))
		}()
	}
	set, err := connectAll(ctx, spec, o.Subscribers, o.Rooms, ips, o.ConnectConc, epoch)
	if connectProf != nil {
		ph.ConnectProfile = <-connectProf
	}
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", name, err)
	}
	closed := false
	defer func() {
		if !closed {
			set.closeAll()
		}
	}()
	ph.ConnectSeconds = set.connAt.Seconds()
	ph.ConnectFailed = set.failed
	fmt.Fprintf(logw, "[%s] %s: %d subscribers connected in %.2fs (%d failed)\n",
		o.Label, name, o.Subscribers-set.failed, ph.ConnectSeconds, set.failed)
	s.settle(ctx, o.Settle)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	ph.RSSIdleKB = rss(s.pid)
	if heap1, stack1, g1, ok := s.memStats(ctx); ok && memOK {
		if live := o.Subscribers - set.failed; live > 0 {
			ph.HeapKBPerConn = float64(heap1-heap0) / 1024 / float64(live)
			ph.StackKBPerConn = float64(stack1-stack0) / 1024 / float64(live)
			ph.GoroutinesPerConn = float64(g1-g0) / float64(live)
		}
	}
	if o.ProfileDir != "" {
		ph.HeapProfile = s.saveHeap(ctx, filepath.Join(o.ProfileDir, strings.TrimSuffix(profileName(o.Label, name), ".pprof")+".heap.pprof"))
	}

	// The write phase, with RSS sampled and the CPU clock read around it.
	// The server's CPU use while idle with N connections (pings, timers),
	// so the write phase's cost can be told apart from it.
	idle0 := snapCPU(s.pid, s.pgPID)
	sleepCtx(ctx, idleWindow)
	idle1 := snapCPU(s.pid, s.pgPID)
	var idleRate float64 // server CPU seconds per second
	if w := idle1.at.Sub(idle0.at).Seconds(); w > 0 && idle0.serverErr == nil && idle1.serverErr == nil {
		idleRate = (idle1.server - idle0.server).Seconds() / w
		ph.IdleCPUPercent = 100 * idleRate
	}

	cpu0 := snapCPU(s.pid, s.pgPID)
	stopSampler := make(chan struct{})
	var samplerDone sync.WaitGroup
	var maxRSS int64
	var timeline []cpuSnap // every 100 ms, to end the CPU window at the last receipt
	samplerDone.Add(1)
	go func() {
		defer samplerDone.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := rss(s.pid); v > maxRSS {
				maxRSS = v
			}
			timeline = append(timeline, snapCPU(s.pid, s.pgPID))
			select {
			case <-stopSampler:
				return
			case <-t.C:
			}
		}
	}()
	profDone := make(chan struct{})
	go func() {
		defer close(profDone)
		if o.ProfileDir != "" && !o.HeapOnly && s.pprofBase != "" {
			ph.Profile = fetchProfile(ctx, s.pprofBase+"/debug/pprof/profile", o.Duration, filepath.Join(o.ProfileDir, profileName(o.Label, name)))
		}
	}()
	wstart := time.Since(epoch)
	wr := runWriters(ctx, o.Writers, o.Rooms, o.WriteRooms, o.Rate, o.Duration, o.MaxComments, o.BodyBytes, epoch, write, starved)
	perRoom := make([]int, o.Rooms)
	for _, sub := range set.subs {
		if sub.conn != nil {
			perRoom[sub.room]++
		}
	}
	var expected int64
	for r := range o.Rooms {
		expected += int64(perRoom[r]) * int64(wr.perRoom[r])
	}
	deadline := time.Now().Add(o.Drain)
	for set.uniqueTotal() < expected && time.Now().Before(deadline) && set.live() > 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	ph.DrainTimedOut = set.uniqueTotal() < expected
	cpu1 := snapCPU(s.pid, s.pgPID)
	close(stopSampler)
	samplerDone.Wait()
	// When deliveries stopped well before the drain ended (events lost,
	// a drain timeout), the CPU window ends at the first sample after the
	// last receipt instead: idle seconds are not the fan-out's.
	if last := lastReceipt(set); last > 0 {
		for _, sn := range timeline {
			if sn.at.Sub(epoch) >= last {
				if sn.at.Before(cpu1.at) {
					cpu1 = sn
				}
				break
			}
		}
	}
	<-profDone
	ph.RSSLoadKB = maxRSS
	closed = true
	set.closeAll()

	ph.Ended = set.ended()
	var lat []int32
	var lastRecv time.Duration
	var evBytes int64
	for _, sub := range set.subs {
		if sub.conn == nil {
			continue
		}
		c := int64(sub.got.andCount(wr.committed[sub.room]))
		ph.Deliveries += c
		ph.Lost += int64(wr.perRoom[sub.room]) - c
		ph.Unexpected += int64(sub.got.count()) - c
		ph.Duplicated += sub.dups
		ph.Misrouted += sub.foreign
		ph.Frames += sub.frames
		ph.Messages += sub.msgs
		ph.ErrorMessages += sub.errMsgs
		evBytes += sub.evBytes
		lat = append(lat, sub.lat...)
		lastRecv = max(lastRecv, time.Duration(sub.lastRecv.Load()))
	}
	ph.Expected = expected
	if n := ph.Deliveries + ph.Unexpected; n > 0 {
		ph.AvgEventBytes = int(evBytes / n)
	}
	slices.Sort(lat)
	ph.E2E = latencyMS(lat)
	ph.CommentsSent, ph.CommentsOK, ph.CommentsFailed, ph.WriteErrors = wr.sent, wr.ok, wr.failed, wr.errs
	ph.WriteErrorSample = wr.errSample
	if wr.elapsed > 0 {
		ph.WriteRate = float64(wr.ok) / wr.elapsed.Seconds()
	}
	ph.WriteSeconds = wr.elapsed.Seconds()
	ph.StarvedSeconds = wr.starved.Seconds()
	restLat := make([]int32, 0, len(wr.lat))
	for _, d := range wr.lat {
		restLat = append(restLat, int32(min(d.Microseconds(), 1<<31-1)))
	}
	slices.Sort(restLat)
	ph.REST = latencyMS(restLat)
	if span := lastRecv - wstart; span > 0 && ph.Deliveries > 0 {
		ph.DeliveriesPerSec = float64(ph.Deliveries) / span.Seconds()
	}
	if live := o.Subscribers - set.failed; live > 0 && ph.RSSIdleKB > 0 {
		ph.KBPerConn = float64(ph.RSSIdleKB-ph.RSSBeforeKB) / float64(live)
	}
	if wall := cpu1.total - cpu0.total; wall > 0 {
		busy := cpu1.busy - cpu0.busy
		ph.MachineBusyPct = 100 * busy.Seconds() / wall.Seconds()
		ph.ToolCPUSeconds = (cpu1.tool - cpu0.tool).Seconds()
		ph.PgCPUSeconds = (cpu1.pg - cpu0.pg).Seconds()
		others := busy - (cpu1.server - cpu0.server) - (cpu1.tool - cpu0.tool) - (cpu1.pg - cpu0.pg)
		ph.OthersCPUSeconds = max(others, 0).Seconds()
		ph.CPUWindowSeconds = wall.Seconds() / float64(runtime.NumCPU())
	}
	if cpu0.serverErr == nil && cpu1.serverErr == nil {
		ph.CPUSeconds = (cpu1.server - cpu0.server).Seconds()
		ph.ServerWindowSeconds = cpu1.at.Sub(cpu0.at).Seconds()
		if wr.ok > 0 {
			net := ph.CPUSeconds - idleRate*ph.ServerWindowSeconds
			ph.PublishCPUMsPerComment = max(net, 0) * 1000 / float64(wr.ok)
		}
		if ph.Deliveries > 0 {
			ph.CPUPerMDeliveries = ph.CPUSeconds / float64(ph.Deliveries) * 1e6
		}
		if wr.ok > 0 {
			ph.CPUMsPerComment = ph.CPUSeconds * 1000 / float64(wr.ok)
		}
	}
	fmt.Fprintf(logw, "[%s] %s: %d comments, %d deliveries (lost %d, dup %d), p99 %.1f ms\n",
		o.Label, name, wr.ok, ph.Deliveries, ph.Lost, ph.Duplicated, ph.E2E.P99)
	return ph, nil
}

// idleWindow is how long the server's idle CPU is measured.
const idleWindow = 2 * time.Second

func lastReceipt(set *subscriberSet) time.Duration {
	var last time.Duration
	for _, s := range set.subs {
		last = max(last, time.Duration(s.lastRecv.Load()))
	}
	return last
}

func rss(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	v, err := procRSS(pid)
	if err != nil {
		return 0
	}
	return v
}

func profileName(label, target string) string {
	if label == "" {
		label = "run"
	}
	clean := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				b[i] = '_'
			}
		}
		return string(b)
	}
	return clean(label) + "." + clean(target) + ".pprof"
}

// fetchProfile saves a CPU profile of the write phase; it returns the
// file's path, or "" if the server has no pprof endpoint.
func fetchProfile(ctx context.Context, pprofURL string, d time.Duration, path string) string {
	secs := max(int(d.Seconds())-1, 1)
	return download(ctx, pprofURL+"?seconds="+strconv.Itoa(secs), d+30*time.Second, path)
}

// download saves what url answers to path; it returns the path, or "" if
// anything failed (profiles are a bonus: a run never fails for them).
func download(ctx context.Context, url string, timeout time.Duration, path string) string {
	c := &http.Client{Timeout: timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	resp, err := c.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return ""
	}
	out, err := os.Create(path)
	if err != nil {
		return ""
	}
	_, err = io.Copy(out, resp.Body)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ""
	}
	return path
}
