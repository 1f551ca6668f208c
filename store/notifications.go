package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"agora/store/markdown"
)

// Notification kinds, as the API spells them.
const (
	KindReply          = "reply"
	KindMention        = "mention"
	KindModeration     = "moderation"
	KindReportResolved = "report_resolved"
	KindRole           = "role"
	KindBan            = "ban"
)

// maxNotified bounds how many people one write notifies: a body naming
// 500 users notifies the first ten (replies first), and the write goes
// through.
const maxNotified = 10

// UserRoom is the realtime room of one user's notifications and read
// state; only that user may subscribe to it.
func UserRoom(id int64) string { return "user:" + strconv.FormatInt(id, 10) }

// PostLink names a post by id and title.
type PostLink struct {
	ID    int64  `json:"id,string"`
	Title string `json:"title"`
}

// UserNotification is one entry of a user's notifications, as its
// recipient may see it now: about a post or comment they can no longer
// see (hidden, deleted), it keeps its place but shows no title and no
// excerpt.
type UserNotification struct {
	ID   int64  `json:"id,string"`
	Kind string `json:"kind"`
	// Actor is who replied or mentioned; nil for what the staff did
	// (moderation, a resolved report, a role, a ban).
	Actor     *UserRef  `json:"actor"`
	Post      *PostLink `json:"post"`
	CommentID *int64    `json:"comment_id,string"`
	Excerpt   string    `json:"excerpt"`
	// Detail says what happened where the kind alone does not: hide,
	// unhide or lock (moderation), the new role (role), ban or unban (ban).
	Detail    *string   `json:"detail"`
	Read      bool      `json:"read"`
	CreatedAt time.Time `json:"created_at"`
}

// notificationRead is the payload of notification.read: the count is the
// recipient's unread count as of the event's own commit.
type notificationRead struct {
	IDs         []string `json:"ids,omitempty"`
	All         bool     `json:"all,omitempty"`
	UnreadCount int64    `json:"unread_count"`
}

// notificationVisible is the SQL that says whether the recipient of
// notification n may see what it is about (the joins of notificationJoins):
// it exists, and it is not hidden unless moderates, the SQL that says
// whether the recipient moderates.
func notificationVisible(moderates string) string {
	return `(p.id IS NOT NULL AND (n.comment_id IS NULL OR cm.id IS NOT NULL)
		AND (` + moderates + ` OR NOT (p.hidden OR coalesce(cm.hidden, false))))`
}

// notificationSelect reads notifications n as their recipient sees them
// now; its columns go with scanNotification.
func notificationSelect(moderates string) string {
	visible := notificationVisible(moderates)
	return `n.id, n.kind, n.actor_id, a.username, n.post_id,
		CASE WHEN ` + visible + ` THEN p.title ELSE '' END,
		n.comment_id, CASE WHEN n.post_id IS NULL OR ` + visible + ` THEN n.excerpt ELSE '' END,
		n.detail, n.read_at IS NOT NULL, n.created_at`
}

// recipientModerates is notificationVisible's moderates for a query that
// joins the recipient as r.
const recipientModerates = `r.role IN ('moderator', 'admin')`

// notificationJoins go with notificationSelect.
const notificationJoins = `
	JOIN users a ON a.tenant_id = n.tenant_id AND a.id = n.actor_id
	LEFT JOIN posts p ON p.tenant_id = n.tenant_id AND p.id = n.post_id
	LEFT JOIN comments cm ON cm.tenant_id = n.tenant_id AND cm.id = n.comment_id`

func scanNotification(row pgx.Row, extra ...any) (UserNotification, error) {
	var n UserNotification
	var actor UserRef
	var postID *int64
	var title string
	err := row.Scan(append([]any{&n.ID, &n.Kind, &actor.ID, &actor.Username, &postID, &title,
		&n.CommentID, &n.Excerpt, &n.Detail, &n.Read, &n.CreatedAt}, extra...)...)
	if n.Kind == KindReply || n.Kind == KindMention {
		n.Actor = &actor
	}
	if postID != nil {
		n.Post = &PostLink{ID: *postID, Title: title}
	}
	n.CreatedAt = n.CreatedAt.UTC()
	return n, err
}

// notice is one cause of notifications.
type notice struct {
	kind string
	// to are the people the cause concerns directly, in order of
	// precedence (a post's author before the author of the answered
	// comment); postAuthor adds the author of postID first.
	to         []int64
	postAuthor bool
	// mentions are the lower-cased names the new text mentions, in order;
	// they come after everyone in to and are notified as mentions.
	mentions []string
	// What the cause is about; 0: nothing.
	postID, commentID int64
	// excerpt is shown when there is no post (a ban's reason); otherwise
	// the excerpt is the start of the comment's or the post's text.
	excerpt string
	detail  string
	// always notifies the people in to even when they cannot see what the
	// notice is about: an author whose content was hidden, a reporter whose
	// report was resolved. Everyone else is notified only about what they
	// can see.
	always bool
}

// notify writes the notifications of one cause inside the transaction of
// that cause, and sends each recipient its notification.created through
// the outbox, in one statement (notify_cause, migration 0010, says who is
// notified): a rolled-back write notifies nobody, a committed one cannot
// lose its notifications.
func notify(ctx context.Context, tx *Tx, tenantID int64, actor Actor, nt notice) error {
	if len(nt.to) == 0 && len(nt.mentions) == 0 && !nt.postAuthor {
		return nil
	}
	var detail *string
	if nt.detail != "" {
		detail = &nt.detail
	}
	rows, err := tx.Query(ctx, `SELECT event_room, event_seq FROM notify_cause($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		tenantID, nt.to, nt.kind, nt.mentions, nullID(nt.postID), nullID(nt.commentID), nt.excerpt, detail,
		actor.UserID, nt.postAuthor, nt.always, tx.traceArg(), tx.channelArg())
	if err != nil {
		return mapErr(err, "notifications")
	}
	rung, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Notification, error) {
		n := Notification{TenantID: tenantID}
		return n, row.Scan(&n.Room, &n.Seq)
	})
	if err != nil {
		return mapErr(err, "notifications")
	}
	tx.rang(rung...)
	return nil
}

// notifyPost notifies the people a new post mentions.
func notifyPost(ctx context.Context, tx *Tx, tenantID int64, actor Actor, p Post, doc *markdown.Doc) error {
	return notify(ctx, tx, tenantID, actor, notice{kind: KindMention, mentions: doc.Mentions(), postID: p.ID})
}

// notifyModerated tells an author that a moderator hid, unhid or locked
// their post (commentID 0) or comment. Hiding is told even though the
// author can no longer see what was hidden; the rest only when they can.
func notifyModerated(ctx context.Context, tx *Tx, tenantID int64, actor Actor, action string, authorID, postID, commentID int64) error {
	if action != ActionHide && action != ActionUnhide && action != ActionLock {
		return nil
	}
	return notify(ctx, tx, tenantID, actor, notice{kind: KindModeration, to: []int64{authorID},
		postID: postID, commentID: commentID, detail: action, always: action == ActionHide})
}

// notifyResolved tells a reporter that their report was resolved.
func notifyResolved(ctx context.Context, tx *Tx, tenantID int64, actor Actor, r Report) error {
	nt := notice{kind: KindReportResolved, to: []int64{r.Reporter.ID}, always: true}
	if r.PostID != nil {
		nt.postID = *r.PostID
		if r.TargetType == "comment" {
			nt.commentID = r.TargetID
		}
	}
	return notify(ctx, tx, tenantID, actor, nt)
}

// notifyUser tells a user of a change to their standing: a role (detail:
// the new role) or a ban (detail: ban or unban; excerpt: the reason).
func notifyUser(ctx context.Context, tx *Tx, tenantID int64, actor Actor, kind string, userID int64, detail, excerpt string) error {
	return notify(ctx, tx, tenantID, actor, notice{kind: kind, to: []int64{userID}, detail: detail, excerpt: excerpt, always: true})
}

// notificationsCursor is where a page of notifications ends.
type notificationsCursor struct {
	ID int64 `json:"i"`
}

// ListNotifications pages through the caller's notifications, newest
// first; unread keeps only those not read yet.
func (db *DB) ListNotifications(ctx context.Context, tenantID int64, actor Actor, unread bool, pp PageParams) (Page[UserNotification], error) {
	if actor.Anonymous() {
		return Page[UserNotification]{}, ErrUnauthorized
	}
	before := notificationsCursor{ID: 1<<63 - 1}
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &before); err != nil {
			return Page[UserNotification]{}, err
		}
	}
	rows, err := db.queryTenant(ctx, tenantID, `
		SELECT `+notificationSelect("$2")+` FROM notifications n`+notificationJoins+`
		WHERE n.user_id = $1 AND n.id < $3 AND (n.read_at IS NULL OR NOT $4)
		ORDER BY n.id DESC LIMIT $5`, actor.UserID, actor.Moderates(), before.ID, unread, pp.Limit+1)
	if err != nil {
		return Page[UserNotification]{}, mapErr(err, "notifications")
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (UserNotification, error) { return scanNotification(row) })
	if err != nil {
		return Page[UserNotification]{}, mapErr(err, "notifications")
	}
	return page(items, pp.Limit, func(n UserNotification) any { return notificationsCursor{ID: n.ID} }), nil
}

// UnreadCount is how many of the caller's notifications are unread.
func (db *DB) UnreadCount(ctx context.Context, tenantID int64, actor Actor) (int64, error) {
	if actor.Anonymous() {
		return 0, ErrUnauthorized
	}
	rows, err := db.queryTenant(ctx, tenantID,
		`SELECT coalesce((SELECT unread FROM notification_counts WHERE user_id = $1), 0)`, actor.UserID)
	if err != nil {
		return 0, mapErr(err, "unread count")
	}
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	return n, mapErr(err, "unread count")
}

// MaxMarkRead bounds the ids of one mark-read request.
const MaxMarkRead = 200

// MarkNotificationsRead marks the caller's notifications read: those of ids, or all of
// them. Ids that are not the caller's notifications (another user's,
// another tenant's, none at all) are not_found and nothing is marked, so a
// client learns nothing about other people's notifications and never
// half-applies a request. Notifications already read stay as they are.
// When anything changed, every socket of the user hears notification.read
// with the new count; it answers the count either way.
func (db *DB) MarkNotificationsRead(ctx context.Context, tenantID int64, actor Actor, ids []int64, all bool) (int64, error) {
	if actor.Anonymous() {
		return 0, ErrUnauthorized
	}
	switch {
	case all && len(ids) > 0:
		return 0, Invalid(map[string]string{"ids": "give ids or all, not both"})
	case !all && len(ids) == 0:
		return 0, Invalid(map[string]string{"ids": "required (or all: true)"})
	case len(ids) > MaxMarkRead:
		return 0, Invalid(map[string]string{"ids": fmt.Sprintf("at most %d", MaxMarkRead)})
	}
	ids = distinct(ids)
	var unread int64
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		// One statement: the ownership check, the marking and the counter,
		// whose row lock orders this against concurrent notifications, so
		// the count answered is the one as of this commit.
		var owned int
		var marked []int64
		err := tx.QueryRow(ctx, `
			WITH own AS (
				SELECT count(*) AS n FROM notifications WHERE user_id = $1 AND id = ANY($2)
			), m AS (
				UPDATE notifications SET read_at = now()
				WHERE user_id = $1 AND read_at IS NULL AND ($3 OR (id = ANY($2) AND (SELECT n FROM own) = $4))
				RETURNING id
			), k AS (
				UPDATE notification_counts SET unread = unread - (SELECT count(*) FROM m)
				WHERE user_id = $1
				RETURNING unread
			)
			SELECT (SELECT n FROM own), coalesce((SELECT unread FROM k), 0),
			       coalesce((SELECT array_agg(id ORDER BY id) FROM m), '{}')`,
			actor.UserID, ids, all, len(ids)).Scan(&owned, &unread, &marked)
		if err != nil {
			return mapErr(err, "notifications")
		}
		if !all && owned != len(ids) {
			return Errorf(CodeNotFound, "notification not found")
		}
		if len(marked) == 0 {
			return nil
		}
		ev := notificationRead{All: all, UnreadCount: unread}
		if !all {
			for _, id := range marked {
				ev.IDs = append(ev.IDs, strconv.FormatInt(id, 10))
			}
		}
		_, err = publish(ctx, tx, tenantID, UserRoom(actor.UserID), "notification.read", ev)
		return err
	})
	return unread, err
}

func distinct(ids []int64) []int64 {
	seen := make(map[int64]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// notificationReplay is the payload of an event as EventsAfter returns it
// (e is the events row): a notification.created about content its
// recipient can no longer see loses its title and excerpt, as in the list,
// so a replay shows no more than a fresh read would.
var notificationReplay = `CASE WHEN e.type = 'notification.created' THEN coalesce((
		SELECT CASE WHEN n.post_id IS NULL OR ` + notificationVisible(recipientModerates) + ` THEN e.payload
		            ELSE jsonb_set(jsonb_set(e.payload, '{notification,excerpt}', '""'), '{notification,post,title}', '""')
		       END
		FROM notifications n JOIN users r ON r.tenant_id = n.tenant_id AND r.id = n.user_id` + notificationJoins + `
		WHERE n.id = (e.payload->'notification'->>'id')::bigint), e.payload)
	ELSE e.payload END`

// userRoomFor: a user's room exists only for that user. For anyone else,
// moderators included, it is not_found, like a room that does not exist.
func userRoomFor(actor Actor, userID int64) error {
	if actor.Anonymous() || actor.UserID != userID {
		return Errorf(CodeNotFound, "room not found")
	}
	return nil
}
