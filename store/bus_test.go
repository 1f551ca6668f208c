package store

import (
	"context"
	"testing"
	"time"
)

// busRecorder is a BusHandler that queues what it is handed.
type busRecorder struct {
	got   chan any
	after map[string]int64 // doorbells up to this seq per room are old news
}

type connected struct{}

type busLost struct {
	err     error
	retryIn time.Duration
}

type unreadable struct{ channel string }

func (r *busRecorder) Connected(context.Context) error { r.got <- connected{}; return nil }
func (r *busRecorder) Lost(err error, retryIn time.Duration) {
	r.got <- busLost{err, retryIn}
}
func (r *busRecorder) Doorbell(n Notification)              { r.got <- n }
func (r *busRecorder) Control(c Control)                    { r.got <- c }
func (r *busRecorder) Presence(p []byte)                    { r.got <- string(p) }
func (r *busRecorder) Unreadable(channel string, err error) { r.got <- unreadable{channel} }

// next returns the next thing handed over, skipping the doorbells of
// earlier writes (announced after their commit, so possibly late).
func (r *busRecorder) next(t *testing.T) any {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case v := <-r.got:
			if n, ok := v.(Notification); ok && n.Seq < r.after[n.Room] {
				continue
			}
			return v
		case <-timeout:
			t.Fatal("the bus handed nothing over")
			return nil
		}
	}
}

// TestBus: what is published reaches the handler parsed, each channel in
// order; a lost connection is reported and re-established, each outage
// starting over at the first retry delay.
func TestBus(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "bus")
	rec := &busRecorder{got: make(chan any, 100), after: map[string]int64{}}
	for _, room := range []string{RoomTenant, BoardRoom(c.board.ID), PostRoom(c.post.ID)} {
		st, err := db.RoomState(ctx, c.tenant.ID, room)
		if err != nil {
			t.Fatal(err)
		}
		rec.after[room] = st.Seq + 1
	}
	runCtx, stop := context.WithCancel(ctx)
	bus := NewBus(db, dbURL)
	done := make(chan struct{})
	go func() { defer close(done); bus.Run(runCtx, rec) }()
	t.Cleanup(func() { stop(); <-done })
	if v := rec.next(t); v != (connected{}) {
		t.Fatalf("first = %#v, want Connected", v)
	}

	ctl := Control{Kind: ControlBan, TenantID: c.tenant.ID, ID: c.member.ID}
	if err := bus.PublishControl(ctx, ctl); err != nil {
		t.Fatal(err)
	}
	if v := rec.next(t); v != ctl {
		t.Fatalf("got %#v, want %#v", v, ctl)
	}
	if err := bus.PublishPresence(ctx, []byte(`{"k":"h"}`)); err != nil {
		t.Fatal(err)
	}
	if v := rec.next(t); v != `{"k":"h"}` {
		t.Fatalf("got %#v, want the presence payload", v)
	}
	// By the post's author, so that it rings no one's user room too.
	cm, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, "rings the bell")
	if err != nil {
		t.Fatal(err)
	}
	// The comment's doorbell, and those of the same write's post.activity,
	// the writer's read.updated and the post author's reply notification,
	// in any order: one batch.
	want := map[string]bool{PostRoom(cm.PostID): true, BoardRoom(c.board.ID): true, UserRoom(c.admin.ID): true,
		UserRoom(c.member.ID): true}
	for range len(want) {
		v, ok := rec.next(t).(Notification)
		if !ok || v.TenantID != c.tenant.ID || !want[v.Room] || (v.Room == PostRoom(cm.PostID) && v.Seq != rec.after[v.Room]) {
			t.Fatalf("got %#v, want the doorbells of %v", v, want)
		}
		delete(want, v.Room)
	}
	if _, err := db.Pool().Exec(ctx, `SELECT pg_notify($1, 'not three fields')`, ControlChannel); err != nil {
		t.Fatal(err)
	}
	if v := rec.next(t); v != (unreadable{ControlChannel}) {
		t.Fatalf("got %#v, want an unreadable control message", v)
	}

	for outage := range 3 {
		var killed int
		err := db.Pool().QueryRow(ctx, `
			SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1 AND datname = current_database()`, ListenerApplicationName).Scan(&killed)
		if err != nil || killed != 1 {
			t.Fatalf("terminated %d listeners (%v), want 1", killed, err)
		}
		l, ok := rec.next(t).(busLost)
		if !ok || l.err == nil || l.retryIn != 100*time.Millisecond {
			t.Fatalf("outage %d: got %#v, want Lost with the first retry delay (100ms)", outage+1, l)
		}
		if v := rec.next(t); v != (connected{}) {
			t.Fatalf("outage %d: got %#v, want Connected again", outage+1, v)
		}
	}
}

func TestParseControl(t *testing.T) {
	want := Control{Kind: ControlRevoke, TenantID: 7, ID: 42}
	if got, err := ParseControl(want.line()); err != nil || got != want {
		t.Errorf("ParseControl(%q) = %+v, %v", want.line(), got, err)
	}
	n := Notification{TenantID: 17, Room: "post:42", Seq: 9}
	if n.line() != "17 post:42 9" {
		t.Errorf("doorbell line %q", n.line())
	}
	for _, bad := range []string{"", "ban 1", "ban x 2", "ban 1 y", "ban 1 2 3"} {
		if _, err := ParseControl(bad); err == nil {
			t.Errorf("ParseControl(%q) accepted", bad)
		}
	}
}
