package web

import "testing"

// TestComponents runs the page components' scenarios
// (testdata/components_test.js) in Chromium: presence as the server
// describes it, large rooms included, without a server behind it (a room
// of a thousand real sessions would only make the same messages slowly).
func TestComponents(t *testing.T) {
	runScenarios(t, "/testdata/components_test.js", 4)
}
