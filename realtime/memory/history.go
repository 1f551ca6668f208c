package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"agora/store"
)

// History is an outbox and a table of session tokens kept in maps.
type History struct {
	mu     sync.Mutex
	rooms  map[roomRef]*roomLog
	tokens map[tokenRef]store.Standing
}

type roomRef struct {
	tenant int64
	name   string
}

type tokenRef struct{ tenant, token int64 }

// roomLog is a room's seq and the events still kept, oldest first.
type roomLog struct {
	seq    int64
	events []store.Event
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{rooms: map[roomRef]*roomLog{}, tokens: map[tokenRef]store.Standing{}}
}

// Append numbers e as the next event of its room (e.TenantID, e.Room),
// stamps it if it has no time, keeps it and returns it. Announcing it is
// the caller's business (Bus.Ring), as with the real doorbell.
func (h *History) Append(e store.Event) store.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := roomRef{e.TenantID, e.Room}
	l := h.rooms[k]
	if l == nil {
		l = &roomLog{}
		h.rooms[k] = l
	}
	l.seq++
	e.Seq = l.seq
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now().UTC()
	}
	l.events = append(l.events, e)
	return e
}

// Prune keeps only the newest keep events of a room.
func (h *History) Prune(tenantID int64, room string, keep int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.rooms[roomRef{tenantID, room}]; l != nil && len(l.events) > keep {
		l.events = append([]store.Event(nil), l.events[len(l.events)-keep:]...)
	}
}

// SetHidden sets the hidden state of the room's events that match, as
// hiding a post or comment does to History's answers: Hidden is the
// object's state now, not when its events were written.
func (h *History) SetHidden(tenantID int64, room string, match func(store.Event) bool, hidden bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l := h.rooms[roomRef{tenantID, room}]; l != nil {
		for i := range l.events {
			if match(l.events[i]) {
				l.events[i].Hidden = hidden
			}
		}
	}
}

// SetStanding says how a session token stands from now on.
func (h *History) SetStanding(tenantID, tokenID int64, s store.Standing) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokens[tokenRef{tenantID, tokenID}] = s
}

// RoomExists: the tenant room always does; a board or post room once
// something happened in it.
func (h *History) RoomExists(_ context.Context, tenantID int64, _ store.Actor, room string) error {
	kind, _, err := store.ParseRoom(room)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if kind != store.RoomTenant && h.rooms[roomRef{tenantID, room}] == nil {
		return store.Errorf(store.CodeNotFound, "room %s not found", room)
	}
	return nil
}

func (h *History) RoomState(_ context.Context, tenantID int64, room string) (store.RoomState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var st store.RoomState
	if l := h.rooms[roomRef{tenantID, room}]; l != nil {
		st.Seq = l.seq
		if len(l.events) > 0 {
			st.Oldest = l.events[0].Seq
		}
	}
	return st, nil
}

func (h *History) EventsAfter(_ context.Context, tenantID int64, room string, after int64, limit int) ([]store.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.rooms[roomRef{tenantID, room}]
	if l == nil {
		return nil, nil
	}
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].Seq > after })
	n := min(limit, len(l.events)-i)
	return append([]store.Event(nil), l.events[i:i+n]...), nil
}

func (h *History) RoomSeqs(_ context.Context, tenantID int64, rooms []string) (map[string]int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int64{}
	for _, r := range rooms {
		if l := h.rooms[roomRef{tenantID, r}]; l != nil {
			out[r] = l.seq
		}
	}
	return out, nil
}

func (h *History) Standings(_ context.Context, tenantID int64, tokenIDs []int64) (map[int64]store.Standing, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int64]store.Standing{}
	for _, id := range tokenIDs {
		if s, ok := h.tokens[tokenRef{tenantID, id}]; ok {
			out[id] = s
		}
	}
	return out, nil
}
