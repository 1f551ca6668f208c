package web

import "testing"

// TestApiClient runs the REST client's scenarios (testdata/api_client_test.js)
// in Chromium against a fake fetch: the Idempotency-Key on every POST and
// which failures are retried with it. browser_test.go's retry test covers
// the same against the real server.
func TestApiClient(t *testing.T) {
	runScenarios(t, "/testdata/api_client_test.js", 9)
}
