package store

import (
	"context"
	"regexp"

	"github.com/jackc/pgx/v5"
)

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,38}$`)

// CreateTenant adds a community. Tenants are platform data, outside RLS.
func (db *DB) CreateTenant(ctx context.Context, slug, name string) (Tenant, error) {
	fields := map[string]string{}
	if !slugPattern.MatchString(slug) {
		fields["slug"] = "must match ^[a-z0-9][a-z0-9-]{1,38}$"
	}
	if n := len([]rune(name)); n < 1 || n > 200 {
		fields["name"] = "must be 1 to 200 characters"
	}
	if len(fields) > 0 {
		return Tenant{}, Invalid(fields)
	}
	rows, err := db.pool.Query(ctx, `
		INSERT INTO tenants (slug, name) VALUES ($1, $2)
		RETURNING id, slug, name, public, created_at`, slug, name)
	if err != nil {
		return Tenant{}, mapErr(err, "tenant")
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTenant)
	return t, mapErr(err, "tenant")
}

// TenantBySlug resolves the {tenant} of a URL. A found tenant is served
// from memory for up to a minute (see tenantCache).
func (db *DB) TenantBySlug(ctx context.Context, slug string) (Tenant, error) {
	if !slugPattern.MatchString(slug) {
		return Tenant{}, Errorf(CodeNotFound, "tenant not found")
	}
	if t, ok := db.tenants.get(slug); ok {
		return t, nil
	}
	rows, err := db.pool.Query(ctx, `
		SELECT id, slug, name, public, created_at FROM tenants WHERE slug = $1`, slug)
	if err != nil {
		return Tenant{}, mapErr(err, "tenant")
	}
	t, err := pgx.CollectExactlyOneRow(rows, scanTenant)
	if err != nil {
		return Tenant{}, mapErr(err, "tenant")
	}
	db.tenants.put(t)
	return t, nil
}

// ListTenants pages through tenants in creation order.
func (db *DB) ListTenants(ctx context.Context, p PageParams) (Page[Tenant], error) {
	var after int64
	if p.Cursor != "" {
		if err := decodeCursor(p.Cursor, &after); err != nil {
			return Page[Tenant]{}, err
		}
	}
	rows, err := db.pool.Query(ctx, `
		SELECT id, slug, name, public, created_at FROM tenants
		WHERE id > $1 ORDER BY id LIMIT $2`, after, p.Limit+1)
	if err != nil {
		return Page[Tenant]{}, mapErr(err, "tenants")
	}
	items, err := pgx.CollectRows(rows, scanTenant)
	if err != nil {
		return Page[Tenant]{}, mapErr(err, "tenants")
	}
	return page(items, p.Limit, func(t Tenant) any { return t.ID }), nil
}

// TenantIDs lists every tenant id, for background work that visits each
// tenant in turn (pruning the outbox).
func (db *DB) TenantIDs(ctx context.Context) ([]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM tenants ORDER BY id`)
	if err != nil {
		return nil, mapErr(err, "tenants")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return ids, mapErr(err, "tenants")
}

func scanTenant(row pgx.CollectableRow) (Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.Public, &t.CreatedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}
