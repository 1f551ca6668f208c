package pgtest_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store/pgtest"
)

var migrations = 0 // counts migrate calls; written before m.Run only

func TestMain(m *testing.M) {
	pgtest.Main(m, func(ctx context.Context, ownerURL, appURL string) error {
		migrations++
		conn, err := pgx.Connect(ctx, ownerURL)
		if err != nil {
			return err
		}
		// Left open on purpose: Main must close connections to the
		// template before tests clone it.
		_, err = conn.Exec(ctx, `CREATE TABLE widgets (id bigint PRIMARY KEY, name text NOT NULL);
			GRANT SELECT, INSERT ON widgets TO `+pgx.Identifier{appUser(appURL)}.Sanitize())
		return err
	})
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewDatabaseIsolated(t *testing.T) {
	ctx := context.Background()
	if migrations != 1 {
		t.Errorf("migrate ran %d times, want 1", migrations)
	}
	t0 := time.Now()
	url1 := pgtest.NewDatabase(t)
	t.Logf("NewDatabase took %v", time.Since(t0))
	t0 = time.Now()
	url2 := pgtest.NewDatabase(t)
	t.Logf("NewDatabase took %v", time.Since(t0))
	if url1 == url2 {
		t.Fatalf("NewDatabase returned the same URL twice")
	}
	db1, db2 := connect(t, url1), connect(t, url2)

	var name1, name2, user string
	var super bool
	if err := db1.QueryRow(ctx, "SELECT current_database(), current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").Scan(&name1, &user, &super); err != nil {
		t.Fatal(err)
	}
	if err := db2.QueryRow(ctx, "SELECT current_database()").Scan(&name2); err != nil {
		t.Fatal(err)
	}
	if name1 == name2 || name1 == pgtest.TemplateDB || name2 == pgtest.TemplateDB {
		t.Errorf("databases %s and %s, want two distinct clones", name1, name2)
	}
	if user != pgtest.AppRole || super {
		t.Errorf("connected as %s (superuser %v), want %s, not superuser", user, super, pgtest.AppRole)
	}

	// Both have the migrated table; writes to one do not show in the other.
	if _, err := db1.Exec(ctx, "INSERT INTO widgets VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}
	var n1, n2 int
	if err := db1.QueryRow(ctx, "SELECT count(*) FROM widgets").Scan(&n1); err != nil {
		t.Fatal(err)
	}
	if err := db2.QueryRow(ctx, "SELECT count(*) FROM widgets").Scan(&n2); err != nil {
		t.Fatal(err)
	}
	if n1 != 1 || n2 != 0 {
		t.Errorf("widgets: %d rows in db1, %d in db2, want 1 and 0", n1, n2)
	}
	// The app role has the rights granted to it, and owns nothing.
	if _, err := db2.Exec(ctx, "DROP TABLE widgets"); err == nil {
		t.Error("the app role dropped a table the migration made")
	}
	if _, err := db2.Exec(ctx, "CREATE TABLE extra (id int)"); err == nil {
		t.Error("the app role created a table")
	}
}

// appUser is the user of a postgres:// URL.
func appUser(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return u.User.Username()
}

func TestOwnerURL(t *testing.T) {
	ctx := context.Background()
	appURL := pgtest.NewDatabase(t)
	u, err := url.Parse(appURL)
	if err != nil {
		t.Fatal(err)
	}
	owner := connect(t, pgtest.OwnerURL(strings.TrimPrefix(u.Path, "/")))
	var user, db, dbOwner string
	var super bool
	err = owner.QueryRow(ctx, `SELECT current_user, current_database(), pg_get_userbyid(datdba),
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
		FROM pg_database WHERE datname = current_database()`).Scan(&user, &db, &dbOwner, &super)
	if err != nil {
		t.Fatal(err)
	}
	if user != pgtest.OwnerRole || super || dbOwner != pgtest.OwnerRole || "/"+db != u.Path {
		t.Errorf("OwnerURL: %s (superuser %v) on %s owned by %s; want %s, no superuser, on %s, which it owns",
			user, super, db, dbOwner, pgtest.OwnerRole, u.Path)
	}
	// The owner does what the app role may not.
	if _, err := owner.Exec(ctx, "DROP TABLE widgets; CREATE TABLE extra (id int)"); err != nil {
		t.Fatal(err)
	}
}

func TestNewDatabaseDroppedAfterTest(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("inner", func(t *testing.T) {
		conn := connect(t, pgtest.NewDatabase(t))
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		// The connection stays open: the drop must still work.
	})
	su := connect(t, pgtest.SuperuserURL("postgres"))
	var exists bool
	if err := su.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestSuperuserURL(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	app := connect(t, url)
	var pid int32
	if err := app.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	dbName := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	su := connect(t, pgtest.SuperuserURL(dbName))
	var super bool
	if err := su.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if !super {
		t.Error("SuperuserURL does not connect as a superuser")
	}
	var ok bool
	if err := su.QueryRow(ctx, "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}
	if _, err := app.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("app connection still works after pg_terminate_backend")
	}
}

func TestNewDatabaseParallel(t *testing.T) {
	const n = 8
	t0 := time.Now()
	for i := range n {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, pgtest.NewDatabase(t))
			if _, err := conn.Exec(context.Background(), "INSERT INTO widgets VALUES (1, 'x')"); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(func() { t.Logf("%d parallel NewDatabase+insert took %v", n, time.Since(t0)) })
}
