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

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
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
}

type presenceState struct {
	Op        string          `json:"op"`
	Room      string          `json:"room"`
	State     []presenceEntry `json:"state"`
	Anonymous int             `json:"anonymous"`
}

type presenceDelta struct {
	Op        string          `json:"op"`
	Room      string          `json:"room"`
	Joins     []presenceEntry `json:"joins"`
	Leaves    []presenceEntry `json:"leaves"`
	Anonymous int             `json:"anonymous"`
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
	var cur []byte
	for _, m := range msgs {
		if len(cur) > 0 && len(cur)+1+len(m) > maxFrame {
			frames = append(frames, cur)
			cur = nil
		}
		if len(cur) > 0 {
			cur = append(cur, '\n')
		}
		cur = append(cur, m...)
	}
	if len(cur) > 0 {
		frames = append(frames, cur)
	}
	return frames
}
