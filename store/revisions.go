package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// keepPostRevision records an edit of a post's title or body, in the
// edit's transaction: the text as saved and, on the first edit, the
// original it replaced, so that the history is complete from the start
// and its newest entry is the text shown now. A post never edited has no
// rows: its history is the post itself.
func keepPostRevision(ctx context.Context, tx *Tx, tenantID int64, actor Actor, old, p Post) error {
	if old.Title == p.Title && old.Body == p.Body {
		return nil
	}
	q := `INSERT INTO post_revisions (tenant_id, post_id, version, title, body, edited_by, edited_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`
	args := []any{tenantID, p.ID, p.Version, p.Title, p.Body, actor.UserID, p.EditedAt}
	if old.EditedAt == nil {
		q += `, ($1, $2, 1, $8, $9, $10, $11)`
		args = append(args, old.Title, old.Body, old.Author.ID, old.CreatedAt)
	}
	_, err := tx.Exec(ctx, q, args...)
	return mapErr(err, "post revision")
}

// keepCommentRevision is keepPostRevision for a comment's body.
func keepCommentRevision(ctx context.Context, tx *Tx, tenantID int64, actor Actor, old, c Comment) error {
	if old.Body == c.Body {
		return nil
	}
	q := `INSERT INTO comment_revisions (tenant_id, comment_id, version, body, edited_by, edited_at)
		VALUES ($1, $2, $3, $4, $5, $6)`
	args := []any{tenantID, c.ID, c.Version, c.Body, actor.UserID, c.EditedAt}
	if old.EditedAt == nil {
		q += `, ($1, $2, 1, $7, $8, $9)`
		args = append(args, old.Body, old.Author.ID, old.CreatedAt)
	}
	_, err := tx.Exec(ctx, q, args...)
	return mapErr(err, "comment revision")
}

// mayReadHistory: a history is its author's and the moderators'. For
// anyone else it does not exist, the same 404 as an object that does not.
func mayReadHistory(actor Actor, authorID int64, what string) error {
	if actor.Moderates() || (!actor.Anonymous() && actor.UserID == authorID) {
		return nil
	}
	return Errorf(CodeNotFound, "%s not found", what)
}

// PostRevisions lists the texts a post has had, oldest first (its author
// and moderators only).
func (db *DB) PostRevisions(ctx context.Context, tenantID int64, actor Actor, postID int64, pp PageParams) (Page[Revision], error) {
	return db.revisions(ctx, tenantID, pp, func(tx *Tx) (Revision, *time.Time, error) {
		p, err := getPost(ctx, tx, actor, postID, false)
		if err == nil {
			err = mayReadHistory(actor, p.Author.ID, "post")
		}
		return Revision{Version: 1, Title: &p.Title, Body: p.Body, EditedBy: p.Author, EditedAt: p.CreatedAt}, p.EditedAt, err
	}, `
		SELECT r.version, r.title, r.body, r.edited_by, u.username, r.edited_at
		FROM post_revisions r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.edited_by
		WHERE r.post_id = $1 AND r.version > $2
		ORDER BY r.version LIMIT $3`, postID)
}

// CommentRevisions lists the texts a comment has had, oldest first (its
// author and moderators only).
func (db *DB) CommentRevisions(ctx context.Context, tenantID int64, actor Actor, commentID int64, pp PageParams) (Page[Revision], error) {
	return db.revisions(ctx, tenantID, pp, func(tx *Tx) (Revision, *time.Time, error) {
		c, _, err := getComment(ctx, tx, actor, commentID, false)
		if err == nil {
			err = mayReadHistory(actor, c.Author.ID, "comment")
		}
		return Revision{Version: 1, Body: c.Body, EditedBy: c.Author, EditedAt: c.CreatedAt}, c.EditedAt, err
	}, `
		SELECT r.version, NULL::text, r.body, r.edited_by, u.username, r.edited_at
		FROM comment_revisions r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.edited_by
		WHERE r.comment_id = $1 AND r.version > $2
		ORDER BY r.version LIMIT $3`, commentID)
}

// revisions pages through one object's history. check reads the object
// (and says whether the actor may see its history) as its one revision
// while it has never been edited; once edited, the history is the rows
// that query selects (version > $2 for the object $1, at most $3).
func (db *DB) revisions(ctx context.Context, tenantID int64, pp PageParams,
	check func(*Tx) (Revision, *time.Time, error), query string, id int64) (Page[Revision], error) {
	var after int
	if pp.Cursor != "" {
		if err := decodeCursor(pp.Cursor, &after); err != nil {
			return Page[Revision]{}, err
		}
	}
	var items []Revision
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		original, editedAt, err := check(tx)
		if err != nil {
			return err
		}
		if editedAt == nil {
			if after < original.Version {
				items = []Revision{original}
			}
			return nil
		}
		rows, err := tx.Query(ctx, query, id, after, pp.Limit+1)
		if err != nil {
			return mapErr(err, "revisions")
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revision, error) {
			var r Revision
			err := row.Scan(&r.Version, &r.Title, &r.Body, &r.EditedBy.ID, &r.EditedBy.Username, &r.EditedAt)
			r.EditedAt = r.EditedAt.UTC()
			return r, err
		})
		return mapErr(err, "revisions")
	})
	if err != nil {
		return Page[Revision]{}, err
	}
	return page(items, pp.Limit, func(r Revision) any { return r.Version }), nil
}

// utcPtr is t in UTC, keeping nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
