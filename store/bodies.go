package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"agora/store/markdown"
)

// renderBody renders a body for storage in the write transaction. Its
// @mentions are resolved against the tenant's users in one query (none
// when it mentions nobody); the tenant's slug, which mention links carry,
// comes with it.
func renderBody(ctx context.Context, tx *Tx, tenantID int64, doc *markdown.Doc) (string, error) {
	names := doc.Mentions()
	if len(names) == 0 {
		return doc.HTML("", nil), nil
	}
	return renderMentions(doc, tx.QueryRow(ctx, mentionedSQL, tenantID, names))
}

// renderBodyAhead renders a body before its write is sent, for writes of
// one round trip (see inOneTrip): a body that mentions someone costs one
// read of its own first. A user who signs up in between is not linked,
// as if they had signed up just after the write.
func (db *DB) renderBodyAhead(ctx context.Context, tenantID int64, doc *markdown.Doc) (string, error) {
	names := doc.Mentions()
	if len(names) == 0 {
		return doc.HTML("", nil), nil
	}
	var html string
	err := db.rowTenant(ctx, tenantID, func(row pgx.Row) (err error) {
		html, err = renderMentions(doc, row)
		return err
	}, mentionedSQL, tenantID, names)
	if err != nil {
		return "", mapErr(err, "mentioned users")
	}
	return html, nil
}

// mentionedSQL answers the tenant's slug and which of the lower-cased
// names $2 are its users, spelled as they are.
const mentionedSQL = `
	SELECT t.slug, coalesce(array_agg(u.username) FILTER (WHERE u.id IS NOT NULL), '{}')
	FROM tenants t
	LEFT JOIN users u ON u.tenant_id = t.id AND lower(u.username) = ANY($2)
	WHERE t.id = $1
	GROUP BY t.slug`

func renderMentions(doc *markdown.Doc, row pgx.Row) (string, error) {
	var slug string
	var usernames []string
	if err := row.Scan(&slug, &usernames); err != nil {
		return "", mapErr(err, "mentioned users")
	}
	users := make(map[string]string, len(usernames))
	for _, u := range usernames {
		users[strings.ToLower(u)] = u
	}
	return doc.HTML(slug, users), nil
}

// staleBatch bounds one transaction of the background re-render: its row
// locks are held while the batch renders.
const staleBatch = 100

// RenderStaleBodies gives every post and comment whose body_html is still
// the SQL fallback (rows written before formatting existed, or inserted by
// SQL without one) the renderer's body_html, tenant by tenant, in small
// transactions that skip rows a writer holds, so that several instances
// may run it at once. The text does not change, so neither do versions or
// updated_at, and no event goes out: readers see the rendering on their
// next read. It returns how many bodies it rendered; ctx stops it early.
func (db *DB) RenderStaleBodies(ctx context.Context) (int, error) {
	tenants, err := db.TenantIDs(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tenantID := range tenants {
		for _, table := range []string{"posts", "comments"} {
			for {
				n, err := db.renderStaleBatch(ctx, tenantID, table)
				total += n
				if err != nil {
					return total, err
				}
				if n == 0 {
					break
				}
			}
		}
	}
	return total, nil
}

// renderStaleBatch re-renders up to staleBatch stale rows of table, which
// is "posts" or "comments" (a constant, never input).
func (db *DB) renderStaleBatch(ctx context.Context, tenantID int64, table string) (int, error) {
	type stale struct {
		id   int64
		body string
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (int, error) {
		var n int
		rows, err := tx.Query(ctx, `SELECT id, body FROM `+table+`
			WHERE body_html_stale ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, staleBatch)
		if err != nil {
			return n, mapErr(err, table)
		}
		batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (stale, error) {
			var s stale
			return s, row.Scan(&s.id, &s.body)
		})
		if err != nil {
			return n, mapErr(err, table)
		}
		for _, s := range batch {
			html, err := renderBody(ctx, tx, tenantID, markdown.Parse(s.body))
			if err != nil {
				return n, err
			}
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET body_html = $2, body_html_stale = false WHERE id = $1`, s.id, html); err != nil {
				return n, mapErr(err, table)
			}
		}
		n = len(batch)
		return n, nil
	})
}
