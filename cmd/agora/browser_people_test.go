package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"agora/store/pgtest"
	"agora/web/webtest"
)

// TestBrowserRepliesAndUserPage: alice answers bob's comment with Reply;
// both pages show the answer quoting what it answers, live on bob's; the
// server has the reply_to and bob's notification; bob follows the mention
// to his own user page, with his role, joining date and newest writing.
func TestBrowserRepliesAndUserPage(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "people")
	var board, post, first idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Plans", "body": "What next?"}, &post)
	f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "A picnic,   maybe"}, &first)
	postURL := srv.URL + "/t/people/p/" + post.ID

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "people", f.tokens["alice"])
	alice.open(postURL, "#post-body")
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "people", f.tokens["bob"])
	bob.open(postURL, "#post-body")

	quoteJS := func(sel string) string {
		return fmt.Sprintf(`(() => { const q = document.querySelector(%q + " .reply-quote");
			return q && q.getAttribute("href") === "#c%s" && q.textContent.includes("@bob") && q.textContent.includes("A picnic, maybe"); })()`, sel, first.ID)
	}
	var reply struct {
		ID      string  `json:"id"`
		ReplyTo *string `json:"reply_to"`
	}
	t.Run("Reply", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		alice.click(commentSelector(first.ID) + ` [data-action="reply"]`)
		alice.waitFor("the reply chip", `(() => { const c = document.querySelector("#reply-chip");
			return c && !c.hidden && c.textContent.includes("@bob") && document.activeElement?.id === "comment-body"; })()`, 5*time.Second)
		alice.postComment("Good idea @bob")
		alice.waitFor("the chip to go", `document.querySelector("#reply-chip").hidden`, 5*time.Second)
		id := eval[string](alice, `[...document.querySelectorAll("#comments > li.comment")].at(-1).dataset.id`)
		var page struct {
			Items []struct {
				ID      string  `json:"id"`
				ReplyTo *string `json:"reply_to"`
			} `json:"items"`
		}
		f.call(srv, "alice", http.MethodGet, "/posts/"+post.ID+"/comments", nil, &page)
		for _, c := range page.Items {
			if c.ID == id {
				reply.ID, reply.ReplyTo = c.ID, c.ReplyTo
			}
		}
		if reply.ReplyTo == nil || *reply.ReplyTo != first.ID {
			t.Fatalf("the server has reply %s answering %v, want %s", id, reply.ReplyTo, first.ID)
		}
		alice.waitFor("the quote on alice's page", quoteJS(commentSelector(id)), 5*time.Second)
		bob.waitFor("the quote on bob's page, live", quoteJS(commentSelector(id)), 5*time.Second)
		var n struct {
			Items []struct {
				Kind      string  `json:"kind"`
				CommentID *string `json:"comment_id"`
			} `json:"items"`
		}
		f.call(srv, "bob", http.MethodGet, "/me/notifications", nil, &n)
		if len(n.Items) != 1 || n.Items[0].Kind != "reply" || n.Items[0].CommentID == nil || *n.Items[0].CommentID != id {
			t.Errorf("bob's notifications: %+v, want one reply about %s", n.Items, id)
		}
		// The quote leads to the answered comment.
		bob.click(commentSelector(id) + " a.reply-quote")
		bob.waitFor("the answered comment as the target", fmt.Sprintf(`location.hash === "#c%s"`, first.ID), 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			bob.screenshot(d, "reply", 1280, 800, false)
		}
	})

	t.Run("UserPage", func(t *testing.T) {
		bob := bob.in(t)
		bob.click(commentSelector(reply.ID) + ` .comment-body a.mention`)
		bob.waitFor("bob's page", `location.pathname === "/t/people/u/bob" && document.querySelector("#user-page") !== null`, 10*time.Second)
		type item struct {
			Type, Link, Href, Excerpt string
		}
		got := eval[struct {
			Name, Joined string
			Items        []item
		}](bob, `({name: document.querySelector("#user-name").textContent,
			joined: document.querySelector("#user-joined").textContent,
			items: [...document.querySelectorAll("#recent > li")].map((li) => ({type: li.dataset.type,
				link: li.querySelector("a.recent-link").textContent, href: li.querySelector("a.recent-link").getAttribute("href"),
				excerpt: li.querySelector(".excerpt").textContent}))})`)
		if got.Name != "bob" || !strings.HasPrefix(got.Joined, "Joined ") || len(got.Items) != 1 ||
			got.Items[0] != (item{"comment", "Plans", "/t/people/p/" + post.ID + "#c" + first.ID, "A picnic, maybe"}) {
			t.Fatalf("bob's page: %+v", got)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			bob.screenshot(d, "user-page", 1280, 800, false)
		}
		bob.click(`#recent a.recent-link`)
		bob.waitFor("the post, at bob's comment", fmt.Sprintf(`location.pathname === "/t/people/p/%s" && location.hash === "#c%s"
			&& document.querySelector("#post-body") !== null`, post.ID, first.ID), 10*time.Second)

		// The admin's page says admin; an unknown name says so.
		bob.open(srv.URL+"/t/people/u/ADMIN", "#user-page")
		if role := eval[string](bob, `document.querySelector("#user-page").dataset.role + " " + document.querySelector("#user-page .badge")?.textContent`); role != "admin admin" {
			t.Errorf("the admin's page shows role %q", role)
		}
		// The browser logs the 404 it was given; that one is expected.
		bob.tolerate(func(e *cdplog.Entry) bool { return strings.HasSuffix(e.URL, "/users/nobody") })
		bob.do(chromedp.Navigate(srv.URL + "/t/people/u/nobody"))
		bob.waitFor("the not-found page", `document.querySelector("main h1")?.textContent === "No such user"`, 10*time.Second)
	})
}

// bellJS reads the bell: its count and whether it follows the user's room.
const bellJS = `(() => { const b = document.querySelector("#bell"); return b ? Number(b.dataset.count) : -1; })()`

// TestBrowserPeopleBell: bob answers alice's post in his browser and
// mentions her; alice has the forum open in two tabs, and both bells
// count it live. Reading it through the list on one tab lowers the count
// on the other, and a tab opened afterwards starts from the same number.
func TestBrowserPeopleBell(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "bells")
	var board, post, other idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Picnic plans", "body": "Where shall we go?"}, &post)
	f.call(srv, "bob", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Bob's topic", "body": "Anything."}, &other)
	postURL := srv.URL + "/t/bells/p/" + post.ID
	boardURL := srv.URL + "/t/bells/b/" + board.ID
	dir := screenshotDir(t)

	b := newBrowser(t)
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "bells", f.tokens["bob"])
	bob.open(postURL, "#compose")
	alice2 := b.newTab(t, "alice-second")
	alice2.signIn(srv.URL, "bells", f.tokens["alice"])
	alice2.open(boardURL, "#posts > li")
	alice3 := b.newTab(t, "alice-third")
	alice3.signIn(srv.URL, "bells", f.tokens["alice"])
	alice3.open(srv.URL+"/t/bells/", "#boards > li")
	for _, tb := range []*tab{alice2, alice3} {
		tb.waitFor("the bell in sync at zero", `document.querySelector("#bell")?.dataset.synced === "true" && `+bellJS+` === 0 && document.querySelector("#bell-count").hidden`, 10*time.Second)
	}

	// One write that replies and mentions: one notification.
	bob.postComment("The lake, @alice? Bring the blue blanket.")
	for _, tb := range []*tab{alice2, alice3} {
		tb.waitFor("the bell at 1, live", bellJS+` === 1 && document.querySelector("#bell-count").textContent === "1" && !document.querySelector("#bell-count").hidden
			&& document.querySelector("#bell").getAttribute("aria-label") === "Notifications, 1 unread"`, 10*time.Second)
	}
	// A mention in another thread: a second one.
	var mention idOnly
	f.call(srv, "bob", http.MethodPost, "/posts/"+other.ID+"/comments", map[string]string{"body": "What do you think, @alice?"}, &mention)
	for _, tb := range []*tab{alice2, alice3} {
		tb.waitFor("the bell at 2, live", bellJS+` === 2 && document.querySelector("#bell-count").textContent === "2"`, 10*time.Second)
	}
	replyID := eval[string](bob, `[...document.querySelectorAll("#comments > li.comment")].at(-1).dataset.id`)

	// The list on the second tab: newest first, who, what, where.
	alice2.click("#bell")
	alice2.waitFor("the list", `document.querySelectorAll("#notif-list > li.notif").length === 2 && !document.querySelector("#notif-panel").hidden`, 5*time.Second)
	type item struct {
		Kind, What, Title, Excerpt, Href string
		Unread                           bool
	}
	items := eval[[]item](alice2, `[...document.querySelectorAll("#notif-list > li.notif")].map((li) => ({kind: li.dataset.kind,
		what: li.querySelector(".notif-what").textContent, title: li.querySelector(".notif-title")?.textContent ?? "",
		excerpt: li.querySelector(".notif-excerpt")?.textContent ?? "", href: li.querySelector("a.notif-link")?.getAttribute("href") ?? "",
		unread: li.classList.contains("is-unread")}))`)
	want := []item{
		{"mention", "bob mentioned you", "Bob's topic", "What do you think, @alice?", "/t/bells/p/" + other.ID + "#c" + mention.ID, true},
		{"reply", "bob replied", "Picnic plans", "The lake, @alice? Bring the blue blanket.", "/t/bells/p/" + post.ID + "#c" + replyID, true},
	}
	if len(items) != 2 || items[0] != want[0] || items[1] != want[1] {
		t.Fatalf("alice's list:\n got %+v\nwant %+v", items, want)
	}
	alice2.screenshot(dir, "bell-open-1280x800", 1280, 800, false)
	alice2.screenshot(dir, "bell-open-390x844", 390, 844, true)
	alice2.do(chromedp.EmulateViewport(1280, 800))

	// Clicking the reply goes to it and reads it: 1 on both tabs.
	alice2.click(`#notif-list > li.notif[data-kind="reply"] a.notif-link`)
	alice2.waitFor("the reply, as the target", fmt.Sprintf(`location.pathname === "/t/bells/p/%s" && location.hash === "#c%s"
		&& document.querySelector("#c%s.arrived") !== null && document.querySelector("#notif-panel").hidden`, post.ID, replyID, replyID), 10*time.Second)
	for _, tb := range []*tab{alice2, alice3} {
		tb.waitFor("the bell at 1 after reading on the second tab", bellJS+` === 1`, 10*time.Second)
	}
	// A third page opened now starts from the server's count.
	alice3.open(srv.URL+"/t/bells/b/"+board.ID, "#posts > li")
	alice3.waitFor("the same count on a fresh page", `document.querySelector("#bell")?.dataset.synced === "true" && `+bellJS+` === 1`, 10*time.Second)
	var n struct {
		UnreadCount int `json:"unread_count"`
	}
	f.call(srv, "alice", http.MethodGet, "/me/notifications/unread_count", nil, &n)
	if n.UnreadCount != 1 {
		t.Fatalf("the server counts %d unread, the pages 1", n.UnreadCount)
	}

	// Mark all read on the third: the second follows.
	alice3.click("#bell")
	alice3.waitFor("the list on the third tab", `document.querySelectorAll("#notif-list > li.notif.is-unread").length === 1`, 5*time.Second)
	alice3.click("#notif-mark-all")
	for _, tb := range []*tab{alice3, alice2} {
		tb.waitFor("no unread left", bellJS+` === 0 && document.querySelector("#bell-count").hidden`, 10*time.Second)
	}
	alice3.waitFor("the list read", `document.querySelectorAll("#notif-list > li.notif.is-unread").length === 0 && document.querySelectorAll("#notif-list > li.notif").length === 2`, 5*time.Second)
	alice3.do(chromedp.KeyEvent("\x1b"))
	alice3.waitFor("Escape to close the list", `document.querySelector("#notif-panel").hidden && document.activeElement?.id === "bell"`, 5*time.Second)
}

// reactionJS reads one reaction button under sel: "count pressed label".
func reactionJS(sel, kind string) string {
	return fmt.Sprintf(`(() => { const b = document.querySelector(%q + ' button.reaction[data-kind="%s"]');
		return b ? b.dataset.count + " " + b.getAttribute("aria-pressed") + " " + b.getAttribute("aria-label") : "none"; })()`, sel, kind)
}

// TestBrowserPeopleReactions: bob reacts to alice's post and comment;
// alice's tab shows the counts live, bob's shows which are his (also
// after a reload, from my_reactions); taking one back lowers the count
// everywhere. Quote puts the comment into the compose box as a Markdown
// quote and answers it.
func TestBrowserPeopleReactions(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "reacts")
	var board, post, first idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Cake", "body": "I baked one."}, &post)
	f.call(srv, "alice", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "It has *three* layers.\nAnd cherries."}, &first)
	postURL := srv.URL + "/t/reacts/p/" + post.ID
	cs := commentSelector(first.ID)

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "reacts", f.tokens["alice"])
	alice.open(postURL, cs)
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "reacts", f.tokens["bob"])
	bob.open(postURL, cs)
	anon := b.newTab(t, "anonymous")
	anon.open(postURL, cs)

	t.Run("Live", func(t *testing.T) {
		alice, bob, anon := alice.in(t), bob.in(t), anon.in(t)
		if n := eval[int](bob, `document.querySelectorAll("#post .reactions button.reaction").length`); n != 6 {
			t.Fatalf("the post has %d reaction buttons, want 6", n)
		}
		bob.click(cs + ` button.reaction[data-kind="love"]`)
		bob.click(`#post button.reaction[data-kind="thanks"]`)
		bob.waitFor("bob's own, pressed", reactionJS(cs, "love")+` === "1 true Love (1)" && `+reactionJS("#post", "thanks")+` === "1 true Thanks (1)"`, 5*time.Second)
		alice.waitFor("the counts on alice's tab, live, not hers", reactionJS(cs, "love")+` === "1 false Love (1)" && `+reactionJS("#post", "thanks")+` === "1 false Thanks (1)"`, 5*time.Second)
		anon.waitFor("the counts for a reader who cannot react", reactionJS(cs, "love")+` === "1 false Love (1)"
			&& document.querySelector('`+cs+` button.reaction[data-kind="like"]').hidden`, 5*time.Second)
		alice.click(cs + ` button.reaction[data-kind="love"]`)
		bob.waitFor("alice's love counted on bob's tab", reactionJS(cs, "love")+` === "2 true Love (2)"`, 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			bob.screenshot(d, "reactions-1280x800", 1280, 800, false)
			bob.screenshot(d, "reactions-390x844", 390, 844, true)
			bob.do(chromedp.EmulateViewport(1280, 800))
		}
		// A reload knows which are bob's.
		bob.open(postURL, cs)
		bob.waitFor("bob's reactions after a reload", reactionJS(cs, "love")+` === "2 true Love (2)" && `+reactionJS("#post", "thanks")+` === "1 true Thanks (1)"`, 5*time.Second)
		bob.click(`#post button.reaction[data-kind="thanks"]`)
		for _, tb := range []*tab{bob, alice, anon} {
			tb.waitFor("the reaction taken back", reactionJS("#post", "thanks")+` === "0 false Thanks"`, 5*time.Second)
		}
		var p struct {
			Reactions map[string]int `json:"reactions"`
		}
		f.call(srv, "bob", http.MethodGet, "/posts/"+post.ID, nil, &p)
		if len(p.Reactions) != 0 {
			t.Errorf("the server still counts %v on the post", p.Reactions)
		}
	})

	t.Run("Quote", func(t *testing.T) {
		bob := bob.in(t)
		bob.click(cs + ` [data-action="quote"]`)
		bob.waitFor("the quote in the compose box, answering alice", `document.querySelector("#comment-body").value === "> It has *three* layers.\n> And cherries.\n\n"
			&& !document.querySelector("#reply-chip").hidden && document.querySelector("#reply-chip").textContent.includes("@alice")
			&& document.activeElement?.id === "comment-body"`, 5*time.Second)
		bob.postComment(eval[string](bob, `document.querySelector("#comment-body").value`) + "Cherries!")
		var page struct {
			Items []struct {
				ID       string  `json:"id"`
				ReplyTo  *string `json:"reply_to"`
				BodyHTML string  `json:"body_html"`
			} `json:"items"`
		}
		f.call(srv, "bob", http.MethodGet, "/posts/"+post.ID+"/comments", nil, &page)
		last := page.Items[len(page.Items)-1]
		if last.ReplyTo == nil || *last.ReplyTo != first.ID || !strings.Contains(last.BodyHTML, "<blockquote>") {
			t.Fatalf("the quoting comment answers %v with %q", last.ReplyTo, last.BodyHTML)
		}
		bob.waitFor("the quote shown as a blockquote", commentJSHas(last.ID, "blockquote"), 5*time.Second)
	})
}

func commentJSHas(id, sel string) string {
	return fmt.Sprintf(`document.querySelector("#c%s .comment-body %s") !== null`, id, sel)
}

// eventually polls cond until it holds or within passes.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBrowserPeopleUnread: a post alice has read shows no unread count on
// the board; bob's new comments count up there live; opening the post
// shows "3 new since your last visit" above the first of them and a link
// to it; the page tells the server it has read them; reading further on
// another device moves the markers on the open page.
func TestBrowserPeopleUnread(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "unread")
	var board, post, other idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Garden", "body": "Tomatoes?"}, &post)
	f.call(srv, "bob", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Never opened", "body": "Hello."}, &other)
	var old [2]idOnly
	for i := range old {
		f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": fmt.Sprintf("Old comment %d", i+1)}, &old[i])
	}
	f.call(srv, "bob", http.MethodPost, "/posts/"+other.ID+"/comments", map[string]string{"body": "Nobody read me"}, nil)
	postURL := srv.URL + "/t/unread/p/" + post.ID
	boardURL := srv.URL + "/t/unread/b/" + board.ID
	type reading struct {
		LastRead *string `json:"last_read_comment_id"`
		Unread   int     `json:"unread_comments"`
	}
	read := func() reading {
		var r reading
		f.call(srv, "alice", http.MethodGet, "/posts/"+post.ID, nil, &r)
		return r
	}
	markers := `[...document.querySelectorAll("#posts > li")].map((li) => li.querySelector(".post-link").textContent + ":" + (li.querySelector(".unread")?.textContent ?? "")).join("|")`

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "unread", f.tokens["alice"])
	alice.open(boardURL, "#posts > li")
	alice.waitFor("the server's counts on the board", markers+` === "Never opened:1 new|Garden:2 new"`, 5*time.Second)

	// A first visit has no "since your last visit"; the page marks it read.
	alice.open(postURL, commentSelector(old[1].ID))
	if eval[bool](alice, `document.querySelector("#new-divider")?.isConnected === true || !document.querySelector("#jump-unread").hidden`) {
		t.Fatal("a first visit shows unread markers")
	}
	eventually(t, "the page to mark the post read", 10*time.Second, func() bool {
		r := read()
		return r.LastRead != nil && *r.LastRead == old[1].ID && r.Unread == 0
	})

	// Bob writes while alice looks at the board: its counts follow.
	alice.open(boardURL, "#posts > li")
	alice.waitFor("nothing unread in the read post", markers+` === "Never opened:1 new|Garden:"`, 5*time.Second)
	var fresh [3]idOnly
	for i := range fresh {
		f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": fmt.Sprintf("New comment %d", i+1)}, &fresh[i])
	}
	alice.waitFor("the new comments counted live, the post first", markers+` === "Garden:3 new|Never opened:1 new"`, 5*time.Second)
	if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
		alice.screenshot(d, "board-unread-390x844", 390, 844, true)
		alice.do(chromedp.EmulateViewport(1280, 800))
	}

	// The divider and the link to the first new comment.
	alice.click(`#posts > li[data-id="` + post.ID + `"] .post-link`)
	alice.waitFor("the divider above the first new comment", fmt.Sprintf(`(() => { const d = document.querySelector("#new-divider");
		return d?.parentElement?.id === "c%s" && d.textContent === "3 new since your last visit"; })()`, fresh[0].ID), 10*time.Second)
	alice.waitFor("the jump link", fmt.Sprintf(`(() => { const j = document.querySelector("#jump-unread");
		return !j.hidden && j.getAttribute("href") === "#c%s" && j.textContent === "Jump to first unread (3)"; })()`, fresh[0].ID), 5*time.Second)
	if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
		alice.screenshot(d, "divider-1280x800", 1280, 800, false)
		alice.screenshot(d, "divider-390x844", 390, 844, true)
		alice.do(chromedp.EmulateViewport(1280, 800))
	}
	alice.click("#jump-unread")
	alice.waitFor("focus on the first new comment", fmt.Sprintf(`document.activeElement?.id === "c%s"`, fresh[0].ID), 5*time.Second)
	eventually(t, "the page to mark the new comments read", 10*time.Second, func() bool {
		r := read()
		return r.LastRead != nil && *r.LastRead == fresh[2].ID && r.Unread == 0
	})
	// What this visit read stays marked new while it lasts.
	if got := eval[string](alice, `document.querySelector("#new-divider")?.parentElement?.id ?? ""`); got != "c"+fresh[0].ID {
		t.Fatalf("the divider moved to %q after the page's own reading", got)
	}

	// Another device reads further: the open page follows.
	var last idOnly
	f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "One more"}, &last)
	f.call(srv, "alice", http.MethodPut, "/posts/"+post.ID+"/read", map[string]string{"comment_id": last.ID}, nil)
	alice.waitFor("the markers gone: all read elsewhere", `document.querySelector("#new-divider")?.isConnected !== true && document.querySelector("#jump-unread").hidden`, 5*time.Second)

	// The home page sums up each board, live.
	boardUnread := `document.querySelector('#boards > li[data-id="` + board.ID + `"] .unread')?.textContent ?? ""`
	alice.open(srv.URL+"/t/unread/", "#boards > li")
	alice.waitFor("the board's unread comments on the home page", boardUnread+` === "1 new"`, 5*time.Second)
	f.call(srv, "bob", http.MethodPost, "/posts/"+other.ID+"/comments", map[string]string{"body": "Still nobody?"}, nil)
	alice.waitFor("one more, live", boardUnread+` === "2 new"`, 5*time.Second)
	f.call(srv, "alice", http.MethodPut, "/posts/"+other.ID+"/read", map[string]string{}, nil)
	alice.waitFor("none once read elsewhere", boardUnread+` === ""`, 5*time.Second)
	if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
		alice.screenshot(d, "home-1280x800", 1280, 800, false)
	}
}

// TestBrowserPeopleHidden: a moderator hides bob's comment. Alice's page
// drops it; bob's keeps it in place saying it was hidden by a moderator,
// and his bell says so too. Notifications about it no longer show its
// text: alice's about the reply, bob's about the hiding. Unhiding brings
// it back for both.
func TestBrowserPeopleHidden(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "hiding")
	var board, post, c idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Rules", "body": "Be kind."}, &post)
	f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "Something rude"}, &c)
	postURL := srv.URL + "/t/hiding/p/" + post.ID
	cs := commentSelector(c.ID)

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "hiding", f.tokens["alice"])
	alice.open(postURL, cs)
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "hiding", f.tokens["bob"])
	bob.open(postURL, cs)
	bob.waitFor("bob's bell in sync", `document.querySelector("#bell")?.dataset.synced === "true" && `+bellJS+` === 0`, 10*time.Second)

	f.call(srv, "admin", http.MethodPost, "/mod/comments/"+c.ID+"/hide", nil, nil)
	alice.waitFor("the comment gone for alice", `document.querySelector("`+cs+`") === null`, 5*time.Second)
	bob.waitFor("the notice in its place for bob", `(() => { const li = document.querySelector("`+cs+`");
		return li?.classList.contains("is-hidden") && li.querySelector(".hidden-notice")?.textContent.startsWith("Your comment was hidden by a moderator.")
			&& li.querySelector('[data-action="edit"], [data-action="reply"], .reactions') === null; })()`, 5*time.Second)
	bob.waitFor("the bell telling bob", bellJS+` === 1`, 5*time.Second)
	if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
		bob.screenshot(d, "hidden-notice-390x844", 390, 844, true)
		bob.do(chromedp.EmulateViewport(1280, 800))
	}
	itemJS := `[...document.querySelectorAll("#notif-list > li.notif")].map((li) => li.dataset.kind + "|" + li.querySelector(".notif-what").textContent
		+ "|" + (li.querySelector(".notif-title")?.textContent ?? "") + "|" + (li.querySelector(".notif-excerpt")?.textContent ?? "")).join(";")`
	bob.click("#bell")
	bob.waitFor("bob's notification without the hidden text", itemJS+` === "moderation|A moderator hid your comment||"`, 5*time.Second)
	alice.click("#bell")
	alice.waitFor("alice's reply notification without the hidden text", itemJS+` === "reply|bob replied||"`, 5*time.Second)

	f.call(srv, "admin", http.MethodPost, "/mod/comments/"+c.ID+"/unhide", nil, nil)
	bob.waitFor("bob's comment back as it was", `(() => { const li = document.querySelector("`+cs+`");
		return li && !li.classList.contains("is-hidden") && li.querySelector(".hidden-notice") === null && li.querySelector(".reactions") !== null; })()`, 5*time.Second)
	alice.waitFor("the comment back for alice", `document.querySelector("`+cs+` .comment-body")?.textContent === "Something rude"`, 5*time.Second)
}
