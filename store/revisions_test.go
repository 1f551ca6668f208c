package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

const linkRel = `rel="nofollow ugc noopener"`

// TestBodyHTMLStored: posts and comments are rendered on write, mentions
// link only to users of the writer's tenant, and reads return what was
// stored without rendering again.
func TestBodyHTMLStored(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	a := newCommunity(t, db, "md-a")
	b := newCommunity(t, db, "md-b")

	p, err := db.CreatePost(ctx, a.tenant.ID, ActorOf(a.member), a.board.ID, "Formatting",
		"Hi @md_a_admin and @md_b_admin, see https://example.com <b>x</b>")
	if err != nil {
		t.Fatal(err)
	}
	wantPost := `<p>Hi <a class="mention" href="/t/md-a/u/md_a_admin">@md_a_admin</a> and @md_b_admin, see ` +
		`<a href="https://example.com" ` + linkRel + `>https://example.com</a> &lt;b&gt;x&lt;/b&gt;</p>`
	if p.BodyHTML != wantPost {
		t.Errorf("created post body_html\n got %s\nwant %s", p.BodyHTML, wantPost)
	}
	if p.EditedAt != nil {
		t.Errorf("a new post has edited_at %v", p.EditedAt)
	}
	c, err := db.CreateComment(ctx, a.tenant.ID, ActorOf(a.admin), p.ID, "@MD_A_MEMBER ~~no~~")
	if err != nil {
		t.Fatal(err)
	}
	wantComment := `<p><a class="mention" href="/t/md-a/u/md_a_member">@md_a_member</a> <del>no</del></p>`
	if c.BodyHTML != wantComment {
		t.Errorf("created comment body_html\n got %s\nwant %s", c.BodyHTML, wantComment)
	}
	// The same names written in tenant B link to B's users.
	pb, err := db.CreatePost(ctx, b.tenant.ID, ActorOf(b.member), b.board.ID, "Other", "@md_a_admin @md_b_admin")
	if err != nil {
		t.Fatal(err)
	}
	if want := `<p>@md_a_admin <a class="mention" href="/t/md-b/u/md_b_admin">@md_b_admin</a></p>`; pb.BodyHTML != want {
		t.Errorf("tenant B's post body_html %s, want %s", pb.BodyHTML, want)
	}

	got, err := db.GetPost(ctx, a.tenant.ID, Actor{}, p.ID)
	if err != nil || got.BodyHTML != wantPost || got.EditedAt != nil {
		t.Errorf("GetPost: body_html %q, edited_at %v, err %v", got.BodyHTML, got.EditedAt, err)
	}
	posts, err := db.ListPosts(ctx, a.tenant.ID, Actor{}, a.board.ID, PageParams{Limit: 10})
	if err != nil || len(posts.Items) != 2 || posts.Items[0].BodyHTML != wantPost || posts.Items[1].BodyHTML != "<p>First post.</p>" {
		t.Errorf("ListPosts: %+v, %v", posts.Items, err)
	}
	comments, err := db.ListComments(ctx, a.tenant.ID, Actor{}, p.ID, PageParams{Limit: 10})
	if err != nil || len(comments.Items) != 1 || comments.Items[0].BodyHTML != wantComment {
		t.Errorf("ListComments: %+v, %v", comments.Items, err)
	}

	// Reads serve what is stored: a stored rendering that differs from
	// what the renderer would make now comes back as it is.
	err = db.WithTenant(ctx, a.tenant.ID, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `UPDATE posts SET body_html = '<p>stored</p>' WHERE id = $1`, p.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetPost(ctx, a.tenant.ID, Actor{}, p.ID); err != nil || got.BodyHTML != "<p>stored</p>" {
		t.Errorf("GetPost after changing the stored rendering: %q, %v", got.BodyHTML, err)
	}
}

type diffPayload struct {
	ID      string                     `json:"id"`
	Version int                        `json:"version"`
	Changes map[string]json.RawMessage `json:"changes"`
}

func changedFields(t *testing.T, e Event) []string {
	t.Helper()
	var d diffPayload
	if err := json.Unmarshal(e.Payload, &d); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range d.Changes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestBodyHTMLInEvents: *.created carries body_html; *.updated carries it
// whenever the body changes, with edited_at for every edit, and
// moderation diffs carry neither.
func TestBodyHTMLInEvents(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "md-events")
	author, mod := ActorOf(c.member), ActorOf(c.admin)
	room := PostRoom(c.post.ID)
	start, err := db.RoomState(ctx, c.tenant.ID, room)
	if err != nil {
		t.Fatal(err)
	}

	body := "Now with **bold**"
	if _, err := db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Body: &body}); err != nil {
		t.Fatal(err)
	}
	title := "Retitled"
	if _, err := db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Title: &title}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, mod, c.post.ID, ActionLock, ""); err != nil {
		t.Fatal(err)
	}
	cm, err := db.CreateComment(ctx, c.tenant.ID, mod, c.post.ID, "a *new* one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateComment(ctx, c.tenant.ID, mod, cm.ID, "an *edited* one"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModerateComment(ctx, c.tenant.ID, mod, cm.ID, ActionHide, ""); err != nil {
		t.Fatal(err)
	}

	evs, err := db.EventsAfter(ctx, c.tenant.ID, room, start.Seq, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ    string
		fields []string
	}{
		{"post.updated", []string{"body", "body_html", "edited_at"}},
		{"post.updated", []string{"edited_at", "title"}},
		{"post.updated", []string{"locked"}},
		{"comment.created", nil},
		{"comment.updated", []string{"body", "body_html", "edited_at"}},
		{"comment.updated", []string{"hidden"}},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, w := range want {
		e := evs[i]
		if e.Type != w.typ {
			t.Errorf("event %d is %s, want %s", i, e.Type, w.typ)
			continue
		}
		if w.fields != nil && !slices.Equal(changedFields(t, e), w.fields) {
			t.Errorf("event %d %s changes %v, want %v", i, e.Type, changedFields(t, e), w.fields)
		}
	}
	var d struct {
		Changes struct {
			BodyHTML string    `json:"body_html"`
			EditedAt time.Time `json:"edited_at"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(evs[0].Payload, &d); err != nil || d.Changes.BodyHTML != "<p>Now with <strong>bold</strong></p>" || d.Changes.EditedAt.IsZero() {
		t.Errorf("post.updated of the body: %s", evs[0].Payload)
	}
	var created Comment
	if err := json.Unmarshal(evs[3].Payload, &created); err != nil || created.BodyHTML != "<p>a <em>new</em> one</p>" {
		t.Errorf("comment.created: %s", evs[3].Payload)
	}
	if err := json.Unmarshal(evs[4].Payload, &d); err != nil || d.Changes.BodyHTML != "<p>an <em>edited</em> one</p>" {
		t.Errorf("comment.updated of the body: %s", evs[4].Payload)
	}

	// post.created goes to the board room whole, body_html included. The
	// comment's post.activity is published first, so that post.created is
	// the board room's last event.
	settle(t, db, c.tenant.ID)
	p, err := db.CreatePost(ctx, c.tenant.ID, author, c.board.ID, "New", "see www.example.com")
	if err != nil {
		t.Fatal(err)
	}
	bevs, err := db.EventsAfter(ctx, c.tenant.ID, BoardRoom(c.board.ID), 0, 100)
	if err != nil || len(bevs) == 0 {
		t.Fatalf("board events: %d, %v", len(bevs), err)
	}
	var pc Post
	last := bevs[len(bevs)-1]
	if err := json.Unmarshal(last.Payload, &pc); err != nil || last.Type != "post.created" || pc.ID != p.ID ||
		pc.BodyHTML != `<p>see <a href="http://www.example.com" `+linkRel+`>www.example.com</a></p>` {
		t.Errorf("post.created: %s %s", last.Type, last.Payload)
	}
}

// TestEditedAt: moderation never sets edited_at; an edit of title or body
// does, and a later moderation action leaves it as it was.
func TestEditedAt(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "md-edited")
	author, mod := ActorOf(c.member), ActorOf(c.admin)

	for _, a := range []string{ActionLock, ActionUnlock, ActionPin, ActionHide, ActionUnhide} {
		p, err := db.ModeratePost(ctx, c.tenant.ID, mod, c.post.ID, a, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.EditedAt != nil {
			t.Fatalf("after %s: edited_at %v", a, p.EditedAt)
		}
	}
	for _, a := range []string{ActionHide, ActionUnhide} {
		cm, err := db.ModerateComment(ctx, c.tenant.ID, mod, c.comment.ID, a, "")
		if err != nil {
			t.Fatal(err)
		}
		if cm.EditedAt != nil {
			t.Fatalf("comment after %s: edited_at %v", a, cm.EditedAt)
		}
	}
	p, err := db.GetPost(ctx, c.tenant.ID, mod, c.post.ID)
	if err != nil || p.EditedAt != nil || p.Version != 6 {
		t.Fatalf("after moderation: version %d, edited_at %v, %v; want version 6 and no edited_at", p.Version, p.EditedAt, err)
	}

	// Saving the same text is no edit.
	same := c.post.Body
	if p, err = db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Body: &same}); err != nil || p.EditedAt != nil || p.Version != 6 {
		t.Fatalf("no-op edit: version %d, edited_at %v, %v", p.Version, p.EditedAt, err)
	}

	body := "Edited."
	edited, err := db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Body: &body})
	if err != nil {
		t.Fatal(err)
	}
	if edited.EditedAt == nil || edited.EditedAt.Before(edited.CreatedAt) || !edited.EditedAt.Equal(edited.UpdatedAt) {
		t.Fatalf("after an edit: edited_at %v (created %v, updated %v)", edited.EditedAt, edited.CreatedAt, edited.UpdatedAt)
	}
	locked, err := db.ModeratePost(ctx, c.tenant.ID, mod, c.post.ID, ActionLock, "")
	if err != nil {
		t.Fatal(err)
	}
	if locked.EditedAt == nil || !locked.EditedAt.Equal(*edited.EditedAt) {
		t.Errorf("lock after an edit moved edited_at from %v to %v", edited.EditedAt, locked.EditedAt)
	}
	if got, err := db.GetPost(ctx, c.tenant.ID, Actor{}, c.post.ID); err != nil || got.EditedAt == nil || !got.EditedAt.Equal(*edited.EditedAt) {
		t.Errorf("read back: edited_at %v, %v; want %v", got.EditedAt, err, edited.EditedAt)
	}

	cm, err := db.UpdateComment(ctx, c.tenant.ID, mod, c.comment.ID, "Welcome, edited!")
	if err != nil || cm.EditedAt == nil {
		t.Fatalf("comment edit: edited_at %v, %v", cm.EditedAt, err)
	}
	list, err := db.ListComments(ctx, c.tenant.ID, Actor{}, c.post.ID, PageParams{Limit: 10})
	if err != nil || len(list.Items) != 1 || list.Items[0].EditedAt == nil || !list.Items[0].EditedAt.Equal(*cm.EditedAt) {
		t.Errorf("ListComments after the edit: %+v, %v", list.Items, err)
	}
}

func revisionSummary(items []Revision) string {
	s := ""
	for _, r := range items {
		title := "-"
		if r.Title != nil {
			title = *r.Title
		}
		s += fmt.Sprintf("[%d %s %q %s]", r.Version, title, r.Body, r.EditedBy.Username)
	}
	return s
}

// TestRevisions: the history starts with the original, has one item per
// change of title or body (versions skip what moderation bumped), and is
// there for the author and moderators only.
func TestRevisions(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "md-rev")
	author, mod := ActorOf(c.member), ActorOf(c.admin)
	other := ActorOf(registerUser(t, db, c.tenant.ID, "md_rev_other"))
	all := PageParams{Limit: 50}

	// Never edited: the history is the post itself.
	revs, err := db.PostRevisions(ctx, c.tenant.ID, author, c.post.ID, all)
	if err != nil || revisionSummary(revs.Items) != `[1 Hello from md-rev "First post." md_rev_member]` || revs.NextCursor != nil {
		t.Fatalf("unedited post: %s, %v", revisionSummary(revs.Items), err)
	}
	if !revs.Items[0].EditedAt.Equal(c.post.CreatedAt) {
		t.Errorf("original edited_at %v, want created_at %v", revs.Items[0].EditedAt, c.post.CreatedAt)
	}

	body := "Second body"
	if _, err := db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Body: &body}); err != nil { // v2
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, mod, c.post.ID, ActionLock, ""); err != nil { // v3
		t.Fatal(err)
	}
	// The author may not edit the locked post; that writes no revision.
	title := "Author's title"
	if _, err := db.UpdatePost(ctx, c.tenant.ID, author, c.post.ID, PostPatch{Title: &title}); !errors.Is(err, ErrConflict) {
		t.Fatalf("author editing a locked post: %v, want conflict", err)
	}
	title = "Moderator's title"
	last, err := db.UpdatePost(ctx, c.tenant.ID, mod, c.post.ID, PostPatch{Title: &title}) // v4
	if err != nil {
		t.Fatal(err)
	}
	want := `[1 Hello from md-rev "First post." md_rev_member][2 Hello from md-rev "Second body" md_rev_member]` +
		`[4 Moderator's title "Second body" md_rev_admin]`
	for name, actor := range map[string]Actor{"author": author, "moderator": mod} {
		revs, err := db.PostRevisions(ctx, c.tenant.ID, actor, c.post.ID, all)
		if err != nil || revisionSummary(revs.Items) != want {
			t.Errorf("post history for the %s:\n got %s (%v)\nwant %s", name, revisionSummary(revs.Items), err, want)
			continue
		}
		if !revs.Items[0].EditedAt.Equal(c.post.CreatedAt) || !revs.Items[2].EditedAt.Equal(*last.EditedAt) {
			t.Errorf("history times %v, %v; want created_at %v and the last edited_at %v",
				revs.Items[0].EditedAt, revs.Items[2].EditedAt, c.post.CreatedAt, last.EditedAt)
		}
	}

	// Keyset pages.
	p1, err := db.PostRevisions(ctx, c.tenant.ID, author, c.post.ID, PageParams{Limit: 2})
	if err != nil || len(p1.Items) != 2 || p1.NextCursor == nil {
		t.Fatalf("first page: %s, cursor %v, %v", revisionSummary(p1.Items), p1.NextCursor, err)
	}
	p2, err := db.PostRevisions(ctx, c.tenant.ID, author, c.post.ID, PageParams{Limit: 2, Cursor: *p1.NextCursor})
	if err != nil || revisionSummary(p2.Items) != `[4 Moderator's title "Second body" md_rev_admin]` || p2.NextCursor != nil {
		t.Fatalf("second page: %s, cursor %v, %v", revisionSummary(p2.Items), p2.NextCursor, err)
	}

	// Anyone else: the same not_found as for a post that does not exist.
	_, missing := db.PostRevisions(ctx, c.tenant.ID, mod, c.post.ID+1000, all)
	for name, actor := range map[string]Actor{"another member": other, "anonymous": {}} {
		_, err := db.PostRevisions(ctx, c.tenant.ID, actor, c.post.ID, all)
		if !errors.Is(err, ErrNotFound) || err.Error() != missing.Error() {
			t.Errorf("post history for %s: %v; want %v", name, err, missing)
		}
	}

	// Comments: the admin's comment, edited twice.
	for _, b := range []string{"Welcome, twice!", "Welcome, thrice!"} {
		if _, err := db.UpdateComment(ctx, c.tenant.ID, mod, c.comment.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	crevs, err := db.CommentRevisions(ctx, c.tenant.ID, mod, c.comment.ID, all)
	wantC := `[1 - "Welcome!" md_rev_admin][2 - "Welcome, twice!" md_rev_admin][3 - "Welcome, thrice!" md_rev_admin]`
	if err != nil || revisionSummary(crevs.Items) != wantC {
		t.Errorf("comment history:\n got %s (%v)\nwant %s", revisionSummary(crevs.Items), err, wantC)
	}
	// The post's author is no moderator and did not write the comment.
	_, missing = db.CommentRevisions(ctx, c.tenant.ID, mod, c.comment.ID+1000, all)
	for name, actor := range map[string]Actor{"the post's author": author, "anonymous": {}} {
		_, err := db.CommentRevisions(ctx, c.tenant.ID, actor, c.comment.ID, all)
		if !errors.Is(err, ErrNotFound) || err.Error() != missing.Error() {
			t.Errorf("comment history for %s: %v; want %v", name, err, missing)
		}
	}
	if _, err := db.CommentRevisions(ctx, c.tenant.ID, mod, c.comment.ID, PageParams{Limit: 2, Cursor: "!!"}); !errors.Is(err, &Error{Code: CodeBadRequest}) {
		t.Errorf("bad cursor: %v, want bad_request", err)
	}
}
