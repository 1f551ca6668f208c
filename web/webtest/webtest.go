// Package webtest helps tests drive a real browser.
package webtest

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium to drive. Without one it skips
// the test on a developer's machine and fails it in CI, where the browser
// tests must run.
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, c := range []string{os.Getenv("AGORA_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "" {
		tb.Skip("no Chromium found: the browser tests need it (apt-get install -y chromium, or AGORA_CHROMIUM=/path); in CI they run")
	}
	tb.Fatal("no Chromium found, and CI is set: install it (apt-get install -y chromium) or set AGORA_CHROMIUM")
	return ""
}
