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
