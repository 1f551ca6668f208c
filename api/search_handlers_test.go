package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"agora/api/apitest"
)

func searchPath(f *forum, params url.Values) string { return f.path("search?" + params.Encode()) }

// TestSearchHTTP: the documented shape, in English and Chinese, snippets
// that are safe HTML, paging with next_cursor, and hidden content for
// moderators only.
func TestSearchHTTP(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	p := f.CreatePost(t, f.slug, f.memberToken, f.board.ID, "Rice cookers", "Which one do you use? <script>alert(1)</script> rice")
	zh := f.CreateComment(t, f.slug, f.adminToken, p.ID, "我喜欢米饭，每天都吃。")
	f.CreateComment(t, f.slug, f.memberToken, p.ID, "Brown rice takes longer")

	var raw map[string]any
	f.MustDo(t, "GET", searchPath(f, url.Values{"q": {"米饭"}}), "", nil, http.StatusOK, &raw)
	items, _ := raw["items"].([]any)
	if len(items) != 1 || raw["next_cursor"] != nil {
		t.Fatalf("search 米饭: %v", raw)
	}
	item := items[0].(map[string]any)
	post, _ := item["post"].(map[string]any)
	author, _ := item["author"].(map[string]any)
	if item["type"] != "comment" || item["comment_id"] != fmt.Sprint(zh.ID) ||
		post["id"] != fmt.Sprint(p.ID) || post["title"] != "Rice cookers" || post["board_id"] != fmt.Sprint(f.board.ID) ||
		author["id"] != fmt.Sprint(f.admin.ID) || author["username"] != f.admin.Username ||
		item["snippet"] != "我喜欢<mark>米饭</mark>，每天都吃。" || item["created_at"] == nil {
		t.Errorf("search 米饭: item %v", item)
	}

	// English: the post's title beats the bodies; its snippet is escaped.
	var pg page[map[string]any]
	f.MustDo(t, "GET", searchPath(f, url.Values{"q": {"RICE"}, "limit": {"1"}}), f.memberToken, nil, http.StatusOK, &pg)
	if len(pg.Items) != 1 || pg.Items[0]["type"] != "post" || pg.Items[0]["comment_id"] != nil || pg.NextCursor == nil {
		t.Fatalf("search RICE, first page: %+v", pg)
	}
	if s := pg.Items[0]["snippet"].(string); strings.Contains(s, "<script") || !strings.Contains(s, "&lt;script&gt;") || !strings.Contains(s, "<mark>rice</mark>") {
		t.Errorf("post snippet %q: want the body escaped and rice marked", s)
	}
	seen := 1
	for pg.NextCursor != nil {
		cursor := *pg.NextCursor
		pg = page[map[string]any]{}
		f.MustDo(t, "GET", searchPath(f, url.Values{"q": {"RICE"}, "limit": {"1"}, "cursor": {cursor}}), f.memberToken, nil, http.StatusOK, &pg)
		seen += len(pg.Items)
		if seen > 5 {
			t.Fatal("paging does not end")
		}
	}
	if seen != 2 {
		t.Errorf("search RICE: %d results over all pages, want the post and one comment", seen)
	}

	// Hidden content: moderators only.
	f.MustDo(t, "POST", f.path(fmt.Sprintf("mod/comments/%d/hide", zh.ID)), f.adminToken, nil, http.StatusOK, nil)
	for _, who := range []struct {
		token string
		want  int
	}{{"", 0}, {f.memberToken, 0}, {f.adminToken, 1}} {
		pg = page[map[string]any]{}
		f.MustDo(t, "GET", searchPath(f, url.Values{"q": {"米饭"}}), who.token, nil, http.StatusOK, &pg)
		if len(pg.Items) != who.want {
			t.Errorf("hidden comment, token %q: %d results, want %d", who.token, len(pg.Items), who.want)
		}
	}

	// Another tenant never sees this one's text.
	f.NewTenant(t, "elsewhere")
	_, other := f.Register(t, "elsewhere", "eve")
	pg = page[map[string]any]{}
	f.MustDo(t, "GET", apitest.TenantPath("elsewhere", "search?q=rice"), other, nil, http.StatusOK, &pg)
	if len(pg.Items) != 0 {
		t.Errorf("another tenant's search: %v", pg.Items)
	}
}

// TestSearchBadInput: every mistake is a 4xx in the error envelope.
func TestSearchBadInput(t *testing.T) {
	f := newForum(t, apitest.Options{Configure: noLimits})
	for _, tc := range []struct {
		name   string
		params url.Values
		status int
		code   string
		field  string
	}{
		{"no q", url.Values{}, 422, "unprocessable", "q"},
		{"empty q", url.Values{"q": {""}}, 422, "unprocessable", "q"},
		{"blank q", url.Values{"q": {" \t "}}, 422, "unprocessable", "q"},
		{"long q", url.Values{"q": {strings.Repeat("米", 201)}}, 422, "unprocessable", "q"},
		{"NUL in q", url.Values{"q": {"a\x00b"}}, 422, "unprocessable", "q"},
		{"not UTF-8", url.Values{"q": {"\xff"}}, 422, "unprocessable", "q"},
		{"limit 0", url.Values{"q": {"x"}, "limit": {"0"}}, 422, "unprocessable", "limit"},
		{"limit 201", url.Values{"q": {"x"}, "limit": {"201"}}, 422, "unprocessable", "limit"},
		{"limit abc", url.Values{"q": {"x"}, "limit": {"abc"}}, 422, "unprocessable", "limit"},
		{"garbage cursor", url.Values{"q": {"x"}, "cursor": {"!!!"}}, 400, "bad_request", ""},
		{"cursor of another shape", url.Values{"q": {"x"}, "cursor": {"eyJyIjoieCJ9"}}, 400, "bad_request", ""},
		{"board abc", url.Values{"q": {"x"}, "board": {"abc"}}, 422, "unprocessable", "board"},
		{"no such board", url.Values{"q": {"x"}, "board": {"999999999"}}, 404, "not_found", ""},
	} {
		status, body := f.Do(t, "GET", searchPath(f, tc.params), f.memberToken, nil)
		e := wantError(t, tc.name, status, body, tc.status, tc.code)
		if tc.field != "" && e.Error.Fields[tc.field] == "" {
			t.Errorf("%s: %s does not name the field %s", tc.name, body, tc.field)
		}
	}
	// Operators and quotes of the tsquery syntax are just text.
	for _, q := range []string{`'":*&|!()<->\`, "!!!", strings.Repeat("米", 200)} {
		var pg page[map[string]any]
		f.MustDo(t, "GET", searchPath(f, url.Values{"q": {q}}), "", nil, http.StatusOK, &pg)
	}
}
