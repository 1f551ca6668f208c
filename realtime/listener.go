package realtime

import (
	"context"
	"fmt"
	"time"

	"github.com/gorilla/websocket"
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
	const firstRetry, maxRetry = 100 * time.Millisecond, 5 * time.Second
	backoff := firstRetry
	for ctx.Err() == nil {
		connected, err := h.listenOnce(ctx)
		h.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		// Each outage starts over at the first delay: an instance that
		// was connected is worth retrying quickly.
		if connected {
			backoff = firstRetry
		}
		h.metrics.ListenerReconnects.Inc()
		h.log.Warn().Err(err).Dur("retry_in", backoff).Msg("listener lost; reconnecting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRetry)
	}
}

// listenOnce serves one LISTEN connection until it fails; connected says
// whether it got as far as serving.
func (h *Hub) listenOnce(ctx context.Context) (connected bool, err error) {
	cc, err := pgx.ParseConfig(h.cfg.ListenURL)
	if err != nil {
		return false, fmt.Errorf("parse listen url: %w", err)
	}
	// Named, so operators (and tests) can find it in pg_stat_activity.
	cc.RuntimeParams["application_name"] = ListenerApplicationName
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	for _, ch := range []string{store.NotifyChannel, store.ControlChannel, presenceChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	// Control notifications sent while no one listened are lost, unlike
	// events, which wait in the outbox: before anything is delivered
	// again, every session whose standing changed meanwhile is closed.
	if err := h.recheckStanding(ctx); err != nil {
		return false, fmt.Errorf("recheck sessions: %w", err)
	}
	h.linkGen.Add(1)
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
			return true, err
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

// live reports whether the listener is connected on the connection it was
// on at gen: what was read since then may be delivered, as the standing of
// every session was current when it connected.
func (h *Hub) live(gen uint64) bool {
	return h.listening.Load() && h.linkGen.Load() == gen
}

// recheckStanding closes the sessions whose token, role or ban changed
// since they opened, with one query per tenant.
func (h *Hub) recheckStanding(ctx context.Context) error {
	byTenant := map[int64][]*client{}
	h.forEachClient(func(c *client) bool { return c.tokenID != 0 }, func(c *client) {
		byTenant[c.tenant.ID] = append(byTenant[c.tenant.ID], c)
	})
	for tenant, cs := range byTenant {
		ids := make([]int64, len(cs))
		for i, c := range cs {
			ids[i] = c.tokenID
		}
		st, err := h.db.Standings(ctx, tenant, ids)
		if err != nil {
			return err
		}
		for _, c := range cs {
			s, ok := st[c.tokenID]
			switch {
			case !ok || !s.Valid || s.UserID != c.actor.UserID:
				c.stop(websocket.ClosePolicyViolation, "token revoked")
			case s.Banned && !c.actor.Banned:
				c.stop(websocket.ClosePolicyViolation, "banned")
			case s.Banned != c.actor.Banned || s.Role != c.actor.Role:
				c.stop(websocket.CloseGoingAway, "your role changed: reconnect")
			}
		}
	}
	return nil
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
	if !h.listening.Load() {
		return // the reconnect catches every room up
	}
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
