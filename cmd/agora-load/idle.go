package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Idle connections: what a connection costs the server at rest and how
// fast N of them get in, Agora against bare melody, interleaved over
// pairs (agora then bare, then bare then agora, ...) with a fresh server
// for every measurement.

// IdleResult is one measurement of one server.
type IdleResult struct {
	ConnectSeconds float64 `json:"connect_seconds"`
	Failed         int     `json:"failed"`
	KBPerConn      float64 `json:"kb_per_connection"`
	HeapKBPerConn  float64 `json:"heap_kb_per_connection"`
	StackKBPerConn float64 `json:"stack_kb_per_connection"`
	Goroutines     float64 `json:"goroutines_per_connection"`
	HeapProfile    string  `json:"heap_profile,omitempty"`
	ConnectProfile string  `json:"connect_profile,omitempty"`
}

// IdlePair is Agora's and bare melody's measurement in one pair.
type IdlePair struct {
	Agora IdleResult `json:"agora"`
	Bare  IdleResult `json:"bare"`
}

// Idle is the scenario's report.
type Idle struct {
	Subscribers int        `json:"subscribers"`
	Pairs       []IdlePair `json:"pairs"`
}

func (id *Idle) stat(f func(IdlePair) float64) (med, lo, hi float64) {
	return statOf(id.Pairs, f)
}

func runIdle(ctx context.Context, o options, e *env, logw io.Writer) (*Report, error) {
	if e == nil {
		return nil, usageError("--idle needs the servers the tool starts")
	}
	rep := &Report{Label: o.Label, Command: o.commandLine(), Options: o}
	f, err := setupOnce(ctx, o, e, logw, userCount(o), o.Rooms)
	if err != nil {
		return nil, err
	}
	subTokens := f.users[1:]
	subTokens = subTokens[:min(len(subTokens), o.subUsers())]
	ips := min(max((o.Subscribers+2499)/2500, 1), 254)
	id := &Idle{Subscribers: o.Subscribers}
	serial := 0
	for pair := range o.Pairs {
		var got IdlePair
		order := []bool{true, false}
		if pair%2 == 1 {
			order = []bool{false, true}
		}
		for _, agora := range order {
			serial++
			var s *server
			var spec dialSpec
			name := "bare"
			if agora {
				name = "agora"
				if s, err = startAgora(ctx, o, e, logw); err != nil {
					return rep, err
				}
				base := wsURL(s.base) + "/api/v1/t/" + f.slug + "/ws"
				spec = dialSpec{
					url: func(int) string { return base },
					header: func(i int) http.Header {
						return http.Header{"Authorization": {"Bearer " + subTokens[i%len(subTokens)]}}
					},
					subscribe: func(room int) []byte {
						return []byte(`{"op":"subscribe","room":"post:` + f.posts[room] + `"}`)
					},
				}
			} else {
				if s, err = startBare(ctx, o, e.dir, serial); err != nil {
					return rep, err
				}
				bbase := wsURL(s.base) + "/ws?room=r"
				spec = dialSpec{
					url:    func(room int) string { return bbase + strconv.Itoa(room) },
					header: func(int) http.Header { return nil },
				}
			}
			label := fmt.Sprintf("%s.pair%d.%s", o.Label, pair+1, name)
			r, err := idleOnce(ctx, s, spec, o, ips, label)
			_ = s.stop()
			if err != nil {
				return rep, fmt.Errorf("%s: %w", label, err)
			}
			fmt.Fprintf(logw, "[%s] pair %d, %s: %d connected in %.2fs (%d failed), %.1f KB per connection (heap %.1f, stacks %.1f, %.1f goroutines)\n",
				o.Label, pair+1, name, o.Subscribers-r.Failed, r.ConnectSeconds, r.Failed, r.KBPerConn, r.HeapKBPerConn, r.StackKBPerConn, r.Goroutines)
			if agora {
				got.Agora = r
			} else {
				got.Bare = r
			}
		}
		id.Pairs = append(id.Pairs, got)
	}
	rep.Idle = id
	return rep, nil
}

// idleOnce connects N to s, lets it settle and reads what they cost.
func idleOnce(ctx context.Context, s *server, spec dialSpec, o options, ips int, label string) (IdleResult, error) {
	var r IdleResult
	s.settle(ctx, time.Second)
	rss0 := rss(s.pid)
	heap0, stack0, g0, memOK := s.memStats(ctx)
	var prof chan string
	if o.ProfileDir != "" && s.pprofBase != "" {
		prof = make(chan string, 1)
		go func() {
			prof <- download(ctx, s.pprofBase+"/debug/pprof/profile?seconds=3", time.Minute, o.ProfileDir+"/"+label+".connect.pprof")
		}()
	}
	set, err := connectAll(ctx, spec, o.Subscribers, o.Rooms, ips, o.ConnectConc, time.Now())
	if err != nil {
		return r, err
	}
	defer set.closeAll()
	if prof != nil {
		r.ConnectProfile = <-prof
	}
	r.ConnectSeconds, r.Failed = set.connAt.Seconds(), set.failed
	s.settle(ctx, o.Settle)
	live := o.Subscribers - set.failed
	if live > 0 {
		r.KBPerConn = float64(rss(s.pid)-rss0) / float64(live)
		if heap1, stack1, g1, ok := s.memStats(ctx); ok && memOK {
			r.HeapKBPerConn = float64(heap1-heap0) / 1024 / float64(live)
			r.StackKBPerConn = float64(stack1-stack0) / 1024 / float64(live)
			r.Goroutines = float64(g1-g0) / float64(live)
		}
	}
	if o.ProfileDir != "" {
		r.HeapProfile = s.saveHeap(ctx, o.ProfileDir+"/"+label+".heap.pprof")
	}
	return r, nil
}
