package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// PostReading is what a post shows only to the signed-in reader reading
// it: their own reactions and how far they have read.
type PostReading struct {
	MyReactions []string `json:"my_reactions"`
	// LastReadCommentID is nil until the reader marks the post read (or
	// comments on it).
	LastReadCommentID *int64 `json:"last_read_comment_id,string"`
	// UnreadComments counts the visible (not hidden) comments after
	// LastReadCommentID, all of them when it is nil, like comment_count.
	UnreadComments int `json:"unread_comments"`
}

// readUpdated is the payload of read.updated.
type readUpdated struct {
	PostID            int64 `json:"post_id,string"`
	LastReadCommentID int64 `json:"last_read_comment_id,string"`
}

// MarkRead moves the actor's read position in a post forward to
// commentID, a comment of that post the actor can see, or, when nil, to
// the newest such comment. An older position than the actor's is a no-op,
// as is marking a post without comments; a move sends read.updated to the
// actor's own room, so their other devices follow. Reading is not
// writing: banned users may mark posts read.
func (db *DB) MarkRead(ctx context.Context, tenantID int64, actor Actor, postID int64, commentID *int64) error {
	if actor.Anonymous() {
		return ErrUnauthorized
	}
	return db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		var visible bool
		var target *int64
		err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM posts WHERE id = $1 AND (NOT hidden OR $2)),
			       (SELECT max(id) FROM comments WHERE post_id = $1 AND (NOT hidden OR $2) AND ($3::bigint IS NULL OR id = $3))`,
			postID, actor.Moderates(), commentID).Scan(&visible, &target)
		if err != nil {
			return mapErr(err, "post")
		}
		switch {
		case !visible:
			return Errorf(CodeNotFound, "post not found")
		case target == nil && commentID != nil:
			return Invalid(map[string]string{"comment_id": "must be a comment of this post"})
		case target == nil:
			return nil // nothing to have read yet
		}
		return advanceRead(ctx, tx, tenantID, actor.UserID, postID, *target)
	})
}

// advanceRead moves userID's read position in postID forward to
// commentID, leaving a newer one alone, and announces a move in the
// user's room. The row lock of the upsert orders concurrent moves, and its
// WHERE is checked again on the newest row, so the position never goes
// back.
func advanceRead(ctx context.Context, tx *Tx, tenantID, userID, postID, commentID int64) error {
	tag, err := tx.Exec(ctx, `
		INSERT INTO read_state (tenant_id, user_id, post_id, last_read_comment_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, user_id, post_id) DO UPDATE
		SET last_read_comment_id = EXCLUDED.last_read_comment_id, updated_at = now()
		WHERE read_state.last_read_comment_id < EXCLUDED.last_read_comment_id`, tenantID, userID, postID, commentID)
	if err != nil {
		return mapErr(err, "read state")
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	_, err = publish(ctx, tx, tenantID, UserRoom(userID), "read.updated", readUpdated{PostID: postID, LastReadCommentID: commentID})
	return err
}

// addPostReading gives each post the signed-in reader's own state;
// anonymous readers get none (the fields are absent). One query for the
// whole page: the reader's kinds and read position are primary-key
// lookups, and an unread count is an index-only range scan of the post's
// visible comments after the position (comments_visible), so it costs
// what is unread, not the length of the thread. Never read, it is
// comment_count, already in the row.
func addPostReading(ctx context.Context, tx *Tx, actor Actor, posts []*Post) error {
	if actor.Anonymous() || len(posts) == 0 {
		return nil
	}
	ids := make([]int64, len(posts))
	for i, p := range posts {
		ids[i] = p.ID
	}
	rows, err := tx.Query(ctx, `
		SELECT ids.id,
		       ARRAY(SELECT r.kind FROM post_reactions r WHERE r.post_id = ids.id AND r.user_id = $2),
		       rs.last_read_comment_id,
		       CASE WHEN rs.last_read_comment_id IS NOT NULL THEN
		         (SELECT count(*) FROM comments c
		          WHERE c.post_id = ids.id AND NOT c.hidden AND c.id > rs.last_read_comment_id)
		       END
		FROM unnest($1::bigint[]) AS ids (id)
		LEFT JOIN read_state rs ON rs.user_id = $2 AND rs.post_id = ids.id`, ids, actor.UserID)
	if err != nil {
		return mapErr(err, "read state")
	}
	got := map[int64]*PostReading{}
	var id int64
	var kinds []string
	var last, unread *int64
	_, err = pgx.ForEachRow(rows, []any{&id, &kinds, &last, &unread}, func() error {
		r := &PostReading{MyReactions: kinds, LastReadCommentID: last}
		if unread != nil {
			r.UnreadComments = int(*unread)
		}
		sortKinds(r.MyReactions)
		got[id] = r
		kinds, last, unread = nil, nil, nil
		return nil
	})
	if err != nil {
		return mapErr(err, "read state")
	}
	for _, p := range posts {
		r := got[p.ID]
		if r.LastReadCommentID == nil {
			r.UnreadComments = p.CommentCount
		}
		p.PostReading = r
	}
	return nil
}
