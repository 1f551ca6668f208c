package store

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"agora/store/pgtest"
)

func TestCheckSafety(t *testing.T) {
	db, dbURL := openDB(t, Config{})
	ctx := testCtx(t)
	if warnings, err := db.CheckSafety(ctx, false); err != nil || len(warnings) > 0 {
		t.Fatalf("app role on a fresh schema: %v, warnings %q", err, warnings)
	}

	t.Run("Superuser", func(t *testing.T) {
		su, _ := openDB(t, Config{URL: pgtest.SuperuserURL(pgtest.DBName(t, dbURL))})
		_, err := su.CheckSafety(ctx, false)
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
		_, err = by.CheckSafety(ctx, false)
		if err == nil || !strings.Contains(err.Error(), "BYPASSRLS") {
			t.Fatalf("CheckSafety with BYPASSRLS = %v, want an error about BYPASSRLS", err)
		}
	})

	t.Run("Owner", func(t *testing.T) {
		_, dbURL := openDB(t, Config{})
		owner, _ := openDB(t, Config{URL: pgtest.OwnerURL(pgtest.DBName(t, dbURL))})
		_, err := owner.CheckSafety(ctx, false)
		if !errors.Is(err, ErrRoleOwnsSchema) || !strings.Contains(err.Error(), pgtest.OwnerRole) || !strings.Contains(err.Error(), "table ") {
			t.Fatalf("CheckSafety as the owner = %v, want ErrRoleOwnsSchema naming the role and its tables", err)
		}
		warnings, err := owner.CheckSafety(ctx, true)
		if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "owns") {
			t.Fatalf("CheckSafety as the owner, allowed = %v, warnings %q; want one warning about what it owns", err, warnings)
		}
	})

	t.Run("MemberOfOwner", func(t *testing.T) {
		// A role that can become the owner (SET ROLE) is as good as it.
		db, dbURL := openDB(t, Config{})
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `GRANT agora_owner TO agora`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = super.Exec(context.Background(), `REVOKE agora_owner FROM agora`) })
		if _, err := db.CheckSafety(ctx, false); !errors.Is(err, ErrRoleOwnsSchema) {
			t.Fatalf("CheckSafety as a member of the owner = %v, want ErrRoleOwnsSchema", err)
		}
	})

	t.Run("NotGranted", func(t *testing.T) {
		db, dbURL := openDB(t, Config{})
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `REVOKE ALL ON boards FROM agora`); err != nil {
			t.Fatal(err)
		}
		_, err := db.CheckSafety(ctx, false)
		if !errors.Is(err, ErrRoleLacksRights) || !strings.Contains(err.Error(), "boards") {
			t.Fatalf("CheckSafety without rights on boards = %v, want ErrRoleLacksRights naming boards", err)
		}
	})

	t.Run("Temporary", func(t *testing.T) {
		db, dbURL := openDB(t, Config{})
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `GRANT TEMPORARY ON DATABASE `+pgx.Identifier{pgtest.DBName(t, dbURL)}.Sanitize()+` TO agora`); err != nil {
			t.Fatal(err)
		}
		warnings, err := db.CheckSafety(ctx, false)
		if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "temporary") {
			t.Fatalf("CheckSafety with TEMPORARY = %v, warnings %q; want one warning about temporary tables", err, warnings)
		}
	})

	t.Run("TableWithoutForcedRLS", func(t *testing.T) {
		db, dbURL := openDB(t, Config{})
		super := superConn(t, dbURL)
		if _, err := super.Exec(ctx, `ALTER TABLE comments NO FORCE ROW LEVEL SECURITY`); err != nil {
			t.Fatal(err)
		}
		_, err := db.CheckSafety(ctx, false)
		if err == nil || !strings.Contains(err.Error(), "comments") {
			t.Fatalf("CheckSafety with comments not forced = %v, want an error naming comments", err)
		}
		if _, err := super.Exec(ctx, `ALTER TABLE comments FORCE ROW LEVEL SECURITY; ALTER TABLE events DISABLE ROW LEVEL SECURITY`); err != nil {
			t.Fatal(err)
		}
		_, err = db.CheckSafety(ctx, false)
		if err == nil || !strings.Contains(err.Error(), "events") || strings.Contains(err.Error(), "comments") {
			t.Fatalf("CheckSafety with RLS disabled on events = %v, want an error naming events only", err)
		}
	})
}

// TestServingRoleHasDataRightsOnly: the role the application serves as can
// neither switch Row Level Security off, nor drop, empty or redefine what
// the migrations made, nor rewrite the audit log: what an SQL injection
// could do with it is bounded by its data rights.
func TestServingRoleHasDataRightsOnly(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	c := newCommunity(t, db, "rights")
	if _, err := db.ModeratePost(ctx, c.tenant.ID, ActorOf(c.admin), c.post.ID, ActionPin, "house rules"); err != nil {
		t.Fatal(err) // an audit entry to try rewriting
	}
	tenant := strconv.FormatInt(c.tenant.ID, 10)
	for _, stmt := range []string{
		`ALTER TABLE posts NO FORCE ROW LEVEL SECURITY`,
		`ALTER TABLE posts DISABLE ROW LEVEL SECURITY`,
		`DROP POLICY tenant_isolation ON posts`,
		`CREATE POLICY everything ON posts USING (true)`,
		`DROP TABLE comments`,
		`TRUNCATE events`,
		`TRUNCATE audit_log`,
		`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update`,
		`CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`SELECT set_config('app.tenant_id', '` + tenant + `', true); UPDATE audit_log SET reason = 'nothing to see'`,
		`SELECT set_config('app.tenant_id', '` + tenant + `', true); DELETE FROM audit_log`,
		`DELETE FROM tenants`,
		`CREATE TABLE sneaky (id int)`,
		// A temporary table named like a real one would shadow it for every
		// later request on this pooled connection.
		`CREATE TEMP TABLE posts (id int)`,
	} {
		// Each in a transaction of its own, rolled back, so that one the
		// role wrongly may do leaves nothing behind for the next.
		tx, err := db.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, stmt)
		if rerr := tx.Rollback(ctx); rerr != nil {
			t.Fatal(rerr)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || strings.Contains(pe.Message, "append-only") {
			t.Errorf("%s: %v, want a permission error (42501) from the grants", stmt, err)
		}
	}
	// Its data rights are intact.
	if _, err := db.CreateComment(ctx, c.tenant.ID, ActorOf(c.member), c.post.ID, "still works"); err != nil {
		t.Fatal(err)
	}
}

// TestGrantsCoverLaterTables: the rights are computed from the schema each
// time the migrations run, so a table a later migration adds is usable by
// the serving role with nothing else to do, with data rights only, and
// rights given by hand beyond those are taken back.
func TestGrantsCoverLaterTables(t *testing.T) {
	ctx := testCtx(t)
	dbURL := pgtest.NewDatabase(t)
	ownerURL := pgtest.OwnerURL(pgtest.DBName(t, dbURL))
	owner, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(context.Background())
	if _, err := owner.Exec(ctx, `
		CREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
		GRANT ALL ON posts TO agora`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateUp(ctx, ownerURL, dbURL); err != nil {
		t.Fatal(err)
	}
	super := superConn(t, dbURL)
	rights := func(table string) string {
		t.Helper()
		var got string
		err := super.QueryRow(ctx, `
			SELECT coalesce(string_agg(p, ',' ORDER BY p), '')
			FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
			WHERE has_table_privilege('agora', $1::regclass, p)`, table).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	for table, want := range map[string]string{
		"widgets":           "DELETE,INSERT,SELECT,UPDATE",
		"posts":             "DELETE,INSERT,SELECT,UPDATE",
		"audit_log":         "INSERT,SELECT",
		"tenants":           "INSERT,SELECT",
		"schema_migrations": "",
	} {
		if got := rights(table); got != want {
			t.Errorf("agora on %s: %s, want %s", table, got, want)
		}
	}
	app, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if _, err := app.Exec(ctx, `INSERT INTO widgets (name) VALUES ('sprocket'); UPDATE widgets SET name = 'cog'; DELETE FROM widgets`); err != nil {
		t.Fatalf("the serving role on a table added later: %v", err)
	}
}
