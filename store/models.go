package store

import (
	"encoding/json"
	"time"
)

// Role is a user's standing in one tenant.
type Role string

const (
	RoleMember    Role = "member"
	RoleModerator Role = "moderator"
	RoleAdmin     Role = "admin"
)

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool {
	return r == RoleMember || r == RoleModerator || r == RoleAdmin
}

// Moderates reports whether r may see hidden content and moderate.
func (r Role) Moderates() bool { return r == RoleModerator || r == RoleAdmin }

// Actor is who performs a store call. The zero Actor is an anonymous reader.
type Actor struct {
	UserID   int64
	Username string
	Role     Role
	Banned   bool
}

// Anonymous reports whether no user is signed in.
func (a Actor) Anonymous() bool { return a.UserID == 0 }

// Moderates reports whether a may see hidden content and moderate.
func (a Actor) Moderates() bool { return !a.Anonymous() && a.Role.Moderates() }

// IDs are int64 in Go and strings in JSON: JavaScript numbers lose bigint
// precision, and the contract promises opaque strings.

type Tenant struct {
	ID        int64     `json:"id,string"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	Public    bool      `json:"public"`
	CreatedAt time.Time `json:"created_at"`
}

type UserRef struct {
	ID       int64  `json:"id,string"`
	Username string `json:"username"`
}

type User struct {
	ID          int64      `json:"id,string"`
	Username    string     `json:"username"`
	Email       *string    `json:"email,omitempty"`
	Role        Role       `json:"role"`
	Banned      bool       `json:"banned"`
	BanReason   *string    `json:"ban_reason,omitempty"`
	BannedUntil *time.Time `json:"banned_until,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

type Board struct {
	ID          int64     `json:"id,string"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

type Post struct {
	ID             int64     `json:"id,string"`
	BoardID        int64     `json:"board_id,string"`
	Author         UserRef   `json:"author"`
	Title          string    `json:"title"`
	Body           string    `json:"body"`
	BodyHTML       string    `json:"body_html"`
	Version        int       `json:"version"`
	CommentCount   int       `json:"comment_count"`
	Locked         bool      `json:"locked"`
	Pinned         bool      `json:"pinned"`
	Hidden         bool      `json:"hidden"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	LastActivityAt time.Time `json:"last_activity_at"`
	// EditedAt is the last change of title or body; nil until one.
	EditedAt *time.Time `json:"edited_at"`
	// Reactions counts each kind that has any (empty, never nil).
	Reactions map[string]int `json:"reactions"`
	// The signed-in reader's own state; nil (absent) for anonymous
	// readers and in events, which everyone shares.
	*PostReading
}

type Comment struct {
	ID        int64     `json:"id,string"`
	PostID    int64     `json:"post_id,string"`
	ReplyTo   *int64    `json:"reply_to,string"` // the comment of the same post it answers; nil: none (or deleted since)
	Author    UserRef   `json:"author"`
	Body      string    `json:"body"`
	BodyHTML  string    `json:"body_html"`
	Version   int       `json:"version"`
	Hidden    bool      `json:"hidden"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// EditedAt is the last change of the body; nil until one.
	EditedAt *time.Time `json:"edited_at"`
	// Reactions counts each kind that has any (empty, never nil).
	Reactions map[string]int `json:"reactions"`
	// MyReactions are the signed-in reader's kinds; nil (absent) for
	// anonymous readers and in events.
	MyReactions []string `json:"my_reactions,omitzero"`
}

// Revision is one text a post or comment has had, oldest first: the
// original, then one per change of title or body. Version is the object's
// version once that text was saved; EditedBy wrote it.
type Revision struct {
	Version int `json:"version"`
	// Title is set for posts only.
	Title    *string   `json:"title,omitempty"`
	Body     string    `json:"body"`
	EditedBy UserRef   `json:"edited_by"`
	EditedAt time.Time `json:"edited_at"`
}

// Diff is the payload of an *.updated event: only the fields that changed.
type Diff struct {
	ID      int64          `json:"id,string"`
	Version int            `json:"version"`
	Changes map[string]any `json:"changes"`
}

// fieldChanges collects the fields of an object that a write changed, for
// the Changes of its *.updated event.
type fieldChanges map[string]any

// note records field with its new value when it changed, and says whether
// it did.
func (c fieldChanges) note(field string, changed bool, value any) bool {
	if changed {
		c[field] = value
	}
	return changed
}

// Deleted is the payload of a *.deleted event.
type Deleted struct {
	ID int64 `json:"id,string"`
}

// Event is one row of the outbox: a committed change in one room.
type Event struct {
	TenantID  int64
	Room      string
	Seq       int64
	Type      string
	Payload   json.RawMessage
	CreatedAt time.Time
	// Hidden: the post or comment the event is about is hidden now, so
	// members must not see its text.
	Hidden bool
	// TraceParent is the W3C traceparent of the transaction that wrote the
	// event ("" when it was not traced).
	TraceParent string
}

// Page is one page of a keyset-paginated list.
type Page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}
