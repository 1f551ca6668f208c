package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// answered is the comment a reply answers.
type answered struct {
	id       int64
	authorID int64
}

var errReplyTo = Invalid(map[string]string{"reply_to": "must be a comment of this post"})

// lockAnswered finds the comment that a new comment of postID answers, as
// the writer may see it (a hidden comment only for moderators), and holds
// it against deletion until the reply commits. It runs before the post's
// row is locked, in the order a delete takes the same two locks (comment,
// then post), so the two never wait on each other. nil: replyTo is 0, or
// no such comment of this post is there for the actor, which the caller
// reports once it knows the post itself exists.
func lockAnswered(ctx context.Context, tx *Tx, actor Actor, postID, replyTo int64) (*answered, error) {
	if replyTo == 0 {
		return nil, nil
	}
	a := answered{id: replyTo}
	err := tx.QueryRow(ctx, `
		SELECT c.author_id FROM comments c
		JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id
		WHERE c.id = $1 AND c.post_id = $2 AND ((NOT c.hidden AND NOT p.hidden) OR $3)
		FOR KEY SHARE OF c`, replyTo, postID, actor.Moderates()).Scan(&a.authorID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(err, "answered comment")
	}
	return &a, nil
}

// nullID is an optional id as SQL sees it: 0 is NULL.
func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}
