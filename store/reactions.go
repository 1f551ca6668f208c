package store

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
)

// reactionKinds are the kinds of reaction, in the order clients show them.
// An array, so it cannot be changed at run time.
var reactionKinds = [...]string{"like", "love", "laugh", "wow", "sad", "thanks"}

func checkKind(kind string) error {
	if !slices.Contains(reactionKinds[:], kind) {
		return Invalid(map[string]string{"kind": "must be one of like, love, laugh, wow, sad, thanks"})
	}
	return nil
}

// sortKinds puts kinds in the order of reactionKinds.
func sortKinds(kinds []string) {
	slices.SortFunc(kinds, func(a, b string) int {
		return slices.Index(reactionKinds[:], a) - slices.Index(reactionKinds[:], b)
	})
}

// ReactionState is what a reaction write answers: the object's counts and
// the writer's own kinds.
type ReactionState struct {
	Reactions   map[string]int `json:"reactions"`
	MyReactions []string       `json:"my_reactions"`
}

// reactionsChanged is the payload of post.reactions and comment.reactions:
// the new counts, never a delta, so a client that missed one is right
// again with the next.
type reactionsChanged struct {
	ID        int64          `json:"id,string"`
	Reactions map[string]int `json:"reactions"`
}

// reactionTarget is what a reaction is on: a post or a comment.
type reactionTarget struct {
	what string // "post" or "comment": messages and the event type
	// lock reads the target ($1) for the actor (moderator: $2) and takes
	// its row lock, so that every reaction write of one object runs after
	// the one before it has committed. It yields the post (its room) and
	// whether that post is locked.
	lock string
	// put and del write the actor's reaction and, when that changed
	// anything, the counts beside the object; see reactionWrite.
	put, del string
}

// reactionWrite is the statement that changes a reaction: $1 object, $2
// user, $3 kind, $4 the change of the count (+1, -1), $5 tenant. It yields
// the new counts (NULL when nothing changed), the counts as they are, and
// the user's kinds before the change. It runs after the lock, so its
// snapshot holds every earlier reaction write of the object.
func reactionWrite(table, reactions, column string, put bool) string {
	change := `INSERT INTO ` + reactions + ` (tenant_id, ` + column + `, user_id, kind) VALUES ($5, $1, $2, $3)
			ON CONFLICT DO NOTHING RETURNING 1`
	if !put {
		change = `DELETE FROM ` + reactions + ` WHERE tenant_id = $5 AND ` + column + ` = $1 AND user_id = $2 AND kind = $3
			RETURNING 1`
	}
	// A kind whose count reaches zero leaves the map: {} means none.
	return `
		WITH changed AS (` + change + `),
		counted AS (
			UPDATE ` + table + ` SET reactions = CASE
				WHEN coalesce((reactions->>$3::text)::int, 0) + $4 <= 0 THEN reactions - $3::text
				ELSE jsonb_set(reactions, ARRAY[$3::text], to_jsonb(coalesce((reactions->>$3::text)::int, 0) + $4))
			END
			WHERE id = $1 AND EXISTS (SELECT 1 FROM changed)
			RETURNING reactions
		)
		SELECT (SELECT reactions FROM counted), (SELECT reactions FROM ` + table + ` WHERE id = $1),
		       ARRAY(SELECT kind FROM ` + reactions + ` WHERE ` + column + ` = $1 AND user_id = $2)`
}

var (
	postReactions = reactionTarget{
		what: "post",
		lock: `SELECT p.id, p.locked FROM posts p WHERE p.id = $1 AND (NOT p.hidden OR $2) FOR NO KEY UPDATE`,
		put:  reactionWrite("posts", "post_reactions", "post_id", true),
		del:  reactionWrite("posts", "post_reactions", "post_id", false),
	}
	commentReactions = reactionTarget{
		what: "comment",
		// The post's locked flag is read without its row lock: a reaction
		// that races a lock by a moment is harmless, and locking every
		// post under a burst of reactions on its comments would hold up
		// the post's own writes.
		lock: `SELECT c.post_id, p.locked FROM comments c
			JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id
			WHERE c.id = $1 AND ((NOT c.hidden AND NOT p.hidden) OR $2)
			FOR NO KEY UPDATE OF c`,
		put: reactionWrite("comments", "comment_reactions", "comment_id", true),
		del: reactionWrite("comments", "comment_reactions", "comment_id", false),
	}
)

// ReactToPost adds (on) or takes back (!on) the actor's reaction of one
// kind to a post. Adding one the actor has, or taking back one it does
// not have, changes and sends nothing. A change sends post.reactions with
// the new counts to the post's room; no version changes.
func (db *DB) ReactToPost(ctx context.Context, tenantID int64, actor Actor, postID int64, kind string, on bool) (ReactionState, error) {
	return db.react(ctx, tenantID, actor, postReactions, postID, kind, on)
}

// ReactToComment is ReactToPost for a comment (comment.reactions).
func (db *DB) ReactToComment(ctx context.Context, tenantID int64, actor Actor, commentID int64, kind string, on bool) (ReactionState, error) {
	return db.react(ctx, tenantID, actor, commentReactions, commentID, kind, on)
}

func (db *DB) react(ctx context.Context, tenantID int64, actor Actor, t reactionTarget, id int64, kind string, on bool) (ReactionState, error) {
	if err := canWrite(actor); err != nil {
		return ReactionState{}, err
	}
	if err := checkKind(kind); err != nil {
		return ReactionState{}, err
	}
	var st ReactionState
	err := db.WithTenant(ctx, tenantID, func(tx pgx.Tx) error {
		var postID int64
		var locked bool
		if err := tx.QueryRow(ctx, t.lock, id, actor.Moderates()).Scan(&postID, &locked); err != nil {
			return mapErr(err, t.what)
		}
		// As for comments: moderators may still act in a locked post.
		if locked && !actor.Moderates() {
			return errLocked
		}
		write, delta := t.put, 1
		if !on {
			write, delta = t.del, -1
		}
		var changed map[string]int
		if err := tx.QueryRow(ctx, write, id, actor.UserID, kind, delta, tenantID).
			Scan(&changed, &st.Reactions, &st.MyReactions); err != nil {
			return mapErr(err, "reaction")
		}
		// The kinds were read before the change.
		st.MyReactions = slices.DeleteFunc(st.MyReactions, func(k string) bool { return k == kind })
		if on {
			st.MyReactions = append(st.MyReactions, kind)
		}
		sortKinds(st.MyReactions)
		if changed == nil {
			return nil
		}
		st.Reactions = changed
		_, err := publish(ctx, tx, tenantID, PostRoom(postID), t.what+".reactions", reactionsChanged{ID: id, Reactions: changed})
		return err
	})
	if err != nil {
		return ReactionState{}, err
	}
	return st, nil
}

// addCommentReactions gives each comment the signed-in reader's own kinds
// ([] when none); anonymous readers get none (the field is absent). The
// counts came with the rows.
func addCommentReactions(ctx context.Context, tx pgx.Tx, actor Actor, comments []*Comment) error {
	if actor.Anonymous() || len(comments) == 0 {
		return nil
	}
	ids := make([]int64, len(comments))
	for i, c := range comments {
		ids[i] = c.ID
		c.MyReactions = []string{}
	}
	rows, err := tx.Query(ctx, `
		SELECT comment_id, array_agg(kind) FROM comment_reactions
		WHERE comment_id = ANY($1) AND user_id = $2 GROUP BY comment_id`, ids, actor.UserID)
	if err != nil {
		return mapErr(err, "reactions")
	}
	mine := map[int64][]string{}
	var cid int64
	var kinds []string
	_, err = pgx.ForEachRow(rows, []any{&cid, &kinds}, func() error {
		sortKinds(kinds)
		mine[cid] = kinds
		kinds = nil
		return nil
	})
	if err != nil {
		return mapErr(err, "reactions")
	}
	for _, c := range comments {
		if k, ok := mine[c.ID]; ok {
			c.MyReactions = k
		}
	}
	return nil
}

// ptrs points at each element of s, for helpers that fill in a page of
// items in place.
func ptrs[T any](s []T) []*T {
	out := make([]*T, len(s))
	for i := range s {
		out[i] = &s[i]
	}
	return out
}
