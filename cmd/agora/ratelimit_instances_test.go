package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestRateLimitsHoldAcrossInstances: three instances on one database, a
// client guessing a password round-robin over them gets at most 1.5 times
// the documented 5 failed logins, not 15; once the other two are gone,
// the one left alone allows the whole limit again.
func TestRateLimitsHoldAcrossInstances(t *testing.T) {
	env := withNewDatabase(t, map[string]string{})
	dbs := databases{URL: env["DATABASE_URL"], OwnerURL: env["AGORA_MIGRATE_DATABASE_URL"]}
	startInstance := func() *app {
		cfg, _, err := parseConfig("serve", []string{"-addr", "127.0.0.1:0", "-heartbeat", "250ms"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := start(ctx, cfg, zerolog.Nop(), dbs, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := a.http.Serve(a.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("serve: %v", err)
			}
		}()
		t.Cleanup(func() { a.shutdown(); <-served })
		return a
	}
	apps := []*app{startInstance(), startInstance(), startInstance()}
	if _, err := apps[0].db.CreateTenant(t.Context(), "acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	login := func(a *app, username string) *http.Response {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"username": username, "password": "not the password"})
		res, err := http.Post(a.URL()+"/api/v1/t/acme/auth/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	// failedLogins sends n wrong passwords for username, round-robin over
	// the instances, and counts those that were checked (401, not 429).
	failedLogins := func(instances []*app, username string, n int) int {
		t.Helper()
		checked := 0
		for i := range n {
			switch res := login(instances[i%len(instances)], username); res.StatusCode {
			case http.StatusUnauthorized:
				checked++
			case http.StatusTooManyRequests:
				if res.Header.Get("Retry-After") == "" {
					t.Errorf("a 429 without Retry-After")
				}
			default:
				t.Fatalf("failed login %d: status %d", i+1, res.StatusCode)
			}
		}
		return checked
	}
	waitInstances := func(a *app, want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); a.instances() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("an instance counts %d live instances, want %d", a.instances(), want)
			}
		}
	}
	for _, a := range apps {
		waitInstances(a, 3)
	}

	const limit = 5 // failed logins per username and address, a minute
	if got := failedLogins(apps, "alice", 6*limit); got > limit*3/2 || got == 0 {
		t.Errorf("round-robin over 3 instances: %d failed logins checked, want at most 1.5 x %d", got, limit)
	}

	apps[1].shutdown()
	apps[2].shutdown()
	waitInstances(apps[0], 1)
	if got := failedLogins(apps[:1], "bob", 2*limit); got != limit {
		t.Errorf("one instance alone: %d failed logins checked, want the whole limit of %d", got, limit)
	}
}
