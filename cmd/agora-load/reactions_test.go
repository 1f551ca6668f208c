package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// A burst subscriber's accounting: reaction events counted per frame,
// seq gaps found, other messages set apart, the last expected event kept.
func TestBurstAccounting(t *testing.T) {
	ev := func(seq int, counts string) string {
		return `{"op":"event","room":"post:1","seq":` + strconv.Itoa(seq) + `,"type":"comment.reactions","data":{"id": "1", "reactions": ` + counts + `},"at":"x"}`
	}
	s := &burstSub{want: 4, done: make(chan struct{})}
	s.account([]byte(ev(5, `{"like": 1}`)), time.Millisecond)
	s.account([]byte(strings.Join([]string{ev(6, `{"like": 2}`), `{"op":"presence","room":"post:1","count":3}`, ev(7, `{"like": 3}`)}, "\n")), 2*time.Millisecond)
	s.account([]byte(ev(9, `{"like": 4}`)), 3*time.Millisecond) // 8 is missing
	if s.reactions.Load() != 4 || s.burstFrames != 3 || s.others != 1 || s.gaps != 1 || s.lastAt.Load() != int64(3*time.Millisecond) {
		t.Fatalf("reactions %d frames %d others %d gaps %d last %d", s.reactions.Load(), s.burstFrames, s.others, s.gaps, s.lastAt.Load())
	}
	if !sameCounts(s.final, map[string]int{"like": 4}) || sameCounts(s.final, map[string]int{"like": 3}) {
		t.Fatalf("final event %s", s.final)
	}
	if got := finalCounts(reactionKindsInOrder(), 8, 8); got["like"] != 2 || got["love"] != 2 || got["thanks"] != 1 || len(got) != 6 {
		t.Fatalf("finalCounts = %v", got)
	}
	if finalCounts(reactionKindsInOrder(), 7, 8) != nil {
		t.Fatal("an incomplete burst has no expected final counts")
	}
	if seqOf([]byte(`{"op":"event","seq":1234,"type":"x"}`)) != 1234 || seqOf([]byte(`{}`)) != 0 {
		t.Fatal("seqOf")
	}
}
