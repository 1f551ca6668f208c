package realtime

import (
	"strconv"
	"testing"
	"time"

	"agora/store"
)

// BenchmarkPresenceJoinStorm is a join storm's presence work in one room,
// without sockets: n distinct users join, each gets its state, and a flush
// window closes every 100 joins (400 joins a second at the default 250 ms).
// presence-B/client is what every client of the room received on average
// (its state, and every flush's message while it was in the room): it
// stays flat from 1,500 to 3,000 users, and ns/join with it, where listing
// every join to everyone made both grow with the room.
func BenchmarkPresenceJoinStorm(b *testing.B) {
	for _, n := range []int{1500, 3000} {
		b.Run("users="+strconv.Itoa(n), func(b *testing.B) {
			clients := make([]*client, n)
			for i := range clients {
				id := int64(i + 1)
				clients[i] = &client{actor: store.Actor{UserID: id, Username: "load" + strconv.FormatInt(id, 10)}}
			}
			k := roomKey{1, "post:1"}
			var bytes int64
			b.ReportAllocs()
			for b.Loop() {
				p := newPresence(&Hub{cfg: Config{PresenceCountEvery: time.Second}, rooms: newIndex(), metrics: NewMetrics(nil)})
				now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				for i, c := range clients {
					p.join(c, k)
					bytes += int64(len(p.state(k, c)))
					if (i+1)%100 == 0 {
						now = now.Add(250 * time.Millisecond)
						p.mu.Lock()
						frame, next, ok := p.message(k, p.shown[k], now)
						if next != nil {
							p.shown[k] = next
						}
						p.mu.Unlock()
						if ok {
							bytes += int64(len(frame)) * int64(i+1)
						}
					}
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N)/float64(n), "presence-B/client")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/join")
		})
	}
}
