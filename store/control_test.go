package store

import (
	"testing"
)

// TestStandings: what the realtime side rechecks after a listener outage
// (token, role, ban) is read for many tokens at once, and only within the
// tenant.
func TestStandings(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "standing")
	other := newCommunity(t, db, "standing-other")
	session := func(tenantID int64, token string) Session {
		t.Helper()
		s, err := db.Authenticate(ctx, tenantID, token)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin, member := session(c.tenant.ID, c.adminToken), session(c.tenant.ID, c.memberToken)
	foreign := session(other.tenant.ID, other.memberToken)
	ids := []int64{admin.TokenID, member.TokenID, foreign.TokenID}
	check := func(what string, want map[int64]Standing) {
		t.Helper()
		got, err := db.Standings(ctx, c.tenant.ID, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: standings %+v, want %+v", what, got, want)
		}
		for id, w := range want {
			if got[id] != w {
				t.Fatalf("%s: token %d stands %+v, want %+v", what, id, got[id], w)
			}
		}
	}
	adminStands := Standing{Valid: true, UserID: c.admin.ID, Role: RoleAdmin}
	check("fresh", map[int64]Standing{
		admin.TokenID:  adminStands,
		member.TokenID: {Valid: true, UserID: c.member.ID, Role: RoleMember},
	})

	if _, err := db.SetRole(ctx, c.tenant.ID, ActorOf(c.admin), c.member.ID, RoleModerator, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BanUser(ctx, c.tenant.ID, ActorOf(c.admin), c.member.ID, Ban{Reason: "spam"}); err != nil {
		t.Fatal(err)
	}
	check("promoted and banned", map[int64]Standing{
		admin.TokenID:  adminStands,
		member.TokenID: {Valid: true, UserID: c.member.ID, Role: RoleModerator, Banned: true},
	})

	if err := db.Logout(ctx, c.tenant.ID, member.TokenID); err != nil {
		t.Fatal(err)
	}
	check("logged out", map[int64]Standing{
		admin.TokenID:  adminStands,
		member.TokenID: {UserID: c.member.ID, Role: RoleModerator, Banned: true},
	})
}
