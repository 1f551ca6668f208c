package store

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"
)

// reactionKinds are the kinds of reaction, in the order clients show them;
// the CHECK of migration 0008 allows the same.
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
	// put and del change the actor's reaction and the counts beside the
	// object, in one statement (see reactionWrite).
	put, del string
	// mine reads a user's ($2) kinds on the object ($1).
	mine string
}

// reactionWrite is the one statement of a reaction write: $1 object, $2
// user, $3 kind, $4 the change of the count (+1, -1), $5 tenant, $6
// whether the actor moderates. target reads the object as the actor may
// see it and takes its row lock, so every reaction write of one object
// waits for the one before it to commit; the lock returns the newest row,
// so the flags and counts it yields are current. The statement yields the
// object's post (its room), whether that post is locked, the counts
// before the change and the new counts (NULL when nothing changed: the
// reaction was there already, or was not, or the post is locked); no row
// when the actor cannot see the object.
func reactionWrite(target, table, reactions, column string, put bool) string {
	allowed := `(SELECT 1 FROM target WHERE NOT target.locked OR $6)`
	change := `INSERT INTO ` + reactions + ` (tenant_id, ` + column + `, user_id, kind)
			SELECT $5, $1, $2, $3 WHERE EXISTS ` + allowed + `
			ON CONFLICT DO NOTHING RETURNING 1`
	if !put {
		change = `DELETE FROM ` + reactions + `
			WHERE tenant_id = $5 AND ` + column + ` = $1 AND user_id = $2 AND kind = $3 AND EXISTS ` + allowed + `
			RETURNING 1`
	}
	// A kind whose count reaches zero leaves the map: {} means none.
	return `
		WITH target AS (` + target + `),
		changed AS (` + change + `),
		counted AS (
			UPDATE ` + table + ` SET reactions = CASE
				WHEN coalesce((reactions->>$3::text)::int, 0) + $4 <= 0 THEN reactions - $3::text
				ELSE jsonb_set(reactions, ARRAY[$3::text], to_jsonb(coalesce((reactions->>$3::text)::int, 0) + $4))
			END
			WHERE id = $1 AND EXISTS (SELECT 1 FROM changed)
			RETURNING reactions
		)
		SELECT post_id, locked, reactions, (SELECT reactions FROM counted) FROM target`
}

func newReactionTarget(what, target, table, reactions, column string) reactionTarget {
	return reactionTarget{
		what: what,
		put:  reactionWrite(target, table, reactions, column, true),
		del:  reactionWrite(target, table, reactions, column, false),
		mine: `SELECT ARRAY(SELECT kind FROM ` + reactions + ` WHERE ` + column + ` = $1 AND user_id = $2)`,
	}
}

var (
	postReactions = newReactionTarget("post",
		`SELECT p.id AS post_id, p.locked, p.reactions FROM posts p
		WHERE p.id = $1 AND (NOT p.hidden OR $6) FOR NO KEY UPDATE`,
		"posts", "post_reactions", "post_id")
	// The post's locked flag is read without the post's row lock: a
	// reaction that races a lock by a moment is harmless, and locking the
	// post under a burst of reactions on its comments would hold up the
	// post's own writes.
	commentReactions = newReactionTarget("comment",
		`SELECT c.post_id, p.locked, c.reactions FROM comments c
		JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id
		WHERE c.id = $1 AND ((NOT c.hidden AND NOT p.hidden) OR $6) FOR NO KEY UPDATE OF c`,
		"comments", "comment_reactions", "comment_id")
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

// react holds the object's row lock for three round trips (the write, its
// event, the commit): under a burst on one object that is the part that
// runs one at a time. The actor's kinds are read after the commit, off the
// lock.
func (db *DB) react(ctx context.Context, tenantID int64, actor Actor, t reactionTarget, id int64, kind string, on bool) (ReactionState, error) {
	if err := canWrite(actor); err != nil {
		return ReactionState{}, err
	}
	if err := checkKind(kind); err != nil {
		return ReactionState{}, err
	}
	write, delta := t.put, 1
	if !on {
		write, delta = t.del, -1
	}
	var st ReactionState
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		var postID int64
		var locked bool
		var changed map[string]int
		err := tx.QueryRow(ctx, write, id, actor.UserID, kind, delta, tenantID, actor.Moderates()).
			Scan(&postID, &locked, &st.Reactions, &changed)
		if err != nil {
			return mapErr(err, t.what)
		}
		// As for comments: moderators may still act in a locked post.
		if locked && !actor.Moderates() {
			return errLocked
		}
		if changed == nil {
			return nil
		}
		st.Reactions = changed
		_, err = publish(ctx, tx, tenantID, PostRoom(postID), t.what+".reactions", reactionsChanged{ID: id, Reactions: changed})
		return err
	})
	if err != nil {
		return ReactionState{}, err
	}
	rows, err := db.queryTenant(ctx, tenantID, t.mine, id, actor.UserID)
	if err == nil {
		st.MyReactions, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[[]string])
	}
	if err != nil {
		return ReactionState{}, mapErr(err, "reactions")
	}
	sortKinds(st.MyReactions)
	return st, nil
}

// addCommentReactions gives each comment the signed-in reader's own kinds
// ([] when none); anonymous readers get none (the field is absent). The
// counts came with the rows.
func addCommentReactions(ctx context.Context, tx *Tx, actor Actor, comments []*Comment) error {
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
