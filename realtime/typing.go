package realtime

import (
	"encoding/json"
	"sync"
	"time"

	"agora/store"
)

// typingThrottle lets one typing relay per user and room through per
// interval.
type typingThrottle struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[typingKey]time.Time
}

type typingKey struct {
	room roomKey
	user int64
}

func newTypingThrottle(interval time.Duration) *typingThrottle {
	return &typingThrottle{interval: interval, last: map[typingKey]time.Time{}}
}

// allow reports whether k may be relayed at now, and if so counts it.
func (t *typingThrottle) allow(k typingKey, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[k]; ok && now.Sub(last) < t.interval {
		return false
	}
	t.last[k] = now
	for key, at := range t.last {
		if now.Sub(at) > t.interval {
			delete(t.last, key)
		}
	}
	return true
}

// typed relays "user is typing" to the room here and on every instance,
// at most once per user and room per TypingInterval. Never stored.
func (h *Hub) typed(c *client, name string) {
	if c.actor.Anonymous() {
		c.send(encodeError(store.CodeUnauthorized, "sign in to type", name))
		return
	}
	if c.actor.Banned {
		c.send(encodeError(store.CodeForbidden, "you are banned", name))
		return
	}
	c.mu.Lock()
	_, subscribed := c.rooms[name]
	c.mu.Unlock()
	if !subscribed {
		c.send(encodeError(store.CodeBadRequest, "subscribe to the room first", name))
		return
	}
	k := roomKey{c.tenant.ID, name}
	if !h.typing.allow(typingKey{k, c.actor.UserID}, time.Now()) {
		return
	}
	u := wireUser{ID: c.actor.UserID, Name: c.actor.Username}
	h.relayTyping(k, u)
	h.spawn(func() { h.presence.publish(h.ctx, wire{K: kindTyping, T: k.tenant, R: k.name, J: []wireUser{u}}) })
}

// relayTyping sends a typing message to the room's local sessions except
// the typist's own.
func (h *Hub) relayTyping(k roomKey, u wireUser) {
	b, _ := json.Marshal(typingMsg{Op: "typing", Room: k.name, User: store.UserRef{ID: u.ID, Username: u.Name}})
	r := h.rooms.get(k)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.subs {
		if c.actor.UserID != u.ID {
			c.send(b)
		}
	}
}
