package main

// Browser tests of the UI fixes a new user asked for (issue 11, item 6):
// character counts and human validation messages next to the field, a
// draft that survives moderation, the unknown community page, the logo
// and live renames, focus and labels around deleting, long threads in
// pages, the members page, a header that fits a phone in every connection
// state, and a live indicator that tells the truth.
//
// Screenshots of the new pages go to AGORA_SCREENSHOTS when it is set.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5"

	"agora/store"
	"agora/store/pgtest"
	"agora/web/webtest"
)

// wsProbe wraps the page's WebSocket before any of its scripts run, to
// count sockets, pings sent and pongs received, and records every
// connection state the header shows.
const wsProbe = `(() => {
	const W = window.WebSocket;
	const probe = { opened: 0, pings: 0, pongs: 0, states: [] };
	window.__ws = probe;
	window.WebSocket = class extends W {
		constructor(...args) {
			super(...args);
			probe.opened++;
			this.addEventListener("message", (e) => {
				if (typeof e.data === "string") probe.pongs += e.data.split("\n").filter((l) => l === '{"op":"pong"}').length;
			});
		}
		send(data) {
			if (data === '{"op":"ping"}') probe.pings++;
			return super.send(data);
		}
	};
	document.addEventListener("DOMContentLoaded", () => {
		const conn = document.getElementById("conn");
		new MutationObserver(() => {
			const s = conn.dataset.state;
			if (s && probe.states[probe.states.length - 1] !== s) probe.states.push(s);
		}).observe(conn, { attributes: true, attributeFilter: ["data-state"] });
	});
})()`

type wsCounts struct {
	Opened int      `json:"opened"`
	Pings  int      `json:"pings"`
	Pongs  int      `json:"pongs"`
	States []string `json:"states"`
}

// probeWebSockets installs wsProbe for every later page load of the tab.
func (tb *tab) probeWebSockets() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: wsProbe}); err != nil {
		tb.t.Fatalf("%s: install the WebSocket probe: %v", tb.name, err)
	}
}

// paste puts text into a field the way a paste does: as input the
// browser applies its own rules to (a maxlength would cut it).
func (tb *tab) paste(selector, text string) {
	tb.t.Helper()
	if !eval[bool](tb, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.focus(); el.select(); return true; })()`, selector)) {
		tb.t.Fatalf("%s: no %s to paste into", tb.name, selector)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
		tb.t.Fatalf("%s: paste: %v", tb.name, err)
	}
}

// screenshotDir is where screenshots are kept: AGORA_SCREENSHOTS, or the
// test's temp dir.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
		return d
	}
	return t.TempDir()
}

type restComment struct {
	ID   string `json:"id"`
	Body string `json:"body"`
}

func (f *forum) comments(s *testServer, postID string) []restComment {
	f.t.Helper()
	var page struct {
		Items []restComment `json:"items"`
	}
	f.call(s, "admin", http.MethodGet, "/posts/"+postID+"/comments?limit=200", nil, &page)
	return page.Items
}

// idOf parses an id from the REST API.
func idOf(t *testing.T, s string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return id
}

// renameBoard does what a board rename does, as no endpoint exists for it
// yet: in one transaction it changes the row and publishes board.updated
// in the tenant room, as store.publish writes events (the next seq, the
// event, the doorbell).
func renameBoard(t *testing.T, dbURL string, tenantID int64, boardID, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgtest.SuperuserURL(pgtest.DBName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		WITH b AS (
			UPDATE boards SET name = $3, version = version + 1, updated_at = now()
			WHERE tenant_id = $1 AND id = $2 RETURNING version
		), r AS (
			INSERT INTO rooms (tenant_id, name, seq) VALUES ($1, 'tenant', 1)
			ON CONFLICT (tenant_id, name) DO UPDATE SET seq = rooms.seq + 1
			RETURNING seq
		), e AS (
			INSERT INTO events (tenant_id, room, seq, type, payload)
			SELECT $1, 'tenant', r.seq, 'board.updated',
			       jsonb_build_object('id', $2::text, 'version', b.version, 'changes', jsonb_build_object('name', $3::text))
			FROM r, b RETURNING seq
		)
		SELECT pg_notify($4, $1::text || ' tenant ' || e.seq) FROM e`, tenantID, idOf(t, boardID), name, store.NotifyChannel)
	if err != nil {
		t.Fatalf("rename board: %v", err)
	}
}

// TestBrowserUI: the fixes on one server, each subtest on posts of its own.
func TestBrowserUI(t *testing.T) {
	webtest.Chromium(t)
	dbURL := pgtest.NewDatabase(t)
	srv := startServer(t, dbURL, "127.0.0.1:0")
	f := newForum(t, srv, "ui")
	tenant, err := srv.app.db.TenantBySlug(context.Background(), "ui")
	if err != nil {
		t.Fatal(err)
	}
	var board idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General", "description": "Anything goes."}, &board)
	newPost := func(user, title string) (id, url string) {
		var p idOnly
		f.call(srv, user, http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": title, "body": "Say something."}, &p)
		return p.ID, srv.URL + "/t/ui/p/" + p.ID
	}
	boardURL := srv.URL + "/t/ui/b/" + board.ID

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "ui", f.tokens["alice"])
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "ui", f.tokens["bob"])
	admin := b.newTab(t, "admin")
	admin.signIn(srv.URL, "ui", f.tokens["admin"])

	t.Run("CommentCountAndLimit", func(t *testing.T) {
		alice := alice.in(t)
		postID, postURL := newPost("bob", "Long answers welcome")
		alice.open(postURL, "#compose")
		alice.waitFor("an empty count", `document.querySelector("#comment-body-count")?.textContent === "0 / 20,000"`, 5*time.Second)
		// Emoji are one character each, as the server counts them.
		alice.paste("#comment-body", strings.Repeat("😀", 10))
		alice.waitFor("ten characters", `document.querySelector("#comment-body-count").textContent === "10 / 20,000"`, 5*time.Second)

		// A paste over the limit is kept whole, counted and refused.
		alice.paste("#comment-body", strings.Repeat("a", 20001))
		if n := eval[int](alice, `document.querySelector("#comment-body").value.length`); n != 20001 {
			t.Fatalf("the paste of 20,001 characters became %d", n)
		}
		alice.waitFor("the count over the limit", `(() => { const c = document.querySelector("#comment-body-count"); return c.textContent === "20,001 / 20,000" && c.classList.contains("over"); })()`, 5*time.Second)
		alice.click("#comment-submit")
		const refusal = "Comments can be at most 20,000 characters: this one has 20,001. Shorten it by 1."
		alice.waitFor("the refusal next to the field", fmt.Sprintf(`document.querySelector("#comment-body-error")?.textContent === %q`, refusal), 5*time.Second)
		if !eval[bool](alice, `document.activeElement?.id === "comment-body" && document.querySelector("#comment-body").getAttribute("aria-invalid") === "true" &&
			document.querySelector("#comment-body").getAttribute("aria-describedby").includes("comment-body-error")`) {
			t.Error("the refused field is not focused, marked invalid and described by the message")
		}
		if n := len(f.comments(srv, postID)); n != 0 {
			t.Fatalf("%d comments were sent", n)
		}
		// One character less fits: the message goes, the whole text is sent.
		alice.setValue("#comment-body", strings.Repeat("a", 20000))
		alice.waitFor("the message to go", `document.querySelector("#comment-body-error").hidden && document.querySelector("#comment-body-count").textContent === "20,000 / 20,000"`, 5*time.Second)
		alice.do(chromedp.Click(chromedp.ID("comment-submit")))
		alice.waitFor("the comment sent", `document.querySelector("#comment-body").value === "" && document.querySelectorAll("#comments > li").length === 1`, 10*time.Second)
		if got := f.comments(srv, postID); len(got) != 1 || len(got[0].Body) != 20000 {
			t.Fatalf("the server has %d comments (want one of 20,000 characters)", len(got))
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.paste("#comment-body", strings.Repeat("Too long. ", 2001))
			alice.click("#comment-submit")
			alice.waitFor("the refusal", `!document.querySelector("#comment-body-error").hidden`, 5*time.Second)
			eval[chromedp.Void](alice, `document.querySelector("#compose").scrollIntoView({block: "center"})`)
			alice.screenshot(d, "compose-over-limit-1280x800", 1280, 800, false)
			alice.screenshot(d, "compose-over-limit-390x844", 390, 844, true)
			alice.do(chromedp.EmulateViewport(1280, 800))
		}
	})

	t.Run("ServerMessagesNextToFields", func(t *testing.T) {
		alice := alice.in(t)
		// The 422s asked for here are logged by the browser.
		alice.tolerate(func(e *cdplog.Entry) bool {
			return e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "422") && strings.HasSuffix(e.URL, "/boards/"+board.ID+"/posts")
		})
		defer alice.tolerate(nil)
		alice.open(boardURL, "#new-post")
		eval[chromedp.Void](alice, `document.querySelector(".compose-post").open = true`)
		alice.waitFor("the title count", `document.querySelector("#post-title-count")?.textContent === "0 / 200"`, 5*time.Second)
		alice.setValue("#post-body", "A body without a title.")
		alice.click("#publish")
		alice.waitFor("the server's words next to the title",
			`document.querySelector("#post-title-error")?.textContent === "The title can't be empty." && document.querySelector("#post-title").getAttribute("aria-invalid") === "true"`, 5*time.Second)
		alice.setValue("#post-title", "A title")
		alice.setValue("#post-body", "   ")
		alice.click("#publish")
		alice.waitFor("the server's words next to the body", `document.querySelector("#post-body-error")?.textContent === "The text of the post can't be empty."`, 5*time.Second)
		if text := eval[string](alice, `document.querySelector("main").innerText`); strings.Contains(text, "validation failed") || strings.Contains(text, "required") {
			t.Errorf("machine words on the page: %q", text)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "new-post-error-1280x800", 1280, 800, false)
		}
		// A title over 200 is refused before sending.
		alice.paste("#post-title", strings.Repeat("t", 201))
		alice.setValue("#post-body", "Fine.")
		alice.click("#publish")
		alice.waitFor("the title refused", `document.querySelector("#post-title-error").textContent === "Titles can be at most 200 characters: this one has 201. Shorten it by 1." && document.querySelector("#post-title-count").textContent === "201 / 200"`, 5*time.Second)
		if !strings.HasSuffix(eval[string](alice, `location.pathname`), "/b/"+board.ID) {
			t.Fatal("the post was published")
		}
	})

	t.Run("DraftSurvivesLockAndHide", func(t *testing.T) {
		alice := alice.in(t)
		postID, postURL := newPost("bob", "Heated topic")
		alice.open(postURL, "#compose")
		alice.setValue("#comment-body", "Half a thought, carefully worded")
		f.call(srv, "admin", http.MethodPost, "/mod/posts/"+postID+"/lock", nil, nil)
		alice.waitFor("the compose box kept, submit off, and why", `(() => {
			const note = document.querySelector("#compose-blocked");
			return note && !note.hidden && note.textContent.includes("locked while you were writing") &&
				document.querySelector("#comment-body").value === "Half a thought, carefully worded" &&
				document.querySelector("#comment-submit").disabled; })()`, 5*time.Second)
		// Ctrl+Enter does not get past it either.
		eval[chromedp.Void](alice, `document.querySelector("#comment-body").dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", ctrlKey: true, bubbles: true}))`)
		if n := eval[int](alice, `performance.getEntriesByType("resource").filter((e) => e.name.endsWith("/posts/`+postID+`/comments")).length`); n != 0 {
			t.Fatalf("%d comment requests sent into a locked post", n)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "draft-locked-1280x800", 1280, 800, false)
		}
		f.call(srv, "admin", http.MethodPost, "/mod/posts/"+postID+"/unlock", nil, nil)
		alice.waitFor("submit back on", `!document.querySelector("#comment-submit").disabled && document.querySelector("#compose-blocked").hidden`, 5*time.Second)
		alice.do(chromedp.Click(chromedp.ID("comment-submit")))
		alice.waitFor("the comment sent", `document.querySelector("#comment-body").value === ""`, 10*time.Second)
		if got := f.comments(srv, postID); len(got) != 1 || got[0].Body != "Half a thought, carefully worded" {
			t.Fatalf("comments after unlocking: %+v", got)
		}

		alice.setValue("#comment-body", "Another thought")
		f.call(srv, "admin", http.MethodPost, "/mod/posts/"+postID+"/hide", nil, nil)
		alice.waitFor("the post gone, the draft kept", `(() => {
			const note = document.querySelector("#compose-blocked");
			return document.querySelector("#post-title")?.textContent === "This post was hidden by a moderator" &&
				note && !note.hidden && note.textContent.includes("hid this post") && note.checkVisibility() &&
				document.querySelector("#comment-body").value === "Another thought" &&
				document.querySelector("#comment-submit").disabled &&
				document.querySelector("#comments").hidden; })()`, 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "draft-hidden-390x844", 390, 844, true)
			alice.do(chromedp.EmulateViewport(1280, 800))
		}
	})

	t.Run("LogoAndLiveRenames", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		postID, postURL := newPost("alice", "Original title")
		alice.open(boardURL, "#posts > li")
		bob.open(postURL, "#post-title")
		for _, tb := range []*tab{alice, bob} {
			if href := eval[string](tb, `document.querySelector(".brand").getAttribute("href")`); href != "/t/ui/" {
				t.Errorf("%s: the logo leads to %q, want the community's front page", tb.name, href)
			}
		}
		bob.waitFor("the board in the breadcrumb", `document.querySelector("#crumbs").textContent.includes("General")`, 5*time.Second)
		renameBoard(t, dbURL, tenant.ID, board.ID, "Town square")
		alice.waitFor("the board page renamed", `document.querySelector("#board-title").textContent === "Town square" &&
			document.title.startsWith("Town square") && document.querySelector("#crumbs [aria-current=page]")?.textContent === "Town square"`, 5*time.Second)
		bob.waitFor("the post's breadcrumb renamed", `document.querySelector("#crumbs a[href='/t/ui/b/`+board.ID+`']")?.textContent === "Town square"`, 5*time.Second)

		f.call(srv, "alice", http.MethodPatch, "/posts/"+postID, map[string]string{"title": "Better title"}, nil)
		bob.waitFor("the post's title and breadcrumb", `document.querySelector("#post-title").textContent === "Better title" &&
			document.title.startsWith("Better title") && document.querySelector("#crumbs [aria-current=page]")?.textContent === "Better title"`, 5*time.Second)
		// The logo is a way home, not out: it opens the community's boards.
		bob.click(".brand")
		bob.waitFor("the community's boards", `location.pathname === "/t/ui/" && document.querySelector("#boards > li") !== null`, 5*time.Second)
	})

	t.Run("DeleteMovesFocusAndButtonsSayWhose", func(t *testing.T) {
		alice, bob, admin := alice.in(t), bob.in(t), admin.in(t)
		postID, postURL := newPost("bob", "Three comments")
		var ids []string
		for i := 1; i <= 3; i++ {
			var c idOnly
			f.call(srv, "alice", http.MethodPost, "/posts/"+postID+"/comments", map[string]string{"body": fmt.Sprintf("comment %d", i)}, &c)
			ids = append(ids, c.ID)
		}
		alice.open(postURL, "#comments > li")
		bob.open(postURL, "#comments > li")
		admin.open(postURL, "#comments > li")
		labels := func(tb *tab, sel string) []string {
			return eval[[]string](tb, fmt.Sprintf(`[...document.querySelectorAll(%q)].map((b) => b.getAttribute("aria-label") || "(none) " + b.textContent)`, sel))
		}
		c1 := commentSelector(ids[0])
		for _, tc := range []struct {
			tb   *tab
			sel  string
			want string
		}{
			{alice, c1 + ` [data-action="edit"]`, "Edit comment by alice"},
			{alice, c1 + ` [data-action="delete"]`, "Delete comment by alice"},
			{bob, c1 + ` [data-action="report"]`, "Report comment by alice"},
			{bob, `#post [data-action="edit"], #post #edit-post`, "Edit post by bob"},
			{bob, `#post [data-action="delete"]`, "Delete post by bob"},
			{alice, `#post [data-action="report"]`, "Report post by bob"},
			{admin, c1 + ` [data-action="hide"]`, "Hide comment by alice"},
			{admin, c1 + ` [data-action="ban"]`, "Ban alice"},
		} {
			if got := labels(tc.tb, tc.sel); len(got) != 1 || got[0] != tc.want {
				t.Errorf("%s: %s is labelled %q, want %q", tc.tb.name, tc.sel, got, tc.want)
			}
		}

		del := func(id string) {
			t.Helper()
			sel := commentSelector(id)
			alice.click(sel + ` [data-action="delete"]`)
			alice.click(sel + ` .confirm button.danger`)
			alice.waitFor("the comment gone", fmt.Sprintf(`document.querySelector(%q) === null`, sel), 5*time.Second)
		}
		focused := `document.activeElement?.id`
		del(ids[1])
		if got := eval[string](alice, focused); got != "c"+ids[2] {
			t.Errorf("after deleting the middle comment focus is on %q, want the next one, c%s", got, ids[2])
		}
		alice.waitFor("the announcement", `document.querySelector("#announcer").textContent.includes("Comment deleted.")`, 5*time.Second)
		del(ids[2])
		if got := eval[string](alice, focused); got != "c"+ids[0] {
			t.Errorf("after deleting the last comment focus is on %q, want the one before, c%s", got, ids[0])
		}
		del(ids[0])
		if got := eval[string](alice, focused); got != "comments-heading" {
			t.Errorf("after deleting the only comment focus is on %q, want the heading", got)
		}
		// A comment deleted elsewhere while focus is in it: the same.
		var c idOnly
		f.call(srv, "alice", http.MethodPost, "/posts/"+postID+"/comments", map[string]string{"body": "one more"}, &c)
		bob.waitFor("the new comment", fmt.Sprintf(`document.querySelector(%q) !== null`, commentSelector(c.ID)), 5*time.Second)
		eval[chromedp.Void](bob, fmt.Sprintf(`document.querySelector(%q).focus()`, commentSelector(c.ID)+` [data-action="report"]`))
		f.call(srv, "alice", http.MethodDelete, "/comments/"+c.ID, nil, nil)
		bob.waitFor("focus on the heading", `document.activeElement?.id === "comments-heading"`, 5*time.Second)
	})

	t.Run("LongThreadInPages", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		postID, postURL := newPost("bob", "A long thread")
		ctx := context.Background()
		bobActor := store.Actor{UserID: idOf(t, f.ids["bob"]), Username: "bob", Role: store.RoleMember}
		var ids []string
		for i := 1; i <= 120; i++ {
			c, err := srv.app.db.CreateComment(ctx, tenant.ID, bobActor, idOf(t, postID), fmt.Sprintf("comment %d", i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, strconv.FormatInt(c.ID, 10))
		}
		count := `document.querySelectorAll("#comments > li").length`
		alice.open(postURL, "#comments > li")
		alice.waitFor("the first page and a button", count+` === 50 && document.querySelector("#comments-heading").textContent === "120 comments" &&
			!document.querySelector("#more-comments").hidden && document.querySelector("#more-comments").textContent.includes("(50 of 120)")`, 5*time.Second)
		// A comment written meanwhile belongs after the unread pages.
		f.call(srv, "bob", http.MethodPost, "/posts/"+postID+"/comments", map[string]string{"body": "live one"}, nil)
		alice.waitFor("it counted, not shown out of order", `document.querySelector("#comments-heading").textContent === "121 comments"`, 5*time.Second)
		if n := eval[int](alice, count); n != 50 {
			t.Fatalf("%d comments shown after a live one, want 50", n)
		}
		alice.click("#more-comments")
		alice.waitFor("the second page", count+` === 100`, 5*time.Second)
		if got := eval[string](alice, `document.activeElement?.id`); got != "c"+ids[50] {
			t.Errorf("after more, focus on %q, want the first new comment c%s", got, ids[50])
		}
		alice.click("#more-comments")
		alice.waitFor("the rest, and no button", count+` === 121 && document.querySelector("#more-comments").hidden`, 5*time.Second)
		bodies := eval[[]string](alice, `[...document.querySelectorAll("#comments .comment-body")].map((el) => el.textContent)`)
		for i, body := range bodies {
			want := fmt.Sprintf("comment %d", i+1)
			if i == 120 {
				want = "live one"
			}
			if body != want {
				t.Fatalf("comment %d reads %q, want %q", i, body, want)
			}
		}

		// A link to a comment on the third page reads on to it.
		anon := b.newTab(t, "anonymous")
		anon.do(chromedp.Navigate(postURL + "#c" + ids[109]))
		anon.waitFor("the linked comment, in view", fmt.Sprintf(`(() => { const el = document.querySelector(%q);
			if (!el) return false; const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; })()`, commentSelector(ids[109])), 10*time.Second)

		// Writing on a partly read thread shows it to the end, then the new one.
		bob.open(postURL, "#compose")
		bob.waitFor("one page", count+` === 50`, 5*time.Second)
		bob.postComment("my answer")
		bob.waitFor("the whole thread, the answer last", count+` === 122 && document.querySelector("#comments > li:last-child .comment-body").textContent === "my answer"`, 10*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.open(postURL, "#comments > li")
			eval[chromedp.Void](alice, `document.querySelector("#more-comments").scrollIntoView({block: "center"})`)
			alice.screenshot(d, "thread-more-1280x800", 1280, 800, false)
			alice.screenshot(d, "thread-more-390x844", 390, 844, true)
			alice.do(chromedp.EmulateViewport(1280, 800))
		}
	})

	t.Run("MembersPage", func(t *testing.T) {
		admin, alice, bob := admin.in(t), alice.in(t), bob.in(t)
		var carol struct {
			User struct{ ID string } `json:"user"`
		}
		f.call(srv, "", http.MethodPost, "/auth/register", map[string]string{"username": "Carol_C", "password": "carol-password-1"}, &carol)
		membersURL := srv.URL + "/t/ui/mod/members"
		// The rows once the list answers its filter (aria-busy until then).
		rows := `(document.querySelector("#members")?.hasAttribute("aria-busy") ? "(loading)" : [...document.querySelectorAll("#members > tr")].map((tr) => tr.dataset.username + ":" + tr.dataset.role + ":" + tr.dataset.banned).join(","))`
		admin.open(srv.URL+"/t/ui/", "#boards > li")
		admin.click(`#modnav a[href="/t/ui/mod/members"]`)
		admin.waitFor("everyone by name", rows+` === "admin:admin:false,alice:member:false,bob:member:false,Carol_C:member:false"`, 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			admin.screenshot(d, "members-1280x800", 1280, 800, false)
			admin.screenshot(d, "members-390x844", 390, 844, true)
			admin.do(chromedp.EmulateViewport(1280, 800))
		}

		admin.setValue("#members-q", "B")
		admin.waitFor("bob alone, in the address too", rows+` === "bob:member:false" && location.search === "?q=B"`, 5*time.Second)
		admin.click(`#members tr[data-username="bob"] [data-action="ban"]`)
		admin.do(chromedp.WaitVisible(chromedp.ID("ban-reason")))
		admin.setValue("#ban-reason", "Shouting")
		eval[chromedp.Void](admin, `document.querySelector("#ban-until").value = "168"`)
		admin.click(`dialog[open] button[type="submit"]`)
		admin.waitFor("bob banned for a week, focus on Unban", `(() => { const tr = document.querySelector('#members tr[data-username="bob"]');
			return tr?.dataset.banned === "true" && tr.querySelector(".status").textContent.startsWith("Banned until") &&
				document.activeElement === tr.querySelector('[data-action="unban"]') &&
				document.activeElement.getAttribute("aria-label") === "Unban bob"; })()`, 5*time.Second)

		admin.setValue("#members-q", "")
		admin.click("#members-banned")
		admin.waitFor("the banned alone", rows+` === "bob:member:true" && location.search === "?banned=true"`, 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			admin.screenshot(d, "members-banned-390x844", 390, 844, true)
			admin.do(chromedp.EmulateViewport(1280, 800))
		}
		admin.click(`#members tr[data-username="bob"] [data-action="unban"]`)
		admin.waitFor("bob active again", `document.querySelector('#members tr[data-username="bob"]')?.dataset.banned === "false" &&
			document.querySelector('#members tr[data-username="bob"] .status').textContent === "Active"`, 5*time.Second)

		// Roles are the admin's to change.
		admin.click("#members-banned")
		admin.waitFor("everyone again", rows+`.split(",").length === 4`, 5*time.Second)
		eval[chromedp.Void](admin, `(() => { const s = document.querySelector('#members tr[data-username="alice"] [data-action="role"]');
			s.value = "moderator"; s.dispatchEvent(new Event("change", {bubbles: true})); })()`)
		admin.waitFor("alice a moderator", `document.querySelector('#members tr[data-username="alice"]').dataset.role === "moderator"`, 5*time.Second)
		var page struct {
			Items []struct{ Username, Role string } `json:"items"`
		}
		f.call(srv, "admin", http.MethodGet, "/mod/users?q=alice", nil, &page)
		if len(page.Items) != 1 || page.Items[0].Role != "moderator" {
			t.Fatalf("alice on the server: %+v", page.Items)
		}
		if eval[bool](admin, `document.querySelector('#members tr[data-username="admin"] [data-action]') !== null`) {
			t.Error("the admin is offered actions on their own row")
		}

		// A moderator sees roles, bans members, and leaves staff alone.
		alice.do(chromedp.Navigate(srv.URL + "/t/ui/"))
		alice.waitFor("the moderator's menu", `document.querySelector('#modnav a[href="/t/ui/mod/members"]') !== null`, 10*time.Second)
		alice.open(membersURL, "#members > tr")
		alice.waitFor("the list", rows+`.split(",").length === 4`, 5*time.Second)
		if eval[bool](alice, `document.querySelector('#members [data-action="role"]') !== null`) {
			t.Error("a moderator is offered role changes")
		}
		if eval[bool](alice, `document.querySelector('#members tr[data-username="admin"] [data-action="ban"]') !== null`) {
			t.Error("a moderator is offered to ban the admin")
		}
		if !eval[bool](alice, `document.querySelector('#members tr[data-username="Carol_C"] [data-action="ban"]')?.getAttribute("aria-label") === "Ban Carol_C"`) {
			t.Error("a moderator has no Ban button for a member")
		}
		// A member is told the page is not theirs.
		bob.do(chromedp.Navigate(membersURL))
		bob.waitFor("no list for a member", `document.querySelector("main").textContent.includes("Only moderators") && document.querySelector("#members") === null`, 10*time.Second)
	})

	t.Run("UnknownCommunity", func(t *testing.T) {
		anon := b.newTab(t, "visitor")
		// The probe for the community answers 404, which the browser logs.
		anon.tolerate(func(e *cdplog.Entry) bool {
			return e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.URL, "/t/nosuch/")
		})
		anon.probeWebSockets()
		anon.open(srv.URL+"/t/ui/", "#boards > li")
		for _, p := range []string{"/t/nosuch/", "/t/nosuch/login", "/t/nosuch/p/1"} {
			anon.do(chromedp.Navigate(srv.URL + p))
			anon.waitFor("the plain page", `document.querySelector("#no-such-community")?.textContent === "No such community"`, 10*time.Second)
			if eval[bool](anon, `document.querySelector("#auth-form, #account a, #account button, #modnav a") !== null || !document.querySelector("#conn").hidden`) {
				t.Errorf("%s: a form, account links or a connection state on the page", p)
			}
			if got := eval[string](anon, `document.querySelector(".brand").getAttribute("href")`); got != "/" {
				t.Errorf("%s: the logo leads to %q", p, got)
			}
			// Proving an absence takes a wait: long enough for the client's
			// first retry (after at most 1 s) to have come.
			time.Sleep(1500 * time.Millisecond)
			if n := eval[wsCounts](anon, `window.__ws`).Opened; n != 0 {
				t.Errorf("%s: %d WebSockets opened", p, n)
			}
			if n := eval[int](anon, `performance.getEntriesByType("resource").filter((e) => e.name.includes("/ws")).length`); n != 0 {
				t.Errorf("%s: %d ticket requests", p, n)
			}
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			anon.screenshot(d, "no-such-community-1280x800", 1280, 800, false)
			anon.screenshot(d, "no-such-community-390x844", 390, 844, true)
			anon.do(chromedp.EmulateViewport(1280, 800))
		}
		anon.click(`main a[href="/"]`)
		anon.waitFor("the start page", `document.querySelector("#go") !== null`, 5*time.Second)
		visited := eval[[]string](anon, `[...document.querySelectorAll("main section.card li a")].map((a) => a.textContent)`)
		if strings.Join(visited, ",") != "ui" {
			t.Errorf("communities you visited: %q, want only ui", visited)
		}
	})
}

// TestBrowserHeaderFitsPhones: at 390 px the header never overflows,
// whatever the connection shows (live, offline with a reason,
// reconnecting with a countdown), with the widest content the header
// can have: a 39-character community, a moderator with a long name and
// the moderation menu.
func TestBrowserHeaderFitsPhones(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	slug := "a-community-with-a-rather-long-name-too"
	if len(slug) != 39 {
		t.Fatalf("slug has %d characters", len(slug))
	}
	f := newForum(t, srv, slug)
	var long struct {
		User  struct{ ID string } `json:"user"`
		Token string              `json:"token"`
	}
	name := "a_moderator_with_a_long_username"
	f.call(srv, "", http.MethodPost, "/auth/register", map[string]string{"username": name, "password": "long-password-1"}, &long)
	f.tokens[name] = long.Token
	f.call(srv, "admin", http.MethodPut, "/mod/users/"+long.User.ID+"/role", map[string]string{"role": "moderator"}, nil)
	var board, post idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "A board whose name goes on and on"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "A title that is much longer than a phone is wide, to see it end well", "body": "Body."}, &post)
	postURL := srv.URL + "/t/" + slug + "/p/" + post.ID
	dir := screenshotDir(t)

	// What sticks out of the header, if anything.
	const overflow = `(() => {
		const bar = document.querySelector("header .bar");
		const vw = document.documentElement.clientWidth;
		const bad = [];
		if (bar.scrollWidth > bar.clientWidth) bad.push("bar scrolls: " + bar.scrollWidth + " > " + bar.clientWidth);
		if (document.documentElement.scrollWidth > vw) bad.push("page scrolls: " + document.documentElement.scrollWidth + " > " + vw);
		const name = (el) => el.id || el.className || el.tagName;
		for (const el of bar.querySelectorAll("*")) {
			const r = el.getBoundingClientRect();
			if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) bad.push(name(el) + " at " + Math.round(r.left) + ".." + Math.round(r.right));
			// Content spilling out of a box that does not clip it (an
			// ellipsis clips on purpose).
			if (el.clientWidth > 0 && getComputedStyle(el).overflowX === "visible" && el.scrollWidth > el.clientWidth + 1) {
				bad.push(name(el) + " spills: " + el.scrollWidth + " > " + el.clientWidth);
			}
		}
		// The parts of the header must not sit on each other.
		const parts = [...bar.children].filter((el) => el.getBoundingClientRect().width > 0);
		for (let i = 0; i < parts.length; i++) {
			for (let j = i + 1; j < parts.length; j++) {
				const a = parts[i].getBoundingClientRect(), b = parts[j].getBoundingClientRect();
				const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
				if (w > 0.5 && h > 0.5) bad.push(name(parts[i]) + " overlaps " + name(parts[j]));
			}
		}
		// Every state says what it is in words, whole: not a dot alone.
		const text = document.querySelector("#conn .conn-text");
		if (text && (text.getBoundingClientRect().width === 0 || text.scrollWidth > text.clientWidth + 1)) {
			bad.push("the connection state is cut: " + JSON.stringify(text.innerText) + " in " + text.clientWidth + " px");
		}
		return bad.join("; ");
	})()`
	// fits checks the header now and over the next second (a countdown
	// changes its text every second).
	fits := func(t *testing.T, tb *tab, state string) {
		t.Helper()
		tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2)))
		bad := eval[string](tb, `new Promise((done) => {
			const end = performance.now() + 1200; let worst = "";
			const look = () => { const b = `+overflow+`; if (b) worst = b; if (performance.now() < end) requestAnimationFrame(look); else done(worst); };
			requestAnimationFrame(look); })`)
		if bad != "" {
			t.Errorf("%s, %s, 390 px: %s\nheader: %s", tb.name, state, bad, eval[string](tb, `document.querySelector("header").innerText`))
		}
		tb.screenshot(dir, "header-"+state+"-"+tb.name+"-390x844", 390, 844, true)
	}

	b := newBrowser(t)
	mod := b.newTab(t, "moderator")
	mod.signIn(srv.URL, slug, f.tokens[name])
	mod.open(postURL, "#compose")
	anon := b.newTab(t, "anonymous")
	anon.open(postURL, "#signin-to-comment")
	fits(t, mod, "live")
	fits(t, anon, "live")

	// Offline, with the reason: the moderator is banned.
	f.call(srv, "admin", http.MethodPost, "/mod/users/"+long.User.ID+"/ban", map[string]string{"reason": "testing the header"}, nil)
	mod.waitFor("offline", `document.querySelector("#conn").dataset.state === "offline"`, 10*time.Second)
	fits(t, mod, "offline")

	// Reconnecting, with its countdown and Retry button: the server is gone.
	addr := srv.app.lis.Addr().String()
	anon.tolerate(func(e *cdplog.Entry) bool {
		return e.Source == cdplog.EntrySourceNetwork || strings.Contains(e.Text, addr)
	})
	srv.stop()
	anon.waitFor("a countdown", `/Reconnecting in \d+ s/.test(document.querySelector("#conn").textContent) && document.querySelector("#conn button") !== null`, 30*time.Second)
	fits(t, anon, "reconnecting")
}

// proxy is a TCP proxy in front of the server that can make the
// WebSockets through it go silent without closing them: what a sleeping
// laptop or a dropped NAT entry does to a connection. New connections
// still pass.
type proxy struct {
	lis    net.Listener
	target string

	mu    sync.Mutex
	conns []*proxied
}

type proxied struct {
	client, server net.Conn
	ws             atomic.Bool // the first request asked for a WebSocket upgrade
	dead           atomic.Bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		lis.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.client.Close()
			c.server.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := lis.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			c := &proxied{client: client, server: server}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); c.pipe(server, client, true) }()
			go func() { defer wg.Done(); c.pipe(client, server, false) }()
		}
	}()
	return p
}

// pipe copies src to dst until either ends; once dead, what arrives is
// swallowed and nothing is closed, so the other side sees silence.
func (c *proxied) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	first := fromClient
	for {
		n, err := src.Read(buf)
		if first && n > 0 {
			first = false
			if strings.Contains(strings.ToLower(string(buf[:n])), "upgrade: websocket") {
				c.ws.Store(true)
			}
		}
		if n > 0 && !c.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !c.dead.Load() {
				dst.Close()
				src.Close()
			}
			return
		}
	}
}

func (p *proxy) URL() string { return "http://" + p.lis.Addr().String() }

// silenceWebSockets makes every open WebSocket through the proxy go
// silent and returns how many there were.
func (p *proxy) silenceWebSockets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.ws.Load() && !c.dead.Load() {
			c.dead.Store(true)
			n++
		}
	}
	return n
}

// TestBrowserLiveIndicator: the page pings when it has heard nothing for
// a while and stays "Live" while pongs come back; when the connection
// goes silent (no close, no error: nothing), it says "Reconnecting"
// within the pong timeout and is live again on a new connection. The
// intervals are short here (300 ms of silence, 1.5 s for the pong)
// through localStorage "agora:liveness".
func TestBrowserLiveIndicator(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "live")
	var board, post idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Quiet thread", "body": "Nothing happens here."}, &post)
	px := startProxy(t, srv.app.lis.Addr().String())

	const idle, pongWait = 300 * time.Millisecond, 1500 * time.Millisecond
	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(px.URL(), "live", f.tokens["alice"])
	eval[chromedp.Void](alice, fmt.Sprintf(`localStorage.setItem("agora:liveness", JSON.stringify({idlePingMs: %d, pongTimeoutMs: %d}))`, idle.Milliseconds(), pongWait.Milliseconds()))
	alice.probeWebSockets()
	alice.open(px.URL()+"/t/live/p/"+post.ID, "#compose")

	alice.waitFor("three pings answered", `window.__ws.pings >= 3 && window.__ws.pongs >= 3`, 10*time.Second)
	if got := eval[wsCounts](alice, `window.__ws`); got.Opened != 1 || len(got.States) == 0 || got.States[len(got.States)-1] != "live" ||
		strings.Count(strings.Join(got.States, ","), "live") != 1 || got.Pongs < got.Pings-1 {
		t.Fatalf("while pongs come back: %+v, want one socket that went live once and stayed", got)
	}

	if n := px.silenceWebSockets(); n != 1 {
		t.Fatalf("%d WebSockets through the proxy, want 1", n)
	}
	silenced := time.Now()
	alice.waitFor("the indicator to stop saying live", `document.querySelector("#conn").dataset.state !== "live"`, idle+pongWait+3*time.Second)
	took := time.Since(silenced)
	shown := eval[string](alice, `document.querySelector("#conn").textContent`)
	t.Logf("a silent connection was noticed after %v: %q", took.Round(time.Millisecond), shown)
	if !strings.Contains(shown, "Reconnecting") {
		t.Errorf("the indicator says %q, want Reconnecting", shown)
	}
	alice.waitFor("live again", `document.querySelector("#conn").dataset.state === "live"`, 10*time.Second)
	if got := eval[wsCounts](alice, `window.__ws`); got.Opened != 2 {
		t.Errorf("after the silence: %+v, want a second socket", got)
	}
	// And still in sync: a comment written now arrives.
	f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "after the silence"}, nil)
	alice.waitFor("the comment after the silence", `document.querySelector("#comments .comment-body")?.textContent === "after the silence"`, 5*time.Second)
}
