package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// UserPage is what anyone who may read a tenant sees of one of its users.
type UserPage struct {
	ID        int64        `json:"id,string"`
	Username  string       `json:"username"`
	Role      Role         `json:"role"`
	CreatedAt time.Time    `json:"created_at"`
	Recent    []RecentItem `json:"recent"`
}

// RecentItem is one of a user's posts (CommentID nil) or comments.
type RecentItem struct {
	Type      string    `json:"type"`
	Post      PostLink  `json:"post"`
	CommentID *int64    `json:"comment_id,string"`
	Excerpt   string    `json:"excerpt"`
	CreatedAt time.Time `json:"created_at"`
}

// recentItems is how many posts and comments a user's page shows.
const recentItems = 10

// GetUserPage reads a user by username (regardless of case) with their
// newest posts and comments that the actor may see, newest first. One
// query: the user row, repeated on each of their recent items (or alone
// with NULLs when there are none).
func (db *DB) GetUserPage(ctx context.Context, tenantID int64, actor Actor, username string) (UserPage, error) {
	if !usernamePattern.MatchString(username) {
		return UserPage{}, Errorf(CodeNotFound, "user not found")
	}
	rows, err := db.queryTenant(ctx, tenantID, `
		WITH u AS (
			SELECT id, username, role, created_at FROM users WHERE lower(username) = lower($1)
		), recent AS (
			(SELECT 'post' AS type, p.id AS post_id, p.title, NULL::bigint AS comment_id, p.body, p.created_at
			 FROM posts p, u
			 WHERE p.author_id = u.id AND (NOT p.hidden OR $2)
			 ORDER BY p.created_at DESC LIMIT $3)
			UNION ALL
			(SELECT 'comment', p.id, p.title, c.id, c.body, c.created_at
			 FROM comments c, u, posts p
			 WHERE c.author_id = u.id AND p.tenant_id = c.tenant_id AND p.id = c.post_id
			   AND ((NOT c.hidden AND NOT p.hidden) OR $2)
			 ORDER BY c.created_at DESC LIMIT $3)
		)
		SELECT u.id, u.username, u.role, u.created_at,
		       r.type, r.post_id, r.title, r.comment_id, body_excerpt(r.body), r.created_at
		FROM u LEFT JOIN (SELECT * FROM recent ORDER BY created_at DESC LIMIT $3) r ON true
		ORDER BY r.created_at DESC, r.comment_id DESC NULLS LAST`, username, actor.Moderates(), recentItems)
	if err != nil {
		return UserPage{}, mapErr(err, "user")
	}
	type row struct {
		user UserPage
		item *RecentItem
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		var typ *string
		var it RecentItem
		var postID *int64
		var title, excerpt *string
		var at *time.Time
		err := r.Scan(&x.user.ID, &x.user.Username, &x.user.Role, &x.user.CreatedAt,
			&typ, &postID, &title, &it.CommentID, &excerpt, &at)
		if typ != nil {
			it.Type, it.Post, it.Excerpt, it.CreatedAt = *typ, PostLink{ID: *postID, Title: *title}, *excerpt, at.UTC()
			x.item = &it
		}
		return x, err
	})
	if err != nil {
		return UserPage{}, mapErr(err, "user")
	}
	if len(got) == 0 {
		return UserPage{}, Errorf(CodeNotFound, "user not found")
	}
	up := got[0].user
	up.CreatedAt = up.CreatedAt.UTC()
	up.Recent = []RecentItem{}
	for _, x := range got {
		if x.item != nil {
			up.Recent = append(up.Recent, *x.item)
		}
	}
	return up, nil
}
