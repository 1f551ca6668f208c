package realtime

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"agora/store"
)

// keys returns the sorted top-level keys of a JSON object, failing on
// anything that is not one.
func keys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", b, err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestDecodeInbound(t *testing.T) {
	valid := []struct {
		in   string
		want inbound
	}{
		{`{"op":"subscribe","room":"tenant"}`, inbound{Op: opSubscribe, Room: "tenant"}},
		{`{"op":"subscribe","room":"board:7","since":0}`, inbound{Op: opSubscribe, Room: "board:7", Since: ptrTo(int64(0))}},
		{`{"op":"subscribe","room":"post:17","since":41}`, inbound{Op: opSubscribe, Room: "post:17", Since: ptrTo(int64(41))}},
		{`{"op":"subscribe","room":"post:17","since":null}`, inbound{Op: opSubscribe, Room: "post:17"}},
		{` {"op":"unsubscribe","room":"post:17"} ` + "\n", inbound{Op: opUnsubscribe, Room: "post:17"}},
		{`{"op":"typing","room":"post:9223372036854775807"}`, inbound{Op: opTyping, Room: "post:9223372036854775807"}},
		// Fields the protocol does not know are ignored, for forward
		// compatibility of clients.
		{`{"op":"typing","room":"post:1","extra":[1,2]}`, inbound{Op: opTyping, Room: "post:1"}},
		{`{"op":"ping"}`, inbound{Op: opPing}},
		{`{"op":"ping","since":null,"at":123}`, inbound{Op: opPing}},
	}
	for _, tc := range valid {
		got, err := decodeInbound([]byte(tc.in))
		if err != nil {
			t.Errorf("decodeInbound(%s): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("decodeInbound(%s) = %+v, want %+v", tc.in, got, tc.want)
		}
	}

	invalid := []string{
		``, ` `, `not json`, `{`, `[]`, `"subscribe"`, `42`, `null`, `{}`,
		`{"op":""}`, `{"op":"dance","room":"tenant"}`, `{"op":"SUBSCRIBE","room":"tenant"}`,
		`{"op":"subscribe"}`, `{"op":"subscribe","room":""}`, `{"op":"subscribe","room":"lobby"}`,
		`{"op":"subscribe","room":"Tenant"}`, `{"op":"subscribe","room":"board:"}`,
		`{"op":"subscribe","room":"board:0"}`, `{"op":"subscribe","room":"board:-1"}`,
		`{"op":"subscribe","room":"post:01"}`, `{"op":"subscribe","room":"post:+1"}`,
		`{"op":"subscribe","room":"post:1x"}`, `{"op":"subscribe","room":"comment:1"}`,
		`{"op":"subscribe","room":"post:99999999999999999999"}`,
		`{"op":"subscribe","room":7}`, `{"op":1,"room":"tenant"}`,
		`{"op":"subscribe","room":"tenant","since":-1}`,
		`{"op":"subscribe","room":"tenant","since":1.5}`,
		`{"op":"subscribe","room":"tenant","since":"3"}`,
		`{"op":"unsubscribe","room":"tenant","since":3}`,
		`{"op":"typing","room":"tenant","since":0}`,
		`{"op":"ping","room":"tenant"}`, `{"op":"ping","since":0}`, `{"op":"PING"}`,
		`{"op":"ping"}{"op":"ping"}`,
		// A frame carries exactly one message.
		`{"op":"subscribe","room":"tenant"}{"op":"subscribe","room":"tenant"}`,
		`{"op":"subscribe","room":"tenant"}` + "\n" + `{"op":"unsubscribe","room":"tenant"}`,
		`{"op":"subscribe","room":"tenant"} x`,
		`{"op":"subscribe","room":"tenant"}}`,
		`{"op":"subscribe","room":"tenant"}]`,
	}
	for _, in := range invalid {
		if got, err := decodeInbound([]byte(in)); err == nil {
			t.Errorf("decodeInbound(%q) = %+v, want an error", in, got)
		} else if err.Error() == "" {
			t.Errorf("decodeInbound(%q): empty error message", in)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestEncodeEvent(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	data := json.RawMessage(`{"id":"5","body":"a \"quoted\" line\u2028 and <html>"}`)
	e := store.Event{TenantID: 1, Room: "post:17", Seq: 42, Type: "comment.created", Payload: data, CreatedAt: at}
	b := encodeEvent(e, data)

	if got, want := keys(t, b), []string{"at", "data", "op", "room", "seq", "type"}; !slices.Equal(got, want) {
		t.Fatalf("event keys = %v, want %v: %s", got, want, b)
	}
	var m struct {
		Op   string          `json:"op"`
		Room string          `json:"room"`
		Seq  int64           `json:"seq"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
		At   string          `json:"at"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Op != "event" || m.Room != "post:17" || m.Seq != 42 || m.Type != "comment.created" {
		t.Fatalf("event = %s", b)
	}
	if !bytes.Equal(m.Data, data) {
		t.Fatalf("data = %s, want the payload byte for byte: %s", m.Data, data)
	}
	if m.At != "2024-05-06T05:08:09.123456789Z" {
		t.Fatalf("at = %q, want RFC 3339 in UTC", m.At)
	}
	if bytes.ContainsAny(b, "\n") {
		t.Fatalf("an event must not contain a newline (frames are split on them): %q", b)
	}

	// Room and type are escaped, never pasted raw.
	odd := store.Event{Room: "post:1\"\n", Seq: 1, Type: "x\\y", CreatedAt: at}
	b = encodeEvent(odd, json.RawMessage(`{}`))
	var back struct{ Room, Type string }
	if err := json.Unmarshal(b, &back); err != nil || back.Room != odd.Room || back.Type != odd.Type {
		t.Fatalf("encodeEvent with odd strings = %s (err %v)", b, err)
	}
}

func TestEncodeControlMessages(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{string(encodeSubscribed("post:17", 41)), `{"op":"subscribed","room":"post:17","seq":41}`},
		{string(encodeSubscribed("tenant", 0)), `{"op":"subscribed","room":"tenant","seq":0}`},
		{string(encodeReset("board:3", 9)), `{"op":"reset","room":"board:3","seq":9}`},
		{string(encodeError(store.CodeBadRequest, "room is required", "")), `{"op":"error","code":"bad_request","message":"room is required"}`},
		{string(encodeError(store.CodeNotFound, "room not found", "post:1")), `{"op":"error","code":"not_found","message":"room not found","room":"post:1"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	b, _ := json.Marshal(typingMsg{Op: "typing", Room: "post:1", User: store.UserRef{ID: 3, Username: "ann"}})
	if want := `{"op":"typing","room":"post:1","user":{"id":"3","username":"ann"}}`; string(b) != want {
		t.Errorf("typing = %s, want %s", b, want)
	}
}

func TestPackBoundaries(t *testing.T) {
	msg := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	for _, tc := range []struct {
		name  string
		sizes []int
		max   int
		want  [][]int // message indexes per frame
	}{
		{"none", nil, 10, nil},
		{"one", []int{3}, 10, [][]int{{0}}},
		{"exactly full", []int{4, 5}, 10, [][]int{{0, 1}}}, // 4+1+5
		{"one byte over", []int{5, 5}, 10, [][]int{{0}, {1}}},
		{"oversized alone", []int{2, 25, 2}, 10, [][]int{{0}, {1}, {2}}},
		{"oversized first", []int{25, 2, 3}, 10, [][]int{{0}, {1, 2}}},
		{"exactly max", []int{10, 10}, 10, [][]int{{0}, {1}}},
		{"greedy", []int{3, 3, 3, 3, 3}, 11, [][]int{{0, 1, 2}, {3, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs [][]byte
			for i, n := range tc.sizes {
				msgs = append(msgs, msg(n, byte('a'+i)))
			}
			frames := pack(msgs, tc.max)
			var want [][]byte
			for _, idx := range tc.want {
				var parts [][]byte
				for _, i := range idx {
					parts = append(parts, msgs[i])
				}
				want = append(want, bytes.Join(parts, []byte("\n")))
			}
			if !reflect.DeepEqual(frames, want) {
				t.Fatalf("pack(%v, %d) = %q, want %q", tc.sizes, tc.max, frames, want)
			}
		})
	}
}

// TestPackProperties checks random batches: messages survive whole and in
// order, frames respect the limit unless one message alone exceeds it, and
// no frame could have taken the next message too.
func TestPackProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 2000 {
		maxFrame := 1 + rng.IntN(300)
		msgs := make([][]byte, rng.IntN(40))
		for i := range msgs {
			msgs[i] = []byte(strings.Repeat(string(rune('a'+i%26)), 1+rng.IntN(120)))
		}
		orig := make([][]byte, len(msgs))
		for i, m := range msgs {
			orig[i] = bytes.Clone(m)
		}
		frames := pack(msgs, maxFrame)

		var got [][]byte
		for i, f := range frames {
			parts := bytes.Split(f, []byte("\n"))
			if len(f) > maxFrame && len(parts) > 1 {
				t.Fatalf("iter %d: frame %d is %d bytes > %d with %d messages", iter, i, len(f), maxFrame, len(parts))
			}
			if i+1 < len(frames) {
				next := bytes.SplitN(frames[i+1], []byte("\n"), 2)[0]
				if len(f)+1+len(next) <= maxFrame {
					t.Fatalf("iter %d: frame %d (%d bytes) had room for the next message (%d bytes, max %d)", iter, i, len(f), len(next), maxFrame)
				}
			}
			got = append(got, parts...)
		}
		if len(orig) == 0 {
			if len(frames) != 0 {
				t.Fatalf("iter %d: no messages gave frames %q", iter, frames)
			}
			continue
		}
		if !reflect.DeepEqual(got, orig) {
			t.Fatalf("iter %d: messages after split differ from the input", iter)
		}
		for i := range msgs {
			if !bytes.Equal(msgs[i], orig[i]) {
				t.Fatalf("iter %d: pack modified its input message %d", iter, i)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	created := json.RawMessage(`{"id":"5","post_id":"2","author":{"id":"1","username":"ann"},"body":"secret words","version":1,"hidden":false}`)
	got := redact(created)
	if k, want := keys(t, got), []string{"hidden", "id", "post_id", "version"}; !slices.Equal(k, want) {
		t.Fatalf("redacted created keys = %v, want %v: %s", k, want, got)
	}
	if bytes.Contains(got, []byte("secret")) || bytes.Contains(got, []byte("ann")) {
		t.Fatalf("redacted payload leaks text: %s", got)
	}
	var c struct {
		ID     string `json:"id"`
		Hidden bool   `json:"hidden"`
	}
	if err := json.Unmarshal(got, &c); err != nil || c.ID != "5" || !c.Hidden {
		t.Fatalf("redacted created = %s", got)
	}

	diff := json.RawMessage(`{"id":"5","version":3,"changes":{"body":"new secret","hidden":true}}`)
	got = redact(diff)
	if k, want := keys(t, got), []string{"changes", "id", "version"}; !slices.Equal(k, want) {
		t.Fatalf("redacted diff keys = %v, want %v: %s", k, want, got)
	}
	if bytes.Contains(got, []byte("secret")) || !bytes.Contains(got, []byte(`"changes":{"hidden":true}`)) {
		t.Fatalf("redacted diff = %s", got)
	}
	if got := redact(json.RawMessage(`not json`)); string(got) != `{}` {
		t.Fatalf("redact(garbage) = %s, want {}", got)
	}
}

// TestConfigDefaults pins the limits API.md and the issue promise.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.defaults()
	if c.MaxMessage != 4096 || c.MaxRooms != 100 || c.TypingInterval != 2*time.Second ||
		c.InboundRate != 20 || c.InboundBurst != 40 || c.PresenceFlush != 250*time.Millisecond ||
		c.MaxPending != 4<<20 || c.PingInterval != 20*time.Second || c.PongTimeout != 30*time.Second {
		t.Fatalf("defaults = %+v", c)
	}
}
