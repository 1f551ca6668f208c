package api

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(Rate{N: 10, Per: 10 * time.Second}, 100)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if wait := l.take("k", t0); wait != 0 {
			t.Fatalf("take %d of a burst of 10: wait %v", i+1, wait)
		}
	}
	wait := l.take("k", t0)
	if wait < 900*time.Millisecond || wait > time.Second {
		t.Fatalf("11th take waits %v, want about 1s (10 per 10s)", wait)
	}
	if got := l.peek("k", t0); got != wait {
		t.Errorf("peek = %v, want %v", got, wait)
	}
	if l.take("other", t0) != 0 {
		t.Errorf("another key is limited by k's flood")
	}
	if w := l.take("k", t0.Add(time.Second)); w != 0 {
		t.Errorf("after a second, k still waits %v", w)
	}
	// refund gives back what take spent, never more than the burst.
	r := newLimiter(Rate{N: 2, Per: time.Hour}, 100)
	r.take("k", t0)
	r.take("k", t0)
	if r.take("k", t0) == 0 {
		t.Fatalf("third take of a burst of 2 allowed")
	}
	r.refund("k", t0.Add(-time.Millisecond)) // a clock read a moment earlier
	if w := r.take("k", t0); w != 0 {
		t.Errorf("after a refund, take waits %v", w)
	}
	for range 5 {
		r.refund("k", t0)
	}
	for i := range 3 {
		if w := r.take("k", t0); (w == 0) != (i < 2) {
			t.Errorf("take %d after many refunds: wait %v; refunds must not overfill the bucket of 2", i+1, w)
		}
	}
	r.refund("never seen", t0)
	if r.size() != 1 {
		t.Errorf("refunding an unknown key remembered it")
	}
	// peek never spends.
	for range 5 {
		l.peek("fresh", t0)
	}
	for i := range 10 {
		if l.take("fresh", t0) != 0 {
			t.Fatalf("peeks spent tokens: take %d refused", i+1)
		}
	}
}

// TestDefaultLimitsHumanVsScript: the defaults never stop someone typing,
// and stop a script within its first seconds.
func TestDefaultLimitsHumanVsScript(t *testing.T) {
	d := DefaultRateLimits()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name        string
		rate        Rate
		humanEvery  time.Duration // a very active person
		humanBurst  int           // quick successive actions, then the pace above
		scriptEvery time.Duration
		scriptMax   int // the script is stopped after at most this many
	}{
		{"comments", d.Comments, 15 * time.Second, 5, 50 * time.Millisecond, 12},
		{"posts", d.Posts, 2 * time.Minute, 3, 100 * time.Millisecond, 6},
		{"edits", d.Edits, 10 * time.Second, 10, 50 * time.Millisecond, 31},
		{"reports", d.Reports, time.Minute, 5, 100 * time.Millisecond, 11},
		{"reactions", d.Reactions, 3 * time.Second, 30, 50 * time.Millisecond, 66},
		{"failed logins", d.FailedLogins, time.Minute, 4, 200 * time.Millisecond, 6},
		{"registrations", d.Registrations, 10 * time.Minute, 3, time.Second, 21},
	} {
		human := newLimiter(c.rate, 10)
		now := t0
		for i := range 500 {
			if i >= c.humanBurst {
				now = now.Add(c.humanEvery)
			}
			if w := human.take("human", now); w != 0 {
				t.Errorf("%s: a person is limited at action %d (wait %v)", c.name, i+1, w)
				break
			}
		}
		script := newLimiter(c.rate, 10)
		now = t0
		stopped := 0
		for i := range 1000 {
			now = now.Add(c.scriptEvery)
			if script.take("script", now) != 0 {
				stopped = i + 1
				break
			}
		}
		if stopped == 0 || stopped > c.scriptMax {
			t.Errorf("%s: a script was stopped at request %d, want by %d", c.name, stopped, c.scriptMax)
		}
	}
}

// TestLimiterMemoryBounded: idle clients are forgotten once their bucket
// is full again, and a flood of new clients never grows the table past
// MaxKeys.
func TestLimiterMemoryBounded(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Rate{N: 5, Per: time.Minute}, 1000)
	for i := range 500 {
		l.take(fmt.Sprint("ip", i), t0)
	}
	if n := l.size(); n != 500 {
		t.Fatalf("%d keys, want 500", n)
	}
	l.take("late", t0.Add(time.Minute))
	if n := l.size(); n != 1 {
		t.Errorf("after a minute idle: %d keys remembered, want only the new one", n)
	}

	flood := newLimiter(Rate{N: 5, Per: time.Hour}, 100)
	for i := range 10_000 {
		flood.take(fmt.Sprint("ip", i), t0.Add(time.Duration(i)*time.Millisecond))
		if n := flood.size(); n > 100 {
			t.Fatalf("after %d clients the table holds %d, want at most 100", i+1, n)
		}
	}
	// Eviction drops the least recently seen: the newest clients keep
	// their (spent) tokens.
	for range 4 {
		flood.take("ip9999", t0.Add(10*time.Second))
	}
	if w := flood.take("ip9999", t0.Add(10*time.Second)); w == 0 {
		t.Errorf("the newest client's sixth request in a burst of 5 was allowed: its bucket was forgotten")
	}
}

func TestLimitsOff(t *testing.T) {
	l := newLimiters(RateLimits{Disabled: true})
	if l.comments != nil || l.failedLogins != nil || l.registrations != nil {
		t.Errorf("Disabled left limiters on")
	}
	var off *limiter
	if off.take("k", time.Now()) != 0 || off.peek("k", time.Now()) != 0 {
		t.Errorf("a nil limiter limited")
	}
	one := newLimiters(RateLimits{Comments: Rate{N: -1}})
	if one.comments != nil || one.posts == nil {
		t.Errorf("N < 0 should turn off exactly that limit")
	}
	def := newLimiters(RateLimits{})
	if def.comments == nil || def.comments.burst != DefaultRateLimits().Comments.N {
		t.Errorf("the zero RateLimits does not take the defaults")
	}
}
