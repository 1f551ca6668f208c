package main

import (
	"net/http"
	"testing"
	"time"

	"agora/store/pgtest"
	"agora/web/webtest"
)

// TestBrowserRetriedComment: the answer to a comment is lost on its way
// back (the server took the comment, the page sees a network error). The
// page sends it again with the same Idempotency-Key, gets the first answer
// replayed, and the thread has the comment once.
func TestBrowserRetriedComment(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "retry")
	var board, post idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Flaky line", "body": "Say something."}, &post)

	bob := newBrowser(t).newTab(t, "bob")
	bob.signIn(srv.URL, "retry", f.tokens["bob"])
	bob.open(srv.URL+"/t/retry/p/"+post.ID, "#compose")
	eval[any](bob, `(() => {
		const realFetch = window.fetch;
		window.__sent = [];
		window.fetch = async (url, init) => {
			if (init?.method !== "POST" || !/\/comments$/.test(url)) return realFetch(url, init);
			const res = await realFetch(url, init);
			window.__sent.push({ key: init.headers["Idempotency-Key"] ?? "", status: res.status,
				replayed: res.headers.get("Idempotent-Replayed") ?? "" });
			if (window.__sent.length === 1) {
				await res.text();
				throw new TypeError("Failed to fetch");
			}
			return res;
		};
	})()`)

	const body = "Sent twice, posted once."
	bob.postComment(body)
	type attempt struct {
		Key      string `json:"key"`
		Status   int    `json:"status"`
		Replayed string `json:"replayed"`
	}
	sent := eval[[]attempt](bob, `window.__sent`)
	if len(sent) != 2 || sent[0].Key == "" || sent[1].Key != sent[0].Key ||
		sent[0].Status != http.StatusCreated || sent[0].Replayed != "" ||
		sent[1].Status != http.StatusCreated || sent[1].Replayed != "true" {
		t.Fatalf("attempts %+v: want a 201, then the same key replayed", sent)
	}

	// Once alice's later comment is on bob's page, the realtime event of
	// bob's own has arrived too (one room, in order).
	f.call(srv, "alice", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "after"}, nil)
	bob.waitFor("alice's later comment", `[...document.querySelectorAll("#comments .comment-body")].some((el) => el.textContent === "after")`, 10*time.Second)
	shown := 0
	for _, c := range eval[[]shownComment](bob, commentsJS) {
		if c.Body == body {
			shown++
		}
	}
	if shown != 1 {
		t.Errorf("bob's page shows his comment %d times, want once", shown)
	}
	var stored struct {
		Items []struct {
			Body string `json:"body"`
		} `json:"items"`
	}
	f.call(srv, "bob", http.MethodGet, "/posts/"+post.ID+"/comments", nil, &stored)
	if len(stored.Items) != 2 || stored.Items[0].Body != body {
		t.Errorf("the thread holds %+v, want bob's comment once, then alice's", stored.Items)
	}
}
