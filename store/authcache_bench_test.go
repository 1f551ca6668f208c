package store

import (
	"context"
	"testing"
	"time"
)

// What resolving a request's tenant and token costs, served from memory
// or from Postgres:
//
//	go test -run '^$' -bench 'BenchmarkAuthenticate|BenchmarkTenantBySlug' -benchmem ./store/
//
// "uncached" runs with no bus listening (the session cache is off) or with
// the tenant cache emptied before every lookup.
func BenchmarkAuthenticate(b *testing.B) {
	for _, cached := range []bool{false, true} {
		name := "uncached"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			db, statements := openCountingDB(b, Config{Doorbell: DoorbellInTx})
			ctx := context.Background()
			tenant, err := db.CreateTenant(ctx, "bench", "Bench")
			if err != nil {
				b.Fatal(err)
			}
			_, token, err := db.Register(ctx, tenant.ID, Registration{Username: "reader", Password: testPassword})
			if err != nil {
				b.Fatal(err)
			}
			if cached {
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); NewBus(db, db.pool.p.Config().ConnString()).Run(runCtx, quietBus{}) }()
				b.Cleanup(func() { stop(); <-done })
				waitFor(b, "the session cache to come on", db.sessions.enabled)
			}
			for range 20 { // connections, prepared statements, the cache
				if _, err := db.Authenticate(ctx, tenant.ID, token); err != nil {
					b.Fatal(err)
				}
			}
			start := statements.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := db.Authenticate(ctx, tenant.ID, token); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(statements.Load()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

func BenchmarkTenantBySlug(b *testing.B) {
	for _, cached := range []bool{false, true} {
		name := "uncached"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			db, statements := openCountingDB(b, Config{Doorbell: DoorbellInTx})
			ctx := context.Background()
			if _, err := db.CreateTenant(ctx, "bench", "Bench"); err != nil {
				b.Fatal(err)
			}
			for range 20 {
				if _, err := db.TenantBySlug(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			start := statements.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if !cached {
					db.tenants.mu.Lock()
					clear(db.tenants.m.m)
					db.tenants.mu.Unlock()
				}
				if _, err := db.TenantBySlug(ctx, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(statements.Load()-start)/float64(b.N), "roundtrips/op")
		})
	}
}

// quietBus is a BusHandler that ignores everything.
type quietBus struct{}

func (quietBus) Connected(context.Context) error { return nil }
func (quietBus) Lost(error, time.Duration)       {}
func (quietBus) Doorbell(Notification)           {}
func (quietBus) Control(Control)                 {}
func (quietBus) Presence([]byte)                 {}
func (quietBus) Unreadable(string, error)        {}
