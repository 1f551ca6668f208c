package realtime

import (
	"context"

	"agora/store"
)

// History is what the realtime side reads of the event outbox and of the
// sessions' standing. *store.DB is one; memory.History another, for tests
// without a database.
type History interface {
	// RoomExists checks that room names something actor may see.
	RoomExists(ctx context.Context, tenantID int64, actor store.Actor, room string) error
	// RoomState is where the room's history stands: its latest seq and
	// the oldest one still kept.
	RoomState(ctx context.Context, tenantID int64, room string) (store.RoomState, error)
	// EventsAfter returns up to limit events of room after seq, in order.
	EventsAfter(ctx context.Context, tenantID int64, room string, after int64, limit int) ([]store.Event, error)
	// RoomSeqs returns the latest seq of each named room that has one.
	RoomSeqs(ctx context.Context, tenantID int64, rooms []string) (map[string]int64, error)
	// Standings says how each session token stands now; tokens that no
	// longer exist are absent.
	Standings(ctx context.Context, tenantID int64, tokenIDs []int64) (map[int64]store.Standing, error)
}

// Bus carries messages between instances: the doorbell of committed
// events, control commands and presence. Messages published while an
// instance is not connected are lost to it; its handler's Connected runs
// after every (re)connect so it can catch up from History. *store.Bus is
// one (Postgres LISTEN/NOTIFY); memory.Bus another, for tests.
type Bus interface {
	// Run hands every message to h until ctx ends, reconnecting as needed.
	Run(ctx context.Context, h store.BusHandler)
	// PublishPresence sends a presence payload of at most
	// store.MaxPresencePayload bytes to every instance, this one included.
	PublishPresence(ctx context.Context, payload []byte) error
	// PublishControl sends a control command to every instance.
	PublishControl(ctx context.Context, c store.Control) error
}
