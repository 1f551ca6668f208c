package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"agora/store"
	"agora/store/pgtest"
)

// syncBuffer collects what run writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// runCmd runs one agora command to completion and returns its stdout.
func runCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncBuffer
	err := run(ctx, args, envOf(env), &stdout, &stderr)
	if err != nil {
		t.Logf("agora %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// withNewDatabase adds to env a fresh, empty database of the test cluster,
// reached as agora expects: DATABASE_URL is the serving role, which owns
// nothing, and AGORA_MIGRATE_DATABASE_URL the owner, which migrates.
func withNewDatabase(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	env["DATABASE_URL"] = url
	env["AGORA_MIGRATE_DATABASE_URL"] = pgtest.OwnerURL(pgtest.DBName(t, url))
	return env
}

func TestMigrateAndTenantCommands(t *testing.T) {
	env := withNewDatabase(t, map[string]string{"AGORA_LOG_FORMAT": "json"})

	out, err := runCmd(t, env, "migrate", "version")
	if err != nil || strings.TrimSpace(out) != "schema version 0" {
		t.Fatalf("migrate version on an empty database: %q, %v", out, err)
	}
	out, err = runCmd(t, env, "migrate", "up")
	if err != nil || !regexp.MustCompile(`^schema version [1-9]\d*\n$`).MatchString(out) {
		t.Fatalf("migrate up: %q, %v", out, err)
	}
	upVersion := out
	if out, err = runCmd(t, env, "migrate", "up"); err != nil || out != upVersion {
		t.Fatalf("migrate up again: %q, %v; want %q", out, err, upVersion)
	}
	if out, err = runCmd(t, env, "migrate", "down"); err != nil || out != "schema version 0\n" {
		t.Fatalf("migrate down: %q, %v", out, err)
	}
	if out, err = runCmd(t, env, "migrate", "up"); err != nil || out != upVersion {
		t.Fatalf("migrate up after down: %q, %v", out, err)
	}

	out, err = runCmd(t, env, "tenant", "create", "acme", "Acme Inc.")
	if err != nil || !strings.HasPrefix(out, "tenant acme created (id ") {
		t.Fatalf("tenant create: %q, %v", out, err)
	}
	if _, err := runCmd(t, env, "tenant", "create", "acme", "Again"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("tenant create twice: %v, want a conflict", err)
	}
	if _, err := runCmd(t, env, "tenant", "create", "Not A Slug", "x"); err == nil {
		t.Errorf("tenant create with a bad slug succeeded")
	}

	for _, args := range [][]string{{}, {"bogus"}, {"migrate"}, {"migrate", "sideways"}, {"migrate", "down", "zero"},
		{"tenant", "create", "only-slug"}, {"serve", "extra"}, {"serve", "--no-such-flag"}} {
		_, err := runCmd(t, env, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("agora %q: %v, want a usage error", args, err)
		}
	}
	if _, err := runCmd(t, map[string]string{"DATABASE_URL": env["DATABASE_URL"], "AGORA_LOG_LEVEL": "loud"}, "migrate", "version"); err == nil {
		t.Errorf("a bad log level was accepted")
	}
}

func TestCreateMigration(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"0001_init.up.sql", "0001_init.down.sql", "0007_seven.up.sql", "README"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := createMigration(dir, "Add Reactions!", &out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"0008_add-reactions.up.sql", "0008_add-reactions.down.sql"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not created: %v (output %q)", f, err, out.String())
		}
	}
	if err := createMigration(dir, "!!!", &out); err == nil {
		t.Errorf("a name without letters was accepted")
	}
}

// serving starts "agora serve" and returns its base URL once it listens,
// and a stop function that cancels it and returns run's result.
func serving(t *testing.T, env map[string]string, stdout io.Writer, stderr *syncBuffer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if stderr == nil {
		stderr = &syncBuffer{}
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, envOf(env), stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Errorf("serve did not stop")
		}
	})

	// The listen address is in the "serving" log line (AGORA_ADDR has
	// port 0, so only the log knows it).
	deadline := time.After(2 * time.Minute)
	for {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var l struct {
				Msg  string `json:"message"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "serving" && l.Addr != "" {
				stop := func() error {
					cancel()
					select {
					case err := <-done:
						done <- err // for the cleanup
						return err
					case <-time.After(time.Minute):
						return errors.New("serve did not return within a minute of cancellation")
					}
				}
				return "http://" + l.Addr, stop
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before serving: %v\nstderr: %s", err, stderr.String())
		case <-deadline:
			t.Fatalf("serve did not log its address\nstderr: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe starts the whole program on 127.0.0.1:0 against a fresh
// database: it migrates, seeds the demo tenant, serves, and on
// cancellation closes WebSockets with 1001 and returns nil.
func TestServe(t *testing.T) {
	env := withNewDatabase(t, map[string]string{
		"AGORA_ADDR":        "127.0.0.1:0",
		"AGORA_ADMIN_TOKEN": "operator-secret",
		"AGORA_LOG_FORMAT":  "json",
		"AGORA_SEED_DEMO":   "true",
		"AGORA_DATA_DIR":    t.TempDir(),
	})
	var stdout syncBuffer
	base, stop := serving(t, env, &stdout, nil)
	if u, err := url.Parse(base); err != nil || net.ParseIP(u.Hostname()) == nil || !net.ParseIP(u.Hostname()).IsLoopback() {
		t.Fatalf("serving on %q, want loopback", base)
	}

	if status, body := get(t, base+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	// Ready once the database answers and the realtime listener is
	// connected.
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := get(t, base+"/readyz")
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The demo admin printed on stdout can sign in.
	m := regexp.MustCompile(`demo admin: (\S+) / (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no demo credentials on stdout: %q", stdout.String())
	}
	body, _ := json.Marshal(map[string]string{"username": m[1], "password": m[2]})
	resp, err := http.Post(base+"/api/v1/t/demo/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo admin login: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/tenants", nil)
	req.Header.Set("Authorization", "Bearer operator-secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tenants with the operator token: %d", resp.StatusCode)
	}

	// An open WebSocket is told the server is going away.
	ws, wsResp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/t/demo/ws", nil)
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, wsResp)
	}
	defer ws.Close()
	// Wait until the session is established on the server side (it
	// answers a subscribe), so the close code tested below is the one
	// shutdown sends to a live session.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","room":"tenant"}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for subscribed := false; !subscribed; {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for subscribed: %v", err)
		}
		for _, line := range strings.Split(string(frame), "\n") {
			var m struct{ Op string }
			subscribed = subscribed || json.Unmarshal([]byte(line), &m) == nil && m.Op == "subscribed"
		}
	}
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()

	if err := stop(); err != nil {
		t.Fatalf("serve after cancellation: %v, want nil (graceful shutdown)", err)
	}
	select {
	case err := <-closed:
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("websocket ended with %v, want close 1001", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("websocket still open after serve returned")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Errorf("still accepting connections after serve returned")
	}

	// A second start finds the demo tenant and prints the same credentials.
	var stdout2 syncBuffer
	_, stop2 := serving(t, env, &stdout2, nil)
	if !strings.Contains(stdout2.String(), m[0]) {
		t.Errorf("second start printed %q, want %q", stdout2.String(), m[0])
	}
	if err := stop2(); err != nil {
		t.Errorf("second serve: %v", err)
	}
}

// TestServeRefusesUnsafeDatabase: serve will not run where Row Level
// Security would be silently off.
func TestServeRefusesUnsafeDatabase(t *testing.T) {
	dbs := withNewDatabase(t, map[string]string{})
	dbURL := dbs["DATABASE_URL"]
	if _, err := runCmd(t, dbs, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	env := func(u string) map[string]string {
		return map[string]string{"DATABASE_URL": u, "AGORA_ADDR": "127.0.0.1:0", "AGORA_AUTO_MIGRATE": "false", "AGORA_LOG_FORMAT": "json"}
	}

	_, err := runCmd(t, env(pgtest.SuperuserURL(pgtest.DBName(t, dbURL))), "serve")
	if err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Errorf("serve as superuser: %v, want a refusal naming the superuser", err)
	}

	ctx := t.Context()
	super, err := pgx.Connect(ctx, pgtest.SuperuserURL(pgtest.DBName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())
	if _, err := super.Exec(ctx, `ALTER TABLE posts NO FORCE ROW LEVEL SECURITY`); err != nil {
		t.Fatal(err)
	}
	_, err = runCmd(t, env(dbURL), "serve")
	if err == nil || !strings.Contains(err.Error(), "posts") {
		t.Errorf("serve with posts not forcing RLS: %v, want a refusal naming posts", err)
	}
}

// TestServeRefusesOwner: serving as the role that owns the schema needs
// AGORA_ALLOW_OWNER, and is then only warned about; the refusal says which
// variables fix it.
func TestServeRefusesOwner(t *testing.T) {
	dbs := withNewDatabase(t, map[string]string{})
	if _, err := runCmd(t, dbs, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	// The single-role layout: DATABASE_URL alone, naming the owner.
	env := map[string]string{
		"DATABASE_URL":     dbs["AGORA_MIGRATE_DATABASE_URL"],
		"AGORA_ADDR":       "127.0.0.1:0",
		"AGORA_LOG_FORMAT": "json",
	}
	_, err := runCmd(t, env, "serve")
	if err == nil || !errors.Is(err, store.ErrRoleOwnsSchema) {
		t.Fatalf("serve as the owner: %v, want a refusal", err)
	}
	for _, name := range []string{"DATABASE_URL", "AGORA_MIGRATE_DATABASE_URL", "AGORA_ALLOW_OWNER"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the refusal %q does not name %s", err, name)
		}
	}

	env["AGORA_ALLOW_OWNER"] = "true"
	var stderr syncBuffer
	base, stop := serving(t, env, io.Discard, &stderr)
	if status, body := get(t, base+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	warned := false
	for _, line := range strings.Split(stderr.String(), "\n") {
		var l struct{ Level, Message string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Level == "warn" && strings.Contains(l.Message, `"agora_owner" owns`) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about serving as the owner in the log:\n%s", stderr.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateGrantsServingRole: `agora migrate up` run as the owner grants
// the serving role of DATABASE_URL its rights, and serve then runs as that
// role alone, without migrating; without the grants it refuses, saying how
// to get them.
func TestMigrateGrantsServingRole(t *testing.T) {
	dbs := withNewDatabase(t, map[string]string{"AGORA_LOG_FORMAT": "json"})
	serve := map[string]string{
		"DATABASE_URL":       dbs["DATABASE_URL"],
		"AGORA_ADDR":         "127.0.0.1:0",
		"AGORA_AUTO_MIGRATE": "false",
		"AGORA_LOG_FORMAT":   "json",
		"AGORA_SEED_DEMO":    "true",
		"AGORA_DATA_DIR":     t.TempDir(),
	}

	// Migrated by the owner alone: nobody to grant to.
	ownerOnly := map[string]string{"AGORA_MIGRATE_DATABASE_URL": dbs["AGORA_MIGRATE_DATABASE_URL"], "AGORA_LOG_FORMAT": "json"}
	if out, err := runCmd(t, ownerOnly, "migrate", "up"); err != nil || !strings.HasPrefix(out, "schema version ") {
		t.Fatalf("migrate up as the owner alone: %q, %v", out, err)
	}
	_, err := runCmd(t, serve, "serve")
	if !errors.Is(err, store.ErrRoleLacksRights) || !strings.Contains(err.Error(), "AGORA_MIGRATE_DATABASE_URL") {
		t.Fatalf("serve without grants: %v, want a refusal naming AGORA_MIGRATE_DATABASE_URL", err)
	}
	if _, err := runCmd(t, ownerOnly, "serve"); err == nil || !strings.Contains(err.Error(), "DATABASE_URL is not") {
		t.Errorf("serve with only the owner's URL: %v, want an error asking for DATABASE_URL", err)
	}

	if _, err := runCmd(t, dbs, "migrate", "up"); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	base, stop := serving(t, serve, &stdout, &stderr)
	m := regexp.MustCompile(`demo admin: (\S+) / (\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no demo credentials on stdout: %q", stdout.String())
	}
	body, _ := json.Marshal(map[string]string{"username": m[1], "password": m[2]})
	resp, err := http.Post(base+"/api/v1/t/demo/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("demo admin login as the serving role: %d", resp.StatusCode)
	}
	if strings.Contains(stderr.String(), `"level":"warn"`) {
		t.Errorf("warnings serving as a granted role:\n%s", stderr.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
