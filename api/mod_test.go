package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
)

// cheapHasher keeps registrations fast in tests about moderation.
var cheapHasher = store.Hasher{MemoryKiB: 64, Time: 1, Threads: 1}

// modForum is a forum with a moderator, a comment by the member and a
// bystander ("victim") to ban and promote.
type modForum struct {
	*forum
	tenant      store.Tenant
	mod         store.User
	modToken    string
	victim      store.User
	victimToken string
	comment     store.Comment
}

func newModForum(t *testing.T, opts apitest.Options) *modForum {
	t.Helper()
	opts.Hasher = cheapHasher
	f := &modForum{forum: newForum(t, opts)}
	f.tenant = mustTenant(t, f.forum)
	f.mod, f.modToken = f.Register(t, f.slug, "maude")
	f.MustDo(t, "PUT", f.path(fmt.Sprintf("mod/users/%d/role", f.mod.ID)), f.adminToken,
		map[string]string{"role": "moderator"}, http.StatusOK, &f.mod)
	f.victim, f.victimToken = f.Register(t, f.slug, "victor")
	f.comment = f.CreateComment(t, f.slug, f.memberToken, f.post.ID, "A comment.")
	return f
}

func (f *modForum) report(t *testing.T, token, targetType string, id int64) store.Report {
	t.Helper()
	var r store.Report
	f.MustDo(t, "POST", f.path("reports"), token,
		map[string]string{"target_type": targetType, "target_id": fmt.Sprint(id), "reason": "spam"}, http.StatusCreated, &r)
	return r
}

// TestModAuthorization is the authorization table: every mod/* route as
// anonymous (401), member (403), moderator and admin.
func TestModAuthorization(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	rep := f.report(t, f.memberToken, "post", f.post.ID)
	u := func(format string, args ...any) string { return f.path(fmt.Sprintf(format, args...)) }
	ban := map[string]string{"reason": "spam"}

	type row struct {
		method, path string
		body         any
		mod, admin   int
	}
	rows := []row{
		{"GET", u("mod/reports"), nil, 200, 200},
		{"GET", u("mod/reports?status=resolved"), nil, 200, 200},
		// The moderator resolves it; the admin then finds it resolved.
		{"POST", u("mod/reports/%d/resolve", rep.ID), map[string]string{"note": "done"}, 200, 409},
		{"POST", u("mod/posts/%d/lock", f.post.ID), nil, 200, 200},
		{"POST", u("mod/posts/%d/unlock", f.post.ID), map[string]string{"reason": "calmer now"}, 200, 200},
		{"POST", u("mod/posts/%d/pin", f.post.ID), nil, 200, 200},
		{"POST", u("mod/posts/%d/unpin", f.post.ID), nil, 200, 200},
		{"POST", u("mod/posts/%d/hide", f.post.ID), nil, 200, 200},
		{"POST", u("mod/posts/%d/unhide", f.post.ID), nil, 200, 200},
		{"POST", u("mod/comments/%d/hide", f.comment.ID), nil, 200, 200},
		{"POST", u("mod/comments/%d/unhide", f.comment.ID), nil, 200, 200},
		{"GET", u("mod/users"), nil, 200, 200},
		{"GET", u("mod/users?banned=true&q=vic"), nil, 200, 200},
		{"POST", u("mod/users/%d/ban", f.victim.ID), ban, 200, 200},
		{"POST", u("mod/users/%d/unban", f.victim.ID), nil, 200, 200},
		{"PUT", u("mod/users/%d/role", f.victim.ID), map[string]string{"role": "member"}, 403, 200},
		{"GET", u("mod/audit"), nil, 200, 200},
	}

	// The table covers every mod route the server registers.
	covered := map[string]bool{}
	for _, r := range rows {
		route := strings.Split(strings.TrimPrefix(r.path, f.path("")), "?")[0]
		for _, id := range []int64{rep.ID, f.post.ID, f.comment.ID, f.victim.ID} {
			route = strings.Replace(route, "/"+strconv.FormatInt(id, 10)+"/", "/:id/", 1)
		}
		covered[r.method+" "+route] = true
	}
	for _, r := range api.New(api.Config{}).Routes() {
		if !strings.Contains(r.Path, "/mod/") || !standardMethods[r.Method] {
			continue
		}
		route := strings.TrimPrefix(r.Path, "/api/v1/t/:tenant/")
		for _, p := range []string{":report", ":post", ":comment", ":user"} {
			route = strings.Replace(route, p, ":id", 1)
		}
		if !covered[r.Method+" "+route] {
			t.Errorf("mod route %s %s is missing from the authorization table", r.Method, r.Path)
		}
	}

	for _, r := range rows {
		what := r.method + " " + r.path
		status, body := f.Do(t, r.method, r.path, "", r.body)
		wantError(t, what+" anonymous", status, body, 401, "unauthorized")
		status, body = f.Do(t, r.method, r.path, f.memberToken, r.body)
		wantError(t, what+" member", status, body, 403, "forbidden")
		for _, who := range []struct {
			name, token string
			want        int
		}{{"moderator", f.modToken, r.mod}, {"admin", f.adminToken, r.admin}} {
			status, body := f.Do(t, r.method, r.path, who.token, r.body)
			if status != who.want {
				t.Errorf("%s as %s: %d %s, want %d", what, who.name, status, body, who.want)
			}
		}
	}

	// Staff protect each other from moderators; nobody bans themselves.
	status, body := f.Do(t, "POST", u("mod/users/%d/ban", f.admin.ID), f.modToken, ban)
	wantError(t, "moderator bans admin", status, body, 403, "forbidden")
	other, otherToken := f.Register(t, f.slug, "otto")
	f.MustDo(t, "PUT", u("mod/users/%d/role", other.ID), f.adminToken, map[string]string{"role": "moderator"}, 200, nil)
	status, body = f.Do(t, "POST", u("mod/users/%d/ban", other.ID), f.modToken, ban)
	wantError(t, "moderator bans moderator", status, body, 403, "forbidden")
	status, body = f.Do(t, "POST", u("mod/users/%d/ban", f.mod.ID), f.modToken, ban)
	wantError(t, "moderator bans themselves", status, body, 422, "unprocessable")
	// An admin may ban a moderator, who then loses the powers.
	f.MustDo(t, "POST", u("mod/users/%d/ban", other.ID), f.adminToken, ban, 200, nil)
	status, body = f.Do(t, "GET", u("mod/reports"), otherToken, nil)
	wantError(t, "banned moderator reads the queue", status, body, 403, "forbidden")

	// Roles: admins only, valid roles only, and never the last admin.
	status, body = f.Do(t, "PUT", u("mod/users/%d/role", f.victim.ID), f.adminToken, map[string]string{"role": "owner"})
	wantError(t, "unknown role", status, body, 422, "unprocessable")
	status, body = f.Do(t, "PUT", u("mod/users/%d/role", f.admin.ID), f.adminToken, map[string]string{"role": "member"})
	wantError(t, "last admin demotes themselves", status, body, 409, "conflict")
	f.MustDo(t, "PUT", u("mod/users/%d/role", f.victim.ID), f.adminToken, map[string]string{"role": "admin"}, 200, nil)
	var demoted store.User
	f.MustDo(t, "PUT", u("mod/users/%d/role", f.admin.ID), f.adminToken, map[string]string{"role": "member"}, 200, &demoted)
	if demoted.Role != store.RoleMember {
		t.Errorf("demoted admin has role %q", demoted.Role)
	}
	status, body = f.Do(t, "PUT", u("mod/users/%d/role", f.victim.ID), f.victimToken, map[string]string{"role": "moderator"})
	wantError(t, "new last admin demotes themselves", status, body, 409, "conflict")
	// The old admin's token now acts as a member.
	status, body = f.Do(t, "GET", u("mod/audit"), f.adminToken, nil)
	wantError(t, "demoted admin reads the audit log", status, body, 403, "forbidden")
}

type diff struct {
	ID      string         `json:"id"`
	Version int            `json:"version"`
	Changes map[string]any `json:"changes"`
}

// TestModActionsEventsAndAudit: over REST, every action that changes
// something is one diff per room with the right changes and one audit
// entry with the documented action name; a repeat is 200 and neither.
func TestModActionsEventsAndAudit(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	ctx := context.Background()
	seqs := map[string]int64{}
	rooms := []string{store.BoardRoom(f.board.ID), store.PostRoom(f.post.ID)}
	// The board's post.activity is published shortly after its write:
	// settle flushes it now, so each step reads what it caused.
	settle := func() {
		t.Helper()
		if _, err := f.DB.FlushActivity(ctx, f.tenant.ID); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	for _, r := range rooms {
		st, err := f.DB.RoomState(ctx, f.tenant.ID, r)
		if err != nil {
			t.Fatal(err)
		}
		seqs[r] = st.Seq
	}
	// newEvents returns the events of a room since the last call.
	newEvents := func(room string) []store.Event {
		t.Helper()
		settle()
		evs, err := f.DB.EventsAfter(ctx, f.tenant.ID, room, seqs[room], 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 0 {
			seqs[room] = evs[len(evs)-1].Seq
		}
		return evs
	}
	auditLen := func() int {
		t.Helper()
		var p page[map[string]any]
		f.MustDo(t, "GET", f.path("mod/audit?limit=200"), f.modToken, nil, 200, &p)
		return len(p.Items)
	}
	lastAudit := func() map[string]any {
		t.Helper()
		var p page[map[string]any]
		f.MustDo(t, "GET", f.path("mod/audit?limit=1"), f.modToken, nil, 200, &p)
		if len(p.Items) != 1 {
			t.Fatalf("audit log is empty")
		}
		return p.Items[0]
	}
	checkAudit := func(action, targetType string, targetID int64, reason string) {
		t.Helper()
		e := lastAudit()
		actor, _ := e["actor"].(map[string]any)
		if e["action"] != action || e["target_type"] != targetType || e["target_id"] != fmt.Sprint(targetID) ||
			e["reason"] != reason || actor["id"] != fmt.Sprint(f.mod.ID) || actor["username"] != f.mod.Username {
			t.Errorf("newest audit entry %v, want %s on %s %d by %s, reason %q", e, action, targetType, targetID, f.mod.Username, reason)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(e["created_at"])); err != nil {
			t.Errorf("audit created_at: %v", err)
		}
	}

	version := f.post.Version
	for _, step := range []struct {
		action, field string
		value         bool
	}{
		{"lock", "locked", true}, {"unlock", "locked", false}, {"pin", "pinned", true},
		{"unpin", "pinned", false}, {"hide", "hidden", true}, {"unhide", "hidden", false},
	} {
		path := f.path(fmt.Sprintf("mod/posts/%d/%s", f.post.ID, step.action))
		reason := "reason for " + step.action
		var p map[string]any
		f.MustDo(t, "POST", path, f.modToken, map[string]string{"reason": reason}, 200, &p)
		version++
		if p[step.field] != step.value || p["version"] != float64(version) || p["id"] != fmt.Sprint(f.post.ID) {
			t.Errorf("%s answered %v, want %s=%v at version %d", step.action, p, step.field, step.value, version)
		}
		for _, room := range rooms {
			evs := newEvents(room)
			if len(evs) != 1 || evs[0].Type != "post.updated" {
				t.Fatalf("%s: room %s got %d events, want one post.updated", step.action, room, len(evs))
			}
			var d diff
			if err := json.Unmarshal(evs[0].Payload, &d); err != nil {
				t.Fatal(err)
			}
			if d.ID != fmt.Sprint(f.post.ID) || d.Version != version || len(d.Changes) != 1 || d.Changes[step.field] != step.value {
				t.Errorf("%s: room %s diff %s", step.action, room, evs[0].Payload)
			}
		}
		checkAudit("post."+step.action, "post", f.post.ID, reason)

		// Again: nothing changes, nothing is sent or logged.
		n := auditLen()
		f.MustDo(t, "POST", path, f.modToken, nil, 200, &p)
		if p["version"] != float64(version) {
			t.Errorf("repeated %s bumped the version to %v", step.action, p["version"])
		}
		for _, room := range rooms {
			if evs := newEvents(room); len(evs) != 0 {
				t.Errorf("repeated %s sent %d events to %s", step.action, len(evs), room)
			}
		}
		if got := auditLen(); got != n {
			t.Errorf("repeated %s wrote %d audit entries", step.action, got-n)
		}
	}

	for _, action := range []string{"hide", "unhide"} {
		f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/comments/%d/%s", f.comment.ID, action)), f.modToken, nil, 200, nil)
		evs := newEvents(rooms[1])
		if len(evs) != 1 || evs[0].Type != "comment.updated" {
			t.Fatalf("comment %s: %d events in the post room", action, len(evs))
		}
		var d diff
		if err := json.Unmarshal(evs[0].Payload, &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Changes) != 1 || d.Changes["hidden"] != (action == "hide") {
			t.Errorf("comment %s diff %s", action, evs[0].Payload)
		}
		// The board hears of the post's new count of visible comments.
		want := 1
		if action == "hide" {
			want = 0
		}
		if evs := newEvents(rooms[0]); len(evs) != 1 || evs[0].Type != "post.activity" ||
			!strings.Contains(string(evs[0].Payload), fmt.Sprintf(`"comment_count": %d`, want)) {
			t.Errorf("comment %s sent %+v to the board room, want one post.activity with %d comments", action, evs, want)
		}
		checkAudit("comment."+action, "comment", f.comment.ID, "")
	}

	// Users and reports are logged too, with before and after.
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/ban", f.victim.ID)), f.modToken, map[string]string{"reason": "spam"}, 200, nil)
	checkAudit("user.ban", "user", f.victim.ID, "spam")
	if e := lastAudit(); fmt.Sprint(e["before"]) != "map[banned:false]" || !strings.Contains(fmt.Sprint(e["after"]), "banned:true") {
		t.Errorf("ban before/after: %v / %v", e["before"], e["after"])
	}
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/unban", f.victim.ID)), f.modToken, map[string]string{"reason": "appeal"}, 200, nil)
	checkAudit("user.unban", "user", f.victim.ID, "appeal")
	rep := f.report(t, f.memberToken, "comment", f.comment.ID)
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/reports/%d/resolve", rep.ID)), f.modToken, map[string]string{"note": "fine"}, 200, nil)
	checkAudit("report.resolve", "report", rep.ID, "fine")
	n := auditLen()
	f.MustDo(t, "PUT", f.path(fmt.Sprintf("mod/users/%d/role", f.victim.ID)), f.adminToken, map[string]string{"role": "moderator", "reason": "helpful"}, 200, nil)
	e := lastAudit()
	if e["action"] != "user.role" || fmt.Sprint(e["before"]) != "map[role:member]" || fmt.Sprint(e["after"]) != "map[role:moderator]" ||
		e["reason"] != "helpful" || auditLen() != n+1 {
		t.Errorf("role change audit entry %v", e)
	}

	// Keyset pagination over the whole log, newest first, no repeats.
	var ids []int64
	cursor := ""
	for range 20 {
		var p page[store.AuditEntry]
		f.MustDo(t, "GET", apitest.Query(f.path("mod/audit"), "limit", "4", "cursor", cursor), f.modToken, nil, 200, &p)
		for _, e := range p.Items {
			ids = append(ids, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(ids) != n+1 || !slices.IsSortedFunc(ids, func(a, b int64) int { return int(b - a) }) {
		t.Errorf("paged audit ids %v: want %d, newest first", ids, n+1)
	}
}

// TestHiddenContentREST: hidden posts and comments never reach members or
// anonymous readers; moderators see them marked hidden.
func TestHiddenContentREST(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	visible := f.CreatePost(t, f.slug, f.memberToken, f.board.ID, "Visible", "Still here.")
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/posts/%d/hide", f.post.ID)), f.modToken, nil, 200, nil)
	hiddenComment := f.CreateComment(t, f.slug, f.memberToken, visible.ID, "Hide me.")
	keptComment := f.CreateComment(t, f.slug, f.memberToken, visible.ID, "Keep me.")
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/comments/%d/hide", hiddenComment.ID)), f.modToken, nil, 200, nil)

	for _, reader := range []struct{ name, token string }{{"anonymous", ""}, {"member", f.victimToken}, {"author", f.memberToken}} {
		status, body := f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), reader.token, nil)
		wantError(t, reader.name+" reads a hidden post", status, body, 404, "not_found")
		status, body = f.Do(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), reader.token, nil)
		wantError(t, reader.name+" lists a hidden post's comments", status, body, 404, "not_found")
		var posts page[store.Post]
		f.MustDo(t, "GET", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), reader.token, nil, 200, &posts)
		if len(posts.Items) != 1 || posts.Items[0].ID != visible.ID {
			t.Errorf("%s lists posts %+v, want only the visible one", reader.name, posts.Items)
		}
		var comments page[store.Comment]
		f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", visible.ID)), reader.token, nil, 200, &comments)
		if len(comments.Items) != 1 || comments.Items[0].ID != keptComment.ID {
			t.Errorf("%s lists comments %+v, want only the kept one", reader.name, comments.Items)
		}
		for _, it := range comments.Items {
			if strings.Contains(fmt.Sprint(it), "Hide me.") {
				t.Errorf("%s sees the hidden comment's text", reader.name)
			}
		}
	}
	status, body := f.Do(t, "PATCH", f.path(fmt.Sprintf("comments/%d", hiddenComment.ID)), f.memberToken, map[string]string{"body": "edited"})
	wantError(t, "author edits a hidden comment", status, body, 404, "not_found")
	status, body = f.Do(t, "POST", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), f.memberToken, map[string]string{"body": "hello?"})
	wantError(t, "member comments on a hidden post", status, body, 404, "not_found")

	var p store.Post
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.modToken, nil, 200, &p)
	if !p.Hidden {
		t.Errorf("moderator reads the hidden post without hidden: true: %+v", p)
	}
	var posts page[store.Post]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), f.modToken, nil, 200, &posts)
	if len(posts.Items) != 2 {
		t.Errorf("moderator lists %d posts, want 2", len(posts.Items))
	}
	var comments page[store.Comment]
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", visible.ID)), f.adminToken, nil, 200, &comments)
	if len(comments.Items) != 2 || comments.Items[0].ID != hiddenComment.ID || !comments.Items[0].Hidden || comments.Items[1].Hidden {
		t.Errorf("admin lists comments %+v, want both, the first hidden", comments.Items)
	}

	// Reporting something one cannot see is reporting nothing.
	status, body = f.Do(t, "POST", f.path("reports"), f.victimToken,
		map[string]string{"target_type": "comment", "target_id": fmt.Sprint(hiddenComment.ID), "reason": "?"})
	wantError(t, "report a hidden comment", status, body, 404, "not_found")
}

// TestBanREST: a banned user's writes are 403 while reads still work on a
// public tenant, the ban is announced on the control channel at commit,
// and unbanning restores writing.
func TestBanREST(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	listener, err := pgx.Connect(ctx, f.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN "+store.ControlChannel); err != nil {
		t.Fatal(err)
	}
	banPath := f.path(fmt.Sprintf("mod/users/%d/ban", f.member.ID))

	for _, bad := range []map[string]string{
		{"reason": ""},
		{"reason": "spam", "until": "tomorrow"},
		{"reason": "spam", "until": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)},
	} {
		status, body := f.Do(t, "POST", banPath, f.modToken, bad)
		wantError(t, fmt.Sprintf("ban with %v", bad), status, body, 422, "unprocessable")
	}
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var banned store.User
	f.MustDo(t, "POST", banPath, f.modToken, map[string]string{"reason": "spam", "until": until.Format(time.RFC3339)}, 200, &banned)
	if !banned.Banned || banned.BannedUntil == nil || !banned.BannedUntil.Equal(until) || banned.BanReason == nil || *banned.BanReason != "spam" {
		t.Errorf("ban answered %+v", banned)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("ban %d %d", f.tenant.ID, f.member.ID); n.Channel != store.ControlChannel || n.Payload != want {
		t.Errorf("notification %s %q, want %s %q", n.Channel, n.Payload, store.ControlChannel, want)
	}

	writes := []struct {
		method, path string
		body         any
	}{
		{"POST", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), map[string]string{"title": "t", "body": "b"}},
		{"POST", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), map[string]string{"body": "b"}},
		{"PATCH", f.path(fmt.Sprintf("posts/%d", f.post.ID)), map[string]string{"body": "edited"}},
		{"PATCH", f.path(fmt.Sprintf("comments/%d", f.comment.ID)), map[string]string{"body": "edited"}},
		{"DELETE", f.path(fmt.Sprintf("comments/%d", f.comment.ID)), nil},
		{"POST", f.path("reports"), map[string]string{"target_type": "post", "target_id": fmt.Sprint(f.post.ID), "reason": "x"}},
	}
	for _, w := range writes {
		status, body := f.Do(t, w.method, w.path, f.memberToken, w.body)
		wantError(t, "banned "+w.method+" "+w.path, status, body, 403, "forbidden")
	}
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.memberToken, nil, 200, nil)
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)), f.memberToken, nil, 200, nil)
	var me store.User
	f.MustDo(t, "GET", f.path("me"), f.memberToken, nil, 200, &me)
	if !me.Banned {
		t.Errorf("me of a banned user: %+v", me)
	}

	var unbanned store.User
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/unban", f.member.ID)), f.modToken, nil, 200, &unbanned)
	if unbanned.ID != f.member.ID || unbanned.Banned || unbanned.BanReason != nil || unbanned.BannedUntil != nil {
		t.Errorf("unban answered %+v", unbanned)
	}
	f.CreateComment(t, f.slug, f.memberToken, f.post.ID, "I'm back.")
}

// TestRateLimitFlood: a flood gets 429 with Retry-After while other users
// (and other addresses' budgets) are untouched.
func TestRateLimitFlood(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: func(tb testing.TB, db *store.DB, cfg *api.Config) {
		cfg.RateLimits = api.RateLimits{
			Comments:      api.Rate{N: 3, Per: time.Hour},
			Reports:       api.Rate{N: 1, Per: time.Hour},
			FailedLogins:  api.Rate{N: 2, Per: time.Hour},
			Registrations: api.Rate{N: 5, Per: time.Hour}, // newModForum registers 4
		}
	}})
	wantLimited := func(what string, r apitest.Response, maxWait int) {
		t.Helper()
		wantError(t, what, r.Status, r.Body, 429, "rate_limited")
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 || secs > maxWait {
			t.Errorf("%s: Retry-After %q, want 1..%d seconds", what, r.Header.Get("Retry-After"), maxWait)
		}
	}
	comment := func(token string) apitest.Response {
		return f.Call(t, apitest.Request{Method: "POST", Path: f.path(fmt.Sprintf("posts/%d/comments", f.post.ID)),
			Token: token, Body: map[string]string{"body": "flood"}})
	}
	// newModForum's member already wrote one comment.
	for i := range 2 {
		if r := comment(f.memberToken); r.Status != 201 {
			t.Fatalf("comment %d: %d %s", i+2, r.Status, r.Body)
		}
	}
	for range 3 {
		wantLimited("comment flood", comment(f.memberToken), 3600)
	}
	if r := comment(f.victimToken); r.Status != 201 {
		t.Errorf("another user's comment during the flood: %d %s", r.Status, r.Body)
	}

	f.report(t, f.victimToken, "post", f.post.ID)
	wantLimited("second report", f.Call(t, apitest.Request{Method: "POST", Path: f.path("reports"), Token: f.victimToken,
		Body: map[string]string{"target_type": "comment", "target_id": fmt.Sprint(f.comment.ID), "reason": "x"}}), 3600)

	// Failed logins: after two, even the right password waits; another
	// username from the same address is unaffected; success costs nothing.
	login := func(user, password string) apitest.Response {
		return f.Call(t, apitest.Request{Method: "POST", Path: f.path("auth/login"),
			Body: map[string]string{"username": user, "password": password}})
	}
	for range 3 {
		if r := login("alice", apitest.Password); r.Status != 200 {
			t.Fatalf("good login: %d %s", r.Status, r.Body)
		}
	}
	for range 2 {
		if r := login("bob", "wrong password"); r.Status != 401 {
			t.Fatalf("wrong password: %d %s", r.Status, r.Body)
		}
	}
	wantLimited("third failed login", login("BOB", "wrong password"), 3600)
	wantLimited("right password after the failures", login("bob", apitest.Password), 3600)
	if r := login("alice", apitest.Password); r.Status != 200 {
		t.Errorf("another user's login: %d %s", r.Status, r.Body)
	}

	// Registrations per address.
	register := func(name string) apitest.Response {
		return f.Call(t, apitest.Request{Method: "POST", Path: f.path("auth/register"),
			Body: map[string]string{"username": name, "password": apitest.Password}})
	}
	if r := register("fifth"); r.Status != 201 {
		t.Fatalf("fifth registration: %d %s", r.Status, r.Body)
	}
	wantLimited("sixth registration", register("sixth"), 3600)
	// X-Forwarded-For is not trusted by default: forging it changes nothing.
	r := f.Call(t, apitest.Request{Method: "POST", Path: f.path("auth/register"),
		Body:   map[string]string{"username": "seventh", "password": apitest.Password},
		Header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}})
	wantLimited("registration with a forged X-Forwarded-For", r, 3600)
}

// TestMassAssignment: fields a member must not set are ignored in every
// member request body.
func TestMassAssignment(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	other := f.NewTenant(t, "other")

	var reg authResponse
	f.MustDo(t, "POST", f.path("auth/register"), "", map[string]any{
		"username": "mallory", "password": apitest.Password, "role": "admin", "tenant_id": fmt.Sprint(other.ID),
		"banned": true, "id": "1", "created_at": "2000-01-01T00:00:00Z",
	}, 201, &reg)
	if reg.User.Role != store.RoleMember || reg.User.Banned || reg.User.ID == 1 || reg.User.CreatedAt.Year() == 2000 {
		t.Errorf("registration applied forbidden fields: %+v", reg.User)
	}
	tok := reg.Token
	var me store.User
	f.MustDo(t, "GET", f.path("me"), tok, nil, 200, &me)
	if me.Role != store.RoleMember {
		t.Errorf("mallory's role is %q", me.Role)
	}
	status, body := f.Do(t, "GET", f.path("mod/audit"), tok, nil)
	wantError(t, "mallory reads the audit log", status, body, 403, "forbidden")

	var p store.Post
	f.MustDo(t, "POST", f.path(fmt.Sprintf("boards/%d/posts", f.board.ID)), tok, map[string]any{
		"title": "Mine", "body": "Body", "author_id": fmt.Sprint(f.admin.ID), "author": map[string]string{"id": fmt.Sprint(f.admin.ID)},
		"hidden": true, "locked": true, "pinned": true, "version": 7, "comment_count": 9, "tenant_id": fmt.Sprint(other.ID),
		"board_id": "999999", "id": "1",
	}, 201, &p)
	if p.Author.ID != reg.User.ID || p.Hidden || p.Locked || p.Pinned || p.Version != 1 || p.CommentCount != 0 || p.BoardID != f.board.ID {
		t.Errorf("post creation applied forbidden fields: %+v", p)
	}
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("posts/%d", p.ID)), tok, map[string]any{
		"title": "Renamed", "locked": true, "hidden": true, "pinned": true, "version": 99, "author_id": fmt.Sprint(f.admin.ID),
	}, 200, &p)
	if p.Title != "Renamed" || p.Locked || p.Hidden || p.Pinned || p.Version != 2 || p.Author.ID != reg.User.ID {
		t.Errorf("post edit applied forbidden fields: %+v", p)
	}
	var c store.Comment
	f.MustDo(t, "POST", f.path(fmt.Sprintf("posts/%d/comments", p.ID)), tok, map[string]any{
		"body": "Hi", "hidden": true, "version": 5, "author_id": fmt.Sprint(f.admin.ID), "post_id": fmt.Sprint(f.post.ID),
	}, 201, &c)
	if c.Hidden || c.Version != 1 || c.Author.ID != reg.User.ID || c.PostID != p.ID {
		t.Errorf("comment creation applied forbidden fields: %+v", c)
	}
	f.MustDo(t, "PATCH", f.path(fmt.Sprintf("comments/%d", c.ID)), tok, map[string]any{"body": "Edited", "hidden": true, "version": 9}, 200, &c)
	if c.Hidden || c.Version != 2 {
		t.Errorf("comment edit applied forbidden fields: %+v", c)
	}
	var b store.Board
	f.MustDo(t, "POST", f.path("boards"), f.adminToken, map[string]any{
		"name": "News", "version": 9, "id": "1", "tenant_id": fmt.Sprint(other.ID),
	}, 201, &b)
	if b.Version != 1 || b.ID == 1 {
		t.Errorf("board creation applied forbidden fields: %+v", b)
	}
	var boards page[store.Board]
	f.MustDo(t, "GET", apitest.TenantPath("other", "boards"), "", nil, 200, &boards)
	if len(boards.Items) != 0 {
		t.Errorf("a board leaked into the other tenant: %+v", boards.Items)
	}
	var r store.Report
	f.MustDo(t, "POST", f.path("reports"), tok, map[string]any{
		"target_type": "post", "target_id": fmt.Sprint(f.post.ID), "reason": "r",
		"status": "resolved", "reporter_id": fmt.Sprint(f.admin.ID), "note": "n",
	}, 201, &r)
	if r.Status != store.ReportOpen || r.Reporter.ID != reg.User.ID || r.Note != nil || r.ResolvedBy != nil {
		t.Errorf("report creation applied forbidden fields: %+v", r)
	}
	// Ids are strings in the contract; a number is accepted too. A missing
	// one is a validation error, not a report on nothing.
	f.MustDo(t, "POST", f.path("reports"), tok, map[string]any{"target_type": "comment", "target_id": f.comment.ID, "reason": "r"}, 201, &r)
	if r.TargetID != f.comment.ID || r.PostID == nil || *r.PostID != f.post.ID {
		t.Errorf("report with a numeric target_id: %+v", r)
	}
	status, body = f.Do(t, "POST", f.path("reports"), tok, map[string]any{"target_type": "post", "reason": "r"})
	if e := wantError(t, "report without target_id", status, body, 422, "unprocessable"); e.Error.Fields["target_id"] == "" {
		t.Errorf("report without target_id: fields %v", e.Error.Fields)
	}
}

// TestCrossTenantModerator: a moderator of tenant B gets 404 for every
// target of tenant A, changes nothing there, and sees none of A's reports
// or audit entries.
func TestCrossTenantModerator(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	rep := f.report(t, f.memberToken, "post", f.post.ID)
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/posts/%d/pin", f.post.ID)), f.modToken, nil, 200, nil)

	f.NewTenant(t, "beta")
	pb := func(format string, args ...any) string {
		return apitest.TenantPath("beta", fmt.Sprintf(format, args...))
	}
	_, adminB := f.Register(t, "beta", "bianca")
	modB, modBToken := f.Register(t, "beta", "bruno")
	f.MustDo(t, "PUT", pb("mod/users/%d/role", modB.ID), adminB, map[string]string{"role": "moderator"}, 200, nil)

	ban := map[string]string{"reason": "x"}
	for _, r := range []struct {
		method, path string
		body         any
		token        string
	}{
		{"POST", pb("mod/reports/%d/resolve", rep.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/lock", f.post.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/unlock", f.post.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/pin", f.post.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/unpin", f.post.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/hide", f.post.ID), nil, modBToken},
		{"POST", pb("mod/posts/%d/unhide", f.post.ID), nil, modBToken},
		{"POST", pb("mod/comments/%d/hide", f.comment.ID), nil, modBToken},
		{"POST", pb("mod/comments/%d/unhide", f.comment.ID), nil, modBToken},
		{"POST", pb("mod/users/%d/ban", f.member.ID), ban, modBToken},
		{"POST", pb("mod/users/%d/unban", f.member.ID), nil, modBToken},
		{"PUT", pb("mod/users/%d/role", f.member.ID), map[string]string{"role": "admin"}, adminB},
		{"POST", pb("reports"), map[string]string{"target_type": "post", "target_id": fmt.Sprint(f.post.ID), "reason": "x"}, modBToken},
		{"POST", pb("reports"), map[string]string{"target_type": "comment", "target_id": fmt.Sprint(f.comment.ID), "reason": "x"}, modBToken},
	} {
		status, body := f.Do(t, r.method, r.path, r.token, r.body)
		wantError(t, r.method+" "+r.path+" from tenant B", status, body, 404, "not_found")
	}
	for _, path := range []string{pb("mod/reports"), pb("mod/reports?status=resolved"), pb("mod/audit")} {
		var p page[map[string]any]
		f.MustDo(t, "GET", path, modBToken, nil, 200, &p)
		for _, it := range p.Items {
			if it["action"] != "user.role" { // B's own role change is B's
				t.Errorf("%s shows %v", path, it)
			}
		}
	}

	// Tenant A is as it was.
	var p store.Post
	f.MustDo(t, "GET", f.path(fmt.Sprintf("posts/%d", f.post.ID)), f.memberToken, nil, 200, &p)
	if p.Locked || p.Hidden || !p.Pinned || p.Version != f.post.Version+1 {
		t.Errorf("tenant A's post changed: %+v", p)
	}
	var me store.User
	f.MustDo(t, "GET", f.path("me"), f.memberToken, nil, 200, &me)
	if me.Banned || me.Role != store.RoleMember {
		t.Errorf("tenant A's member changed: %+v", me)
	}
	var reports page[store.Report]
	f.MustDo(t, "GET", f.path("mod/reports"), f.modToken, nil, 200, &reports)
	if len(reports.Items) != 1 || reports.Items[0].Status != store.ReportOpen {
		t.Errorf("tenant A's reports: %+v", reports.Items)
	}
}
