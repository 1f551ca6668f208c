package store

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Pruner keeps every room's history within its retention, visiting each
// tenant in turn every Interval; on the way it flushes each tenant's
// queued post.activity, which an instance that died between a write and
// its flush left behind. Zero values take the defaults in brackets.
type Pruner struct {
	DB *DB
	// Retention [10,000 events per room, 7 days].
	Retention Retention
	// Interval [1m].
	Interval time.Duration
	Log      zerolog.Logger
}

func (p *Pruner) defaults() {
	if p.Retention.PerRoom <= 0 {
		p.Retention.PerRoom = 10000
	}
	if p.Retention.MaxAge <= 0 {
		p.Retention.MaxAge = 7 * 24 * time.Hour
	}
	if p.Interval <= 0 {
		p.Interval = time.Minute
	}
}

// Start runs the pruner on a goroutine of its own; stop ends it and waits
// for it.
func (p Pruner) Start() (stop func()) {
	p.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.prune(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// prune applies retention to every tenant once.
func (p *Pruner) prune(ctx context.Context) {
	ids, err := p.DB.TenantIDs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.Log.Warn().Err(err).Msg("prune: list tenants")
		}
		return
	}
	var total int64
	for _, id := range ids {
		if _, err := p.DB.FlushActivity(ctx, id); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.Log.Warn().Err(err).Int64("tenant_id", id).Msg("flush queued post activity")
		}
		n, err := p.DB.PruneEvents(ctx, id, p.Retention)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.Log.Warn().Err(err).Int64("tenant_id", id).Msg("prune events")
			continue
		}
		total += n
	}
	if total > 0 {
		p.Log.Info().Int64("events", total).Msg("pruned history")
	}
}
