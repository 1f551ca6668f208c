// Package memory holds in-process implementations of realtime's seams: a
// Bus between hubs of one process and a History kept in maps. They let the
// hub's rooms, fan-out and presence be tested without a database.
package memory

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"agora/store"
)

// Bus carries messages to every hub running on it, each hub's in the order
// they were published. As on Postgres, a message published while a hub is
// not connected is lost to it.
type Bus struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one hub's connection to the bus.
type subscriber struct {
	mu      sync.Mutex
	queue   []func(store.BusHandler)
	wake    chan struct{}
	dropped chan struct{}
}

func (s *subscriber) push(m func(store.BusHandler)) {
	s.mu.Lock()
	s.queue = append(s.queue, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*subscriber]struct{}{}} }

// errDropped is why a connection ended that Drop cut.
var errDropped = errors.New("memory bus: connection dropped")

// retry is how long a hub whose Connected failed waits to try again.
const retry = 10 * time.Millisecond

// Run connects h and hands it every message until ctx ends, reconnecting
// at once after Drop.
func (b *Bus) Run(ctx context.Context, h store.BusHandler) {
	for ctx.Err() == nil {
		s := &subscriber{wake: make(chan struct{}, 1), dropped: make(chan struct{})}
		b.mu.Lock()
		b.subs[s] = struct{}{}
		b.mu.Unlock()
		err := h.Connected(ctx)
		if err == nil {
			err = b.serve(ctx, s, h)
		}
		b.remove(s)
		if ctx.Err() != nil {
			return
		}
		wait := time.Duration(0)
		if !errors.Is(err, errDropped) {
			wait = retry
		}
		h.Lost(err, wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (b *Bus) serve(ctx context.Context, s *subscriber, h store.BusHandler) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.dropped:
			return errDropped
		case <-s.wake:
		}
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, m := range q {
			m(h)
		}
	}
}

func (b *Bus) remove(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, s)
}

// Drop cuts every hub's connection; each reconnects at once, and what is
// published until it has is lost to it.
func (b *Bus) Drop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		close(s.dropped)
		delete(b.subs, s)
	}
}

func (b *Bus) publish(m func(store.BusHandler)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(m)
	}
}

// Ring announces a room's new events, as the outbox's doorbell does after
// a commit.
func (b *Bus) Ring(n store.Notification) { b.publish(func(h store.BusHandler) { h.Doorbell(n) }) }

// PublishPresence sends payload to every hub.
func (b *Bus) PublishPresence(_ context.Context, payload []byte) error {
	p := bytes.Clone(payload)
	b.publish(func(h store.BusHandler) { h.Presence(p) })
	return nil
}

// PublishControl sends a control command to every hub.
func (b *Bus) PublishControl(_ context.Context, c store.Control) error {
	b.publish(func(h store.BusHandler) { h.Control(c) })
	return nil
}
