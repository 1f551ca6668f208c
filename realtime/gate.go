package realtime

import "sync"

// gate lets a bounded number of sessions have a frame being written at
// once. A fan-out to a room of 10,000 would otherwise make 10,000 write
// pumps runnable at the same moment, and on a busy server every other
// goroutine (the writes that produce the events, a database round trip
// each) would wait its turn behind all of them. Sessions beyond the bound
// wait in line, their messages pending, and get them packed into one
// frame when their turn comes: the busier the server, the more messages
// per frame, the fewer writes per delivery.
type gate struct {
	mu      sync.Mutex
	free    int
	waiting []*client // first come, first served
	head    int
}

func newGate(n int) *gate { return &gate{free: n} }

// acquire takes a slot if one is free.
func (g *gate) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free > 0 {
		g.free--
		return true
	}
	return false
}

// wait puts c in line; if a slot freed up meanwhile, c gets it at once.
func (g *gate) wait(c *client) {
	g.mu.Lock()
	if g.free > 0 {
		g.free--
		g.mu.Unlock()
		if !c.turn() {
			g.release()
		}
		return
	}
	g.waiting = append(g.waiting, c)
	g.mu.Unlock()
}

// release gives a slot to the first in line that still wants it, or
// back.
func (g *gate) release() {
	for {
		g.mu.Lock()
		if g.head == len(g.waiting) {
			g.free++
			g.mu.Unlock()
			return
		}
		c := g.waiting[g.head]
		g.waiting[g.head] = nil
		g.head++
		if g.head == len(g.waiting) {
			// Empty: start over, so the line's array does not grow forever.
			g.waiting, g.head = g.waiting[:0], 0
		}
		g.mu.Unlock()
		if c.turn() {
			return
		}
	}
}
