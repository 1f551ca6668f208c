package store

import (
	"context"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// SearchResult is one post or comment that matched a search.
type SearchResult struct {
	Type      string     `json:"type"` // "post" or "comment"
	Post      SearchPost `json:"post"`
	CommentID *int64     `json:"comment_id,string"`
	Author    UserRef    `json:"author"`
	// Snippet is HTML: the text around the best match, escaped, with the
	// matched words in <mark>.
	Snippet   string    `json:"snippet"`
	CreatedAt time.Time `json:"created_at"`

	rank float32
}

// SearchPost is the post a result is or belongs to.
type SearchPost struct {
	ID      int64  `json:"id,string"`
	Title   string `json:"title"`
	BoardID int64  `json:"board_id,string"`
}

// SearchParams asks for one page of results.
type SearchParams struct {
	// Query is the text searched for, as the user typed it.
	Query string
	// BoardID limits the search to one board; 0: every board.
	BoardID int64
	PageParams
}

const maxQuery = 200

// Results are ordered by (rank, created_at, comment id, post id), all
// descending, and the cursor is that key of the last result, rank included.
// The rank is a float4 computed by the same function on the same document
// and query every time, so the key of a result does not change from one
// page to the next, and "after the last key" resumes exactly where the
// previous page ended: every result comes once. A comment id (0 for a
// post, whose ids are a separate sequence) and then the post id make the
// key unique. A post or comment edited between two pages changes its rank
// and may move past the cursor, as an edited row may in any keyset list.
type searchCursor struct {
	Rank    float32   `json:"r"`
	Created time.Time `json:"c"`
	Comment int64     `json:"m"`
	Post    int64     `json:"p"`
}

// Search finds the posts and comments whose text matches the query, best
// match first. Members and anonymous readers never see hidden posts,
// hidden comments or the comments of hidden posts; moderators see all.
//
// The query's words are matched by the policy of search_docs (see
// migrations/0006_search.up.sql): it is set in this transaction before the
// search statement runs, and the statement's own `doc @@` condition repeats
// it so the statement means what it says on its own.
func (db *DB) Search(ctx context.Context, tenantID int64, actor Actor, p SearchParams) (Page[SearchResult], error) {
	q := strings.TrimSpace(p.Query)
	if n := utf8.RuneCountInString(q); n < 1 || n > maxQuery || !utf8.ValidString(q) || strings.ContainsRune(q, 0) {
		return Page[SearchResult]{}, Invalid(map[string]string{"q": "must be 1 to 200 characters of text"})
	}
	after := searchCursor{Rank: float32(math.Inf(1)), Created: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC),
		Comment: math.MaxInt64, Post: math.MaxInt64}
	if p.Cursor != "" {
		if err := decodeCursor(p.Cursor, &after); err != nil {
			return Page[SearchResult]{}, err
		}
	}
	args := []any{after.Rank, after.Created, after.Comment, after.Post, p.Limit + 1}
	if p.BoardID != 0 {
		args = append(args, p.BoardID)
	}
	var items []SearchResult
	terms := searchTerms(q)
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		// One round trip: the board check, the query's setting, the search.
		b := &pgx.Batch{}
		if p.BoardID != 0 {
			b.Queue(`SELECT EXISTS (SELECT 1 FROM boards WHERE id = $1)`, p.BoardID)
		}
		b.Queue(`SELECT set_config('app.search_query', search_query($1)::text, true)`, q)
		b.Queue(searchSQL(searchConditions(actor, p.BoardID)), args...)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if p.BoardID != 0 {
			var exists bool
			if err := br.QueryRow().Scan(&exists); err != nil {
				return mapErr(err, "board")
			}
			if !exists {
				return Errorf(CodeNotFound, "board not found")
			}
		}
		if _, err := br.Exec(); err != nil {
			return mapErr(err, "search")
		}
		rows, err := br.Query()
		if err != nil {
			return mapErr(err, "search")
		}
		items, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (SearchResult, error) {
			return scanSearchResult(row, terms)
		})
		return mapErr(err, "search")
	})
	if err != nil {
		return Page[SearchResult]{}, err
	}
	return page(items, p.Limit, func(r SearchResult) any {
		c := searchCursor{Rank: r.rank, Created: r.CreatedAt, Post: r.Post.ID}
		if r.CommentID != nil {
			c.Comment = *r.CommentID
		}
		return c
	}), nil
}

// searchConditions says which documents the actor may find: for all but
// moderators, no hidden post or comment and no comment of a hidden post
// (the few hidden posts of a tenant are looked up through posts_hidden).
// A board filter is parameter $6.
func searchConditions(actor Actor, boardID int64) string {
	where := ""
	if !actor.Moderates() {
		where += ` AND NOT d.hidden
			AND NOT EXISTS (SELECT 1 FROM posts hp WHERE hp.tenant_id = d.tenant_id AND hp.id = d.post_id AND hp.hidden)`
	}
	if boardID != 0 {
		where += ` AND d.board_id = $6`
	}
	return where
}

// searchSQL ranks every visible match (the hits are materialized so that
// ts_rank runs once per match, not again in the cursor's comparison), keeps
// one page after the cursor, and only then reads the page's texts and
// authors. A query without words (only punctuation) matches nothing: the
// one-time filter on app.search_query keeps it from reading anything,
// where search_filter() would otherwise match every row.
func searchSQL(where string) string {
	return `
		WITH hits AS MATERIALIZED (
			SELECT d.tenant_id, d.post_id, d.comment_id, d.created_at,
			       ts_rank(d.doc, (SELECT search_filter()), 1) AS rank
			FROM search_docs d
			WHERE current_setting('app.search_query') <> ''
			  AND d.doc @@ (SELECT search_filter())` + where + `
		), page AS (
			SELECT * FROM hits
			WHERE (rank, created_at, coalesce(comment_id, 0), post_id) < ($1::real, $2::timestamptz, $3::bigint, $4::bigint)
			ORDER BY rank DESC, created_at DESC, coalesce(comment_id, 0) DESC, post_id DESC
			LIMIT $5
		)
		SELECT h.rank, h.post_id, h.comment_id, h.created_at, p.title, p.board_id,
		       coalesce(c.body, p.body), coalesce(cu.id, pu.id), coalesce(cu.username, pu.username)
		FROM page h
		JOIN posts p ON p.tenant_id = h.tenant_id AND p.id = h.post_id
		JOIN users pu ON pu.tenant_id = p.tenant_id AND pu.id = p.author_id
		LEFT JOIN comments c ON c.tenant_id = h.tenant_id AND c.id = h.comment_id
		LEFT JOIN users cu ON cu.tenant_id = c.tenant_id AND cu.id = c.author_id
		ORDER BY h.rank DESC, h.created_at DESC, coalesce(h.comment_id, 0) DESC, h.post_id DESC`
}

func scanSearchResult(row pgx.CollectableRow, terms [][]string) (SearchResult, error) {
	var r SearchResult
	var body string
	err := row.Scan(&r.rank, &r.Post.ID, &r.CommentID, &r.CreatedAt, &r.Post.Title, &r.Post.BoardID,
		&body, &r.Author.ID, &r.Author.Username)
	if err != nil {
		return r, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if r.CommentID == nil {
		r.Type = "post"
		r.Snippet = postSnippet(r.Post.Title, body, terms)
	} else {
		r.Type = "comment"
		r.Snippet = snippet(body, terms)
	}
	return r, nil
}
