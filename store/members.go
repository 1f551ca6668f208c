package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Member is a user as the moderators' members page lists them: standing,
// not contact details (no email, no ban reason; the audit log has those).
type Member struct {
	ID       int64  `json:"id,string"`
	Username string `json:"username"`
	Role     Role   `json:"role"`
	// Banned is true while a ban is in force; an expired ban is no ban.
	Banned bool `json:"banned"`
	// BannedUntil is the end of a timed ban in force, null otherwise
	// (not banned, or banned until lifted).
	BannedUntil *time.Time `json:"banned_until"`
	CreatedAt   time.Time  `json:"created_at"`
}

// MemberFilter narrows ListMembers.
type MemberFilter struct {
	// Prefix matches the start of usernames, ignoring case; "" matches all.
	Prefix string
	// BannedOnly keeps the users banned now.
	BannedOnly bool
}

// ListMembers pages through a tenant's users by username, ignoring case
// (moderators). The keyset is lower(username), unique per tenant, so the
// users_username_key index serves both the order and the cursor.
func (db *DB) ListMembers(ctx context.Context, tenantID int64, actor Actor, f MemberFilter, pp PageParams) (Page[Member], error) {
	if err := canModerate(actor); err != nil {
		return Page[Member]{}, err
	}
	after := ""
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &after); err != nil {
			return Page[Member]{}, err
		}
	}
	var items []Member
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		// starts_with, not LIKE: "_" is a username character and no
		// wildcard here.
		rows, err := tx.Query(ctx, `
			SELECT id, username, role, banned, CASE WHEN banned THEN banned_until END, created_at
			FROM (SELECT id, username, role, banned_until, created_at,
			             banned_at IS NOT NULL AND (banned_until IS NULL OR banned_until > now()) AS banned
			      FROM users
			      WHERE lower(username) > $1 AND starts_with(lower(username), lower($2))) u
			WHERE banned OR NOT $3
			ORDER BY lower(username) LIMIT $4`, after, f.Prefix, f.BannedOnly, pp.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Member, error) {
			var m Member
			err := row.Scan(&m.ID, &m.Username, &m.Role, &m.Banned, &m.BannedUntil, &m.CreatedAt)
			m.CreatedAt, m.BannedUntil = m.CreatedAt.UTC(), utcPtr(m.BannedUntil)
			return m, err
		})
		return err
	})
	if err != nil {
		return Page[Member]{}, mapErr(err, "users")
	}
	return page(items, pp.Limit, func(m Member) any { return strings.ToLower(m.Username) }), nil
}
