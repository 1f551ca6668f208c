package api

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// What the limits cost a request: one bucket take, alone or split by the
// live instance count (an atomic load and two divisions more), and the
// tenant quota's bucket and slot, from many goroutines over a few
// tenants as on a busy server.
func BenchmarkLimiterTake(b *testing.B) {
	var live atomic.Int64
	live.Store(3)
	for _, c := range []struct {
		name  string
		count func() int
	}{{"alone", nil}, {"split3", func() int { return int(live.Load()) }}} {
		b.Run(c.name, func(b *testing.B) {
			l := newLimiter(Rate{N: 1 << 30, Per: time.Second}, 100_000).splitBy(c.count)
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = "1:" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l.take(keys[i%len(keys)], time.Now())
					i++
				}
			})
		})
	}
}

func BenchmarkTenantQuota(b *testing.B) {
	q := newQuota(TenantQuota{Writes: Rate{N: 1 << 30, Per: time.Second}, Slots: 8, Instances: func() int { return 1 }})
	tenants := []string{"acme", "globex", "initech", "umbrella"}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			t := tenants[i%len(tenants)]
			q.writes.take(t, time.Now())
			if s, ok := q.slots.acquire(ctx, t); ok {
				q.slots.release(t, s)
			}
			i++
		}
	})
}
