package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// modHasher keeps registration cheap: these tests are about moderation.
var modHasher = Hasher{MemoryKiB: 64, Time: 1, Threads: 1}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func auditCount(t *testing.T, db *DB, tenantID int64) int {
	t.Helper()
	var n int
	err := db.WithTenant(testCtx(t), tenantID, func(tx *Tx) error {
		return tx.QueryRow(testCtx(t), `SELECT count(*) FROM audit_log`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func registerUser(t *testing.T, db *DB, tenantID int64, name string) User {
	t.Helper()
	u, _, err := db.Register(testCtx(t), tenantID, Registration{Username: name, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestModerationEventsAndAudit: every action that changes something is one
// version bump, one post.updated diff per room with exactly the changed
// flag, and one audit row; repeating it changes and writes nothing.
func TestModerationEventsAndAudit(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "mod-events")
	admin := ActorOf(c.admin)

	rooms := []string{BoardRoom(c.board.ID), PostRoom(c.post.ID)}
	seqs := map[string]int64{}
	for _, r := range rooms {
		st, err := db.RoomState(ctx, c.tenant.ID, r)
		if err != nil {
			t.Fatal(err)
		}
		seqs[r] = st.Seq
	}
	version := c.post.Version
	steps := []struct {
		action, field string
		value         bool
	}{
		{ActionLock, "locked", true}, {ActionUnlock, "locked", false},
		{ActionPin, "pinned", true}, {ActionUnpin, "pinned", false},
		{ActionHide, "hidden", true}, {ActionUnhide, "hidden", false},
	}
	for _, st := range steps {
		for _, repeat := range []bool{false, true} {
			audits := auditCount(t, db, c.tenant.ID)
			reason := "because " + st.action
			p, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, st.action, reason)
			if err != nil {
				t.Fatalf("%s: %v", st.action, err)
			}
			wantVersion := version + 1
			if repeat {
				wantVersion = version
			}
			if p.Version != wantVersion {
				t.Fatalf("%s (repeat %v): version %d, want %d", st.action, repeat, p.Version, wantVersion)
			}
			version = p.Version
			for _, r := range rooms {
				evs, err := db.EventsAfter(ctx, c.tenant.ID, r, seqs[r], 100)
				if err != nil {
					t.Fatal(err)
				}
				if repeat {
					if len(evs) != 0 {
						t.Fatalf("repeated %s sent %d events to %s", st.action, len(evs), r)
					}
					continue
				}
				if len(evs) != 1 || evs[0].Type != "post.updated" {
					t.Fatalf("%s: room %s got %+v, want one post.updated", st.action, r, evs)
				}
				seqs[r] = evs[0].Seq
				var d struct {
					ID      string          `json:"id"`
					Version int             `json:"version"`
					Changes map[string]bool `json:"changes"`
				}
				if err := json.Unmarshal(evs[0].Payload, &d); err != nil {
					t.Fatal(err)
				}
				if d.ID != strconv.FormatInt(c.post.ID, 10) || d.Version != p.Version ||
					len(d.Changes) != 1 || d.Changes[st.field] != st.value {
					t.Fatalf("%s: diff %s, want id %d version %d changes {%q: %v}", st.action, evs[0].Payload,
						c.post.ID, p.Version, st.field, st.value)
				}
			}
			wantAudits := audits + 1
			if repeat {
				wantAudits = audits
			}
			if got := auditCount(t, db, c.tenant.ID); got != wantAudits {
				t.Fatalf("%s (repeat %v): %d audit rows, want %d", st.action, repeat, got, wantAudits)
			}
		}
	}

	page, err := db.ListAudit(ctx, c.tenant.ID, admin, PageParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(steps) {
		t.Fatalf("audit log has %d entries, want %d", len(page.Items), len(steps))
	}
	for i, e := range page.Items { // newest first
		st := steps[len(steps)-1-i]
		if e.Action != "post."+st.action || e.TargetType != "post" || e.TargetID != c.post.ID ||
			e.Actor.ID != c.admin.ID || e.Actor.Username != c.admin.Username || e.Reason != "because "+st.action {
			t.Errorf("audit entry %d = %+v, want post.%s by %s", i, e, st.action, c.admin.Username)
		}
		wantBefore := fmt.Sprintf(`{"%s": %v}`, st.field, !st.value)
		wantAfter := fmt.Sprintf(`{"%s": %v}`, st.field, st.value)
		if string(e.Before) != wantBefore || string(e.After) != wantAfter {
			t.Errorf("audit entry %d before/after = %s/%s, want %s/%s", i, e.Before, e.After, wantBefore, wantAfter)
		}
	}

	// A comment: one comment.updated in the post room, and one
	// post.activity on the board (a hidden comment is not counted).
	boardSeq := seqs[rooms[0]]
	cm, err := db.ModerateComment(ctx, c.tenant.ID, ActorOf(c.admin), c.comment.ID, ActionHide, "")
	if err != nil {
		t.Fatal(err)
	}
	if !cm.Hidden || cm.Version != c.comment.Version+1 {
		t.Fatalf("hidden comment = %+v", cm)
	}
	evs, err := db.EventsAfter(ctx, c.tenant.ID, rooms[1], seqs[rooms[1]], 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != "comment.updated" {
		t.Fatalf("comment hide sent %+v", evs)
	}
	settle(t, db, c.tenant.ID)
	if evs, _ := db.EventsAfter(ctx, c.tenant.ID, rooms[0], boardSeq, 100); len(evs) != 1 || evs[0].Type != "post.activity" {
		t.Fatalf("comment hide sent %+v to the board room, want one post.activity", evs)
	}
	if _, err := db.ModerateComment(ctx, c.tenant.ID, ActorOf(c.admin), c.comment.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	if got := auditCount(t, db, c.tenant.ID); got != len(steps)+1 {
		t.Fatalf("after a comment hide and a repeat: %d audit rows, want %d", got, len(steps)+1)
	}

	// Members may do none of it.
	_, err = db.ModeratePost(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, ActionLock, "")
	wantCode(t, err, CodeForbidden)
}

// TestAuditAppendOnly: the application role cannot change or remove audit
// rows, even inside its own tenant.
func TestAuditAppendOnly(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "audit-ro")
	if _, err := db.ModeratePost(ctx, c.tenant.ID, ActorOf(c.admin), c.post.ID, ActionLock, "spam"); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_log SET reason = 'nothing to see'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
			_, err := tx.Exec(ctx, stmt)
			return err
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the app role: err = %v, want insufficient_privilege (42501)", stmt, err)
		}
	}
	page, err := db.ListAudit(ctx, c.tenant.ID, ActorOf(c.admin), PageParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Reason != "spam" {
		t.Fatalf("audit log after the attempts: %+v", page.Items)
	}
}

// TestBanNotifiesOnCommit: a ban queues "ban <tenant> <user>" on the
// control channel, delivered on commit; a refused ban sends nothing.
func TestBanNotifiesOnCommit(t *testing.T) {
	db, dbURL := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "ban-notify")
	mod := registerUser(t, db, c.tenant.ID, "ban_notify_mod")
	if _, err := db.SetRole(ctx, c.tenant.ID, ActorOf(c.admin), mod.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	mod.Role = RoleModerator
	listener := listenConn(t, dbURL, ControlChannel, sentinelChannel)

	// Refused: a moderator may not ban an admin; nobody bans themselves.
	_, err := db.BanUser(ctx, c.tenant.ID, ActorOf(mod), c.admin.ID, Ban{Reason: "coup"})
	wantCode(t, err, CodeForbidden)
	_, err = db.BanUser(ctx, c.tenant.ID, ActorOf(mod), mod.ID, Ban{Reason: "oops"})
	wantCode(t, err, CodeInvalid)
	past := time.Now().Add(-time.Hour)
	_, err = db.BanUser(ctx, c.tenant.ID, ActorOf(mod), c.member.ID, Ban{Reason: "late", Until: &past})
	wantCode(t, err, CodeInvalid)

	until := time.Now().Add(24 * time.Hour).Truncate(time.Second).UTC()
	u, err := db.BanUser(ctx, c.tenant.ID, ActorOf(mod), c.member.ID, Ban{Reason: "spam", Until: &until})
	if err != nil {
		t.Fatal(err)
	}
	if !u.Banned || u.BanReason == nil || *u.BanReason != "spam" || u.BannedUntil == nil || !u.BannedUntil.Equal(until) {
		t.Fatalf("banned user = %+v", u)
	}

	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(waitCtx)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ban %d %d", c.tenant.ID, c.member.ID)
	if n.Channel != ControlChannel || n.Payload != want {
		t.Fatalf("first notification %s %q, want %s %q (refused bans must send nothing)", n.Channel, n.Payload, ControlChannel, want)
	}
	if ctl, err := ParseControl(n.Payload); err != nil || ctl != (Control{Kind: ControlBan, TenantID: c.tenant.ID, ID: c.member.ID}) {
		t.Fatalf("ParseControl(%q) = %+v, %v", n.Payload, ctl, err)
	}

	// The same ban again changes nothing: no notification, no audit row.
	audits := auditCount(t, db, c.tenant.ID)
	if _, err := db.BanUser(ctx, c.tenant.ID, ActorOf(mod), c.member.ID, Ban{Reason: "spam", Until: &until}); err != nil {
		t.Fatal(err)
	}
	if got := auditCount(t, db, c.tenant.ID); got != audits {
		t.Fatalf("repeated ban wrote %d audit rows", got-audits)
	}
	if _, err := db.Pool().Exec(ctx, "SELECT pg_notify($1, 'done')", sentinelChannel); err != nil {
		t.Fatal(err)
	}
	if n, err := listener.WaitForNotification(waitCtx); err != nil || n.Channel != sentinelChannel {
		t.Fatalf("after a repeated ban: got %+v, %v; want only the sentinel", n, err)
	}

	// The banned member reads but cannot write; unbanning restores writing.
	banned, err := db.GetUser(ctx, c.tenant.ID, c.member.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateComment(ctx, c.tenant.ID, ActorOf(banned), c.post.ID, "let me speak")
	wantCode(t, err, CodeForbidden)
	_, err = db.CreateReport(ctx, c.tenant.ID, ActorOf(banned), NewReport{TargetType: "post", TargetID: c.post.ID, Reason: "x"})
	wantCode(t, err, CodeForbidden)
	if _, err := db.GetPost(ctx, c.tenant.ID, ActorOf(banned), c.post.ID); err != nil {
		t.Fatalf("banned user reading: %v", err)
	}
	if _, err := db.UnbanUser(ctx, c.tenant.ID, ActorOf(mod), c.member.ID, "served"); err != nil {
		t.Fatal(err)
	}
	unbanned, err := db.GetUser(ctx, c.tenant.ID, c.member.ID)
	if err != nil || unbanned.Banned {
		t.Fatalf("after unban: %+v, %v", unbanned, err)
	}
	if _, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(unbanned), c.post.ID, "thanks"); err != nil {
		t.Fatal(err)
	}
}

// TestLastAdmin: the tenant always keeps an unbanned admin, also when two
// admins demote each other at the same moment.
func TestLastAdmin(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher, MaxConns: 8})
	ctx := testCtx(t)
	c := newCommunity(t, db, "last-admin")
	admin := ActorOf(c.admin)

	_, err := db.SetRole(ctx, c.tenant.ID, admin, c.admin.ID, RoleMember, "")
	wantCode(t, err, CodeConflict)
	_, err = db.SetRole(ctx, c.tenant.ID, ActorOf(c.member), c.member.ID, RoleAdmin, "")
	wantCode(t, err, CodeForbidden)
	_, err = db.SetRole(ctx, c.tenant.ID, admin, c.member.ID, "owner", "")
	wantCode(t, err, CodeInvalid)

	// A second admin who is banned does not count.
	second, err := db.SetRole(ctx, c.tenant.ID, admin, c.member.ID, RoleAdmin, "trusted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.BanUser(ctx, c.tenant.ID, admin, second.ID, Ban{Reason: "compromised"}); err != nil {
		t.Fatal(err)
	}
	_, err = db.SetRole(ctx, c.tenant.ID, admin, c.admin.ID, RoleModerator, "")
	wantCode(t, err, CodeConflict)
	if _, err := db.UnbanUser(ctx, c.tenant.ID, admin, second.ID, ""); err != nil {
		t.Fatal(err)
	}

	// Two admins demote each other at once: exactly one wins.
	for round := range 3 {
		a, b := c.admin, second
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i, pair := range [][2]User{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = db.SetRole(ctx, c.tenant.ID, ActorOf(pair[0]), pair[1].ID, RoleMember, "")
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else {
				wantCode(t, err, CodeConflict)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of 2 mutual demotions succeeded (%v)", round, ok, errs)
		}
		var admins int
		if err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE role = 'admin'`).Scan(&admins)
		}); err != nil {
			t.Fatal(err)
		}
		if admins != 1 {
			t.Fatalf("round %d: %d admins left, want 1", round, admins)
		}
		// Restore two admins, whoever won.
		winner := a
		if errs[0] != nil {
			winner = b
		}
		loser := a.ID + b.ID - winner.ID
		if _, err := db.SetRole(ctx, c.tenant.ID, ActorOf(winner), loser, RoleAdmin, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReports: one open report per reporter and target; a hidden target is
// not found for members; resolving is logged once and cannot be redone.
func TestReports(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: modHasher})
	ctx := testCtx(t)
	c := newCommunity(t, db, "reports")
	member, admin := ActorOf(c.member), ActorOf(c.admin)

	r, err := db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "comment", TargetID: c.comment.ID, Reason: "rude"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ReportOpen || r.Reporter.ID != c.member.ID || r.PostID == nil || *r.PostID != c.post.ID {
		t.Fatalf("report = %+v", r)
	}
	_, err = db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "comment", TargetID: c.comment.ID, Reason: "still rude"})
	wantCode(t, err, CodeConflict)
	_, err = db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "user", TargetID: c.admin.ID, Reason: "x"})
	wantCode(t, err, CodeInvalid)
	_, err = db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "post", TargetID: c.post.ID + 1000, Reason: "x"})
	wantCode(t, err, CodeNotFound)

	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "post", TargetID: c.post.ID, Reason: "x"})
	wantCode(t, err, CodeNotFound)

	_, err = db.ListReports(ctx, c.tenant.ID, member, ReportOpen, PageParams{Limit: 10})
	wantCode(t, err, CodeForbidden)
	open, err := db.ListReports(ctx, c.tenant.ID, admin, ReportOpen, PageParams{Limit: 10})
	if err != nil || len(open.Items) != 1 || open.Items[0].ID != r.ID {
		t.Fatalf("open reports = %+v, %v", open, err)
	}

	audits := auditCount(t, db, c.tenant.ID)
	res, err := db.ResolveReport(ctx, c.tenant.ID, admin, r.ID, "warned them")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != ReportResolved || res.Note == nil || *res.Note != "warned them" ||
		res.ResolvedBy == nil || res.ResolvedBy.ID != c.admin.ID || res.ResolvedAt == nil {
		t.Fatalf("resolved report = %+v", res)
	}
	if got := auditCount(t, db, c.tenant.ID); got != audits+1 {
		t.Fatalf("resolve wrote %d audit rows, want 1", got-audits)
	}
	_, err = db.ResolveReport(ctx, c.tenant.ID, admin, r.ID, "again")
	wantCode(t, err, CodeConflict)

	// Resolved, the reporter may report the same comment again (once its
	// post is visible again: a comment of a hidden post is hidden too).
	if _, err := db.ModeratePost(ctx, c.tenant.ID, admin, c.post.ID, ActionUnhide, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateReport(ctx, c.tenant.ID, member, NewReport{TargetType: "comment", TargetID: c.comment.ID, Reason: "again"}); err != nil {
		t.Fatal(err)
	}
	resolved, err := db.ListReports(ctx, c.tenant.ID, admin, ReportResolved, PageParams{Limit: 10})
	if err != nil || len(resolved.Items) != 1 || resolved.Items[0].ID != r.ID {
		t.Fatalf("resolved reports = %+v, %v", resolved, err)
	}
}
