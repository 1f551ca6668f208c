package realtime

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store"
)

// ListenerApplicationName is the application_name of every instance's
// LISTEN connection.
const ListenerApplicationName = "agora-listener"

// listen keeps one dedicated connection LISTENing on the event doorbell,
// the control channel and presence, reconnecting with backoff. After every
// (re)connect it re-reads every local room from its last delivered seq, so
// notifications lost while it was down cost latency, never events.
func (h *Hub) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.listenOnce(ctx)
		h.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		h.metrics.ListenerReconnects.Inc()
		h.log.Warn().Err(err).Dur("retry_in", backoff).Msg("listener lost; reconnecting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (h *Hub) listenOnce(ctx context.Context) error {
	cc, err := pgx.ParseConfig(h.cfg.ListenURL)
	if err != nil {
		return fmt.Errorf("parse listen url: %w", err)
	}
	// Named, so operators (and tests) can find it in pg_stat_activity.
	cc.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{store.NotifyChannel, store.ControlChannel, presenceChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	h.listening.Store(true)
	h.log.Info().Msg("listener connected")
	// Catch up: anything committed while no one listened is in events.
	for _, r := range h.rooms.all() {
		h.schedule(r, 0, true)
	}
	h.presence.hello(ctx)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		switch n.Channel {
		case store.NotifyChannel:
			evs, err := store.ParseNotifications(n.Payload)
			if err != nil {
				h.log.Warn().Err(err).Msg("bad event notification")
			}
			for _, ev := range evs {
				h.notify(ev)
			}
		case store.ControlChannel:
			ctl, err := store.ParseControl(n.Payload)
			if err != nil {
				h.log.Warn().Err(err).Msg("bad control notification")
				continue
			}
			h.control(ctx, ctl)
		case presenceChannel:
			h.presence.receive(n.Payload)
		}
	}
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// prune applies history retention to every tenant.
func (h *Hub) prune(ctx context.Context) {
	ids, err := h.db.TenantIDs(ctx)
	if err != nil {
		h.log.Warn().Err(err).Msg("prune: list tenants")
		return
	}
	var total int64
	for _, id := range ids {
		n, err := h.db.PruneEvents(ctx, id, h.cfg.Retention)
		if err != nil {
			h.log.Warn().Err(err).Int64("tenant_id", id).Msg("prune events")
			continue
		}
		total += n
	}
	if total > 0 {
		h.log.Info().Int64("events", total).Msg("pruned history")
	}
}

// sweep compares every local room with its seq in the database and reads
// what no doorbell announced. Announcements are batched after commit, so
// an instance that dies in between leaves events only this finds.
func (h *Hub) sweep(ctx context.Context) {
	byTenant := map[int64][]*room{}
	for _, r := range h.rooms.all() {
		byTenant[r.key.tenant] = append(byTenant[r.key.tenant], r)
	}
	for tenant, rooms := range byTenant {
		names := make([]string, len(rooms))
		for i, r := range rooms {
			names[i] = r.key.name
		}
		seqs, err := h.db.RoomSeqs(ctx, tenant, names)
		if err != nil {
			h.log.Warn().Err(err).Msg("sweep rooms")
			continue
		}
		for _, r := range rooms {
			if seq := seqs[r.key.name]; seq > 0 {
				h.schedule(r, seq, false)
			}
		}
	}
}
