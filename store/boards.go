package store

import (
	"context"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

const boardColumns = `id, slug, name, description, version, created_at, updated_at`

func scanBoard(row pgx.CollectableRow) (Board, error) {
	var b Board
	err := row.Scan(&b.ID, &b.Slug, &b.Name, &b.Description, &b.Version, &b.CreatedAt, &b.UpdatedAt)
	b.CreatedAt, b.UpdatedAt = b.CreatedAt.UTC(), b.UpdatedAt.UTC()
	return b, err
}

// NewBoard is what an admin supplies to create a board.
type NewBoard struct {
	Name        string
	Slug        string
	Description string
}

var boardSlugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func (b *NewBoard) validate() error {
	fields := map[string]string{}
	if n := utf8.RuneCountInString(strings.TrimSpace(b.Name)); n < 1 || n > 100 {
		fields["name"] = "must be 1 to 100 characters"
	}
	if b.Slug == "" {
		b.Slug = slugify(b.Name)
	}
	if !boardSlugPattern.MatchString(b.Slug) {
		fields["slug"] = "must be lowercase letters, digits and dashes (1 to 64)"
	}
	if utf8.RuneCountInString(b.Description) > 1000 {
		fields["description"] = "must be at most 1000 characters"
	}
	if len(fields) > 0 {
		return Invalid(fields)
	}
	return nil
}

func slugify(name string) string {
	var sb strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			sb.WriteRune(r)
			dash = false
		case !dash && sb.Len() > 0:
			sb.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimSuffix(sb.String(), "-")
	if len(s) > 64 {
		s = strings.TrimSuffix(s[:64], "-")
	}
	return s
}

// CreateBoard adds a board (admins only) and announces it in the tenant room.
func (db *DB) CreateBoard(ctx context.Context, tenantID int64, actor Actor, nb NewBoard) (Board, error) {
	if actor.Role != RoleAdmin {
		return Board{}, Errorf(CodeForbidden, "only admins create boards")
	}
	if actor.Banned {
		return Board{}, errBanned
	}
	if err := nb.validate(); err != nil {
		return Board{}, err
	}
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Board, error) {
		var b Board
		rows, err := tx.Query(ctx, `
			INSERT INTO boards (tenant_id, slug, name, description) VALUES ($1, $2, $3, $4)
			RETURNING `+boardColumns, tenantID, nb.Slug, strings.TrimSpace(nb.Name), nb.Description)
		if err != nil {
			return b, mapErr(err, "board")
		}
		if b, err = pgx.CollectExactlyOneRow(rows, scanBoard); err != nil {
			return b, mapErr(err, "board")
		}
		_, err = publish(ctx, tx, tenantID, RoomTenant, "board.created", b)
		return b, err
	})
}

// ListBoards lists a tenant's boards in creation order.
func (db *DB) ListBoards(ctx context.Context, tenantID int64, p PageParams) (Page[Board], error) {
	var after int64
	if p.Cursor != "" {
		if err := decodeCursor(p.Cursor, &after); err != nil {
			return Page[Board]{}, err
		}
	}
	var items []Board
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+boardColumns+` FROM boards WHERE id > $1 ORDER BY id LIMIT $2`, after, p.Limit+1)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, scanBoard)
		return err
	})
	if err != nil {
		return Page[Board]{}, mapErr(err, "boards")
	}
	return page(items, p.Limit, func(b Board) any { return b.ID }), nil
}

// GetBoard reads one board.
func (db *DB) GetBoard(ctx context.Context, tenantID, boardID int64) (Board, error) {
	return inTenant(ctx, db, tenantID, func(tx *Tx) (Board, error) {
		return getBoard(ctx, tx, boardID)
	})
}

func getBoard(ctx context.Context, tx *Tx, boardID int64) (Board, error) {
	rows, err := tx.Query(ctx, `SELECT `+boardColumns+` FROM boards WHERE id = $1`, boardID)
	if err != nil {
		return Board{}, mapErr(err, "board")
	}
	b, err := pgx.CollectExactlyOneRow(rows, scanBoard)
	return b, mapErr(err, "board")
}
