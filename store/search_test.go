package store

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// searchAll pages through every result of a search with the given page
// size and returns them in order.
func searchAll(t *testing.T, db *DB, tenantID int64, actor Actor, q string, boardID int64, limit int) []SearchResult {
	t.Helper()
	ctx := testCtx(t)
	var all []SearchResult
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("search %q: paging does not end (%d results so far)", q, len(all))
		}
		pg, err := db.Search(ctx, tenantID, actor, SearchParams{Query: q, BoardID: boardID, PageParams: PageParams{Limit: limit, Cursor: cursor}})
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		if len(pg.Items) > limit {
			t.Fatalf("search %q: page of %d with limit %d", q, len(pg.Items), limit)
		}
		all = append(all, pg.Items...)
		if pg.NextCursor == nil {
			return all
		}
		cursor = *pg.NextCursor
	}
}

// key names a result: p17 for a post, c42 for a comment.
func (r SearchResult) key() string {
	if r.CommentID != nil {
		return fmt.Sprintf("c%d", *r.CommentID)
	}
	return fmt.Sprintf("p%d", r.Post.ID)
}

func keys(rs []SearchResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.key()
	}
	return out
}

func postKey(p Post) string       { return fmt.Sprintf("p%d", p.ID) }
func commentKey(c Comment) string { return fmt.Sprintf("c%d", c.ID) }

func mustPost(t *testing.T, db *DB, c community, actor Actor, title, body string) Post {
	t.Helper()
	p, err := db.CreatePost(testCtx(t), c.tenant.ID, actor, c.board.ID, title, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustComment(t *testing.T, db *DB, c community, actor Actor, postID int64, body string) Comment {
	t.Helper()
	cm, err := db.CreateComment(testCtx(t), c.tenant.ID, actor, postID, body)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestSearchScripts: English words, Chinese, Japanese and Korean text are
// found by what a reader would type, whatever the case, and snippets mark
// the match.
func TestSearchScripts(t *testing.T) {
	db, _ := openDB(t, Config{})
	c := newCommunity(t, db, "scripts")
	m := ActorOf(c.member)
	post := mustPost(t, db, c, m, "Cooking notes", "Nothing about grains here.")
	zh := mustComment(t, db, c, m, post.ID, "我喜欢米饭，也喜欢面条。")
	ja := mustComment(t, db, c, m, post.ID, "昨日、東京タワーに行きました。")
	ko := mustComment(t, db, c, m, post.ID, "어제 김치를 먹었다")
	en := mustComment(t, db, c, m, post.ID, "PostgreSQL handles UTF-8 text well")
	fw := mustComment(t, db, c, m, post.ID, "ＰＯＳＴＧＲＥＳの全角")

	for _, tc := range []struct {
		q    string
		want []string // in any order
		mark string   // a marked part of the first result's snippet
	}{
		{"米饭", []string{commentKey(zh)}, "<mark>米饭</mark>"},
		{"米", []string{commentKey(zh)}, "<mark>米</mark>"},
		{"喜欢 面条", []string{commentKey(zh)}, "<mark>面条</mark>"},
		{"饭米", nil, ""},
		{"タワー", []string{commentKey(ja)}, "<mark>タワー</mark>"},
		{"東京タワー", []string{commentKey(ja)}, "<mark>東京タワー</mark>"},
		{"김치", []string{commentKey(ko)}, "<mark>김치</mark>"},
		{"POSTGRES", []string{commentKey(en), commentKey(fw)}, ""},
		{"utf-8", []string{commentKey(en)}, "<mark>UTF-8</mark>"},
		{"handles text", []string{commentKey(en)}, "<mark>handles</mark>"},
		{"handles grains", nil, ""},
		{"cooking", []string{postKey(post)}, "<mark>Cooking</mark>"},
		{"!!! ...", nil, ""},
		{`'":*&|!()<-> \`, nil, ""},
	} {
		got := searchAll(t, db, c.tenant.ID, m, tc.q, 0, 10)
		gotKeys := keys(got)
		sort.Strings(gotKeys)
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if strings.Join(gotKeys, ",") != strings.Join(want, ",") {
			t.Errorf("search %q: %v, want %v", tc.q, gotKeys, want)
			continue
		}
		if tc.mark != "" && !strings.Contains(got[0].Snippet, tc.mark) {
			t.Errorf("search %q: snippet %q does not contain %q", tc.q, got[0].Snippet, tc.mark)
		}
	}

	// The result carries what a reader needs to link to it.
	got := searchAll(t, db, c.tenant.ID, m, "米饭", 0, 10)
	r := got[0]
	if r.Type != "comment" || r.CommentID == nil || *r.CommentID != zh.ID || r.Post.ID != post.ID ||
		r.Post.Title != post.Title || r.Post.BoardID != c.board.ID || r.Author.ID != c.member.ID ||
		r.Author.Username != c.member.Username || !r.CreatedAt.Equal(zh.CreatedAt) {
		t.Errorf("result %+v does not describe comment %+v of post %+v", r, zh, post)
	}
}

// TestSearchRanking: a match in a title ranks above matches in bodies, and
// a post's own result says so.
func TestSearchRanking(t *testing.T) {
	db, _ := openDB(t, Config{})
	c := newCommunity(t, db, "ranking")
	m := ActorOf(c.member)
	other := mustPost(t, db, c, m, "Memory safety", "Languages compared; ownership is one approach.")
	body := mustComment(t, db, c, m, other.ID, "I read about ownership in a book.")
	title := mustPost(t, db, c, m, "Ownership explained", "A long walk through borrowing.")
	got := keys(searchAll(t, db, c.tenant.ID, m, "ownership", 0, 10))
	if len(got) != 3 || got[0] != postKey(title) {
		t.Fatalf("search ownership: %v, want the title match %s first of three", got, postKey(title))
	}
	if !(got[1] == postKey(other) || got[1] == commentKey(body)) {
		t.Errorf("search ownership: %v", got)
	}
	r := searchAll(t, db, c.tenant.ID, m, "ownership", 0, 1)
	if r[0].Type != "post" || r[0].CommentID != nil || r[0].Snippet != "<mark>Ownership</mark> explained" {
		t.Errorf("title match: %+v", r[0])
	}
}

// TestSearchPaging: every result exactly once, in the order of a single
// big page, whatever the page size, with many equal ranks.
func TestSearchPaging(t *testing.T) {
	db, _ := openDB(t, Config{})
	c := newCommunity(t, db, "paging")
	m := ActorOf(c.member)
	var want []string
	for i := range 6 {
		p := mustPost(t, db, c, m, fmt.Sprintf("Topic %d", i), "needle in a post body")
		want = append(want, postKey(p))
		for j := range 4 {
			body := "needle"
			if j%2 == 1 {
				body = "a needle and another needle, " + strings.Repeat("hay ", j)
			}
			want = append(want, commentKey(mustComment(t, db, c, m, p.ID, body)))
		}
	}
	whole := keys(searchAll(t, db, c.tenant.ID, m, "needle", 0, 200))
	if len(whole) != len(want) {
		t.Fatalf("one page: %d results, want %d", len(whole), len(want))
	}
	sortedWhole := append([]string{}, whole...)
	sort.Strings(sortedWhole)
	sort.Strings(want)
	if strings.Join(sortedWhole, ",") != strings.Join(want, ",") {
		t.Fatalf("one page: %v, want %v", sortedWhole, want)
	}
	for _, limit := range []int{1, 2, 3, 7} {
		if got := keys(searchAll(t, db, c.tenant.ID, m, "needle", 0, limit)); strings.Join(got, ",") != strings.Join(whole, ",") {
			t.Errorf("pages of %d: %v, want %v", limit, got, whole)
		}
	}
}

// TestSearchVisibility: hidden posts, hidden comments and the comments of
// hidden posts are found by moderators only; another tenant's text never.
func TestSearchVisibility(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "visible")
	other := newCommunity(t, db, "elsewhere")
	m, mod := ActorOf(c.member), ActorOf(c.admin)
	shown := mustPost(t, db, c, m, "Shown", "zebra in the open")
	shownComment := mustComment(t, db, c, m, shown.ID, "a zebra reply")
	hiddenComment := mustComment(t, db, c, m, shown.ID, "a zebra reply to hide")
	hiddenPost := mustPost(t, db, c, m, "Hidden zebra", "gone")
	underHidden := mustComment(t, db, c, m, hiddenPost.ID, "zebra under a hidden post")
	mustPost(t, db, other, ActorOf(other.member), "Zebra elsewhere", "zebra zebra zebra")
	if _, err := db.ModerateComment(ctx, c.tenant.ID, mod, hiddenComment.ID, "hide", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModeratePost(ctx, c.tenant.ID, mod, hiddenPost.ID, "hide", "test"); err != nil {
		t.Fatal(err)
	}

	visible := []string{postKey(shown), commentKey(shownComment)}
	all := append([]string{postKey(hiddenPost), commentKey(hiddenComment), commentKey(underHidden)}, visible...)
	for _, tc := range []struct {
		who   string
		actor Actor
		want  []string
	}{
		{"anonymous", Actor{}, visible},
		{"member", m, visible},
		{"moderator", mod, all},
	} {
		got := keys(searchAll(t, db, c.tenant.ID, tc.actor, "zebra", 0, 2))
		sort.Strings(got)
		want := append([]string{}, tc.want...)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v, want %v", tc.who, got, want)
		}
	}

	// Unhiding brings them back for everyone.
	if _, err := db.ModeratePost(ctx, c.tenant.ID, mod, hiddenPost.ID, "unhide", "test"); err != nil {
		t.Fatal(err)
	}
	if got := searchAll(t, db, c.tenant.ID, m, "zebra", 0, 10); len(got) != 4 {
		t.Errorf("after unhiding the post: %v, want 4 results", keys(got))
	}
	// The other tenant finds only its own.
	if got := searchAll(t, db, other.tenant.ID, ActorOf(other.admin), "zebra", 0, 10); len(got) != 1 || got[0].Post.Title != "Zebra elsewhere" {
		t.Errorf("other tenant: %+v", got)
	}
}

// TestSearchFollowsWrites: edits, deletes and the board filter.
func TestSearchFollowsWrites(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "writes")
	m := ActorOf(c.member)
	p := mustPost(t, db, c, m, "Original walrus", "body")
	cm := mustComment(t, db, c, m, p.ID, "a walrus comment")
	board2, err := db.CreateBoard(ctx, c.tenant.ID, ActorOf(c.admin), NewBoard{Name: "Second"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := db.CreatePost(ctx, c.tenant.ID, m, board2.ID, "walrus on the second board", "x")
	if err != nil {
		t.Fatal(err)
	}

	if got := keys(searchAll(t, db, c.tenant.ID, m, "walrus", board2.ID, 10)); strings.Join(got, ",") != postKey(p2) {
		t.Errorf("board filter: %v, want only %s", got, postKey(p2))
	}
	if got := searchAll(t, db, c.tenant.ID, m, "walrus", c.board.ID, 10); len(got) != 2 {
		t.Errorf("board filter: %v, want the post and comment of the first board", keys(got))
	}
	if _, err := db.Search(ctx, c.tenant.ID, m, SearchParams{Query: "walrus", BoardID: board2.ID + 1000, PageParams: PageParams{Limit: 10}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown board: %v, want not_found", err)
	}
	if _, err := db.Search(ctx, c.tenant.ID, m, SearchParams{Query: "walrus", BoardID: mustOtherBoard(t, db), PageParams: PageParams{Limit: 10}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("another tenant's board: %v, want not_found", err)
	}

	title, body := "Renamed narwhal", "body"
	if _, err := db.UpdatePost(ctx, c.tenant.ID, m, p.ID, PostPatch{Title: &title, Body: &body}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateComment(ctx, c.tenant.ID, m, cm.ID, "a narwhal comment"); err != nil {
		t.Fatal(err)
	}
	if got := keys(searchAll(t, db, c.tenant.ID, m, "walrus", 0, 10)); strings.Join(got, ",") != postKey(p2) {
		t.Errorf("after edits, walrus: %v, want only %s", got, postKey(p2))
	}
	if got := searchAll(t, db, c.tenant.ID, m, "narwhal", 0, 10); len(got) != 2 {
		t.Errorf("after edits, narwhal: %v, want the edited post and comment", keys(got))
	}
	if err := db.DeleteComment(ctx, c.tenant.ID, m, cm.ID); err != nil {
		t.Fatal(err)
	}
	if got := keys(searchAll(t, db, c.tenant.ID, m, "narwhal", 0, 10)); strings.Join(got, ",") != postKey(p) {
		t.Errorf("after deleting the comment: %v, want only %s", got, postKey(p))
	}
	if err := db.DeletePost(ctx, c.tenant.ID, m, p.ID); err != nil {
		t.Fatal(err)
	}
	if got := searchAll(t, db, c.tenant.ID, m, "narwhal", 0, 10); len(got) != 0 {
		t.Errorf("after deleting the post: %v", keys(got))
	}
}

func mustOtherBoard(t *testing.T, db *DB) int64 {
	t.Helper()
	return newCommunity(t, db, "other-board").board.ID
}

// TestSearchBadInput: the query's length, the cursor; all client errors.
func TestSearchBadInput(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "badinput")
	search := func(q, cursor string) error {
		_, err := db.Search(ctx, c.tenant.ID, Actor{}, SearchParams{Query: q, PageParams: PageParams{Limit: 10, Cursor: cursor}})
		return err
	}
	for _, q := range []string{"", "   \t\n", strings.Repeat("x", 201), strings.Repeat("米", 201), "a\x00b", "\xff\xfe"} {
		if err := search(q, ""); !errors.Is(err, &Error{Code: CodeInvalid}) {
			t.Errorf("q %q: %v, want unprocessable", q, err)
		}
	}
	for _, q := range []string{strings.Repeat("x", 200), "  " + strings.Repeat("米", 200) + "  ", "a"} {
		if err := search(q, ""); err != nil {
			t.Errorf("q of %d characters: %v", len([]rune(strings.TrimSpace(q))), err)
		}
	}
	for _, cursor := range []string{"!!!", "bm90IGpzb24", "eyJyIjoieCJ9"} {
		if err := search("hello", cursor); !errors.Is(err, &Error{Code: CodeBadRequest}) {
			t.Errorf("cursor %q: %v, want bad_request", cursor, err)
		}
	}
}

// TestSearchUsesIndexUnderRLS: as the application role, inside the tenant
// transaction, the match is answered by the GIN index on (tenant_id, doc).
// A condition of the query itself could not be (no text search operator is
// leakproof): with the match only in the statement, not in the policy,
// this plan would read every document of the tenant.
func TestSearchUsesIndexUnderRLS(t *testing.T) {
	db, url := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "plan")
	err := db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO comments (tenant_id, post_id, author_id, body)
			SELECT $1, $2, $3, 'comment number ' || i || CASE WHEN i % 500 = 0 THEN ' with a walrus' ELSE '' END
			FROM generate_series(1, 3000) i`, c.tenant.ID, c.post.ID, c.member.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := superConn(t, url).Exec(ctx, `ANALYZE search_docs`); err != nil {
		t.Fatal(err)
	}
	err = db.WithTenant(ctx, c.tenant.ID, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT set_config('app.search_query', search_query('walrus')::text, true)`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+searchSQL(""), float32(1e9), "9999-01-01", int64(1<<62), int64(1<<62), 10)
		if err != nil {
			return err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, "Bitmap Index Scan on search_docs_match") ||
			!regexp.MustCompile(`Index Cond: \(\(tenant_id = .*\) AND \(doc @@`).MatchString(plan) {
			t.Errorf("the search does not match through the GIN index:\n%s", plan)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := searchAll(t, db, c.tenant.ID, Actor{}, "walrus", 0, 100); len(got) != 6 {
		t.Errorf("walrus: %d results, want 6", len(got))
	}
}

// searchMigration is the version of migrations/0006_search.up.sql.
const searchMigration = 6

// TestSearchMigrationBackfill: migrating a database that already has posts
// and comments indexes them; down and up again gives the same results.
func TestSearchMigrationBackfill(t *testing.T) {
	db, url := openDB(t, Config{})
	c := newCommunity(t, db, "backfill")
	m := ActorOf(c.member)
	p := mustPost(t, db, c, m, "Old kingfisher", "written before search existed")
	cm := mustComment(t, db, c, m, p.ID, "我喜欢翠鸟 kingfisher")
	mg := ownerMigrator(t, url)
	// Down to the version before search, through whatever came after it.
	if err := mg.m.Migrate(versionBefore(t, searchMigration)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Search(testCtx(t), c.tenant.ID, m, SearchParams{Query: "kingfisher", PageParams: PageParams{Limit: 10}}); err == nil {
		t.Fatal("search works without its migration: the test is not testing the backfill")
	}
	// Written while the search tables do not exist (by SQL: the store's
	// statements need the later migrations): only the backfill can index it.
	var late Comment
	if err := superConn(t, url).QueryRow(testCtx(t), `INSERT INTO comments (tenant_id, post_id, author_id, body)
		VALUES ($1, $2, $3, 'a late kingfisher') RETURNING id`, c.tenant.ID, p.ID, c.member.ID).Scan(&late.ID); err != nil {
		t.Fatal(err)
	}
	if err := mg.Up(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	got := keys(searchAll(t, db, c.tenant.ID, m, "kingfisher", 0, 10))
	sort.Strings(got)
	want := []string{commentKey(cm), commentKey(late), postKey(p)}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after migrating up again: %v, want %v", got, want)
	}
	if got := keys(searchAll(t, db, c.tenant.ID, m, "翠鸟", 0, 10)); strings.Join(got, ",") != commentKey(cm) {
		t.Errorf("翠鸟 after migrating up again: %v", got)
	}
}
