package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"agora/api"
	"agora/api/apitest"
	"agora/store"
)

// standardMethods are the methods real routes use; Echo also lists its
// internal not-found routes, which are no endpoints.
var standardMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}

// tenantRoutes lists every registered tenant endpoint as method and path
// relative to /api/v1/t/:tenant/, so the isolation test covers routes added
// after it was written.
func tenantRoutes(t *testing.T, db *store.DB) [][2]string {
	t.Helper()
	const prefix = "/api/v1/t/:tenant/"
	var out [][2]string
	seen := map[string]bool{}
	for _, r := range api.New(api.Config{Store: db}).Routes() {
		if !standardMethods[r.Method] || !strings.HasPrefix(r.Path, prefix) {
			continue
		}
		key := r.Method + " " + r.Path
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, [2]string{r.Method, strings.TrimPrefix(r.Path, prefix)})
	}
	if len(out) < 15 {
		t.Fatalf("only %d tenant routes found: %v", len(out), out)
	}
	return out
}

// TestIsolationREST: with tenant A's ids, every tenant route called as
// tenant B's admin answers 404 and changes nothing; A's tokens are 401 on
// every route of B.
func TestIsolationREST(t *testing.T) {
	s := apitest.Start(t, apitest.Options{Configure: noLimits, Hasher: fastHasher})
	ctx := context.Background()
	tenantA, tenantB := s.NewTenant(t, "tenant-a"), s.NewTenant(t, "tenant-b")
	pa := func(rest string) string { return apitest.TenantPath("tenant-a", rest) }
	pb := func(rest string) string { return apitest.TenantPath("tenant-b", rest) }

	// Tenant A: an admin, a member, a board, a post, a comment, a report.
	alice, adminA := s.Register(t, "tenant-a", "alice")
	memberA, memberAToken := s.Register(t, "tenant-a", "carol")
	board := s.CreateBoard(t, "tenant-a", adminA, "General")
	post := s.CreatePost(t, "tenant-a", memberAToken, board.ID, "A's post", "A's body")
	// The mention gives A's admin a notification.
	comment := s.CreateComment(t, "tenant-a", memberAToken, post.ID, "A's comment, @alice")
	ids := map[string]int64{"board": board.ID, "post": post.ID, "comment": comment.ID, "user": memberA.ID}
	// Path parameters that are no ids, with a valid value, so that only
	// the foreign id can make the request fail.
	names := map[string]string{"kind": "like", "username": memberA.Username}
	routes := tenantRoutes(t, s.DB)
	for _, r := range routes {
		if r[0] == "POST" && r[1] == "reports" { // reporting exists: give A a report too
			var rep struct {
				ID int64 `json:"id,string"`
			}
			s.MustDo(t, "POST", pa("reports"), memberAToken,
				map[string]string{"target_type": "post", "target_id": fmt.Sprint(post.ID), "reason": "spam"}, http.StatusCreated, &rep)
			ids["report"] = rep.ID
		}
	}

	// Tenant B: its own admin (so role checks never stand in the way) and a
	// board of its own.
	_, adminB := s.Register(t, "tenant-b", "bob")
	boardB := s.CreateBoard(t, "tenant-b", adminB, "Elsewhere")

	rooms := []string{store.RoomTenant, store.BoardRoom(board.ID), store.PostRoom(post.ID),
		store.UserRoom(memberA.ID), store.UserRoom(alice.ID)}
	roomSeqs := func() []int64 {
		var seqs []int64
		for _, room := range rooms {
			st, err := s.DB.RoomState(ctx, tenantA.ID, room)
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, st.Seq)
		}
		return seqs
	}
	seqsBefore := roomSeqs()

	// Every body field any tenant endpoint reads, valid, so that nothing
	// but the foreign id can make the request fail.
	body := map[string]any{"title": "pwned", "body": "pwned", "name": "pwned", "reason": "pwned",
		"role": "member", "note": "pwned", "target_type": "post", "target_id": fmt.Sprint(post.ID),
		"comment_id": fmt.Sprint(comment.ID)}

	t.Run("ForeignIDs", func(t *testing.T) {
		tested := 0
		for _, r := range routes {
			method, path := r[0], r[1]
			if !strings.Contains(path, ":") {
				continue
			}
			missing := ""
			for _, seg := range strings.Split(path, "/") {
				if name, ok := strings.CutPrefix(seg, ":"); ok {
					value, known := names[name]
					if id, ok := ids[name]; ok {
						value, known = fmt.Sprint(id), true
					}
					if !known {
						missing = name
						break
					}
					path = strings.Replace(path, seg, value, 1)
				}
			}
			if missing != "" {
				t.Errorf("%s %s: the test has no tenant-A object for :%s; extend TestIsolationREST", method, r[1], missing)
				continue
			}
			var b any
			if method != "GET" && method != "DELETE" {
				b = body
			}
			for _, tok := range []string{adminB, ""} {
				if tok == "" && method != "GET" {
					continue // anonymous writes stop at 401 before any lookup
				}
				status, resp := s.Do(t, method, pb(path), tok, b)
				wantError(t, fmt.Sprintf("%s %s as B (token %v)", method, path, tok != ""), status, resp, http.StatusNotFound, "not_found")
				tested++
			}
		}
		t.Logf("%d requests with A's ids as B", tested)
	})

	t.Run("ListsOfB", func(t *testing.T) {
		var boards page[store.Board]
		s.MustDo(t, "GET", pb("boards"), adminB, nil, http.StatusOK, &boards)
		if len(boards.Items) != 1 || boards.Items[0].ID != boardB.ID {
			t.Errorf("B's boards: %+v, want only its own", boards.Items)
		}
		for _, r := range routes {
			if r[0] != "GET" || strings.Contains(r[1], ":") || !strings.HasPrefix(r[1], "mod/") {
				continue
			}
			var items page[map[string]any]
			s.MustDo(t, "GET", pb(r[1]), adminB, nil, http.StatusOK, &items)
			var want []map[string]any
			if r[1] == "mod/users" {
				// B's members: its admin alone.
				want = []map[string]any{{"username": "bob"}}
			}
			if len(items.Items) != len(want) || (len(want) == 1 && items.Items[0]["username"] != want[0]["username"]) {
				t.Errorf("GET %s as B: %v, want nothing of A's", r[1], items.Items)
			}
		}
	})

	var aliceNotes page[map[string]any]
	s.MustDo(t, "GET", pa("me/notifications"), adminA, nil, http.StatusOK, &aliceNotes)
	if len(aliceNotes.Items) != 1 {
		t.Fatalf("A's admin has %d notifications, want the mention", len(aliceNotes.Items))
	}
	aliceNote := aliceNotes.Items[0]["id"]

	t.Run("NotificationsOfA", func(t *testing.T) {
		var mine page[map[string]any]
		s.MustDo(t, "GET", pb("me/notifications"), adminB, nil, http.StatusOK, &mine)
		var count map[string]int
		s.MustDo(t, "GET", pb("me/notifications/unread_count"), adminB, nil, http.StatusOK, &count)
		if len(mine.Items) != 0 || count["unread_count"] != 0 {
			t.Errorf("B's admin sees notifications %v, unread %v; want none", mine.Items, count)
		}
		status, resp := s.Do(t, "POST", pb("me/notifications/read"), adminB, map[string]any{"ids": []any{aliceNote}})
		wantError(t, "marking A's notification read as B", status, resp, http.StatusNotFound, "not_found")
		// Nor can A's own member touch it: it is the admin's.
		status, resp = s.Do(t, "POST", pa("me/notifications/read"), memberAToken, map[string]any{"ids": []any{aliceNote}})
		wantError(t, "marking the admin's notification read as A's member", status, resp, http.StatusNotFound, "not_found")
	})

	t.Run("TokensOfA", func(t *testing.T) {
		for _, r := range routes {
			path := r[1]
			// :username before :user, which is its prefix.
			for _, r := range [][2]any{{":board", boardB.ID}, {":post", 1}, {":comment", 1}, {":username", "bob"}, {":user", 1}, {":report", 1}} {
				path = strings.ReplaceAll(path, r[0].(string), fmt.Sprint(r[1]))
			}
			path = strings.ReplaceAll(path, ":kind", names["kind"])
			for _, tok := range []string{adminA, memberAToken} {
				status, resp := s.Do(t, r[0], pb(path), tok, body)
				wantError(t, fmt.Sprintf("%s %s with a token of A", r[0], path), status, resp, http.StatusUnauthorized, "unauthorized")
			}
		}
	})

	// Nothing of A changed.
	var got store.Post
	s.MustDo(t, "GET", pa(fmt.Sprintf("posts/%d", post.ID)), memberAToken, nil, http.StatusOK, &got)
	if got.Title != post.Title || got.Body != post.Body || got.Version != 1 || got.CommentCount != 1 ||
		got.Locked || got.Pinned || got.Hidden || len(got.Reactions) != 0 || got.PostReading == nil || got.LastReadCommentID == nil || *got.LastReadCommentID != comment.ID {
		t.Errorf("A's post after B's attempts: %+v", got)
	}
	var comments page[store.Comment]
	s.MustDo(t, "GET", pa(fmt.Sprintf("posts/%d/comments", post.ID)), memberAToken, nil, http.StatusOK, &comments)
	if len(comments.Items) != 1 || comments.Items[0].Body != comment.Body || comments.Items[0].Version != 1 || len(comments.Items[0].Reactions) != 0 {
		t.Errorf("A's comments after B's attempts: %+v", comments.Items)
	}
	var boards page[store.Board]
	s.MustDo(t, "GET", pa("boards"), memberAToken, nil, http.StatusOK, &boards)
	if len(boards.Items) != 1 || boards.Items[0].Name != board.Name || boards.Items[0].Version != 1 {
		t.Errorf("A's boards after B's attempts: %+v", boards.Items)
	}
	var me store.User
	s.MustDo(t, "GET", pa("me"), memberAToken, nil, http.StatusOK, &me)
	if me.Role != store.RoleMember || me.Banned {
		t.Errorf("A's member after B's attempts: %+v", me)
	}
	var count map[string]int
	s.MustDo(t, "GET", pa("me/notifications/unread_count"), adminA, nil, http.StatusOK, &count)
	if count["unread_count"] != 1 {
		t.Errorf("A's admin's unread count after B's attempts: %v, want 1", count)
	}
	if seqs := roomSeqs(); fmt.Sprint(seqs) != fmt.Sprint(seqsBefore) {
		t.Errorf("A's room seqs %v changed to %v: events were written", seqsBefore, seqs)
	}
	if _, ok := ids["report"]; ok {
		var reports page[map[string]any]
		s.MustDo(t, "GET", pa("mod/reports?status=open"), adminA, nil, http.StatusOK, &reports)
		if len(reports.Items) != 1 {
			t.Errorf("A's open reports after B's attempts: %v", reports.Items)
		}
		var audit page[map[string]any]
		s.MustDo(t, "GET", pa("mod/audit"), adminA, nil, http.StatusOK, &audit)
		if len(audit.Items) != 0 {
			t.Errorf("A's audit log after B's attempts: %v", audit.Items)
		}
	}
	_ = tenantB
}
