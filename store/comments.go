package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"agora/store/markdown"
)

const commentColumns = `c.id, c.post_id, c.reply_to, c.author_id, u.username, c.body, c.body_html, c.version, c.hidden,
	c.created_at, c.updated_at, c.edited_at, c.reactions`

const commentFrom = ` JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.author_id`

func scanComment(row pgx.CollectableRow) (Comment, error) {
	var c Comment
	err := row.Scan(commentFields(&c)...)
	c.CreatedAt, c.UpdatedAt, c.EditedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC(), utcPtr(c.EditedAt)
	return c, err
}

// commentFields are the scan targets of commentColumns.
func commentFields(c *Comment) []any {
	return []any{&c.ID, &c.PostID, &c.ReplyTo, &c.Author.ID, &c.Author.Username, &c.Body, &c.BodyHTML, &c.Version, &c.Hidden,
		&c.CreatedAt, &c.UpdatedAt, &c.EditedAt, &c.Reactions}
}

func collectComment(rows pgx.Rows, err error) (Comment, error) {
	if err != nil {
		return Comment{}, mapErr(err, "comment")
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanComment)
	return c, mapErr(err, "comment")
}

// CreateComment replies to a post, answering no comment in particular.
func (db *DB) CreateComment(ctx context.Context, tenantID int64, actor Actor, postID int64, body string) (Comment, error) {
	return db.CreateReply(ctx, tenantID, actor, postID, 0, body)
}

// CreateReply adds a comment to a post that answers comment replyTo of the
// same post (0: the post itself), and notifies the people it concerns.
//
// The whole write is the create_comment function (migration 0010), sent
// with the tenant setting in one round trip; a body that mentions someone
// costs one read before it, to link the names.
func (db *DB) CreateReply(ctx context.Context, tenantID int64, actor Actor, postID, replyTo int64, body string) (Comment, error) {
	if err := canWrite(actor); err != nil {
		return Comment{}, err
	}
	fields := map[string]string{}
	checkText(fields, "body", body, maxBody)
	if len(fields) > 0 {
		return Comment{}, Invalid(fields)
	}
	doc := markdown.Parse(body)
	bodyHTML, err := db.renderBodyAhead(ctx, tenantID, doc)
	if err != nil {
		return Comment{}, err
	}
	var c Comment
	err = inOneTrip(ctx, db, tenantID, func(t tripArgs) (string, []any) {
		return `SELECT comment, event_rooms, event_seqs FROM create_comment($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			[]any{tenantID, postID, nullID(replyTo), actor.UserID, actor.Moderates(), body, bodyHTML, doc.Mentions(), t.trace, t.channel}
	}, func(row pgx.Row) ([]Notification, error) {
		var payload []byte
		var rooms []string
		var seqs []int64
		if err := row.Scan(&payload, &rooms, &seqs); err != nil {
			return nil, createCommentErr(err)
		}
		if err := json.Unmarshal(payload, &c); err != nil {
			return nil, fmt.Errorf("read created comment: %w", err)
		}
		return notifications(tenantID, rooms, seqs), nil
	})
	if err != nil {
		return Comment{}, err
	}
	db.activity.mark(tenantID)
	return c, nil
}

// createCommentErr maps what create_comment raises to the store's errors.
func createCommentErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "P0002":
			return Errorf(CodeNotFound, "post not found")
		case "AGRPL":
			return errReplyTo
		case "AGLCK":
			return errLocked
		}
	}
	return mapErr(err, "comment")
}

// ListComments lists a post's comments, oldest first.
func (db *DB) ListComments(ctx context.Context, tenantID int64, actor Actor, postID int64, pp PageParams) (Page[Comment], error) {
	var after int64
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &after); err != nil {
			return Page[Comment]{}, err
		}
	}
	var items []Comment
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		if _, err := getPost(ctx, tx, actor, postID, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT `+commentColumns+` FROM comments c`+commentFrom+`
			WHERE c.post_id = $1 AND (NOT c.hidden OR $2) AND c.id > $3
			ORDER BY c.id LIMIT $4`, postID, actor.Moderates(), after, pp.Limit+1)
		if err != nil {
			return mapErr(err, "comments")
		}
		if items, err = pgx.CollectRows(rows, scanComment); err != nil {
			return mapErr(err, "comments")
		}
		return addCommentReactions(ctx, tx, actor, ptrs(items))
	})
	if err != nil {
		return Page[Comment]{}, err
	}
	return page(items, pp.Limit, func(c Comment) any { return c.ID }), nil
}

// getComment reads a comment with its post's lock state; hidden comments
// and comments of hidden posts exist only for moderators.
func getComment(ctx context.Context, tx *Tx, actor Actor, commentID int64, forUpdate bool) (Comment, bool, error) {
	q := `SELECT ` + commentColumns + `, p.locked FROM comments c` + commentFrom + `
		JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id
		WHERE c.id = $1 AND ((NOT c.hidden AND NOT p.hidden) OR $2)`
	if forUpdate {
		q += ` FOR UPDATE OF c`
	}
	var c Comment
	var locked bool
	err := tx.QueryRow(ctx, q, commentID, actor.Moderates()).Scan(append(commentFields(&c), &locked)...)
	c.CreatedAt, c.UpdatedAt, c.EditedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC(), utcPtr(c.EditedAt)
	return c, locked, mapErr(err, "comment")
}

// UpdateComment edits a comment's body (its author, or a moderator).
func (db *DB) UpdateComment(ctx context.Context, tenantID int64, actor Actor, commentID int64, body string) (Comment, error) {
	if err := canWrite(actor); err != nil {
		return Comment{}, err
	}
	fields := map[string]string{}
	checkText(fields, "body", body, maxBody)
	if len(fields) > 0 {
		return Comment{}, Invalid(fields)
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Comment, error) {
		var c Comment
		old, locked, err := getComment(ctx, tx, actor, commentID, true)
		if err != nil {
			return c, err
		}
		if err := canEdit(actor, old.Author.ID, locked); err != nil {
			return c, err
		}
		if body == old.Body {
			c = old
			return c, nil
		}
		next := old
		next.Body = body
		if next.BodyHTML, err = renderBody(ctx, tx, tenantID, markdown.Parse(body)); err != nil {
			return c, err
		}
		if c, err = saveComment(ctx, tx, tenantID, old, next); err != nil {
			return c, err
		}
		return c, keepCommentRevision(ctx, tx, tenantID, actor, old, c)
	})
}

// saveComment writes a comment's changed own fields, bumps its version and
// sends the diff. Nothing changed: nothing is written or sent. A change of
// the body is an edit (edited_at); next carries its rendering.
func saveComment(ctx context.Context, tx *Tx, tenantID int64, old, next Comment) (Comment, error) {
	changes := fieldChanges{}
	edited := changes.note("body", old.Body != next.Body, next.Body)
	changes.note("body_html", edited, next.BodyHTML)
	changes.note("hidden", old.Hidden != next.Hidden, next.Hidden)
	if len(changes) == 0 {
		return old, nil
	}
	if old.Hidden != next.Hidden {
		if err := countVisible(ctx, tx, tenantID, old.PostID, visibleDelta(next.Hidden)); err != nil {
			return Comment{}, err
		}
	}
	c, err := collectComment(tx.Query(ctx, `
		WITH c AS (
			UPDATE comments SET body = $2, body_html = $3, hidden = $4,
			                    body_html_stale = body_html_stale AND body = $2,
			                    edited_at = CASE WHEN $5 THEN now() ELSE edited_at END,
			                    version = version + 1, updated_at = now()
			WHERE id = $1 RETURNING *
		)
		SELECT `+commentColumns+` FROM c`+commentFrom, old.ID, next.Body, next.BodyHTML, next.Hidden, edited))
	if err != nil {
		return Comment{}, err
	}
	changes.note("edited_at", edited, c.EditedAt)
	_, err = publish(ctx, tx, tenantID, PostRoom(c.PostID), "comment.updated", Diff{ID: c.ID, Version: c.Version, Changes: changes})
	return c, err
}

// DeleteComment removes a comment (its author, or a moderator).
func (db *DB) DeleteComment(ctx context.Context, tenantID int64, actor Actor, commentID int64) error {
	if err := canWrite(actor); err != nil {
		return err
	}
	return db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		old, locked, err := getComment(ctx, tx, actor, commentID, true)
		if err != nil {
			return err
		}
		if err := canEdit(actor, old.Author.ID, locked); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM comments WHERE id = $1`, commentID); err != nil {
			return mapErr(err, "comment")
		}
		if !old.Hidden {
			if err := countVisible(ctx, tx, tenantID, old.PostID, -1); err != nil {
				return err
			}
		}
		_, err = publish(ctx, tx, tenantID, PostRoom(old.PostID), "comment.deleted", Deleted{ID: old.ID})
		return err
	})
}

// RoomExists checks that a realtime room names something the actor may
// see in this tenant, in one round trip: every subscription asks it.
func (db *DB) RoomExists(ctx context.Context, tenantID int64, actor Actor, room string) error {
	kind, id, err := ParseRoom(room)
	if err != nil {
		return err
	}
	var q string
	args := []any{id}
	switch kind {
	case "user":
		return userRoomFor(actor, id)
	case RoomTenant:
		return nil
	case "board":
		q = `SELECT EXISTS (SELECT 1 FROM boards WHERE id = $1)`
	default:
		q = `SELECT EXISTS (SELECT 1 FROM posts p WHERE p.id = $1 AND (NOT p.hidden OR $2))`
		args = append(args, actor.Moderates())
	}
	rows, err := db.queryTenant(ctx, tenantID, q, args...)
	if err != nil {
		return mapErr(err, kind)
	}
	found, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return mapErr(err, kind)
	}
	if !found {
		return Errorf(CodeNotFound, "%s not found", kind)
	}
	return nil
}

var errReplyTo = Invalid(map[string]string{"reply_to": "must be a comment of this post"})

// nullID is an optional id as SQL sees it: 0 is NULL.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
