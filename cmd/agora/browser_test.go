package main

// Browser tests: the forum UI in real headless Chromium, against the whole
// server started in-process on loopback with a private test database.
//
// They need a Chromium binary (apt-get install chromium; AGORA_CHROMIUM
// names another one). Without one they skip, except in CI (CI set), where
// they fail instead: CI must run them.
//
// Screenshots of the board and post pages (desktop and phone) go to the
// test's temp dir, and `go test -v -run TestBrowserForum .` prints their
// paths; AGORA_SCREENSHOTS=/some/dir also keeps copies there.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"agora/store/pgtest"

	"agora/web/webtest"
)

// testServer is one running instance of the whole program.
type testServer struct {
	app  *app
	URL  string
	stop func()
}

// startServer starts the program on addr ("127.0.0.1:0" for any port)
// against the database at dbURL, with the flag defaults of `agora serve`.
func startServer(t *testing.T, dbURL, addr string) *testServer {
	t.Helper()
	cfg, _, err := parseConfig("serve", []string{"-addr", addr}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("addr", addr).Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := start(ctx, cfg, log, databases{URL: dbURL, OwnerURL: pgtest.OwnerURL(pgtest.DBName(t, dbURL))}, nil)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := a.http.Serve(a.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	s := &testServer{app: a, URL: a.URL()}
	s.stop = sync.OnceFunc(func() {
		a.shutdown()
		<-served
	})
	t.Cleanup(s.stop)
	return s
}

// forum is a tenant with three people, made over the REST API: admin (the
// first user, so an admin), alice and bob (members).
type forum struct {
	t      *testing.T
	tenant string
	tokens map[string]string
	ids    map[string]string
}

func newForum(t *testing.T, s *testServer, tenant string) *forum {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.app.db.CreateTenant(ctx, tenant, "Test "+tenant); err != nil {
		t.Fatal(err)
	}
	f := &forum{t: t, tenant: tenant, tokens: map[string]string{}, ids: map[string]string{}}
	for _, name := range []string{"admin", "alice", "bob"} {
		var res struct {
			User  struct{ ID string } `json:"user"`
			Token string              `json:"token"`
		}
		f.call(s, "", http.MethodPost, "/auth/register", map[string]string{"username": name, "password": name + "-password-1"}, &res)
		f.tokens[name], f.ids[name] = res.Token, res.User.ID
	}
	return f
}

// call makes one REST call as user ("" for anonymous) and decodes the answer.
func (f *forum) call(s *testServer, user, method, path string, body, out any) {
	f.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+"/api/v1/t/"+f.tenant+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+f.tokens[user])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		f.t.Fatalf("%s %s as %q: %s: %s", method, path, user, res.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

type idOnly struct {
	ID string `json:"id"`
}

// browser is one Chromium process with a fresh profile.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := webtest.Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		// Tabs in the background keep their timers: two "people" share one
		// browser here, and both must stay live.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return &browser{ctx: ctx}
}

// tab is a page in a browser context of its own (own storage, own
// cookies): one person. It records what must never happen: uncaught
// exceptions, console errors, browser errors, JavaScript dialogs.
type tab struct {
	t *testing.T // the (sub)test that fails when an action fails
	*tabState
}

type tabState struct {
	name string
	ctx  context.Context

	mu        sync.Mutex
	problems  []string
	dialogs   []string
	tolerated func(entry *cdplog.Entry) bool
}

// in returns the tab bound to a subtest, so its failures end that subtest.
func (tb *tab) in(t *testing.T) *tab { return &tab{t: t, tabState: tb.tabState} }

func (b *browser) newTab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, tabState: &tabState{name: name, ctx: ctx}}
	t.Cleanup(func() {
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("%s: %s", name, p)
		}
	})
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			tb.problem("uncaught exception: " + exceptionText(ev.ExceptionDetails))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				tb.problem("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				tb.mu.Lock()
				ok := tb.tolerated != nil && tb.tolerated(ev.Entry)
				tb.mu.Unlock()
				if !ok {
					tb.problem(fmt.Sprintf("browser %s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
				}
			}
		case *page.EventJavascriptDialogOpening:
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, string(ev.Type)+": "+ev.Message)
			tb.mu.Unlock()
			// A dialog blocks the page: close it from another goroutine
			// (Listen callbacks must not call the browser).
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	})
	if err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	return tb
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "?"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", s, d.URL, d.LineNumber)
}

func (tb *tab) problem(s string) {
	tb.mu.Lock()
	tb.problems = append(tb.problems, s)
	tb.mu.Unlock()
}

func (tb *tab) dialogCount() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.dialogs)
}

// tolerate lets browser-level errors that match through (a server that
// is down on purpose makes network errors).
func (tb *tab) tolerate(fn func(*cdplog.Entry) bool) {
	tb.mu.Lock()
	tb.tolerated = fn
	tb.mu.Unlock()
}

// do runs actions with a deadline and fails the test on error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: eval %s: %v", tb.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds or the deadline
// passes; what is polled for is in the failure message.
func (tb *tab) waitFor(what, cond string, within time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(25*time.Millisecond)))
	if err != nil {
		state := eval[string](tb, `document.querySelector("#conn")?.textContent + " | " + (document.querySelector("main")?.innerText || "").slice(0, 600)`)
		tb.t.Fatalf("%s: waiting %v for %s: %v\npage: %s", tb.name, within, what, err, state)
	}
}

// setValue replaces a field's text the way typing would (with an input
// event), without sending keys one by one.
func (tb *tab) setValue(selector, value string) {
	tb.t.Helper()
	ok := eval[bool](tb, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false;
		el.focus(); el.value = %q; el.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, selector, value))
	if !ok {
		tb.t.Fatalf("%s: no %s to type into", tb.name, selector)
	}
}

// click waits for an element and clicks it in one step, so a re-render
// between finding and clicking cannot make it miss.
func (tb *tab) click(selector string) {
	tb.t.Helper()
	tb.waitFor(selector, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el || el.disabled) return false; el.click(); return true; })()`, selector), 5*time.Second)
}

// postComment writes a comment through the compose box and waits until
// the server has taken it (the box empties).
func (tb *tab) postComment(body string) {
	tb.t.Helper()
	tb.setValue("#comment-body", body)
	tb.do(chromedp.Click(chromedp.ID("comment-submit")))
	tb.waitFor("the compose box to be sent", `document.querySelector("#comment-body").value === "" && !document.querySelector("#comment-submit").disabled`, 10*time.Second)
}

// open navigates and waits for the page to be live with its content.
func (tb *tab) open(url, readySelector string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url))
	tb.waitFor(readySelector, fmt.Sprintf(`document.querySelector(%q) !== null`, readySelector), 10*time.Second)
	tb.waitFor("the live connection", `document.querySelector("#conn")?.dataset.state === "live"`, 10*time.Second)
	if !strings.Contains(url, "/mod/") {
		// Read over REST after the subscription: from here on the page
		// misses nothing and reads nothing again.
		tb.waitFor("the page in sync with its room", `document.querySelector("main").dataset.synced === "true"`, 10*time.Second)
	}
}

// signIn stores a token the way the UI does after a login.
func (tb *tab) signIn(origin, tenant, token string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(origin + "/"))
	eval[chromedp.Void](tb, fmt.Sprintf(`localStorage.setItem(%q, %q)`, "agora:"+tenant+":token", token))
}

func (tb *tab) screenshot(dir, name string, width, height int64, mobile bool) string {
	tb.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2))
	}
	tb.do(chromedp.EmulateViewport(width, height, opts...))
	// Layout settles after the resize; wait for two frames, not a time.
	eval[chromedp.Void](tb, `new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`)
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot %s (%dx%d): %s", name, width, height, path)
	return path
}

// commentsJS lists the comments on a post page as {id, body, author}.
const commentsJS = `[...document.querySelectorAll("#comments > li.comment")].map((li) => ({
	id: li.dataset.id,
	body: li.querySelector(".comment-body")?.textContent ?? "",
	author: li.querySelector(".author")?.textContent ?? "",
	hidden: li.classList.contains("is-hidden"),
}))`

type shownComment struct {
	ID     string `json:"id"`
	Body   string `json:"body"`
	Author string `json:"author"`
	Hidden bool   `json:"hidden"`
}

func commentSelector(id string) string { return "#c" + id }

func TestBrowserForum(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "acme")

	var board idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General", "description": "Anything goes."}, &board)
	var post idOnly
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts",
		map[string]string{"title": "Welcome to the live thread", "body": "Say hello below.\nEverything you write appears for everyone at once."}, &post)
	var pinned idOnly
	f.call(srv, "admin", http.MethodPost, "/boards/"+board.ID+"/posts",
		map[string]string{"title": "Read me first: house rules", "body": "Be kind."}, &pinned)
	f.call(srv, "admin", http.MethodPost, "/mod/posts/"+pinned.ID+"/pin", nil, nil)
	f.call(srv, "bob", http.MethodPost, "/boards/"+board.ID+"/posts",
		map[string]string{"title": "Weekend plans?", "body": "Anyone up for a hike?"}, nil)

	postURL := srv.URL + "/t/acme/p/" + post.ID
	boardURL := srv.URL + "/t/acme/b/" + board.ID
	b := newBrowser(t)

	// Alice signs in through the form; the others start with a token.
	alice := b.newTab(t, "alice")
	alice.do(chromedp.Navigate(srv.URL + "/t/acme/login?next=" + "/t/acme/p/" + post.ID))
	alice.do(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(chromedp.ID("auth-submit")),
	)
	alice.waitFor("the post after login", `location.pathname.endsWith("/p/`+post.ID+`") && document.querySelector("#compose") !== null`, 10*time.Second)
	alice.waitFor("the live connection", `document.querySelector("#conn")?.dataset.state === "live"`, 10*time.Second)
	if got := eval[string](alice, `document.querySelector("#me")?.dataset.username`); got != "alice" {
		t.Fatalf("alice: signed-in user shown as %q", got)
	}
	// Marks the page: a reload would lose it.
	eval[chromedp.Void](alice, `window.__sameDocument = true`)

	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "acme", f.tokens["bob"])
	bob.open(postURL, "#compose")

	mod := b.newTab(t, "admin")
	mod.signIn(srv.URL, "acme", f.tokens["admin"])

	t.Run("RegisterAndLogOut", func(t *testing.T) {
		carol := b.newTab(t, "carol")
		carol.open(srv.URL+"/t/acme/", "#boards > li")
		carol.click(`#account a[href^="/t/acme/register"]`)
		carol.do(
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "carol"),
			chromedp.SendKeys(chromedp.ID("password"), "carol-password-1"),
			chromedp.Click(chromedp.ID("auth-submit")),
		)
		carol.waitFor("carol signed in, back on the boards", `location.pathname === "/t/acme/" && document.querySelector("#me")?.dataset.username === "carol" && document.querySelector("#boards > li") !== null`, 10*time.Second)
		if role := eval[string](carol, `document.querySelector("#me").dataset.role`); role != "member" {
			t.Errorf("carol's role %q, want member (only the first user is admin)", role)
		}
		carol.click("#logout")
		carol.waitFor("signed out", `document.querySelector("#me") === null && document.querySelector('#account a[href^="/t/acme/login"]') !== null`, 5*time.Second)
		if tok := eval[string](carol, `localStorage.getItem("agora:acme:token") || ""`); tok != "" {
			t.Error("the token is still stored after logging out")
		}
	})

	t.Run("PresenceShowsBoth", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		for _, tb := range []*tab{alice, bob} {
			tb.waitFor("alice and bob in presence",
				`(() => { const t = document.querySelector("#presence .avatars")?.title || ""; return t.includes("alice") && t.includes("bob"); })()`,
				5*time.Second)
		}
	})

	var firstID string
	t.Run("CommentAppearsLiveWithTyping", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		bob.do(chromedp.Click(chromedp.ID("comment-body")), chromedp.SendKeys(chromedp.ID("comment-body"), "Hello from Bob, "))
		alice.waitFor("bob is typing", `(() => { const el = document.querySelector("#typing"); return el?.classList.contains("visible") && el.textContent.includes("bob is typing"); })()`, 3*time.Second)
		bob.do(chromedp.SendKeys(chromedp.ID("comment-body"), "live!"))
		sent := time.Now()
		bob.do(chromedp.Click(chromedp.ID("comment-submit")))
		alice.waitFor("bob's comment on alice's page", `[...document.querySelectorAll("#comments .comment-body")].some((el) => el.textContent === "Hello from Bob, live!")`, 2*time.Second)
		t.Logf("the comment reached the other browser in %v", time.Since(sent).Round(time.Millisecond))
		shown := eval[[]shownComment](alice, commentsJS)
		if len(shown) != 1 || shown[0].Author != "bob" {
			t.Fatalf("alice sees %+v, want bob's one comment", shown)
		}
		firstID = shown[0].ID
		// The announcement for screen readers.
		alice.waitFor("the live region announcement", `document.querySelector("#announcer").textContent.includes("New comment from bob")`, 2*time.Second)
		// Typing stops showing once the comment is in.
		alice.waitFor("the typing indicator to go", `!document.querySelector("#typing").classList.contains("visible")`, 5*time.Second)
		if !eval[bool](alice, `window.__sameDocument === true`) {
			t.Fatal("alice's page reloaded")
		}
	})

	t.Run("EditUpdatesInPlace", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		if firstID == "" {
			t.Skip("needs the comment of the previous subtest")
		}
		sel := commentSelector(firstID)
		eval[chromedp.Void](alice, `document.querySelector("`+sel+`").__marker = "same element"`)
		bob.do(
			chromedp.Click(chromedp.CSS(sel+` [data-action="edit"]`)),
			chromedp.WaitVisible(chromedp.ID("edit-"+firstID)),
		)
		bob.setValue("#edit-"+firstID, "Hello from Bob, edited.")
		bob.click(sel + ` button[type="submit"]`)
		alice.waitFor("the edit on alice's page", `document.querySelector("`+sel+` .comment-body")?.textContent === "Hello from Bob, edited."`, 5*time.Second)
		if m := eval[string](alice, `document.querySelector("`+sel+`").__marker || ""`); m != "same element" {
			t.Fatal("the edited comment was re-created, not updated in place")
		}
		if n := eval[int](alice, `document.querySelectorAll("#comments > li").length`); n != 1 {
			t.Fatalf("alice sees %d comments after the edit, want 1", n)
		}
		alice.waitFor("the edited marker", `document.querySelector("`+sel+` .edited") !== null`, 5*time.Second)
	})

	t.Run("AnonymousReadsWithoutComposeBox", func(t *testing.T) {
		alice := alice.in(t)
		anon := b.newTab(t, "anonymous")
		anon.open(postURL, "#comments > li")
		shown := eval[[]shownComment](anon, commentsJS)
		if len(shown) != 1 || shown[0].Body != "Hello from Bob, edited." {
			t.Fatalf("the anonymous reader sees %+v", shown)
		}
		if eval[bool](anon, `document.querySelector("#compose, #comment-body") !== null`) {
			t.Fatal("an anonymous reader has a compose box")
		}
		if !eval[bool](anon, `document.querySelector("#signin-to-comment") !== null`) {
			t.Fatal("no invitation to sign in for the anonymous reader")
		}
		// The others count the anonymous reader.
		alice.waitFor("one anonymous reader", `document.querySelector("#presence .presence-count")?.dataset.anonymous === "1"`, 5*time.Second)
	})

	t.Run("XSSRendersAsText", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		payloads := []string{`<img src=x onerror=alert(1)>`, `<script>alert(2)</script>`}
		for _, p := range payloads {
			bob.postComment(p)
			alice.waitFor("the payload as text", fmt.Sprintf(`[...document.querySelectorAll("#comments .comment-body")].some((el) => el.textContent === %q)`, p), 5*time.Second)
		}
		for _, tb := range []*tab{alice, bob} {
			if n := eval[int](tb, `document.querySelectorAll("#comments img, #comments script").length`); n != 0 {
				t.Fatalf("%s: %d img/script elements inside the comments", tb.name, n)
			}
			if n := tb.dialogCount(); n != 0 {
				t.Fatalf("%s: %d JavaScript dialogs opened", tb.name, n)
			}
		}
	})

	t.Run("ModeratorHidesCommentLive", func(t *testing.T) {
		alice := alice.in(t)
		if firstID == "" {
			t.Skip("needs the comment of the first subtest")
		}
		mod := mod.in(t)
		mod.open(postURL, commentSelector(firstID))
		mod.click(commentSelector(firstID) + ` [data-action="hide"]`)
		alice.waitFor("the hidden comment to disappear", `document.querySelector("`+commentSelector(firstID)+`") === null`, 5*time.Second)
		mod.waitFor("the moderator's dimmed copy", `(() => { const li = document.querySelector("`+commentSelector(firstID)+`"); return li?.classList.contains("is-hidden") && li.querySelector(".badge.hidden") !== null; })()`, 5*time.Second)
		if n := eval[int](alice, `document.querySelectorAll("#comments > li").length`); n != 2 {
			t.Fatalf("alice sees %d comments, want the 2 that are not hidden", n)
		}
		// Unhiding brings it back for members, in its place.
		mod.click(commentSelector(firstID) + ` [data-action="unhide"]`)
		alice.waitFor("the comment to come back first", `document.querySelector("#comments > li")?.id === "`+commentSelector(firstID)[1:]+`"`, 3*time.Second)
		// The audit log shows both actions.
		mod.open(srv.URL+"/t/acme/mod/audit", "#audit tr")
		mod.waitFor("hide and unhide in the audit log", `(() => { const t = document.querySelector("#audit").textContent; return t.includes("hid comment") && t.includes("unhid comment"); })()`, 5*time.Second)
	})

	t.Run("BoardShowsPostsLive", func(t *testing.T) {
		alice := alice.in(t)
		alice.open(boardURL, "#posts > li")
		titles := `[...document.querySelectorAll("#posts > li")].map((li) => li.querySelector(".post-link").textContent + (li.querySelector(".unread") ? " [" + li.querySelector(".unread").textContent + "]" : "") + (li.classList.contains("pinned") ? " (pinned)" : ""))`
		var fresh idOnly
		f.call(srv, "bob", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Fresh topic", "body": "Just in."}, &fresh)
		alice.waitFor("the new post under the pinned one, marked new",
			titles+`.join("|").startsWith("Read me first: house rules (pinned)|Fresh topic [New]|")`, 5*time.Second)
		f.call(srv, "admin", http.MethodPost, "/mod/posts/"+fresh.ID+"/pin", nil, nil)
		alice.waitFor("the pinned post first", titles+`[0] === "Fresh topic [New] (pinned)"`, 5*time.Second)
		f.call(srv, "bob", http.MethodPatch, "/posts/"+fresh.ID, map[string]string{"title": "Fresh topic, retitled"}, nil)
		alice.waitFor("the new title in place", titles+`[0] === "Fresh topic, retitled [New] (pinned)"`, 5*time.Second)
		f.call(srv, "admin", http.MethodPost, "/mod/posts/"+fresh.ID+"/unpin", nil, nil)
		alice.waitFor("the post back among the others", titles+`[1] === "Fresh topic, retitled [New]"`, 5*time.Second)
		// Opening it marks it read.
		alice.click(`#posts > li[data-id="` + fresh.ID + `"] .post-link`)
		alice.waitFor("the post page", `document.querySelector("#post-title")?.textContent === "Fresh topic, retitled"`, 5*time.Second)
		alice.do(chromedp.NavigateBack())
		alice.waitFor("the board without the marker", titles+`[1] === "Fresh topic, retitled"`, 5*time.Second)
	})

	t.Run("ReportAndResolve", func(t *testing.T) {
		bob, mod := bob.in(t), mod.in(t)
		bob.click(`#post [data-action="report"]`)
		bob.do(chromedp.WaitVisible(chromedp.ID("report-reason")))
		bob.setValue("#report-reason", "Off-topic, says bob")
		bob.click(`dialog[open] button[type="submit"]`)
		bob.waitFor("the report dialog to close", `document.querySelector("dialog[open]") === null`, 5*time.Second)
		mod.open(srv.URL+"/t/acme/mod/reports", "#reports > li")
		mod.waitFor("bob's report in the queue", `(() => { const t = document.querySelector("#reports").textContent; return t.includes("Off-topic, says bob") && t.includes("bob reported post"); })()`, 5*time.Second)
		mod.setValue("#reports > li input[name=note]", "Looked fine to me")
		mod.click(`#reports > li button[type="submit"]`)
		mod.waitFor("the queue to empty", `document.querySelector("#reports > li") === null`, 5*time.Second)
		mod.open(srv.URL+"/t/acme/mod/reports?status=resolved", "#reports > li")
		mod.waitFor("the resolved report", `(() => { const t = document.querySelector("#reports").textContent; return t.includes("Resolved by admin") && t.includes("Looked fine to me"); })()`, 5*time.Second)
	})

	t.Run("BanEndsLiveAndWriting", func(t *testing.T) {
		bob, mod := bob.in(t), mod.in(t)
		mod.open(postURL, `#comments [data-action="ban"]`)
		mod.click(`#comments [data-action="ban"]`)
		mod.do(chromedp.WaitVisible(chromedp.ID("ban-reason")))
		mod.setValue("#ban-reason", "Posting markup all day")
		mod.click(`dialog[open] button[type="submit"]`)
		mod.waitFor("the ban dialog to close", `document.querySelector("dialog[open]") === null`, 5*time.Second)
		bob.waitFor("bob's page offline, saying why", `(() => { const c = document.querySelector("#conn"); return c.dataset.state === "offline" && c.textContent.includes("banned"); })()`, 5*time.Second)
		bob.waitFor("no compose box for a banned user", `document.querySelector("#compose") === null && document.querySelector(".compose-slot").textContent.includes("banned")`, 5*time.Second)
		mod.open(srv.URL+"/t/acme/mod/audit", "#audit tr")
		mod.waitFor("the ban in the audit log", `document.querySelector("#audit").textContent.includes("banned user")`, 5*time.Second)
	})

	t.Run("Screenshots", func(t *testing.T) {
		alice := alice.in(t)
		dir := t.TempDir()
		alice.open(postURL, "#comments > li")
		alice.screenshot(dir, "post-1280x800", 1280, 800, false)
		alice.screenshot(dir, "post-390x844", 390, 844, true)
		alice.do(chromedp.EmulateViewport(1280, 800))
		alice.open(boardURL, "#posts > li")
		alice.screenshot(dir, "board-1280x800", 1280, 800, false)
		alice.screenshot(dir, "board-390x844", 390, 844, true)
		if os.Getenv("AGORA_SCREENSHOTS") != "" {
			// Keep them where a person can find them after the run.
			for _, n := range []string{"post-1280x800", "post-390x844", "board-1280x800", "board-390x844"} {
				b, err := os.ReadFile(filepath.Join(dir, n+".png"))
				if err == nil {
					err = os.WriteFile(filepath.Join(os.Getenv("AGORA_SCREENSHOTS"), n+".png"), b, 0o644)
				}
				if err != nil {
					t.Error(err)
				}
			}
		}
		// Pinned first on the board.
		first := eval[string](alice, `document.querySelector("#posts > li .post-link")?.textContent`)
		if first != "Read me first: house rules" {
			t.Errorf("first post on the board is %q, want the pinned one", first)
		}
		alice.do(chromedp.EmulateViewport(1280, 800))
	})
}

func TestBrowserResume(t *testing.T) {
	webtest.Chromium(t)
	dbURL := pgtest.NewDatabase(t)
	// Two instances on one database, as behind a load balancer: the page
	// talks to the first, bob writes through the second.
	first := startServer(t, dbURL, "127.0.0.1:0")
	second := startServer(t, dbURL, "127.0.0.1:0")
	f := newForum(t, first, "resume")
	var board, post idOnly
	f.call(first, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(first, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Resume", "body": "Drop the line."}, &post)

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(first.URL, "resume", f.tokens["alice"])
	alice.open(first.URL+"/t/resume/p/"+post.ID, "#compose")
	eval[chromedp.Void](alice, `window.__sameDocument = true`)

	// Resuming must replay the missed events, not read the thread again.
	const commentReads = `performance.getEntriesByType("resource").filter((e) => /\/posts\/\d+\/comments/.test(e.name)).length`
	readsBefore := eval[int](alice, commentReads)

	// While the server is down, failed connection attempts are expected.
	addr := first.app.lis.Addr().String()
	alice.tolerate(func(e *cdplog.Entry) bool {
		return e.Source == cdplog.EntrySourceNetwork || strings.Contains(e.Text, addr)
	})
	first.stop()
	alice.waitFor("the reconnecting state", `/reconnecting/i.test(document.querySelector("#conn").textContent)`, 10*time.Second)

	var want []string
	for i := 1; i <= 5; i++ {
		body := fmt.Sprintf("missed comment %d", i)
		f.call(second, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": body}, nil)
		want = append(want, body)
	}

	down := time.Now()
	restarted := startServer(t, dbURL, addr)
	if restarted.URL != first.URL {
		t.Fatalf("restarted on %s, want %s", restarted.URL, first.URL)
	}
	alice.waitFor("all five missed comments", `document.querySelectorAll("#comments > li").length >= 5`, 45*time.Second)
	alice.waitFor("the live state", `document.querySelector("#conn").dataset.state === "live"`, 10*time.Second)
	t.Logf("resumed %v after the restart began", time.Since(down).Round(time.Millisecond))
	// Let anything duplicated arrive before counting: one more comment, sent
	// after the resume, must be the sixth and last.
	f.call(restarted, "bob", http.MethodPost, "/posts/"+post.ID+"/comments", map[string]string{"body": "live again"}, nil)
	want = append(want, "live again")
	alice.waitFor("the comment after the resume", `[...document.querySelectorAll("#comments .comment-body")].some((el) => el.textContent === "live again")`, 5*time.Second)

	shown := eval[[]shownComment](alice, commentsJS)
	var got []string
	seen := map[string]bool{}
	for _, c := range shown {
		if seen[c.ID] {
			t.Errorf("comment %s is shown twice", c.ID)
		}
		seen[c.ID] = true
		got = append(got, c.Body)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("alice sees %q, want %q", got, want)
	}
	if !eval[bool](alice, `window.__sameDocument === true`) {
		t.Fatal("the page reloaded instead of resuming")
	}
	if n := eval[int](alice, commentReads); n != readsBefore {
		t.Errorf("the comments were read over REST %d more times: the resume should replay them", n-readsBefore)
	}
}

// TestBrowserMarkdown: bodies show the server's rendering (links that a
// click follows, raw HTML as text, mentions linking to the user's page),
// new comments arrive formatted, and "edited" comes from edited_at, so it
// survives a reload, is not set by moderation, and opens the history for
// the author.
func TestBrowserMarkdown(t *testing.T) {
	webtest.Chromium(t)
	srv := startServer(t, pgtest.NewDatabase(t), "127.0.0.1:0")
	f := newForum(t, srv, "md")
	var board, post, other idOnly
	f.call(srv, "admin", http.MethodPost, "/boards", map[string]string{"name": "General"}, &board)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Formatting",
		"body": "Read [the guide](https://example.com/guide) and <b>this</b>, thanks @bob and @nobody.\n\n`@bob` in code"}, &post)
	f.call(srv, "alice", http.MethodPost, "/boards/"+board.ID+"/posts", map[string]string{"title": "Locked", "body": "Never edited."}, &other)
	f.call(srv, "admin", http.MethodPost, "/mod/posts/"+other.ID+"/lock", nil, nil)
	postURL := srv.URL + "/t/md/p/" + post.ID

	b := newBrowser(t)
	alice := b.newTab(t, "alice")
	alice.signIn(srv.URL, "md", f.tokens["alice"])
	alice.open(postURL, "#post-body")
	bob := b.newTab(t, "bob")
	bob.signIn(srv.URL, "md", f.tokens["bob"])
	bob.open(postURL, "#post-body")

	t.Run("Rendering", func(t *testing.T) {
		bob := bob.in(t)
		type link struct {
			Href, Rel, Text string
		}
		links := eval[[]link](bob, `[...document.querySelectorAll("#post-body a")].map((a) => ({href: a.getAttribute("href"), rel: a.rel, text: a.textContent}))`)
		if len(links) != 2 || links[0] != (link{"https://example.com/guide", "nofollow ugc noopener", "the guide"}) ||
			links[1] != (link{"/t/md/u/bob", "", "@bob"}) {
			t.Fatalf("links in the post: %+v; want the guide and the mention of bob", links)
		}
		if !eval[bool](bob, `document.querySelector("#post-body a.mention")?.textContent === "@bob"`) {
			t.Error("the mention has no class mention")
		}
		if n := eval[int](bob, `document.querySelectorAll("#post-body b, #post-body script, #post-body img").length`); n != 0 {
			t.Errorf("%d elements made from the raw HTML", n)
		}
		text := eval[string](bob, `document.querySelector("#post-body").textContent`)
		for _, want := range []string{"<b>this</b>", "@nobody.", "@bob in code"} {
			if !strings.Contains(text, want) {
				t.Errorf("post text %q lacks %q", text, want)
			}
		}
		// A real click lands on the link and would follow it (the
		// capturing listener records and stops it: the test has no
		// internet).
		eval[chromedp.Void](bob, `document.addEventListener("click", (e) => { const a = e.target.closest("a"); if (a) { window.__followed = a.href; e.preventDefault(); } }, {capture: true, once: true})`)
		bob.do(chromedp.Click(chromedp.CSS(`#post-body a[href="https://example.com/guide"]`)))
		bob.waitFor("the click on the link", `window.__followed === "https://example.com/guide"`, 5*time.Second)
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			bob.screenshot(d, "markdown", 1280, 800, false)
		}
	})

	t.Run("CommentArrivesFormatted", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		bob.postComment("**bold** and www.example.org <i>not italic</i>")
		alice.waitFor("bob's comment, formatted", `(() => { const el = document.querySelector("#comments .comment-body");
			return el?.querySelector("strong")?.textContent === "bold" && el.querySelector('a[href="http://www.example.org"]') !== null
				&& el.querySelector("i") === null && el.textContent.includes("<i>not italic</i>"); })()`, 5*time.Second)
	})

	t.Run("EditedSurvivesReload", func(t *testing.T) {
		alice, bob := alice.in(t), bob.in(t)
		if eval[bool](bob, `document.querySelector("#post .edited") !== null`) {
			t.Fatal("an unedited post is marked edited")
		}
		alice.click("#edit-post")
		alice.do(chromedp.WaitVisible(chromedp.ID("edit-post-body")))
		alice.setValue("#edit-post-body", "Now *edited*.")
		alice.click(`#edit-post-form button[type="submit"]`)
		alice.waitFor("alice's page edited", `document.querySelector("#post-body em")?.textContent === "edited" && document.querySelector("#post .edited") !== null`, 5*time.Second)
		bob.waitFor("bob's page edited, live", `document.querySelector("#post-body em")?.textContent === "edited" && document.querySelector("#post .edited") !== null`, 5*time.Second)

		bob.open(postURL, "#post-body")
		if !eval[bool](bob, `document.querySelector("#post span.edited") !== null && document.querySelector("#post-body em")?.textContent === "edited"`) {
			t.Error("after a reload bob's page does not say edited")
		}
		// Not the author, not a moderator: no history to open.
		if eval[bool](bob, `document.querySelector('#post [data-action="history"]') !== null`) {
			t.Error("bob is offered the history of alice's post")
		}
		// Moderation is no edit.
		bob.open(srv.URL+"/t/md/p/"+other.ID, "#post-body")
		if eval[bool](bob, `document.querySelector("#post .badge.locked") === null || document.querySelector("#post .edited") !== null`) {
			t.Error("the locked, never edited post is not shown locked and unedited")
		}
	})

	t.Run("AuthorSeesHistory", func(t *testing.T) {
		alice := alice.in(t)
		alice.open(postURL, "#post-body")
		alice.click(`#post [data-action="history"]`)
		alice.waitFor("the history", `document.querySelectorAll("dialog[open] #revisions > li.revision").length === 2`, 5*time.Second)
		bodies := eval[[]string](alice, `[...document.querySelectorAll("#revisions .revision-body")].map((el) => el.textContent)`)
		if len(bodies) != 2 || !strings.Contains(bodies[0], "<b>this</b>") || bodies[1] != "Now *edited*." {
			t.Errorf("history bodies %q", bodies)
		}
		if d := os.Getenv("AGORA_SCREENSHOTS"); d != "" {
			alice.screenshot(d, "history", 1280, 800, false)
		}
		alice.click(`dialog[open] .actions button`)
		alice.waitFor("the history to close", `document.querySelector("dialog[open]") === null`, 5*time.Second)
	})
}
