package api

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// cluster is k simulated instances of one limit, each with its own
// buckets and the same live-instance count.
type cluster struct {
	live atomic.Int64
	l    []*limiter
}

func newCluster(r Rate, k int) *cluster {
	c := &cluster{}
	c.live.Store(int64(k))
	for range k {
		c.l = append(c.l, newLimiter(r, 100).splitBy(func() int { return int(c.live.Load()) }))
	}
	return c
}

// roundRobin sends n requests of key, one every step from t0, to the
// instances in turn, and counts the allowed ones.
func (c *cluster) roundRobin(key string, t0 time.Time, n int, step time.Duration) int {
	allowed := 0
	for i := range n {
		if c.l[i%len(c.l)].take(key, t0.Add(time.Duration(i)*step)) == 0 {
			allowed++
		}
	}
	return allowed
}

// TestLimitSplitAcrossInstances: a client spread round-robin over three
// instances gets at most 1.5 times each documented limit, in a burst and
// over time; one instance alone gives the whole limit.
func TestLimitSplitAcrossInstances(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := DefaultRateLimits()
	for _, c := range []struct {
		name string
		rate Rate
	}{
		{"comments", d.Comments}, {"posts", d.Posts}, {"edits", d.Edits}, {"reports", d.Reports},
		{"failed logins", d.FailedLogins}, {"failed logins per IP", d.FailedLoginsPerIP}, {"registrations", d.Registrations},
	} {
		t.Run(c.name, func(t *testing.T) {
			alone := newCluster(c.rate, 1).roundRobin("k", t0, 10*c.rate.N, time.Millisecond)
			if alone != c.rate.N {
				t.Errorf("one instance allowed %d of a quick burst, want the whole limit %d", alone, c.rate.N)
			}
			burst := newCluster(c.rate, 3).roundRobin("k", t0, 10*c.rate.N, time.Millisecond)
			if float64(burst) > 1.5*float64(c.rate.N) || burst < 1 {
				t.Errorf("three instances allowed %d of a quick burst, want 1 to 1.5 x %d", burst, c.rate.N)
			}
			// Ten periods of requests ten times faster than the limit.
			step := c.rate.Per / time.Duration(10*c.rate.N)
			n := 100 * c.rate.N
			limit := float64(c.rate.N) * (1 + float64(n)*step.Seconds()/c.rate.Per.Seconds())
			long := newCluster(c.rate, 3).roundRobin("k", t0, n, step)
			if float64(long) > 1.5*limit || float64(long) < 0.8*limit {
				t.Errorf("over %v three instances allowed %d, want about the limit's %.0f (at most 1.5x)",
					time.Duration(n)*step, long, limit)
			}
		})
	}
}

// TestLimitSplitFollowsPeers: when a peer joins, buckets shrink at once;
// when one dies, they grow at the higher rate but hand out nothing at
// once; a limit smaller than the number of instances still allows one.
func TestLimitSplitFollowsPeers(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCluster(Rate{N: 30, Per: time.Minute}, 1)
	l := c.l[0]
	l.take("k", t0) // a full bucket of 30, less one
	c.live.Store(3)
	allowed := 0
	for range 30 {
		if l.take("k", t0) == 0 {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("after two peers joined, a nearly full bucket allowed %d more, want its share of 10", allowed)
	}
	c.live.Store(2) // a peer died: the share grows to 15, at 15 a minute
	if w := l.take("k", t0); w == 0 {
		t.Errorf("a peer dying handed out a token at once")
	}
	if w := l.take("k", t0.Add(4*time.Second+100*time.Millisecond)); w != 0 {
		t.Errorf("4 s after the peer died, at 15 a minute, still waiting %v", w)
	}

	small := newCluster(Rate{N: 2, Per: time.Minute}, 5).l[0]
	if w := small.take("k", t0); w != 0 {
		t.Fatalf("a limit of 2 split over 5 instances refused its first request (wait %v)", w)
	}
	if w := small.take("k", t0); w < 2*time.Minute || w > 3*time.Minute {
		t.Errorf("a limit of 2 a minute over 5 instances: next token in %v, want 2.5 min", w)
	}
}

// TestLimitSplitSweepKeepsRoundedBuckets: a split burst rounded up takes
// longer than Per to refill; the sweep must not forget such a bucket (and
// forgive its client) before it is full.
func TestLimitSplitSweepKeepsRoundedBuckets(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newCluster(Rate{N: 5, Per: time.Minute}, 3).l[0] // burst 2 at 5/3 a minute: full after 72 s
	l.take("k", t0)
	l.take("k", t0)
	l.take("other", t0.Add(65*time.Second)) // sweeps
	if l.size() != 2 {
		t.Fatalf("the sweep forgot a bucket that was not full yet (%d keys left)", l.size())
	}
	if l.take("k", t0.Add(65*time.Second)) != 0 {
		t.Fatalf("after 65 s, the bucket has not refilled one token")
	}
	if l.take("k", t0.Add(65*time.Second)) == 0 {
		t.Errorf("after 65 s, the bucket allowed two: it was forgotten and came back full")
	}
}

// TestTenantSlots: a tenant's writes beyond its slots wait, then are
// refused, while another tenant's go through; a freed slot lets a waiter
// in, and idle tenants leave no entry behind.
func TestTenantSlots(t *testing.T) {
	s := newSlots(2, 50*time.Millisecond)
	ctx := context.Background()
	r1, ok1 := s.acquire(ctx, "a")
	r2, ok2 := s.acquire(ctx, "a")
	if !ok1 || !ok2 {
		t.Fatalf("the first two writes did not get the two slots")
	}
	start := time.Now()
	if _, ok := s.acquire(ctx, "a"); ok {
		t.Fatalf("a third write got a slot of two")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("the third write was refused after %v, want it to wait the 50 ms", waited)
	}
	rb, ok := s.acquire(ctx, "b")
	if !ok {
		t.Fatalf("tenant b was refused while a's slots were full")
	}
	s.release("b", rb)
	got := make(chan bool)
	long := newSlots(2, time.Minute)
	l1, _ := long.acquire(ctx, "a")
	l2, _ := long.acquire(ctx, "a")
	go func() {
		r, ok := long.acquire(ctx, "a")
		if ok {
			long.release("a", r)
		}
		got <- ok
	}()
	waiting := func() bool {
		long.mu.Lock()
		defer long.mu.Unlock()
		return long.in["a"].users == 3
	}
	for deadline := time.Now().Add(10 * time.Second); !waiting(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the third write never started waiting")
		}
	}
	long.release("a", l1)
	if !<-got {
		t.Errorf("a waiting write did not get the slot freed for it")
	}
	long.release("a", l2)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := s.acquire(cancelled, "a"); ok {
		t.Errorf("a write whose client left got a slot of two taken")
	}
	s.release("a", r1)
	s.release("a", r2)
	if n := len(s.in) + len(long.in); n != 0 {
		t.Errorf("%d tenants left in the slot tables with no write in flight", n)
	}
}
