package main

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"agora/store/pgtest"
	"agora/web/webtest"
)

// TestBrowserSearch: the search box on a community's home page finds
// Chinese and English text, the results show marked, escaped snippets, and
// a result leads to its comment on the post page, or to the post.
func TestBrowserSearch(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "find")
	var board, post, zh, en idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "Kitchen"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Rice cookers compared",
		"body": "Which one? <script>alert(1)</script> My rice burns."}, &post)
	for i := range 3 {
		f.call(srv, "admin", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": fmt.Sprintf("Filler %d", i)}, nil)
	}
	f.call(srv, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "我喜欢米饭，每天都吃。"}, &zh)
	f.call(srv, "admin", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "Soak the rice first."}, &en)

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "find", f.tokens["alice"])
	alice.open(srv.URL+"/t/find/", "#search-q")

	search := func(tb *tab, q string) {
		tb.t.Helper()
		tb.setValue("#search-q", q)
		tb.click(`#search-form button[type="submit"]`)
		tb.waitFor("the results of "+q, fmt.Sprintf(`location.pathname === "/t/find/search" && new URLSearchParams(location.search).get("q") === %q
			&& document.querySelector("main").dataset.synced === "true"
			&& /result|Nothing found/.test(document.querySelector("#search-status")?.textContent ?? "")`, q), 10*time.Second)
	}
	type result struct {
		Type, Post, Comment, Href, Link, Snippet string
		Marks                                    []string
	}
	results := func(tb *tab) []result {
		return eval[[]result](tb, `[...document.querySelectorAll("#search-results > li.result")].map((li) => ({
			type: li.dataset.type, post: li.dataset.post, comment: li.dataset.comment,
			href: li.querySelector("a.result-link").getAttribute("href"), link: li.querySelector("a.result-link").textContent,
			snippet: li.querySelector(".snippet").textContent,
			marks: [...li.querySelectorAll(".snippet mark")].map((m) => m.textContent)}))`)
	}

	t.Run("Chinese", func(t *testing.T) {
		alice := alice.in(t)
		search(alice, "米饭")
		got := results(alice)
		want := result{Type: "comment", Post: post.ID, Comment: zh.ID, Href: "/t/find/p/" + post.ID + "#c" + zh.ID,
			Link: "Comment on “Rice cookers compared”", Snippet: "我喜欢米饭，每天都吃。", Marks: []string{"米饭"}}
		if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
			t.Fatalf("results for 米饭: %+v, want %+v", got, want)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "search", 1280, 800, false)
		}
		// The result leads to the comment: the post page opens scrolled
		// to it and marks it as the one arrived at.
		alice.click("#search-results a.result-link")
		alice.waitFor("the comment found", fmt.Sprintf(`location.pathname === "/t/find/p/%s" && location.hash === "#c%s"
			&& document.querySelector("#c%s")?.classList.contains("arrived") === true`, post.ID, zh.ID, zh.ID), 10*time.Second)
		if text := eval[string](alice, fmt.Sprintf(`document.querySelector("#c%s .comment-body").textContent`, zh.ID)); text != "我喜欢米饭，每天都吃。" {
			t.Errorf("the comment arrived at reads %q", text)
		}
	})

	t.Run("English", func(t *testing.T) {
		alice := alice.in(t)
		alice.open(srv.URL+"/t/find/search", "#search-q")
		search(alice, "RICE")
		got := results(alice)
		if len(got) != 2 || got[0].Type != "post" || got[0].Href != "/t/find/p/"+post.ID || got[0].Comment != "" ||
			got[1].Comment != en.ID || fmt.Sprint(got[1].Marks) != "[rice]" {
			t.Fatalf("results for RICE: %+v; want the post (a title match) first, then the comment", got)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "search-phone", 390, 844, true)
			alice.screenshot(d, "search-english", 1280, 800, false)
		}
		// The post's body is shown as text, its script too, and runs nothing.
		if got[0].Snippet != "Which one? <script>alert(1)</script> My rice burns." || fmt.Sprint(got[0].Marks) != "[rice]" {
			t.Errorf("post snippet %q, marks %v", got[0].Snippet, got[0].Marks)
		}
		if n := eval[int](alice, `document.querySelectorAll("#search-results script, #search-results *:not(li, div, a, p, span, mark, time)").length`); n != 0 {
			t.Errorf("%d unexpected elements in the results", n)
		}
		alice.click("#search-results li.result a.result-link")
		alice.waitFor("the post found", fmt.Sprintf(`location.pathname === "/t/find/p/%s" && location.hash === ""
			&& document.querySelector("#post-body") !== null`, post.ID), 10*time.Second)
		// Back to the results, which the URL keeps.
		eval[chromedp.Void](alice, `history.back()`)
		alice.waitFor("the results again", `location.pathname === "/t/find/search" && document.querySelectorAll("#search-results > li.result").length === 2`, 10*time.Second)
	})

	t.Run("NothingFound", func(t *testing.T) {
		alice := alice.in(t)
		search(alice, "饭米")
		if n := len(results(alice)); n != 0 || !eval[bool](alice, `document.querySelector("#search-status").textContent.startsWith("Nothing found")`) {
			t.Errorf("饭米: %d results; want none, and a sentence saying so", n)
		}
	})
}
