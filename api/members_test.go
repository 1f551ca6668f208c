package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/api/apitest"
	"agora/store/pgtest"
)

type member struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Role        string     `json:"role"`
	Banned      bool       `json:"banned"`
	BannedUntil *time.Time `json:"banned_until"`
	CreatedAt   time.Time  `json:"created_at"`
}

// TestMembersREST: GET mod/users lists the tenant's users by username
// (ignoring case) with role and ban state, keyset paged, filtered by a
// name prefix and by ban. Who may call it is in TestModAuthorization;
// that it stays inside its tenant, in TestIsolationREST.
func TestMembersREST(t *testing.T) {
	f := newModForum(t, apitest.Options{Configure: noLimits})
	// alice (admin), bob, maude (moderator), victor, and more: mixed case,
	// an underscore that must not act as a wildcard.
	for _, name := range []string{"Vera", "val_1", "valx1", "Zed", "carl"} {
		f.Register(t, f.slug, name)
	}
	list := func(t *testing.T, query string) []member {
		t.Helper()
		var all []member
		path := f.path("mod/users" + query)
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("more than 20 pages")
			}
			status, body := f.Do(t, "GET", path, f.modToken, nil)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			var raw struct {
				Items      []json.RawMessage `json:"items"`
				NextCursor *string           `json:"next_cursor"`
			}
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			for _, it := range raw.Items {
				var keys map[string]any
				_ = json.Unmarshal(it, &keys)
				got := slices.Sorted(func(yield func(string) bool) {
					for k := range keys {
						if !yield(k) {
							return
						}
					}
				})
				if want := []string{"banned", "banned_until", "created_at", "id", "role", "username"}; !slices.Equal(got, want) {
					t.Fatalf("item %s has keys %v, want %v", it, got, want)
				}
				all = append(all, decode[member](t, it))
			}
			if raw.NextCursor == nil {
				return all
			}
			sep := "?"
			if strings.Contains(query, "?") {
				sep = "&"
			}
			path = f.path("mod/users" + query + sep + "cursor=" + *raw.NextCursor)
		}
	}
	names := func(ms []member) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Username)
		}
		return strings.Join(out, ",")
	}

	t.Run("ByUsername", func(t *testing.T) {
		all := list(t, "")
		if got, want := names(all), "alice,bob,carl,maude,val_1,valx1,Vera,victor,Zed"; got != want {
			t.Fatalf("users %s, want %s", got, want)
		}
		roles := map[string]string{}
		for _, m := range all {
			roles[m.Username] = m.Role
			if m.ID == "" || m.CreatedAt.IsZero() || m.Banned || m.BannedUntil != nil {
				t.Errorf("%+v: want an id, a creation time and no ban", m)
			}
		}
		if roles["alice"] != "admin" || roles["maude"] != "moderator" || roles["bob"] != "member" {
			t.Errorf("roles %v", roles)
		}
		if all[0].ID != fmt.Sprint(f.admin.ID) {
			t.Errorf("alice has id %s, want %d", all[0].ID, f.admin.ID)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		for _, limit := range []int{1, 2, 4, 200} {
			if got, want := names(list(t, fmt.Sprintf("?limit=%d", limit))), names(list(t, "")); got != want {
				t.Errorf("limit %d: %s, want %s", limit, got, want)
			}
		}
		// A user who registers between two pages shows up once, in place.
		status, body := f.Do(t, "GET", f.path("mod/users?limit=3"), f.modToken, nil)
		first := decode[page[member]](t, body)
		if status != http.StatusOK || first.NextCursor == nil || names(first.Items) != "alice,bob,carl" {
			t.Fatalf("first page: %d %s", status, body)
		}
		f.Register(t, f.slug, "aaron") // sorts before the cursor: not on later pages
		f.Register(t, f.slug, "dora")
		status, body = f.Do(t, "GET", f.path("mod/users?limit=3&cursor="+*first.NextCursor), f.modToken, nil)
		if second := decode[page[member]](t, body); status != http.StatusOK || names(second.Items) != "dora,maude,val_1" {
			t.Fatalf("second page: %d %s", status, body)
		}
	})

	t.Run("Prefix", func(t *testing.T) {
		for q, want := range map[string]string{
			"v":       "val_1,valx1,Vera,victor",
			"V":       "val_1,valx1,Vera,victor",
			"VAL":     "val_1,valx1",
			"val_":    "val_1",
			"val%":    "",
			"zed":     "Zed",
			"nobody":  "",
			"ALICE":   "alice",
			"alice2x": "",
		} {
			if got := names(list(t, apitest.Query("", "q", q))); got != want {
				t.Errorf("q=%s: %s, want %s", q, got, want)
			}
		}
		if got := names(list(t, apitest.Query("", "q", "v", "limit", "1"))); got != "val_1,valx1,Vera,victor" {
			t.Errorf("q=v one by one: %s", got)
		}
	})

	t.Run("Banned", func(t *testing.T) {
		until := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
		f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/ban", f.victim.ID)), f.modToken,
			map[string]string{"reason": "spam", "until": until.Format(time.RFC3339)}, http.StatusOK, nil)
		f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/ban", f.member.ID)), f.modToken,
			map[string]string{"reason": "rude"}, http.StatusOK, nil)
		// carl's ban ran out: no ban.
		var carl member
		for _, m := range list(t, "?q=carl") {
			carl = m
		}
		f.MustDo(t, "POST", f.path("mod/users/"+carl.ID+"/ban"), f.modToken,
			map[string]string{"reason": "once", "until": until.Format(time.RFC3339)}, http.StatusOK, nil)
		ctx := context.Background()
		super, err := pgx.Connect(ctx, pgtest.SuperuserURL(dbName(t, f.DatabaseURL)))
		if err != nil {
			t.Fatal(err)
		}
		defer super.Close(ctx)
		if tag, err := super.Exec(ctx, `UPDATE users SET banned_until = now() - interval '1 second' WHERE id = $1`, carl.ID); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("expire carl's ban: %v, %v", tag, err)
		}

		banned := list(t, "?banned=true")
		if got := names(banned); got != "bob,victor" {
			t.Fatalf("banned: %s, want bob,victor", got)
		}
		if b := banned[0]; !b.Banned || b.BannedUntil != nil {
			t.Errorf("bob, banned until lifted: %+v", b)
		}
		if v := banned[1]; !v.Banned || v.BannedUntil == nil || !v.BannedUntil.Equal(until) {
			t.Errorf("victor, banned until %v: %+v", until, v)
		}
		for _, m := range list(t, "?banned=false") {
			if m.Username == "carl" && (m.Banned || m.BannedUntil != nil) {
				t.Errorf("carl's expired ban is shown: %+v", m)
			}
		}
		if got := names(list(t, "?banned=false")); got != names(list(t, "")) {
			t.Errorf("banned=false: %s, want everyone", got)
		}
		if got := names(list(t, "?banned=true&q=VI")); got != "victor" {
			t.Errorf("banned=true&q=VI: %s, want victor", got)
		}
		if got := names(list(t, "?banned=true&limit=1")); got != "bob,victor" {
			t.Errorf("banned one by one: %s", got)
		}
		// Unbanned, gone from the banned list.
		f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/users/%d/unban", f.member.ID)), f.modToken, nil, http.StatusOK, nil)
		if got := names(list(t, "?banned=true")); got != "victor" {
			t.Errorf("after bob's unban: %s, want victor", got)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		for _, tc := range []struct {
			query, code, field string
			status             int
		}{
			{"?banned=yes", "unprocessable", "banned", 422},
			{"?banned=TRUE", "unprocessable", "banned", 422},
			{"?limit=0", "unprocessable", "limit", 422},
			{"?cursor=not-a-cursor", "bad_request", "", 400},
		} {
			status, body := f.Do(t, "GET", f.path("mod/users"+tc.query), f.modToken, nil)
			e := wantError(t, tc.query, status, body, tc.status, tc.code)
			if tc.field != "" && e.Error.Fields[tc.field] == "" {
				t.Errorf("%s: fields %v do not name %s", tc.query, e.Error.Fields, tc.field)
			}
		}
	})
}
