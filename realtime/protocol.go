package realtime

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"agora/store"
)

// Client ops.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opTyping      = "typing"
	// opPing is an application-level ping for clients (browsers) that
	// cannot see WebSocket pings: answered with pong, nothing else.
	opPing = "ping"
)

// pongFrame answers every ping; it never changes.
var pongFrame = []byte(`{"op":"pong"}`)

// inbound is one client message.
type inbound struct {
	Op    string `json:"op"`
	Room  string `json:"room"`
	Since *int64 `json:"since"`
}

// decodeInbound parses and checks one client frame. Its errors are safe to
// send back in an error frame.
func decodeInbound(b []byte) (inbound, error) {
	var in inbound
	// Unmarshal, not a Decoder: it refuses anything after the object
	// (Decoder.More misses a trailing "}" or "]"), so a frame carries
	// exactly one message.
	if err := json.Unmarshal(b, &in); err != nil {
		return in, errors.New("message must be exactly one JSON object with an op")
	}
	switch in.Op {
	case opSubscribe, opUnsubscribe, opTyping:
	case opPing:
		if in.Room != "" || in.Since != nil {
			return in, errors.New("ping takes no room and no since")
		}
		return in, nil
	case "":
		return in, errors.New("op is required")
	default:
		return in, errors.New("unknown op " + strconv.Quote(in.Op))
	}
	if in.Room == "" {
		return in, errors.New("room is required")
	}
	if _, _, err := store.ParseRoom(in.Room); err != nil {
		return in, errors.New("unknown room " + strconv.Quote(in.Room) + ": want tenant, board:{id}, post:{id} or user:{id}")
	}
	if in.Since != nil && (*in.Since < 0 || in.Op != opSubscribe) {
		return in, errors.New("since must be a non-negative seq on subscribe")
	}
	return in, nil
}

// Server messages are built by hand from parts that are already JSON, so
// an event's payload is never decoded and re-encoded on the hot path.

// appendString appends s as a JSON string, exactly as json.Marshal writes
// it, without its allocation for the plain ASCII of names and rooms.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// encodeEvent renders one event message; the same bytes go to every
// subscriber of the room.
func encodeEvent(e store.Event, data json.RawMessage) []byte {
	b := make([]byte, 0, 96+len(e.Room)+len(e.Type)+len(data))
	b = append(b, `{"op":"event","room":`...)
	b = appendString(b, e.Room)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, `,"at":"`...)
	b = e.CreatedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b
}

func encodeSubscribed(room string, seq int64) []byte {
	b := append([]byte(`{"op":"subscribed","room":`), appendString(nil, room)...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, '}')
}

func encodeReset(room string, seq int64) []byte {
	b := append([]byte(`{"op":"reset","room":`), appendString(nil, room)...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	return append(b, '}')
}

type errorMsg struct {
	Op      string `json:"op"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Room    string `json:"room,omitempty"`
}

func encodeError(code store.Code, msg, room string) []byte {
	b, _ := json.Marshal(errorMsg{Op: "error", Code: string(code), Message: msg, Room: room})
	return b
}

type presenceEntry struct {
	User  store.UserRef `json:"user"`
	Since time.Time     `json:"since"`
	// raw is the entry already encoded, when it was kept.
	raw []byte
}

func appendPresenceEntry(b []byte, e presenceEntry) []byte {
	if e.raw != nil {
		return append(b, e.raw...)
	}
	b = append(b, `{"user":{"id":"`...)
	b = strconv.AppendInt(b, e.User.ID, 10)
	b = append(b, `","username":`...)
	b = appendString(b, e.User.Username)
	b = append(b, `},"since":"`...)
	b = e.Since.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// Presence messages are built by hand too: a state lists up to 100 users
// and goes to every newcomer of a room.

func appendPresenceEntries(b []byte, es []presenceEntry) []byte {
	b = append(b, '[')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPresenceEntry(b, e)
	}
	return append(b, ']')
}

func appendPresenceHead(b []byte, room string) []byte {
	b = append(b, `{"op":"presence","room":`...)
	return appendString(b, room)
}

func appendPresenceCounts(b []byte, count, anon int) []byte {
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(count), 10)
	b = append(b, `,"anonymous":`...)
	b = strconv.AppendInt(b, int64(anon), 10)
	return append(b, '}')
}

func encodePresenceState(room string, state []presenceEntry, truncated bool, count, anon int) []byte {
	b := make([]byte, 0, 96+len(state)*96)
	b = appendPresenceHead(b, room)
	b = append(b, `,"state":`...)
	b = appendPresenceEntries(b, state)
	if truncated {
		b = append(b, `,"truncated":true`...)
	}
	return appendPresenceCounts(b, count, anon)
}

func encodePresenceDelta(room string, joins, leaves []presenceEntry, count, anon int) []byte {
	b := make([]byte, 0, 112+(len(joins)+len(leaves))*96)
	b = appendPresenceHead(b, room)
	b = append(b, `,"joins":`...)
	b = appendPresenceEntries(b, joins)
	b = append(b, `,"leaves":`...)
	b = appendPresenceEntries(b, leaves)
	return appendPresenceCounts(b, count, anon)
}

// encodePresenceCount is a large room's presence: its numbers only.
func encodePresenceCount(room string, count, anon int) []byte {
	return appendPresenceCounts(appendPresenceHead(make([]byte, 0, 80), room), count, anon)
}

type typingMsg struct {
	Op   string        `json:"op"`
	Room string        `json:"room"`
	User store.UserRef `json:"user"`
}

// pack joins messages into frames of at most maxFrame bytes (a single
// larger message gets a frame of its own), newline-separated as the
// protocol allows.
func pack(msgs [][]byte, maxFrame int) [][]byte {
	var frames [][]byte
	for i := 0; i < len(msgs); {
		// The frame's messages first, so it is allocated once.
		j, size := i+1, len(msgs[i])
		for j < len(msgs) && size+1+len(msgs[j]) <= maxFrame {
			size += 1 + len(msgs[j])
			j++
		}
		if j == i+1 {
			frames = append(frames, msgs[i])
			i = j
			continue
		}
		f := make([]byte, 0, size)
		for k := i; k < j; k++ {
			if k > i {
				f = append(f, '\n')
			}
			f = append(f, msgs[k]...)
		}
		frames = append(frames, f)
		i = j
	}
	return frames
}
