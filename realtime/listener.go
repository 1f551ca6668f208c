package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"agora/store"
)

// listener is the hub's side of the bus.
type listener struct{ h *Hub }

// Connected runs on every (re)connect of the bus, before any message of
// the new connection. Control commands sent while no one listened are
// lost, unlike events, which wait in History: so before anything is
// delivered again, every session whose standing changed meanwhile is
// closed; then every local room catches up from where it was delivered.
func (l listener) Connected(ctx context.Context) error {
	h := l.h
	if err := h.recheckStanding(ctx); err != nil {
		return fmt.Errorf("recheck sessions: %w", err)
	}
	h.linkGen.Add(1)
	h.listening.Store(true)
	h.log.Info().Msg("listener connected")
	for _, r := range h.rooms.all() {
		h.schedule(r, 0, true)
	}
	h.presence.hello(ctx)
	return nil
}

func (l listener) Lost(err error, retryIn time.Duration) {
	l.h.listening.Store(false)
	l.h.metrics.ListenerReconnects.Inc()
	l.h.log.Warn().Err(err).Dur("retry_in", retryIn).Msg("listener lost; reconnecting")
}

func (l listener) Doorbell(n store.Notification) { l.h.notify(n) }
func (l listener) Control(c store.Control)       { l.h.control(c) }

// Presence routes another instance's presence message: typing goes
// straight to the room's sessions, the rest to the replica.
func (l listener) Presence(payload []byte) {
	h := l.h
	var w wire
	if err := json.Unmarshal(payload, &w); err != nil {
		l.Unreadable(store.PresenceChannel, err)
		return
	}
	if w.I == h.cfg.InstanceID || w.I == "" {
		return
	}
	if w.K == kindTyping {
		if len(w.J) == 1 {
			h.relayTyping(w.room(), w.J[0])
		}
		return
	}
	snapshot, ask := h.presence.receive(w)
	if snapshot {
		h.spawn(func() { h.presence.snapshot(h.ctx) })
	}
	if ask {
		h.spawn(func() { h.presence.publish(h.ctx, wire{K: kindHello}) })
	}
}

func (l listener) Unreadable(channel string, err error) {
	l.h.log.Warn().Err(err).Str("channel", channel).Msg("unreadable bus message")
}

// control closes the sessions a control command names.
func (h *Hub) control(ctl store.Control) {
	var keep func(*client) bool
	var d Disconnect
	switch ctl.Kind {
	case store.ControlBan:
		keep = func(c *client) bool { return c.tenant.ID == ctl.TenantID && c.actor.UserID == ctl.ID }
		d = disconnects.Banned
	case store.ControlRevoke:
		keep = func(c *client) bool {
			return c.tenant.ID == ctl.TenantID && c.tokenID != 0 && c.tokenID == ctl.ID
		}
		d = disconnects.Revoked
	case store.ControlRefresh:
		// A session's role and ban state are fixed at connect; asking the
		// client to reconnect (1001, resume with since: nothing is lost)
		// is simpler and safer than patching them under its feet.
		keep = func(c *client) bool { return c.tenant.ID == ctl.TenantID && c.actor.UserID == ctl.ID }
		d = disconnects.Refresh
	default:
		h.log.Warn().Str("kind", ctl.Kind).Msg("unknown control command")
		return
	}
	h.forEachClient(keep, func(c *client) { c.standingChanged(d) })
}

// live reports whether the bus is connected on the connection it was on
// at gen: what was read since then may be delivered, as the standing of
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
		st, err := h.history.Standings(ctx, tenant, ids)
		if err != nil {
			return err
		}
		for _, c := range cs {
			s, ok := st[c.tokenID]
			switch {
			case !ok || !s.Valid || s.UserID != c.actor.UserID:
				c.standingChanged(disconnects.Revoked)
			case s.Banned && !c.actor.Banned:
				c.standingChanged(disconnects.Banned)
			case s.Banned != c.actor.Banned || s.Role != c.actor.Role:
				c.standingChanged(disconnects.Refresh)
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

// sweep compares every local room with its seq in History and reads what
// no doorbell announced. Announcements are batched after commit, so an
// instance that dies in between leaves events only this finds.
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
		seqs, err := h.history.RoomSeqs(ctx, tenant, names)
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
