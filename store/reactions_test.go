package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
)

// roomLog follows one room's outbox, so a test can say exactly which
// events each write sent.
type roomLog struct {
	t      *testing.T
	db     *DB
	tenant int64
	room   string
	seq    int64
	// only keeps events of this type ("": all), for rooms that carry
	// several kinds, such as a user's room with its notifications.
	only string
	// settle flushes the tenant's queued post.activity before each read
	// (see settle).
	settle bool
}

func newRoomLog(t *testing.T, db *DB, tenantID int64, room string) *roomLog {
	t.Helper()
	settle(t, db, tenantID)
	st, err := db.RoomState(testCtx(t), tenantID, room)
	if err != nil {
		t.Fatal(err)
	}
	return &roomLog{t: t, db: db, tenant: tenantID, room: room, seq: st.Seq, settle: true}
}

// next returns the events since the last call.
func (l *roomLog) next() []Event {
	l.t.Helper()
	if l.settle {
		settle(l.t, l.db, l.tenant)
	}
	evs, err := l.db.EventsAfter(testCtx(l.t), l.tenant, l.room, l.seq, 10000)
	if err != nil {
		l.t.Fatal(err)
	}
	if len(evs) > 0 {
		l.seq = evs[len(evs)-1].Seq
	}
	if l.only == "" {
		return evs
	}
	var kept []Event
	for _, e := range evs {
		if e.Type == l.only {
			kept = append(kept, e)
		}
	}
	return kept
}

// none fails unless nothing was sent since the last call.
func (l *roomLog) none(what string) {
	l.t.Helper()
	if evs := l.next(); len(evs) != 0 {
		l.t.Errorf("%s: %d events in %s, want none: %s %s", what, len(evs), l.room, evs[0].Type, evs[0].Payload)
	}
}

// one returns the single event sent since the last call, failing unless
// there is exactly one, of type typ.
func (l *roomLog) one(what, typ string) Event {
	l.t.Helper()
	evs := l.next()
	if len(evs) != 1 || evs[0].Type != typ {
		var got []string
		for _, e := range evs {
			got = append(got, e.Type+" "+string(e.Payload))
		}
		l.t.Fatalf("%s: events in %s %v, want exactly one %s", what, l.room, got, typ)
	}
	return evs[0]
}

// payloadKeys decodes an event payload, failing unless it has exactly keys.
func payloadKeys(t *testing.T, e Event, keys ...string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &m); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, slices.Sorted(slices.Values(keys))) {
		t.Fatalf("%s payload %s has keys %v, want %v", e.Type, e.Payload, got, keys)
	}
	return m
}

func countsOf(t *testing.T, raw json.RawMessage) map[string]int {
	t.Helper()
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReactions walks one post and one comment through the rules: PUT
// twice counts once, DELETE of a reaction one does not have changes
// nothing, kinds at zero leave the map, every change is one small event
// with the new counts in the post's room and changes no version, and
// every read carries counts and, for signed-in readers only, their kinds.
func TestReactions(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "react")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	postRoom := newRoomLog(t, db, c.tenant.ID, PostRoom(c.post.ID))
	boardRoom := newRoomLog(t, db, c.tenant.ID, BoardRoom(c.board.ID))

	type step struct {
		name    string
		actor   Actor
		kind    string
		on      bool
		counts  map[string]int
		mine    []string
		changed bool
	}
	steps := []step{
		{"member likes", member, "like", true, map[string]int{"like": 1}, []string{"like"}, true},
		{"member likes again", member, "like", true, map[string]int{"like": 1}, []string{"like"}, false},
		{"admin loves", admin, "love", true, map[string]int{"like": 1, "love": 1}, []string{"love"}, true},
		{"admin likes", admin, "like", true, map[string]int{"like": 2, "love": 1}, []string{"like", "love"}, true},
		{"member thanks", member, "thanks", true, map[string]int{"like": 2, "love": 1, "thanks": 1}, []string{"like", "thanks"}, true},
		{"member takes back wow it never gave", member, "wow", false, map[string]int{"like": 2, "love": 1, "thanks": 1}, []string{"like", "thanks"}, false},
		{"admin takes back love", admin, "love", false, map[string]int{"like": 2, "thanks": 1}, []string{"like"}, true},
		{"admin takes back love again", admin, "love", false, map[string]int{"like": 2, "thanks": 1}, []string{"like"}, false},
		{"admin takes back like", admin, "like", false, map[string]int{"like": 1, "thanks": 1}, []string{}, true},
		{"member takes back like", member, "like", false, map[string]int{"thanks": 1}, []string{"thanks"}, true},
		{"member takes back thanks", member, "thanks", false, map[string]int{}, []string{}, true},
	}
	for _, target := range []string{"post", "comment"} {
		react, id, typ := db.ReactToPost, c.post.ID, "post.reactions"
		if target == "comment" {
			react, id, typ = db.ReactToComment, c.comment.ID, "comment.reactions"
		}
		for _, s := range steps {
			what := target + ": " + s.name
			st, err := react(ctx, c.tenant.ID, s.actor, id, s.kind, s.on)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if !maps.Equal(st.Reactions, s.counts) || !slices.Equal(st.MyReactions, s.mine) {
				t.Errorf("%s: %v %v, want %v %v", what, st.Reactions, st.MyReactions, s.counts, s.mine)
			}
			if b, _ := json.Marshal(st); len(s.counts) == 0 && !strings.Contains(string(b), `"reactions":{}`) {
				t.Errorf("%s: answer %s, want reactions {} when none", what, b)
			}
			if !s.changed {
				postRoom.none(what)
				continue
			}
			e := postRoom.one(what, typ)
			m := payloadKeys(t, e, "id", "reactions")
			if string(m["id"]) != fmt.Sprintf(`"%d"`, id) || !maps.Equal(countsOf(t, m["reactions"]), s.counts) {
				t.Errorf("%s: event %s, want id %d and counts %v", what, e.Payload, id, s.counts)
			}
		}
	}
	boardRoom.none("reactions")

	// Counts and kinds in every read; versions and update times untouched.
	for _, kind := range []string{"wow", "like"} {
		if _, err := db.ReactToPost(ctx, c.tenant.ID, member, c.post.ID, kind, true); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ReactToComment(ctx, c.tenant.ID, member, c.comment.ID, kind, true); err != nil {
			t.Fatal(err)
		}
	}
	if evs := postRoom.next(); len(evs) != 4 {
		t.Errorf("4 reactions sent %d events", len(evs))
	}
	want := map[string]int{"like": 1, "wow": 1}
	p, err := db.GetPost(ctx, c.tenant.ID, member, c.post.ID)
	if err != nil || !maps.Equal(p.Reactions, want) || p.PostReading == nil || !slices.Equal(p.MyReactions, []string{"like", "wow"}) {
		t.Errorf("GetPost as the member: %v %+v (%v)", p.Reactions, p.PostReading, err)
	}
	if p.Version != c.post.Version || !p.UpdatedAt.Equal(c.post.UpdatedAt) {
		t.Errorf("reactions changed the post's version %d -> %d or updated_at %v -> %v", c.post.Version, p.Version, c.post.UpdatedAt, p.UpdatedAt)
	}
	p, err = db.GetPost(ctx, c.tenant.ID, admin, c.post.ID)
	if err != nil || !maps.Equal(p.Reactions, want) || p.PostReading == nil || p.MyReactions == nil || len(p.MyReactions) != 0 {
		t.Errorf("GetPost as the admin: %v %+v (%v), want the counts and no kinds of its own", p.Reactions, p.PostReading, err)
	}
	p, err = db.GetPost(ctx, c.tenant.ID, Actor{}, c.post.ID)
	if err != nil || !maps.Equal(p.Reactions, want) || p.PostReading != nil {
		t.Errorf("GetPost anonymously: %v %+v (%v), want the counts and no reader state", p.Reactions, p.PostReading, err)
	}
	if b, _ := json.Marshal(p); strings.Contains(string(b), "my_reactions") || strings.Contains(string(b), "unread_comments") {
		t.Errorf("an anonymous reader's post carries reader state: %s", b)
	}
	list, err := db.ListPosts(ctx, c.tenant.ID, member, c.board.ID, PageParams{Limit: 10})
	if err != nil || len(list.Items) != 1 || !maps.Equal(list.Items[0].Reactions, want) || !slices.Equal(list.Items[0].MyReactions, []string{"like", "wow"}) {
		t.Errorf("ListPosts as the member: %+v (%v)", list.Items, err)
	}
	cs, err := db.ListComments(ctx, c.tenant.ID, member, c.post.ID, PageParams{Limit: 10})
	if err != nil || len(cs.Items) != 1 || !maps.Equal(cs.Items[0].Reactions, want) || !slices.Equal(cs.Items[0].MyReactions, []string{"like", "wow"}) {
		t.Errorf("ListComments as the member: %+v (%v)", cs.Items, err)
	}
	if cs.Items[0].Version != c.comment.Version {
		t.Errorf("reactions changed the comment's version to %d", cs.Items[0].Version)
	}
	cs, err = db.ListComments(ctx, c.tenant.ID, admin, c.post.ID, PageParams{Limit: 10})
	if err != nil || len(cs.Items) != 1 || cs.Items[0].MyReactions == nil || len(cs.Items[0].MyReactions) != 0 {
		t.Errorf("ListComments as the admin: %+v (%v), want [] of its own", cs.Items, err)
	}
	cs, err = db.ListComments(ctx, c.tenant.ID, Actor{}, c.post.ID, PageParams{Limit: 10})
	if err != nil || len(cs.Items) != 1 || cs.Items[0].MyReactions != nil || !maps.Equal(cs.Items[0].Reactions, want) {
		t.Errorf("ListComments anonymously: %+v (%v), want counts only", cs.Items, err)
	}
	// A new object starts with none, in its event too.
	fresh, err := db.CreateComment(ctx, c.tenant.ID, member, c.post.ID, "fresh")
	if err != nil || fresh.Reactions == nil || len(fresh.Reactions) != 0 {
		t.Errorf("new comment: reactions %v (%v), want {}", fresh.Reactions, err)
	}
	var created map[string]json.RawMessage
	if e := postRoom.one("new comment", "comment.created"); json.Unmarshal(e.Payload, &created) != nil || string(created["reactions"]) != "{}" {
		t.Errorf("comment.created %s, want reactions {}", e.Payload)
	}
}

// TestReactionRefusals: bad kinds, anonymous and banned callers, locked
// and hidden targets and missing ones are refused with their codes and
// write nothing.
func TestReactionRefusals(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "refuse")
	member, admin := ActorOf(c.member), ActorOf(c.admin)
	postRoom := newRoomLog(t, db, c.tenant.ID, PostRoom(c.post.ID))
	banned := ActorOf(registerUser(t, db, c.tenant.ID, "banned_one"))
	if _, err := db.BanUser(ctx, c.tenant.ID, admin, banned.UserID, Ban{Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	banned.Banned = true
	postRoom.next()

	type call struct {
		name  string
		react func() error
		code  Code
	}
	both := func(name string, actor Actor, postID, commentID int64, kind string, on bool, code Code) []call {
		return []call{
			{name + " (post)", func() error { _, err := db.ReactToPost(ctx, c.tenant.ID, actor, postID, kind, on); return err }, code},
			{name + " (comment)", func() error { _, err := db.ReactToComment(ctx, c.tenant.ID, actor, commentID, kind, on); return err }, code},
		}
	}
	check := func(calls []call) {
		t.Helper()
		for _, cl := range calls {
			err := cl.react()
			var se *Error
			if !errors.As(err, &se) || se.Code != cl.code {
				t.Errorf("%s: %v, want %s", cl.name, err, cl.code)
			}
			if cl.code == CodeInvalid && (se == nil || se.Fields["kind"] == "") {
				t.Errorf("%s: %v, want the kind named", cl.name, err)
			}
		}
		postRoom.none("refused reactions")
	}
	var calls []call
	for _, kind := range []string{"dislike", "", "LIKE", "like ", "👍"} {
		calls = append(calls, both(fmt.Sprintf("kind %q", kind), member, c.post.ID, c.comment.ID, kind, true, CodeInvalid)...)
	}
	calls = append(calls, both("anonymous", Actor{}, c.post.ID, c.comment.ID, "like", true, CodeUnauthorized)...)
	calls = append(calls, both("banned PUT", banned, c.post.ID, c.comment.ID, "like", true, CodeForbidden)...)
	calls = append(calls, both("banned DELETE", banned, c.post.ID, c.comment.ID, "like", false, CodeForbidden)...)
	calls = append(calls, both("missing", member, c.post.ID+1000, c.comment.ID+1000, "like", true, CodeNotFound)...)
	check(calls)

	// Locked: 409 for the post and its comments, also for a DELETE; a
	// moderator may still react.
	if _, err := db.ReactToComment(ctx, c.tenant.ID, member, c.comment.ID, "like", true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	check(append(both("locked PUT", member, c.post.ID, c.comment.ID, "love", true, CodeConflict),
		both("locked DELETE", member, c.post.ID, c.comment.ID, "like", false, CodeConflict)...))
	if st, err := db.ReactToComment(ctx, c.tenant.ID, admin, c.comment.ID, "love", true); err != nil || st.Reactions["love"] != 1 {
		t.Errorf("a moderator in a locked post: %+v, %v", st, err)
	}
	postRoom.one("moderator's reaction", "comment.reactions")
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionUnlock, ""); err != nil {
		t.Fatal(err)
	}

	// Hidden: members get what a read would give them, 404; moderators
	// may react, and members see that event redacted (Hidden).
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, c.comment.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	check([]call{{"hidden comment", func() error {
		_, err := db.ReactToComment(ctx, c.tenant.ID, member, c.comment.ID, "like", false)
		return err
	}, CodeNotFound}})
	if _, err := db.ReactToComment(ctx, c.tenant.ID, admin, c.comment.ID, "wow", true); err != nil {
		t.Fatal(err)
	}
	if e := postRoom.one("moderator on a hidden comment", "comment.reactions"); !e.Hidden {
		t.Errorf("a hidden comment's reactions event is not marked hidden: members would see it")
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	if _, err := db.ModerateComment(ctx, c.tenant.ID, admin, c.comment.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	postRoom.next()
	check(both("hidden post", member, c.post.ID, c.comment.ID, "like", true, CodeNotFound))

	// Nothing refused was written: the member's one like stands.
	cs, err := db.ListComments(ctx, c.tenant.ID, admin, c.post.ID, PageParams{Limit: 10})
	want := map[string]int{"like": 1, "love": 1, "wow": 1}
	if err != nil || len(cs.Items) != 1 || !maps.Equal(cs.Items[0].Reactions, want) {
		t.Errorf("comment after the refusals: %+v (%v), want %v", cs.Items, err, want)
	}
	p, err := db.GetPost(ctx, c.tenant.ID, admin, c.post.ID)
	if err != nil || len(p.Reactions) != 0 {
		t.Errorf("post after the refusals: %v (%v), want no reactions", p.Reactions, err)
	}
}

// TestReactionsConcurrent: 20 users reacting at once, each sending every
// PUT twice, give exact counts, one event per real change, and a last
// event that carries the final counts.
func TestReactionsConcurrent(t *testing.T) {
	const users = 20
	db, _ := openDB(t, Config{MaxConns: 24})
	ctx := testCtx(t)
	c := newCommunity(t, db, "crowd")
	postRoom := newRoomLog(t, db, c.tenant.ID, PostRoom(c.post.ID))
	actors := make([]Actor, users)
	for i := range actors {
		actors[i] = ActorOf(registerUser(t, db, c.tenant.ID, fmt.Sprintf("crowd_%d", i)))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, users*8)
	for _, a := range actors {
		for range 2 { // every PUT twice, at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for _, kind := range []string{"like", "thanks"} {
					if _, err := db.ReactToPost(ctx, c.tenant.ID, a, c.post.ID, kind, true); err != nil {
						errs <- err
					}
					if _, err := db.ReactToComment(ctx, c.tenant.ID, a, c.comment.ID, kind, true); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent reaction: %v", err)
	}
	want := map[string]int{"like": users, "thanks": users}
	p, err := db.GetPost(ctx, c.tenant.ID, actors[0], c.post.ID)
	if err != nil || !maps.Equal(p.Reactions, want) || !slices.Equal(p.MyReactions, []string{"like", "thanks"}) {
		t.Errorf("post after the crowd: %v %+v (%v), want %v", p.Reactions, p.PostReading, err, want)
	}
	cs, err := db.ListComments(ctx, c.tenant.ID, actors[0], c.post.ID, PageParams{Limit: 10})
	if err != nil || !maps.Equal(cs.Items[0].Reactions, want) {
		t.Errorf("comment after the crowd: %+v (%v), want %v", cs.Items, err, want)
	}
	// The counts beside each object agree with the reaction rows.
	if err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		var rows, comments int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM post_reactions), (SELECT count(*) FROM comment_reactions)`).Scan(&rows, &comments); err != nil {
			return err
		}
		if rows != 2*users || comments != 2*users {
			t.Errorf("%d post and %d comment reaction rows, want %d each", rows, comments, 2*users)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	evs := postRoom.next()
	last := map[string]map[string]int{}
	n := map[string]int{}
	for _, e := range evs {
		n[e.Type]++
		last[e.Type] = countsOf(t, payloadKeys(t, e, "id", "reactions")["reactions"])
	}
	if n["post.reactions"] != 2*users || n["comment.reactions"] != 2*users || len(evs) != 4*users {
		t.Errorf("events %v, want %d of each kind: one per real change", n, 2*users)
	}
	if !maps.Equal(last["post.reactions"], want) || !maps.Equal(last["comment.reactions"], want) {
		t.Errorf("last events carry %v, want the final counts %v", last, want)
	}
}
