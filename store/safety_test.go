package store

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"agora/store/pgtest"
)

func TestCheckSafety(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	if err := db.CheckSafety(ctx); err != nil {
		t.Fatalf("app role on a fresh schema: %v", err)
	}

	t.Run("Superuser", func(t *testing.T) {
		su, _ := openDB(t, Config{URL: pgtest.SuperuserURL(dbNameOf(t, dbURL))})
		err := su.CheckSafety(ctx)
		if err == nil || !strings.Contains(err.Error(), "superuser") {
			t.Fatalf("CheckSafety as superuser = %v, want an error about the superuser", err)
		}
	})

	t.Run("BypassRLS", func(t *testing.T) {
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `CREATE ROLE agora_bypass LOGIN BYPASSRLS PASSWORD 'bypass-secret'`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = super.Exec(context.Background(), `DROP ROLE agora_bypass`) })
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("agora_bypass", "bypass-secret")
		by, _ := openDB(t, Config{URL: u.String()})
		err = by.CheckSafety(ctx)
		if err == nil || !strings.Contains(err.Error(), "BYPASSRLS") {
			t.Fatalf("CheckSafety with BYPASSRLS = %v, want an error about BYPASSRLS", err)
		}
	})

	t.Run("TableWithoutForcedRLS", func(t *testing.T) {
		db, dbURL := openDB(t, Config{})
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `ALTER TABLE comments NO FORCE ROW LEVEL SECURITY`); err != nil {
			t.Fatal(err)
		}
		err := db.CheckSafety(ctx)
		if err == nil || !strings.Contains(err.Error(), "comments") {
			t.Fatalf("CheckSafety with comments not forced = %v, want an error naming comments", err)
		}
		if _, err := super.Exec(ctx, `ALTER TABLE comments FORCE ROW LEVEL SECURITY; ALTER TABLE events DISABLE ROW LEVEL SECURITY`); err != nil {
			t.Fatal(err)
		}
		err = db.CheckSafety(ctx)
		if err == nil || !strings.Contains(err.Error(), "events") || strings.Contains(err.Error(), "comments") {
			t.Fatalf("CheckSafety with RLS disabled on events = %v, want an error naming events only", err)
		}
	})
}
