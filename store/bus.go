package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The bus between instances is Postgres LISTEN/NOTIFY on three channels:
// the doorbell of committed events (NotifyChannel), control commands
// (ControlChannel) and presence (PresenceChannel). Channel names and
// payload formats live here; the realtime side sees parsed messages.

// PresenceChannel carries presence and typing between instances. Its
// payloads belong to the realtime side; nothing on it is stored.
const PresenceChannel = "agora_presence"

// MaxPresencePayload is the largest presence payload the bus carries
// (NOTIFY payloads must stay under 8000 bytes).
const MaxPresencePayload = 7000

// ListenerApplicationName is the application_name of every instance's
// LISTEN connection, so operators (and tests) can find it in
// pg_stat_activity.
const ListenerApplicationName = "agora-listener"

// BusHandler receives what the bus carries, from one goroutine, in order.
type BusHandler interface {
	// Connected runs after every (re)connect, before any message that
	// arrives on the new connection is handed over. Messages sent while
	// no connection listened are lost: this is where to catch up on them.
	// An error drops the connection and retries.
	Connected(ctx context.Context) error
	// Lost reports that the connection failed or ended, and when the next
	// attempt is.
	Lost(err error, retryIn time.Duration)
	Doorbell(n Notification)
	Control(c Control)
	Presence(payload []byte)
	// Unreadable reports a message that could not be parsed.
	Unreadable(channel string, err error)
}

// Bus is the Postgres bus: one dedicated connection LISTENs, NOTIFYs go
// through the pool.
type Bus struct {
	db  *DB
	url string
}

// NewBus returns the bus of db, listening through its own connection to
// listenURL (a direct one: LISTEN does not survive a pooler in
// transaction mode).
func NewBus(db *DB, listenURL string) *Bus { return &Bus{db: db, url: listenURL} }

// Run listens until ctx ends, reconnecting after 100 ms, then twice as
// long after each failure up to 5 s, and again after 100 ms once a
// connection got as far as serving.
func (b *Bus) Run(ctx context.Context, h BusHandler) {
	const firstRetry, maxRetry = 100 * time.Millisecond, 5 * time.Second
	retry := firstRetry
	for ctx.Err() == nil {
		served, err := b.listen(ctx, h)
		if ctx.Err() != nil {
			return
		}
		if served {
			retry = firstRetry
		}
		h.Lost(err, retry)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, maxRetry)
	}
}

// listen serves one connection until it fails; served says whether it got
// past Connected.
func (b *Bus) listen(ctx context.Context, h BusHandler) (served bool, err error) {
	cc, err := pgx.ParseConfig(b.url)
	if err != nil {
		return false, fmt.Errorf("parse listen url: %w", err)
	}
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
	for _, ch := range []string{NotifyChannel, ControlChannel, PresenceChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	if err := h.Connected(ctx); err != nil {
		return false, err
	}
	// From here on every Control reaches this loop, so the session cache
	// may serve; it starts empty, and empties again when the connection
	// ends, before Run reports the loss.
	b.db.sessions.listening(true)
	defer b.db.sessions.listening(false)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case NotifyChannel:
			ns, err := ParseNotifications(n.Payload)
			if err != nil {
				h.Unreadable(n.Channel, err)
			}
			for _, n := range ns {
				h.Doorbell(n)
			}
		case ControlChannel:
			c, err := ParseControl(n.Payload)
			if err != nil {
				// Whatever it said, no cached session may outlive it.
				b.db.sessions.flush()
				h.Unreadable(n.Channel, err)
				continue
			}
			b.db.sessions.apply(c)
			h.Control(c)
		case PresenceChannel:
			h.Presence([]byte(n.Payload))
		}
	}
}

// PublishPresence sends a presence payload to every instance, this one
// included, outside any transaction.
func (b *Bus) PublishPresence(ctx context.Context, payload []byte) error {
	return b.db.notify(ctx, PresenceChannel, string(payload))
}

// PublishControl sends a control command to every instance at once. Store
// methods whose commits call for one (a ban, a logout) send it inside
// their transaction instead, so that a rollback sends nothing.
func (b *Bus) PublishControl(ctx context.Context, c Control) error {
	return b.db.notify(ctx, ControlChannel, c.line())
}

func (db *DB) notify(ctx context.Context, channel, payload string) error {
	_, err := db.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, payload)
	return mapErr(err, "notify")
}

// The doorbell's and control's payloads are lines of three fields
// separated by spaces: one word and two decimal numbers, the word at a
// place fixed per channel ("tenant room seq", "kind tenant id").

// formatLine writes a line with word at wordAt and the numbers, in
// order, in the other two places.
func formatLine(word string, nums [2]int64, wordAt int) string {
	var f [3]string
	j := 0
	for i := range f {
		if i == wordAt {
			f[i] = word
			continue
		}
		f[i] = strconv.FormatInt(nums[j], 10)
		j++
	}
	return f[0] + " " + f[1] + " " + f[2]
}

// parseLine reads a line written by formatLine; what names it in errors.
func parseLine(what, line string, wordAt int) (word string, nums [2]int64, err error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", nums, fmt.Errorf("%s %q: want 3 fields", what, line)
	}
	j := 0
	for i, s := range f {
		if i == wordAt {
			word = s
			continue
		}
		if nums[j], err = strconv.ParseInt(s, 10, 64); err != nil {
			return "", nums, fmt.Errorf("%s %q: bad number", what, line)
		}
		j++
	}
	return word, nums, nil
}
