package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestListPostsOrder pages through a board with a pinned post and bumped
// activity: pinned first, then newest activity, each post exactly once.
func TestListPostsOrder(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "order")
	author := ActorOf(c.member)
	var posts []Post
	for _, title := range []string{"p1", "p2", "p3", "p4", "p5"} {
		p, err := db.CreatePost(ctx, c.tenant.ID, author, c.board.ID, title, "body of "+title)
		if err != nil {
			t.Fatal(err)
		}
		posts = append(posts, p)
	}
	// p2 gets a comment (newest activity); p4 is pinned by a moderator
	// action, which is not activity.
	if _, err := db.CreateComment(ctx, c.tenant.ID, author, posts[1].ID, "bump"); err != nil {
		t.Fatal(err)
	}
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		old, err := getPost(ctx, tx, ActorOf(c.admin), posts[3].ID, true)
		if err != nil {
			return err
		}
		next := old
		next.Pinned = true
		_, err = savePost(ctx, tx, c.tenant.ID, old, next)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p4", "p2", "p5", "p3", "p1", c.post.Title}

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatalf("pagination does not end: %v", got)
		}
		pg, err := db.ListPosts(ctx, c.tenant.ID, Actor{}, c.board.ID, PageParams{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(pg.Items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(pg.Items))
		}
		for _, p := range pg.Items {
			got = append(got, p.Title)
		}
		if pg.NextCursor == nil {
			break
		}
		cursor = *pg.NextCursor
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("posts in order %v, want %v", got, want)
	}

	// A cursor is opaque but not trusted: garbage is bad_request.
	for _, bad := range []string{"!!!", "bm90IGpzb24", "eyJwIjoieCJ9"} {
		if _, err := db.ListPosts(ctx, c.tenant.ID, Actor{}, c.board.ID, PageParams{Limit: 2, Cursor: bad}); !errors.Is(err, &Error{Code: CodeBadRequest}) {
			t.Errorf("cursor %q: %v, want bad_request", bad, err)
		}
	}
}

// TestHiddenContent: hidden posts and comments exist only for moderators.
func TestHiddenContent(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "hidden")
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		old, _, err := getComment(ctx, tx, ActorOf(c.admin), c.comment.ID, true)
		if err != nil {
			return err
		}
		next := old
		next.Hidden = true
		_, err = saveComment(ctx, tx, c.tenant.ID, old, next)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	member, mod := ActorOf(c.member), ActorOf(c.admin)
	if pg, err := db.ListComments(ctx, c.tenant.ID, member, c.post.ID, PageParams{Limit: 10}); err != nil || len(pg.Items) != 0 {
		t.Errorf("member sees %d comments (%v), want the hidden one left out", len(pg.Items), err)
	}
	if pg, err := db.ListComments(ctx, c.tenant.ID, mod, c.post.ID, PageParams{Limit: 10}); err != nil || len(pg.Items) != 1 || !pg.Items[0].Hidden {
		t.Errorf("moderator sees %+v (%v), want the hidden comment marked hidden", pg.Items, err)
	}
	body := "edit"
	if _, err := db.UpdateComment(ctx, c.tenant.ID, member, c.comment.ID, body); !errors.Is(err, ErrNotFound) {
		t.Errorf("member editing a hidden comment: %v, want not_found", err)
	}
}

// TestTickets: a WebSocket ticket works once, and dies with its session.
func TestTickets(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "tickets")
	sess, err := db.Authenticate(ctx, c.tenant.ID, c.memberToken)
	if err != nil {
		t.Fatal(err)
	}
	ticket, expires, err := db.CreateTicket(ctx, c.tenant.ID, c.member.ID, sess.TokenID)
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); expires.Before(now) || expires.After(now.Add(TicketTTL+5*time.Second)) {
		t.Errorf("ticket expires at %v; now is %v and tickets live at most %v", expires, now, TicketTTL)
	}
	if _, err := db.Authenticate(ctx, c.tenant.ID, ticket); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a ticket used as a bearer token: %v, want unauthorized", err)
	}
	got, err := db.RedeemTicket(ctx, c.tenant.ID, ticket)
	if err != nil || got.User.ID != c.member.ID || got.TokenID != sess.TokenID {
		t.Fatalf("RedeemTicket = %+v, %v", got, err)
	}
	if _, err := db.RedeemTicket(ctx, c.tenant.ID, ticket); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("second redemption: %v, want unauthorized", err)
	}
	ticket2, _, err := db.CreateTicket(ctx, c.tenant.ID, c.member.ID, sess.TokenID)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Logout(ctx, c.tenant.ID, sess.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RedeemTicket(ctx, c.tenant.ID, ticket2); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ticket of a revoked session: %v, want unauthorized", err)
	}
	if _, err := db.Authenticate(ctx, c.tenant.ID, c.memberToken); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("token after logout: %v, want unauthorized", err)
	}
}

// TestUnstorableText: PostgreSQL text cannot hold NUL; such input is a
// validation error, never an internal one.
func TestUnstorableText(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "nul")
	nul := "a\x00b"
	errs := map[string]error{}
	_, errs["post title"] = db.CreatePost(ctx, c.tenant.ID, ActorOf(c.member), c.board.ID, nul, "body")
	_, errs["comment"] = db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, nul)
	_, errs["board"] = db.CreateBoard(ctx, c.tenant.ID, ActorOf(c.admin), NewBoard{Name: "Board", Slug: "nul-board", Description: nul})
	_, errs["tenant"] = db.CreateTenant(ctx, "nul-tenant", nul)
	_, _, errs["email"] = db.Register(ctx, c.tenant.ID, Registration{Username: "nul_user", Password: testPassword, Email: &nul})
	_, _, errs["login"] = db.Login(ctx, c.tenant.ID, nul, testPassword)
	for what, err := range errs {
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%s with NUL: %v, want a client error", what, err)
		}
	}
	if _, err := db.TenantBySlug(ctx, nul); !errors.Is(err, ErrNotFound) {
		t.Errorf("TenantBySlug with NUL: %v, want not_found", err)
	}
}
