package store

import (
	"encoding/base64"
	"encoding/json"
)

// PageParams asks for one page of a list. Limit is already validated by
// the caller (1..MaxLimit); Cursor is "" for the first page.
type PageParams struct {
	Limit  int
	Cursor string
}

const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// Cursors are the keyset position of the last item, as base64url JSON: opaque
// to clients, and a tampered one can at worst start the list elsewhere
// within the caller's own tenant.
func encodeCursor(key any) *string {
	b, err := json.Marshal(key)
	if err != nil {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString(b)
	return &s
}

func decodeCursor(s string, key any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, key)
	}
	if err != nil {
		return Errorf(CodeBadRequest, "invalid cursor")
	}
	return nil
}

// page trims a result fetched with limit+1 rows and sets the next cursor
// from the last kept item.
func page[T any](items []T, limit int, key func(T) any) Page[T] {
	p := Page[T]{Items: items}
	if p.Items == nil {
		p.Items = []T{}
	}
	if len(items) > limit {
		p.Items = items[:limit]
		p.NextCursor = encodeCursor(key(p.Items[limit-1]))
	}
	return p
}
