package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// writeFunc posts comment k of room. It calls stamp right before the
// request goes out (after any wait for a rate-limit token): stamp returns
// the body, carrying that moment, and the call's duration is measured from
// it.
type writeFunc func(ctx context.Context, room, k int, stamp func() []byte) (time.Duration, error)

// writeResult is what the write phase did.
type writeResult struct {
	sent      int
	ok        int
	failed    int
	errs      map[string]int
	errSample map[string]string // the first error of each kind
	lat       []time.Duration   // REST call durations of successful writes
	committed []bitset          // per room: which k were written (201)
	perRoom   []int
	elapsed   time.Duration // first call start to last call end
	starved   time.Duration // time writers waited for a user's rate-limit token
}

// runWriters posts comments for d or until max have been sent: comment i
// goes to room i%writeRooms (of rooms) as its k=i/writeRooms-th, paced at rate per second in
// total (0: as fast as the writers go), carried by w concurrent writers.
// Each body holds its REST call start time.
func runWriters(ctx context.Context, w, rooms, writeRooms int, rate float64, d time.Duration, maxN, size int,
	epoch time.Time, write writeFunc, starved func() time.Duration) *writeResult {
	res := &writeResult{errs: map[string]int{}, errSample: map[string]string{}, committed: make([]bitset, rooms), perRoom: make([]int, rooms)}
	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	var lastEnd atomic.Int64
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for i := range jobs {
				room, k := i%writeRooms, i/writeRooms
				stamp := func() []byte { return body(room, k, int64(time.Since(epoch)), size) }
				el, err := write(ctx, room, k, stamp)
				lastEnd.Store(int64(time.Since(start)))
				mu.Lock()
				res.sent++
				if err != nil {
					res.failed++
					kind := errKind(err)
					res.errs[kind]++
					if _, ok := res.errSample[kind]; !ok {
						res.errSample[kind] = err.Error()
					}
				} else {
					res.ok++
					res.committed[room].set(k)
					res.perRoom[room]++
				}
				mu.Unlock()
				if err == nil {
					lat = append(lat, el)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	deadline := start.Add(d)
	timer := time.NewTimer(d)
	defer timer.Stop()
feed:
	for i := 0; i < maxN; i++ {
		if rate > 0 {
			at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if !at.Before(deadline) {
				break
			}
			if wait := time.Until(at); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					break feed
				}
			}
		}
		select {
		case jobs <- i:
		case <-timer.C:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.elapsed = time.Duration(lastEnd.Load())
	if starved != nil {
		res.starved = starved()
	}
	return res
}

func errKind(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return "HTTP " + strconv.Itoa(ae.Status)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "timeout"
	}
	return "network"
}

// userPool hands out user tokens so that no user exceeds the server's
// per-user comment limit (10 per 10 s, a burst of 10): each user has a
// local bucket a little stricter than the server's.
type userPool struct {
	mu      sync.Mutex
	users   []poolUser
	next    int
	burst   float64
	perSec  float64
	starved atomic.Int64
}

type poolUser struct {
	token  string
	tokens float64
	at     time.Time
}

func newUserPool(tokens []string, burst, perSec float64) *userPool {
	p := &userPool{burst: burst, perSec: perSec}
	now := time.Now()
	for _, t := range tokens {
		p.users = append(p.users, poolUser{token: t, tokens: burst, at: now})
	}
	return p
}

func (p *userPool) take(ctx context.Context) (string, error) {
	if math.IsInf(p.burst, 1) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.next = (p.next + 1) % len(p.users)
		return p.users[p.next].token, nil
	}
	for {
		p.mu.Lock()
		now := time.Now()
		n := len(p.users)
		for j := 0; j < n; j++ {
			i := (p.next + j) % n
			u := &p.users[i]
			u.tokens = min(p.burst, u.tokens+now.Sub(u.at).Seconds()*p.perSec)
			u.at = now
			if u.tokens >= 1 {
				u.tokens--
				p.next = (i + 1) % n
				p.mu.Unlock()
				return u.token, nil
			}
		}
		p.mu.Unlock()
		t0 := time.Now()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		p.starved.Add(int64(time.Since(t0)))
	}
}

func (p *userPool) starvedFor() time.Duration { return time.Duration(p.starved.Load()) }

// usersFor is how many users the writers need so that no one exceeds the
// comment limit: each can post its burst plus one a second.
func usersFor(comments int, d time.Duration) int {
	per := commentBurst + commentPerSec*d.Seconds()
	return int(float64(comments)/per*1.15) + 1
}

// The server's default comment limit, slightly under-used.
const (
	commentBurst  = 9
	commentPerSec = 0.95
)

// agoraWriter posts comments through Agora's REST API.
func agoraWriter(f *forum, pool *userPool, c *http.Client) writeFunc {
	return func(ctx context.Context, room, _ int, stamp func() []byte) (time.Duration, error) {
		tok, err := pool.take(ctx)
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		t0 := time.Now()
		in := struct {
			Body string `json:"body"`
		}{string(stamp())}
		err = call(ctx, c, http.MethodPost, f.path("posts/"+f.posts[room]+"/comments"), tok, in, nil, http.StatusCreated)
		return time.Since(t0), err
	}
}
