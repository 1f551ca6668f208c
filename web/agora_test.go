package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"agora/web/webtest"
)

// TestAgoraClient runs the protocol client's scenarios
// (testdata/agora_client_test.js) in Chromium, against a fake WebSocket:
// frame splitting, seq gaps and replays, reset, close codes, backoff,
// tickets, typing throttle. The forum's browser tests (../browser_test.go)
// cover the same client against the real server.
func TestAgoraClient(t *testing.T) {
	runScenarios(t, "/testdata/agora_client_test.js", 10)
}

// runScenarios imports a scenario module from testdata in Chromium, runs
// its run() and turns each result into a subtest. Fewer than min results
// means the module broke before running them all.
func runScenarios(t *testing.T, module string, min int) {
	t.Helper()
	exe := webtest.Chromium(t)
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.Handle("/testdata/", http.StripPrefix("/testdata/", http.FileServer(http.Dir("testdata"))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	// The landing page has no server behind it here; a blank HTML page of
	// the origin imports the modules (HTML, so that the components can
	// build elements in it).
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/testdata/blank.html")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	type result struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[[]result](
		`import(`+strconv.Quote(module)+`).then((m) => m.run())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("run the scenarios: %v", err)
	}
	if len(results) < min {
		t.Fatalf("only %d scenarios ran", len(results))
	}
	for _, r := range results {
		t.Run(r.Name, func(t *testing.T) {
			if !r.OK {
				t.Error(r.Detail)
			}
		})
	}
}
