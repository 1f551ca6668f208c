package realtime

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"agora/store"
)

// FuzzDecodeInbound: whatever a client sends, the decoder does not panic,
// and what it accepts is one of the three ops on a room name the store
// can parse, with since only on subscribe and never negative. Seeds are
// here and in testdata/fuzz/FuzzDecodeInbound.
//
//	go test -run XXX -fuzz FuzzDecodeInbound -fuzztime 10s ./realtime/
func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","room":"tenant"}`,
		`{"op":"subscribe","room":"board:1","since":0}`,
		`{"op":"subscribe","room":"post:17","since":41}`,
		`{"op":"unsubscribe","room":"post:17"}`,
		`{"op":"typing","room":"post:17"}`,
		`{"op":"ping"}`,
		`{"op":"ping","room":"tenant"}`,
		`{"op":"subscribe","room":"post:17","since":-1}`,
		`{"op":"subscribe","room":"post:017"}`,
		`{"op":"subscribe","room":"post:9223372036854775808"}`,
		`{"op":"unsubscribe","room":"tenant","since":1}`,
		`{"op":"dance","room":"tenant"}`,
		`{"OP":"typing","Room":"board:2"}`,
		`{"op":"subscribe","room":"tenant"}{"op":"typing","room":"tenant"}`,
		`{"op":"subscribe","room":"tenant"}}`,
		`{"op":"subscribe","room":"tenant","since":1e3}`,
		`{"op":"subscribe","room":"post:\u0031"}`,
		`{"op":"subscribe","op":"typing","room":"tenant"}`,
		"{\"op\":\"subscribe\",\"room\":\"post:1\xff\"}",
		`null`, `[]`, `{}`, `"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeInbound(b)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if msg := encodeError(store.CodeBadRequest, err.Error(), in.Room); !json.Valid(msg) {
				t.Fatalf("error frame is not JSON: %q", msg)
			}
			return
		}
		switch in.Op {
		case opPing:
			if in.Room != "" || in.Since != nil {
				t.Fatalf("accepted a ping with a room or since from %q", b)
			}
			return
		case opSubscribe, opUnsubscribe, opTyping:
		default:
			t.Fatalf("accepted op %q from %q", in.Op, b)
		}
		if _, _, err := store.ParseRoom(in.Room); err != nil {
			t.Fatalf("accepted room %q from %q: %v", in.Room, b, err)
		}
		if in.Since != nil && (*in.Since < 0 || in.Op != opSubscribe) {
			t.Fatalf("accepted since %d on %s from %q", *in.Since, in.Op, b)
		}
		if !utf8.ValidString(in.Room) {
			t.Fatalf("accepted a room that is not UTF-8: %q", in.Room)
		}
	})
}
