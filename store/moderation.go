package store

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Moderation actions on posts and comments, as the URLs spell them.
const (
	ActionLock   = "lock"
	ActionUnlock = "unlock"
	ActionPin    = "pin"
	ActionUnpin  = "unpin"
	ActionHide   = "hide"
	ActionUnhide = "unhide"
)

const maxReason = 1000

// canModerate: a signed-in moderator or admin who is not banned. A banned
// moderator keeps the role (unbanning restores it) but not its powers.
func canModerate(actor Actor) error {
	if actor.Anonymous() {
		return ErrUnauthorized
	}
	if !actor.Moderates() {
		return Errorf(CodeForbidden, "only moderators may do this")
	}
	if actor.Banned {
		return errBanned
	}
	return nil
}

func checkReason(reason string) error {
	if utf8.RuneCountInString(reason) > maxReason {
		return Invalid(map[string]string{"reason": "must be at most 1000 characters"})
	}
	return nil
}

// ModeratePost locks, unlocks, pins, unpins, hides or unhides a post. The
// change goes through savePost, so it bumps the version and sends one
// post.updated diff to each of the post's rooms, and it is logged in the
// same transaction. An action that changes nothing (locking a locked post)
// writes nothing: no event, no audit entry, and answers the post as it is.
func (db *DB) ModeratePost(ctx context.Context, tenantID int64, actor Actor, postID int64, action, reason string) (Post, error) {
	if err := canModerate(actor); err != nil {
		return Post{}, err
	}
	if _, _, err := postFlag(action, &Post{}); err != nil {
		return Post{}, err
	}
	if err := checkReason(reason); err != nil {
		return Post{}, err
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Post, error) {
		var p Post
		old, err := getPost(ctx, tx, actor, postID, true)
		if err != nil {
			return p, err
		}
		next := old
		field, flag, _ := postFlag(action, &next)
		before := *flag
		*flag = action == ActionLock || action == ActionPin || action == ActionHide
		if p, err = savePost(ctx, tx, tenantID, old, next); err != nil || p.Version == old.Version {
			return p, err
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: "post." + action, TargetType: "post", TargetID: p.ID, Reason: reason,
			Before: map[string]bool{field: before}, After: map[string]bool{field: *flag},
		}); err != nil {
			return p, err
		}
		return p, notifyModerated(ctx, tx, tenantID, actor, action, p.Author.ID, p.ID, 0)
	})
}

// postFlag names the field of p an action sets (to true for lock, pin and
// hide, to false for their opposites).
func postFlag(action string, p *Post) (string, *bool, error) {
	switch action {
	case ActionLock, ActionUnlock:
		return "locked", &p.Locked, nil
	case ActionPin, ActionUnpin:
		return "pinned", &p.Pinned, nil
	case ActionHide, ActionUnhide:
		return "hidden", &p.Hidden, nil
	}
	return "", nil, Errorf(CodeNotFound, "unknown post action %q", action)
}

// ModerateComment hides or unhides a comment, like ModeratePost.
func (db *DB) ModerateComment(ctx context.Context, tenantID int64, actor Actor, commentID int64, action, reason string) (Comment, error) {
	if err := canModerate(actor); err != nil {
		return Comment{}, err
	}
	if action != ActionHide && action != ActionUnhide {
		return Comment{}, Errorf(CodeNotFound, "unknown comment action %q", action)
	}
	if err := checkReason(reason); err != nil {
		return Comment{}, err
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Comment, error) {
		var c Comment
		old, _, err := getComment(ctx, tx, actor, commentID, true)
		if err != nil {
			return c, err
		}
		next := old
		next.Hidden = action == ActionHide
		if c, err = saveComment(ctx, tx, tenantID, old, next); err != nil || c.Version == old.Version {
			return c, err
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: "comment." + action, TargetType: "comment", TargetID: c.ID, Reason: reason,
			Before: map[string]bool{"hidden": old.Hidden}, After: map[string]bool{"hidden": c.Hidden},
		}); err != nil {
			return c, err
		}
		return c, notifyModerated(ctx, tx, tenantID, actor, action, c.Author.ID, c.PostID, c.ID)
	})
}

// Ban is what a moderator supplies to ban a user.
type Ban struct {
	Reason string
	// Until ends the ban; nil bans until unbanned.
	Until *time.Time
}

// banState is a user's ban as the audit log records it.
type banState struct {
	Banned      bool       `json:"banned"`
	BanReason   *string    `json:"ban_reason,omitempty"`
	BannedUntil *time.Time `json:"banned_until,omitempty"`
}

func banStateOf(u User) banState {
	return banState{Banned: u.Banned, BanReason: u.BanReason, BannedUntil: u.BannedUntil}
}

// lockUserForMod reads the target of a ban or role change under a row
// lock (NO KEY UPDATE: it does not hold up the user's own writes, whose
// foreign keys only need KEY SHARE), with the database's clock, after the checks every such action
// shares: nobody acts on themselves, and only admins act on staff.
func lockUserForMod(ctx context.Context, tx *Tx, actor Actor, userID int64) (User, time.Time, error) {
	var now time.Time
	rows, err := tx.Query(ctx, `SELECT now(), `+userColumns+` FROM users u WHERE u.id = $1 FOR NO KEY UPDATE`, userID)
	if err != nil {
		return User{}, now, mapErr(err, "user")
	}
	u, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (User, error) {
		return scanUserWith(row, &now)
	})
	if err != nil {
		return User{}, now, mapErr(err, "user")
	}
	if u.Role.Moderates() && actor.Role != RoleAdmin {
		return User{}, now, Errorf(CodeForbidden, "only admins may act on moderators and admins")
	}
	return u, now, nil
}

var errSelf = Invalid(map[string]string{"user": "you cannot do this to yourself"})

// BanUser bans a user of the tenant. In the same transaction it logs the
// ban and queues a control notification, so that on commit every
// instance closes the user's sockets. Banning with the reason and end the
// user is already banned with changes nothing and writes nothing.
func (db *DB) BanUser(ctx context.Context, tenantID int64, actor Actor, userID int64, ban Ban) (User, error) {
	if err := canModerate(actor); err != nil {
		return User{}, err
	}
	fields := map[string]string{}
	checkText(fields, "reason", ban.Reason, maxReason)
	if len(fields) > 0 {
		return User{}, Invalid(fields)
	}
	if userID == actor.UserID {
		return User{}, errSelf
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (User, error) {
		var u User
		old, now, err := lockUserForMod(ctx, tx, actor, userID)
		if err != nil {
			return u, err
		}
		if ban.Until != nil && !ban.Until.After(now) {
			return u, Invalid(map[string]string{"until": "must be in the future"})
		}
		if old.Banned && old.BanReason != nil && *old.BanReason == ban.Reason && equalTimes(old.BannedUntil, ban.Until) {
			u = old
			return u, nil
		}
		rows, err := tx.Query(ctx, `
			UPDATE users u SET banned_at = now(), banned_until = $2, ban_reason = $3
			WHERE u.id = $1 RETURNING `+userColumns, userID, ban.Until, ban.Reason)
		if err != nil {
			return u, mapErr(err, "user")
		}
		if u, err = pgx.CollectExactlyOneRow(rows, scanUser); err != nil {
			return u, mapErr(err, "user")
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: AuditUserBan, TargetType: "user", TargetID: userID, Reason: ban.Reason,
			Before: banStateOf(old), After: banStateOf(u),
		}); err != nil {
			return u, err
		}
		if err := notifyUser(ctx, tx, tenantID, actor, KindBan, userID, "ban", ban.Reason); err != nil {
			return u, err
		}
		return u, notifyControl(ctx, tx, ControlBan, tenantID, userID)
	})
}

func equalTimes(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// UnbanUser lifts a ban. Unbanning a user who is not banned (or whose ban
// has run out) changes nothing and writes nothing.
func (db *DB) UnbanUser(ctx context.Context, tenantID int64, actor Actor, userID int64, reason string) (User, error) {
	if err := canModerate(actor); err != nil {
		return User{}, err
	}
	if err := checkReason(reason); err != nil {
		return User{}, err
	}
	if userID == actor.UserID {
		return User{}, errSelf
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (User, error) {
		var u User
		old, _, err := lockUserForMod(ctx, tx, actor, userID)
		if err != nil {
			return u, err
		}
		if !old.Banned {
			u = old
			return u, nil
		}
		rows, err := tx.Query(ctx, `
			UPDATE users u SET banned_at = NULL, banned_until = NULL, ban_reason = NULL
			WHERE u.id = $1 RETURNING `+userColumns, userID)
		if err != nil {
			return u, mapErr(err, "user")
		}
		if u, err = pgx.CollectExactlyOneRow(rows, scanUser); err != nil {
			return u, mapErr(err, "user")
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: AuditUserUnban, TargetType: "user", TargetID: userID, Reason: reason,
			Before: banStateOf(old), After: banStateOf(u),
		}); err != nil {
			return u, err
		}
		if err := notifyUser(ctx, tx, tenantID, actor, KindBan, userID, "unban", ""); err != nil {
			return u, err
		}
		return u, notifyControl(ctx, tx, ControlRefresh, tenantID, userID)
	})
}

// SetRole changes a user's role (admins only). The tenant always keeps at
// least one admin who is not banned: demoting the last one is a conflict.
// Admins may change their own role as long as another admin remains.
func (db *DB) SetRole(ctx context.Context, tenantID int64, actor Actor, userID int64, role Role, reason string) (User, error) {
	if err := canModerate(actor); err != nil {
		return User{}, err
	}
	if actor.Role != RoleAdmin {
		return User{}, Errorf(CodeForbidden, "only admins may change roles")
	}
	fields := map[string]string{}
	if !role.Valid() {
		fields["role"] = "must be member, moderator or admin"
	}
	if utf8.RuneCountInString(reason) > maxReason {
		fields["reason"] = "must be at most 1000 characters"
	}
	if len(fields) > 0 {
		return User{}, Invalid(fields)
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (User, error) {
		var u User
		if role != RoleAdmin {
			// Two admins demoting each other at once must not both win:
			// every demotion takes the admin rows' locks first, in id order.
			// NO KEY UPDATE (like the UPDATE itself) leaves foreign-key
			// checks alone, so the locked users can go on writing meanwhile.
			if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE role = 'admin' ORDER BY id FOR NO KEY UPDATE`); err != nil {
				return u, mapErr(err, "user")
			}
		}
		old, _, err := lockUserForMod(ctx, tx, actor, userID)
		if err != nil {
			return u, err
		}
		if old.Role == role {
			u = old
			return u, nil
		}
		if old.Role == RoleAdmin {
			var others bool
			if err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM users
				               WHERE role = 'admin' AND id <> $1
				                 AND (banned_at IS NULL OR banned_until <= now()))`, userID).Scan(&others); err != nil {
				return u, mapErr(err, "user")
			}
			if !others {
				return u, Errorf(CodeConflict, "the tenant must keep at least one admin who is not banned")
			}
		}
		rows, err := tx.Query(ctx, `UPDATE users u SET role = $2 WHERE u.id = $1 RETURNING `+userColumns, userID, role)
		if err != nil {
			return u, mapErr(err, "user")
		}
		if u, err = pgx.CollectExactlyOneRow(rows, scanUser); err != nil {
			return u, mapErr(err, "user")
		}
		if err := writeAudit(ctx, tx, tenantID, actor, auditRecord{
			Action: AuditUserRole, TargetType: "user", TargetID: userID, Reason: reason,
			Before: map[string]Role{"role": old.Role}, After: map[string]Role{"role": u.Role},
		}); err != nil {
			return u, err
		}
		if err := notifyUser(ctx, tx, tenantID, actor, KindRole, userID, string(u.Role), ""); err != nil {
			return u, err
		}
		return u, notifyControl(ctx, tx, ControlRefresh, tenantID, userID)
	})
}
