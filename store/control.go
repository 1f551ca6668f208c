package store

import (
	"context"
)

// ControlChannel carries commands to every instance's realtime side, on the
// same bus as the event doorbell: when a ban or a revoked token commits,
// every instance closes the affected sockets.
const ControlChannel = "agora_control"

// Control kinds.
const (
	// ControlBan: close every session of user ID (banned).
	ControlBan = "ban"
	// ControlRevoke: close every session opened with token ID (logout).
	ControlRevoke = "revoke"
	// ControlRefresh: user ID's standing changed (role, unban); their
	// sessions reconnect to pick it up.
	ControlRefresh = "refresh"
)

// Control is a parsed control notification.
type Control struct {
	Kind     string
	TenantID int64
	ID       int64
}

// notifyControl queues a control notification; Postgres sends it only if
// the transaction commits. This instance's session cache applies it right
// after the commit, so that the writer's next request already sees it.
func notifyControl(ctx context.Context, tx *Tx, kind string, tenantID, id int64) error {
	c := Control{Kind: kind, TenantID: tenantID, ID: id}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ControlChannel, c.line()); err != nil {
		return mapErr(err, "control notification")
	}
	tx.controls = append(tx.controls, c)
	return nil
}

// line is the control payload: "kind tenant id".
func (c Control) line() string { return formatLine(c.Kind, [2]int64{c.TenantID, c.ID}, 0) }

// ParseControl reads a "kind tenant id" payload.
func ParseControl(payload string) (Control, error) {
	kind, n, err := parseLine("control", payload, 0)
	if err != nil {
		return Control{}, err
	}
	return Control{Kind: kind, TenantID: n[0], ID: n[1]}, nil
}

// Standing is where a session token and its user stand now.
type Standing struct {
	// Valid: the token is neither revoked nor expired.
	Valid  bool
	UserID int64
	Role   Role
	Banned bool
}

// Standings reads the standing of session tokens of one tenant in one
// query. Control notifications sent while an instance's listener was away
// are lost, so after every reconnect the realtime side compares its open
// sessions with this. Tokens that no longer exist are absent.
func (db *DB) Standings(ctx context.Context, tenantID int64, tokenIDs []int64) (map[int64]Standing, error) {
	out := make(map[int64]Standing, len(tokenIDs))
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT t.id, t.revoked_at IS NULL AND t.expires_at > now(), `+userColumns+`
			FROM tokens t JOIN users u ON u.tenant_id = t.tenant_id AND u.id = t.user_id
			WHERE t.id = ANY($1)`, tokenIDs)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var valid bool
			u, err := scanUserWith(rows, &id, &valid)
			if err != nil {
				return err
			}
			out[id] = Standing{Valid: valid, UserID: u.ID, Role: u.Role, Banned: u.Banned}
		}
		return rows.Err()
	})
	return out, mapErr(err, "standing")
}
