package store

import (
	"context"
	"time"
)

// activity is a post's derived counters as board lists show them, and the
// payload of post.activity. Board lists stay current with it alone: it
// carries the new values, never a delta.
type activity struct {
	ID             int64     `json:"id,string"`
	BoardID        int64     `json:"-"`
	CommentCount   int       `json:"comment_count"`
	LastActivityAt time.Time `json:"last_activity_at"`
}

// queueActivity queues post.activity for the post's board room (see
// activityqueue.go); the instance flushes the queue once tx committed.
func queueActivity(ctx context.Context, tx *Tx, tenantID int64, a activity) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO activity_queue (tenant_id, board_id, post_id, comment_count, last_activity_at, trace_parent)
		VALUES ($1, $2, $3, $4, $5, $6)`, tenantID, a.BoardID, a.ID, a.CommentCount, a.LastActivityAt, tx.traceArg())
	if err != nil {
		return mapErr(err, "post activity")
	}
	tx.activityQueued = true
	return nil
}

// countVisible moves a post's comment_count by one when one of its
// comments becomes visible to members (unhidden) or stops being so
// (hidden, or deleted while visible), and tells the board. The caller
// holds the comment's row lock, so the comment's hidden state it judged
// by cannot change meanwhile.
//
// It takes the post's row lock: call it before publishing to the post's
// room, as every write that sends to both rooms takes the post first.
func countVisible(ctx context.Context, tx *Tx, tenantID, postID int64, delta int) error {
	var a activity
	err := tx.QueryRow(ctx, `
		UPDATE posts SET comment_count = comment_count + $2 WHERE id = $1
		RETURNING id, board_id, comment_count, last_activity_at`, postID, delta).
		Scan(&a.ID, &a.BoardID, &a.CommentCount, &a.LastActivityAt)
	if err != nil {
		return mapErr(err, "post")
	}
	return queueActivity(ctx, tx, tenantID, a)
}

// visibleDelta is the change of comment_count when a comment's hidden
// flag becomes hidden.
func visibleDelta(hidden bool) int {
	if hidden {
		return -1
	}
	return 1
}
