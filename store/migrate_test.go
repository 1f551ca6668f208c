package store

import (
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"agora/migrations"
	"agora/store/pgtest"
)

// latestMigrations returns the highest version among the embedded files
// and the one below it (0 if none), so the test keeps working as
// migrations are added, numbering gaps included.
func latestMigrations(t *testing.T) (latest, previous uint) {
	t.Helper()
	v := migrationVersions(t)
	if len(v) > 1 {
		previous = v[len(v)-2]
	}
	return v[len(v)-1], previous
}

// versionBefore is the embedded migration just below version (0 if none),
// whatever its number: the schema as it was before that migration.
func versionBefore(t *testing.T, version uint) uint {
	t.Helper()
	var before uint
	for _, v := range migrationVersions(t) {
		if v < version {
			before = v
		}
	}
	return before
}

// ownerMigrator migrates the database of url as its owner.
func ownerMigrator(t *testing.T, url string) *Migrator {
	t.Helper()
	mg, err := NewMigrator(pgtest.OwnerURL(pgtest.DBName(t, url)), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close() })
	return mg
}

// migrationVersions are the versions of the embedded files in order.
// Numbers are handed out ahead of time, so they may have gaps.
func migrationVersions(t *testing.T) []uint {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint
	re := regexp.MustCompile(`^(\d+)_`)
	for _, f := range files {
		m := re.FindStringSubmatch(f)
		if m == nil {
			t.Fatalf("migration %s has no version prefix", f)
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		versions = append(versions, uint(v))
		down := f[:len(f)-len(".up.sql")] + ".down.sql"
		if _, err := fs.Stat(migrations.FS, down); err != nil {
			t.Errorf("migration %s has no %s", f, down)
		}
	}
	if len(versions) == 0 {
		t.Fatal("no migrations embedded")
	}
	slices.Sort(versions)
	return versions
}

func TestMigrationsUpDownUp(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	latest, previous := latestMigrations(t)
	owner := pgtest.OwnerURL(pgtest.DBName(t, url))
	mg, err := NewMigrator(owner, url)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	super := superConn(t, url)

	// What the schema owns, besides golang-migrate's bookkeeping.
	objects := func() (tables, functions int) {
		t.Helper()
		err := super.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'),
			       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public')`).
			Scan(&tables, &functions)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	version := func(want uint) {
		t.Helper()
		v, dirty, err := mg.Version()
		if err != nil || dirty || v != want {
			t.Fatalf("version = %d, dirty %v, err %v; want %d, clean", v, dirty, err, want)
		}
	}

	version(latest) // pgtest databases are cloned from a migrated template
	tablesUp, funcsUp := objects()
	if tablesUp < 10 {
		t.Fatalf("%d tables after up, want at least the 10 of the first migration", tablesUp)
	}

	if err := mg.Down(0); err != nil {
		t.Fatalf("down to zero: %v", err)
	}
	version(0)
	if tables, funcs := objects(); tables != 0 || funcs != 0 {
		t.Fatalf("after down to zero: %d tables and %d functions left", tables, funcs)
	}
	if err := mg.Down(0); err != nil {
		t.Fatalf("down when already at zero: %v", err)
	}

	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	version(latest)
	if tables, funcs := objects(); tables != tablesUp || funcs != funcsUp {
		t.Fatalf("up again: %d tables, %d functions; first up had %d, %d", tables, funcs, tablesUp, funcsUp)
	}
	if err := mg.Up(ctx); err != nil {
		t.Fatalf("up when up to date: %v", err)
	}

	// One step down and up again (the last migration's down is exact too).
	if err := mg.Down(1); err != nil {
		t.Fatalf("down 1: %v", err)
	}
	version(previous)
	if err := MigrateUp(ctx, owner, url); err != nil {
		t.Fatal(err)
	}
	version(latest)

	// The re-created schema is usable and safe: the serving role got its
	// rights on the new tables.
	db, _ := openDB(t, Config{URL: url})
	if warnings, err := db.CheckSafety(ctx, false); err != nil || len(warnings) > 0 {
		t.Fatalf("CheckSafety after migrating again: %v, warnings %q", err, warnings)
	}
	newCommunity(t, db, "again")
}
