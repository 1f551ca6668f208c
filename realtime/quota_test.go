package realtime_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"agora/realtime"
	"agora/realtime/wstest"
)

// dialUntil dials until the upgrade succeeds: a closed session gives its
// slot back once the server has seen the close, a moment after the client
// sent it.
func dialUntil(t *testing.T, s *instance, tenant, token string) *wsClient {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		c, resp, err := dial(t, s.URL, tenant, token, nil)
		if err == nil {
			return c
		}
		if resp == nil || resp.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("dial: %v (response %v)", err, resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUserSessionQuota: a user holds at most 20 WebSockets per tenant; the
// 21st is refused with 429 before the upgrade, also with the rate limits
// off (this instance runs without them); closing one lets the next in;
// other users are unaffected.
func TestUserSessionQuota(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	_, other := s.Register(t, "acme", "mia")
	var open []*wsClient
	for range 20 {
		open = append(open, mustDial(t, s.URL, "acme", f.admin))
	}
	// The 20 are live sessions, not just upgrades: each answers.
	for _, c := range open {
		c.subscribe("tenant", nil)
	}
	_, resp, err := dial(t, s.URL, "acme", f.admin, nil)
	refused(t, "21st socket", resp, err, 429, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Tickets are the same user.
	_, resp, err = dialPath(t, s.URL, "/api/v1/t/acme/ws?ticket="+ticket(t, s, "acme", f.admin), nil)
	refused(t, "21st socket by ticket", resp, err, 429, "rate_limited")

	mustDial(t, s.URL, "acme", other).subscribe("tenant", nil)
	mustDial(t, s.URL, "acme", "").subscribe("tenant", nil)

	_ = open[0].conn.Close()
	dialUntil(t, s, "acme", f.admin).subscribe("tenant", nil)
	_, resp, err = dial(t, s.URL, "acme", f.admin, nil)
	refused(t, "21st socket again", resp, err, 429, "rate_limited")
}

// TestTenantSessionQuota: a tenant holds at most its quota of WebSockets
// on an instance, anonymous ones included; another tenant is unaffected.
func TestTenantSessionQuota(t *testing.T) {
	s := startInstance(t, "", func(c *realtime.Config) { c.MaxTenantSessions = 3 })
	f := newForum(t, s, "acme")
	g := newForum(t, s, "globex")
	_, mia := s.Register(t, "acme", "mia")
	first := mustDial(t, s.URL, "acme", "")
	mustDial(t, s.URL, "acme", f.admin)
	mustDial(t, s.URL, "acme", mia)
	for _, token := range []string{"", f.admin, mia} {
		_, resp, err := dial(t, s.URL, "acme", token, nil)
		refused(t, "4th socket of the tenant", resp, err, 429, "rate_limited")
		if b := resp.Header.Get("Retry-After"); b == "" || strings.TrimSpace(b) == "0" {
			t.Fatalf("Retry-After %q", b)
		}
	}
	for range 3 {
		mustDial(t, s.URL, "globex", g.admin).subscribe("tenant", nil)
	}
	_ = first.conn.Close()
	dialUntil(t, s, "acme", mia).subscribe("tenant", nil)
}

// TestUserQuotaUnderConcurrency: slots are taken before the upgrade, so
// thirty upgrades of one user at once open exactly twenty sockets.
func TestUserQuotaUnderConcurrency(t *testing.T) {
	s := startInstance(t, "", nil)
	f := newForum(t, s, "acme")
	type result struct {
		ok     bool
		status int
	}
	results := make(chan result, 30)
	for range 30 {
		go func() {
			c, resp, err := wstest.Dial(t, "ws"+strings.TrimPrefix(s.URL, "http")+"/api/v1/t/acme/ws",
				http.Header{"Authorization": {"Bearer " + f.admin}})
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				results <- result{false, status}
				return
			}
			results <- result{c != nil, 101}
		}()
	}
	opened := 0
	for range 30 {
		r := <-results
		switch {
		case r.ok:
			opened++
		case r.status != 429:
			t.Fatalf("a refused upgrade got %d, want 429", r.status)
		}
	}
	if opened != 20 {
		t.Fatalf("%d sockets opened, want 20", opened)
	}
}
