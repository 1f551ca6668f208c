package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Audit actions, as GET mod/audit spells them.
const (
	AuditPostLock      = "post.lock"
	AuditPostUnlock    = "post.unlock"
	AuditPostPin       = "post.pin"
	AuditPostUnpin     = "post.unpin"
	AuditPostHide      = "post.hide"
	AuditPostUnhide    = "post.unhide"
	AuditCommentHide   = "comment.hide"
	AuditCommentUnhide = "comment.unhide"
	AuditUserBan       = "user.ban"
	AuditUserUnban     = "user.unban"
	AuditUserRole      = "user.role"
	AuditReportResolve = "report.resolve"
)

// AuditEntry is one row of the append-only audit log: who did what, to
// what, why and when, with the state of the changed fields before and after.
type AuditEntry struct {
	ID         int64           `json:"id,string"`
	Actor      UserRef         `json:"actor"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   int64           `json:"target_id,string"`
	Reason     string          `json:"reason"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	CreatedAt  time.Time       `json:"created_at"`
}

// auditRecord is what an action writes to the log.
type auditRecord struct {
	Action     string
	TargetType string
	TargetID   int64
	Reason     string
	Before     any
	After      any
}

// writeAudit appends one entry inside the caller's transaction, so the log
// holds exactly the actions that committed.
func writeAudit(ctx context.Context, tx *Tx, tenantID int64, actor Actor, r auditRecord) error {
	before, err := jsonOrNull(r.Before)
	if err != nil {
		return err
	}
	after, err := jsonOrNull(r.After)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO audit_log (tenant_id, actor_id, action, target_type, target_id, reason, before, after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		tenantID, actor.UserID, r.Action, r.TargetType, r.TargetID, r.Reason, before, after)
	return mapErr(err, "audit entry")
}

func jsonOrNull(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode audit state: %w", err)
	}
	return b, nil
}

// ListAudit pages through a tenant's audit log, newest first (moderators).
func (db *DB) ListAudit(ctx context.Context, tenantID int64, actor Actor, pp PageParams) (Page[AuditEntry], error) {
	if err := canModerate(actor); err != nil {
		return Page[AuditEntry]{}, err
	}
	before := int64(1<<63 - 1)
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &before); err != nil {
			return Page[AuditEntry]{}, err
		}
	}
	var items []AuditEntry
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT a.id, a.actor_id, u.username, a.action, a.target_type, a.target_id, a.reason,
			       a.before, a.after, a.created_at
			FROM audit_log a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.actor_id
			WHERE a.id < $1
			ORDER BY a.id DESC LIMIT $2`, before, pp.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
			var e AuditEntry
			err := row.Scan(&e.ID, &e.Actor.ID, &e.Actor.Username, &e.Action, &e.TargetType, &e.TargetID,
				&e.Reason, &e.Before, &e.After, &e.CreatedAt)
			e.CreatedAt = e.CreatedAt.UTC()
			return e, err
		})
		return err
	})
	if err != nil {
		return Page[AuditEntry]{}, mapErr(err, "audit log")
	}
	return page(items, pp.Limit, func(e AuditEntry) any { return e.ID }), nil
}
