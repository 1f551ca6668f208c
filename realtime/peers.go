package realtime

// Peers is how many other instances this one hears from: each counts from
// its first message (hello, heartbeat or presence) until it says goodbye
// or its heartbeats have been missing for HeartbeatTimeout (checked every
// Heartbeat). Rate limits split their budgets by it. It takes the
// presence lock: read it now and then, not on every request.
func (h *Hub) Peers() int {
	h.presence.mu.Lock()
	defer h.presence.mu.Unlock()
	return len(h.presence.peers.peers)
}
