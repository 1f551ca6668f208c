package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"

	"agora/migrations"
)

// Migrator applies the embedded migrations to one database, connected as
// the role that owns the schema, and grants the serving role its rights.
type Migrator struct {
	m          *migrate.Migrate
	ownerURL   string
	servingURL string
}

// NewMigrator opens a migrator for a postgres:// URL of the schema's owner.
// servingURL is the serving role's URL (only its user is read): Up grants
// that role what the application needs. Empty, or naming the owner itself
// (a single-role setup), there is no one to grant to.
func NewMigrator(ownerURL, servingURL string) (*Migrator, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	u, err := url.Parse(ownerURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if u.Scheme == "postgres" || u.Scheme == "postgresql" {
		u.Scheme = "pgx5"
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, u.String())
	if err != nil {
		return nil, fmt.Errorf("open migrator: %w", err)
	}
	return &Migrator{m: m, ownerURL: ownerURL, servingURL: servingURL}, nil
}

// Close releases the migrator's connection.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Up applies every pending migration, then grants the serving role its
// rights on everything in the schema. Already up to date is not an error,
// and the grants are made again all the same: they are recomputed from the
// schema on every run, so a table added by any migration is covered
// without the migration saying so, and rights given by hand beyond these
// are taken back.
func (mg *Migrator) Up(ctx context.Context) error {
	if err := ignoreNoChange(mg.m.Up()); err != nil {
		return err
	}
	return grantServing(ctx, mg.ownerURL, mg.servingURL)
}

// Down rolls back n migrations (n <= 0: all of them).
func (mg *Migrator) Down(n int) error {
	if n <= 0 {
		return ignoreNoChange(mg.m.Down())
	}
	return ignoreNoChange(mg.m.Steps(-n))
}

// Version reports the applied version and whether a failed migration left
// the schema dirty. An empty database is version 0.
func (mg *Migrator) Version() (uint, bool, error) {
	v, dirty, err := mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	return v, dirty, err
}

func ignoreNoChange(err error) error {
	if errors.Is(err, migrate.ErrNoChange) {
		return nil
	}
	return err
}

// MigrateUp is the one-call form used at start-up and by tests: the
// migrations run as the owner (ownerURL) and the role of servingURL gets
// its rights, as in Migrator.Up.
func MigrateUp(ctx context.Context, ownerURL, servingURL string) error {
	mg, err := NewMigrator(ownerURL, servingURL)
	if err != nil {
		return err
	}
	defer mg.Close()
	if err := mg.Up(ctx); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// servingRights are the serving role's privileges on the tables where they
// differ from SELECT, INSERT, UPDATE, DELETE, which every other table and
// view of the schema gets: a table added by a later migration is usable
// with no entry here, and one that must be narrower says so here.
var servingRights = map[string]string{
	// Append-only for the application: moderation history is not
	// rewritten. (The trigger of 0001 also stops the owner.)
	"audit_log": "SELECT, INSERT",
	// The one table without Row Level Security, and a DELETE on it would
	// cascade through every row of a tenant. Tenants are only created.
	"tenants": "SELECT, INSERT",
	// golang-migrate's bookkeeping is the owner's alone.
	"schema_migrations": "",
}

// grantLock serialises the grants of instances starting at once: two
// concurrent GRANTs on one table fail with "tuple concurrently updated".
const grantLock = 0x61676f72615f67 // "agora_g"

// grantServing gives the role of servingURL the data rights it needs on
// what the connected owner owns in its schema, and nothing else: no
// TRUNCATE, REFERENCES or TRIGGER, no CREATE in the schema, no temporary
// tables (one named like ours would shadow it for the pooled connection
// that made it). It runs in one transaction, so a serving instance sees
// the old rights or the new ones, never none.
func grantServing(ctx context.Context, ownerURL, servingURL string) error {
	if servingURL == "" {
		return nil
	}
	sc, err := pgx.ParseConfig(servingURL)
	if err != nil {
		return fmt.Errorf("parse serving database url: %w", err)
	}
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return fmt.Errorf("grant: connect as the owner: %w", err)
	}
	defer conn.Close(context.Background())
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var owner, schema, db string
		var ownsDB, ownsSchema bool
		err := tx.QueryRow(ctx, `
			SELECT current_user, current_schema(), current_database(),
			       pg_has_role(d.datdba, 'USAGE'), pg_has_role(n.nspowner, 'USAGE')
			FROM pg_database d, pg_namespace n
			WHERE d.datname = current_database() AND n.nspname = current_schema()`).
			Scan(&owner, &schema, &db, &ownsDB, &ownsSchema)
		if err != nil {
			return fmt.Errorf("grant: read the owner's schema: %w", err)
		}
		if sc.User == owner {
			return nil // single-role setup: the owner has every right already
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(grantLock)); err != nil {
			return fmt.Errorf("grant: %w", err)
		}
		rows, err := tx.Query(ctx, `
			SELECT c.relname, c.relkind = 'S'
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
			  AND pg_has_role(c.relowner, 'USAGE')
			ORDER BY c.relname`)
		if err != nil {
			return fmt.Errorf("grant: list the schema: %w", err)
		}
		type rel struct {
			name     string
			sequence bool
		}
		rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
			var x rel
			return x, r.Scan(&x.name, &x.sequence)
		})
		if err != nil {
			return fmt.Errorf("grant: list the schema: %w", err)
		}

		role := pgx.Identifier{sc.User}.Sanitize()
		sch := pgx.Identifier{schema}.Sanitize()
		var q []string
		q = append(q, "GRANT USAGE ON SCHEMA "+sch+" TO "+role)
		for _, r := range rels {
			name := pgx.Identifier{schema, r.name}.Sanitize()
			if r.sequence {
				// Identity columns draw from these.
				q = append(q, "REVOKE ALL ON SEQUENCE "+name+" FROM "+role,
					"GRANT USAGE ON SEQUENCE "+name+" TO "+role)
				continue
			}
			q = append(q, "REVOKE ALL ON TABLE "+name+" FROM "+role)
			rights, special := servingRights[r.name]
			if !special {
				rights = "SELECT, INSERT, UPDATE, DELETE"
			}
			if rights != "" {
				q = append(q, "GRANT "+rights+" ON TABLE "+name+" TO "+role)
			}
		}
		q = append(q, "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "+sch+" TO "+role)
		// PUBLIC's defaults (TEMPORARY on a database; CREATE on public
		// before PostgreSQL 15) go too, where this role may take them back.
		if ownsDB {
			d := pgx.Identifier{db}.Sanitize()
			q = append(q, "REVOKE TEMPORARY ON DATABASE "+d+" FROM PUBLIC, "+role,
				"GRANT CONNECT ON DATABASE "+d+" TO "+role)
		}
		if ownsSchema {
			q = append(q, "REVOKE CREATE ON SCHEMA "+sch+" FROM PUBLIC, "+role)
		}
		// Identifiers only, sanitised: one simple-protocol round trip.
		if _, err := tx.Exec(ctx, strings.Join(q, ";\n")); err != nil {
			return fmt.Errorf("grant role %q its rights: %w", sc.User, err)
		}
		return nil
	})
}

// MigrationName turns a free-form name into a migration file stem part.
func MigrationName(name string) string {
	return strings.Trim(slugify(name), "-")
}
