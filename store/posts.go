package store

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"agora/store/markdown"
)

var errBanned = Errorf(CodeForbidden, "you are banned from writing here")

const (
	maxTitle = 200
	maxBody  = 20000
)

func checkText(fields map[string]string, name, value string, max int) {
	if strings.TrimSpace(value) == "" {
		fields[name] = "required"
	} else if utf8.RuneCountInString(value) > max {
		fields[name] = "must be at most " + strconv.Itoa(max) + " characters"
	}
}

// postColumns reads a post joined with its author as p and u.
const postColumns = `p.id, p.board_id, p.author_id, u.username, p.title, p.body, p.body_html, p.version,
	p.comment_count, p.locked, p.pinned, p.hidden, p.created_at, p.updated_at, p.last_activity_at, p.edited_at, p.reactions`

const postFrom = ` JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.author_id`

func scanPost(row pgx.CollectableRow) (Post, error) {
	var p Post
	err := row.Scan(&p.ID, &p.BoardID, &p.Author.ID, &p.Author.Username, &p.Title, &p.Body, &p.BodyHTML, &p.Version,
		&p.CommentCount, &p.Locked, &p.Pinned, &p.Hidden, &p.CreatedAt, &p.UpdatedAt, &p.LastActivityAt, &p.EditedAt, &p.Reactions)
	p.CreatedAt, p.UpdatedAt, p.LastActivityAt, p.EditedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC(), p.LastActivityAt.UTC(), utcPtr(p.EditedAt)
	return p, err
}

func collectPost(rows pgx.Rows, err error) (Post, error) {
	if err != nil {
		return Post{}, mapErr(err, "post")
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPost)
	return p, mapErr(err, "post")
}

// CreatePost starts a thread on a board.
func (db *DB) CreatePost(ctx context.Context, tenantID int64, actor Actor, boardID int64, title, body string) (Post, error) {
	if err := canWrite(actor); err != nil {
		return Post{}, err
	}
	fields := map[string]string{}
	checkText(fields, "title", title, maxTitle)
	checkText(fields, "body", body, maxBody)
	if len(fields) > 0 {
		return Post{}, Invalid(fields)
	}
	doc := markdown.Parse(body)
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Post, error) {
		var p Post
		if _, err := getBoard(ctx, tx, boardID); err != nil {
			return p, err
		}
		bodyHTML, err := renderBody(ctx, tx, tenantID, doc)
		if err != nil {
			return p, err
		}
		p, err = collectPost(tx.Query(ctx, `
			WITH p AS (
				INSERT INTO posts (tenant_id, board_id, author_id, title, body, body_html)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
			)
			SELECT `+postColumns+` FROM p`+postFrom, tenantID, boardID, actor.UserID, title, body, bodyHTML))
		if err != nil {
			return p, err
		}
		if err := publishPost(ctx, tx, tenantID, p, "post.created", p); err != nil {
			return p, err
		}
		return p, notifyPost(ctx, tx, tenantID, actor, p, doc)
	})
}

// publishPost sends a post event to both rooms that show the post.
func publishPost(ctx context.Context, tx *Tx, tenantID int64, p Post, typ string, data any) error {
	if _, err := publish(ctx, tx, tenantID, BoardRoom(p.BoardID), typ, data); err != nil {
		return err
	}
	_, err := publish(ctx, tx, tenantID, PostRoom(p.ID), typ, data)
	return err
}

// GetPost reads one post; hidden posts exist only for moderators.
func (db *DB) GetPost(ctx context.Context, tenantID int64, actor Actor, postID int64) (Post, error) {
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Post, error) {
		p, err := getPost(ctx, tx, actor, postID, false)
		if err != nil {
			return Post{}, err
		}
		return p, addPostReading(ctx, tx, actor, []*Post{&p})
	})
}

func getPost(ctx context.Context, tx *Tx, actor Actor, postID int64, forUpdate bool) (Post, error) {
	q := `SELECT ` + postColumns + ` FROM posts p` + postFrom + ` WHERE p.id = $1 AND (NOT p.hidden OR $2)`
	if forUpdate {
		q += ` FOR UPDATE OF p`
	}
	return collectPost(tx.Query(ctx, q, postID, actor.Moderates()))
}

type postCursor struct {
	Pinned bool      `json:"p"`
	Active time.Time `json:"a"`
	ID     int64     `json:"i"`
}

// ListPosts lists a board: pinned first, then by newest activity.
func (db *DB) ListPosts(ctx context.Context, tenantID int64, actor Actor, boardID int64, pp PageParams) (Page[Post], error) {
	// The first page starts above any real key: pinned=true sorts first in
	// DESC order and no post is active in the year 9999.
	after := postCursor{Pinned: true, Active: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), ID: 1<<63 - 1}
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &after); err != nil {
			return Page[Post]{}, err
		}
	}
	var items []Post
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		if _, err := getBoard(ctx, tx, boardID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT `+postColumns+` FROM posts p`+postFrom+`
			WHERE p.board_id = $1 AND (NOT p.hidden OR $2)
			  AND (p.pinned, p.last_activity_at, p.id) < ($3, $4, $5)
			ORDER BY p.pinned DESC, p.last_activity_at DESC, p.id DESC
			LIMIT $6`, boardID, actor.Moderates(), after.Pinned, after.Active, after.ID, pp.Limit+1)
		if err != nil {
			return mapErr(err, "posts")
		}
		if items, err = pgx.CollectRows(rows, scanPost); err != nil {
			return mapErr(err, "posts")
		}
		return addPostReading(ctx, tx, actor, ptrs(items))
	})
	if err != nil {
		return Page[Post]{}, err
	}
	return page(items, pp.Limit, func(p Post) any {
		return postCursor{Pinned: p.Pinned, Active: p.LastActivityAt, ID: p.ID}
	}), nil
}

// PostPatch is an edit of a post's text; nil fields stay as they are.
type PostPatch struct {
	Title *string
	Body  *string
}

// UpdatePost edits a post (its author, or a moderator).
func (db *DB) UpdatePost(ctx context.Context, tenantID int64, actor Actor, postID int64, patch PostPatch) (Post, error) {
	if err := canWrite(actor); err != nil {
		return Post{}, err
	}
	fields := map[string]string{}
	if patch.Title != nil {
		checkText(fields, "title", *patch.Title, maxTitle)
	}
	if patch.Body != nil {
		checkText(fields, "body", *patch.Body, maxBody)
	}
	if len(fields) > 0 {
		return Post{}, Invalid(fields)
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Post, error) {
		var p Post
		old, err := getPost(ctx, tx, actor, postID, true)
		if err != nil {
			return p, err
		}
		if err := canEdit(actor, old.Author.ID, old.Locked); err != nil {
			return p, err
		}
		next := old
		if patch.Title != nil {
			next.Title = *patch.Title
		}
		if patch.Body != nil && *patch.Body != old.Body {
			next.Body = *patch.Body
			if next.BodyHTML, err = renderBody(ctx, tx, tenantID, markdown.Parse(next.Body)); err != nil {
				return p, err
			}
		}
		if p, err = savePost(ctx, tx, tenantID, old, next); err != nil || p.Version == old.Version {
			return p, err
		}
		return p, keepPostRevision(ctx, tx, tenantID, actor, old, p)
	})
}

// savePost writes the changed own fields of a post, bumps its version and
// sends the diff. Nothing changed: nothing is written or sent. A change of
// title or body is an edit (edited_at); next carries the body's rendering.
func savePost(ctx context.Context, tx *Tx, tenantID int64, old, next Post) (Post, error) {
	changes := fieldChanges{}
	retitled := changes.note("title", old.Title != next.Title, next.Title)
	rewritten := changes.note("body", old.Body != next.Body, next.Body)
	changes.note("body_html", rewritten, next.BodyHTML)
	edited := retitled || rewritten
	changes.note("locked", old.Locked != next.Locked, next.Locked)
	changes.note("pinned", old.Pinned != next.Pinned, next.Pinned)
	changes.note("hidden", old.Hidden != next.Hidden, next.Hidden)
	if len(changes) == 0 {
		return old, nil
	}
	p, err := collectPost(tx.Query(ctx, `
		WITH p AS (
			UPDATE posts SET title = $2, body = $3, body_html = $4, locked = $5, pinned = $6, hidden = $7,
			                 body_html_stale = body_html_stale AND body = $3,
			                 edited_at = CASE WHEN $8 THEN now() ELSE edited_at END,
			                 version = version + 1, updated_at = now()
			WHERE id = $1 RETURNING *
		)
		SELECT `+postColumns+` FROM p`+postFrom,
		old.ID, next.Title, next.Body, next.BodyHTML, next.Locked, next.Pinned, next.Hidden, edited))
	if err != nil {
		return Post{}, err
	}
	changes.note("edited_at", edited, p.EditedAt)
	return p, publishPost(ctx, tx, tenantID, p, "post.updated", Diff{ID: p.ID, Version: p.Version, Changes: changes})
}

// DeletePost removes a post and its comments (its author, or a moderator).
func (db *DB) DeletePost(ctx context.Context, tenantID int64, actor Actor, postID int64) error {
	if err := canWrite(actor); err != nil {
		return err
	}
	return db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		old, err := getPost(ctx, tx, actor, postID, true)
		if err != nil {
			return err
		}
		if err := canEdit(actor, old.Author.ID, old.Locked); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM posts WHERE id = $1`, postID); err != nil {
			return mapErr(err, "post")
		}
		return publishPost(ctx, tx, tenantID, old, "post.deleted", Deleted{ID: old.ID})
	})
}

// canWrite: signed in and not banned.
func canWrite(actor Actor) error {
	if actor.Anonymous() {
		return ErrUnauthorized
	}
	if actor.Banned {
		return errBanned
	}
	return nil
}

// canEdit: authors edit their own unlocked content; moderators edit any.
func canEdit(actor Actor, authorID int64, locked bool) error {
	if actor.Moderates() {
		return nil
	}
	if actor.UserID != authorID {
		return Errorf(CodeForbidden, "only the author or a moderator may change this")
	}
	if locked {
		return errLocked
	}
	return nil
}

var errLocked = Errorf(CodeConflict, "the post is locked")
