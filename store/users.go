package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_]{3,32}$`)

const (
	sessionTTL = 30 * 24 * time.Hour
	// TicketTTL is how long a WebSocket ticket can wait to be redeemed.
	TicketTTL = 60 * time.Second
)

// userColumns and scanUser go together: every user read selects the same
// columns in the same order.
const userColumns = `u.id, u.username, u.email, u.role,
	u.banned_at IS NOT NULL AND (u.banned_until IS NULL OR u.banned_until > now()),
	u.ban_reason, u.banned_until, u.created_at`

func scanUser(row pgx.CollectableRow) (User, error) { return scanUserWith(row) }

// scanUserWith scans userColumns after any leading columns given in extra.
func scanUserWith(row pgx.Row, extra ...any) (User, error) {
	var u User
	dest := append(extra, &u.ID, &u.Username, &u.Email, &u.Role, &u.Banned, &u.BanReason, &u.BannedUntil, &u.CreatedAt)
	err := row.Scan(dest...)
	u.CreatedAt = u.CreatedAt.UTC()
	if u.BannedUntil != nil {
		t := u.BannedUntil.UTC()
		u.BannedUntil = &t
	}
	if !u.Banned {
		u.BanReason, u.BannedUntil = nil, nil
	}
	return u, err
}

// ActorOf is the Actor a user acts as.
func ActorOf(u User) Actor {
	return Actor{UserID: u.ID, Username: u.Username, Role: u.Role, Banned: u.Banned}
}

// Registration is what a new account supplies.
type Registration struct {
	Username string
	Password string
	Email    *string
}

func (r Registration) validate() error {
	fields := map[string]string{}
	if !usernamePattern.MatchString(r.Username) {
		fields["username"] = "must be 3 to 32 letters, digits or underscores"
	}
	if err := validatePassword(r.Password); err != "" {
		fields["password"] = err
	}
	if r.Email != nil && (len(*r.Email) > 254 || !utf8.ValidString(*r.Email) || !emailLooksValid(*r.Email)) {
		fields["email"] = "must be an email address"
	}
	if len(fields) > 0 {
		return Invalid(fields)
	}
	return nil
}

func validatePassword(p string) string {
	if n := utf8.RuneCountInString(p); n < 8 || n > 128 {
		return "must be 8 to 128 characters"
	}
	return ""
}

var emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func emailLooksValid(s string) bool { return emailPattern.MatchString(s) }

// Register creates an account and signs it in. The first account of a
// tenant becomes its admin; an advisory lock per tenant makes "first"
// exact when two people register at once.
func (db *DB) Register(ctx context.Context, tenantID int64, r Registration) (User, string, error) {
	if err := r.validate(); err != nil {
		return User{}, "", err
	}
	hash, err := db.hash(ctx, r.Password)
	if err != nil {
		return User{}, "", err
	}
	var u User
	var token string
	err = db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('agora.register'), $1::int)`, int32(tenantID)); err != nil {
			return mapErr(err, "user")
		}
		rows, err := tx.Query(ctx, `
			INSERT INTO users AS u (tenant_id, username, email, password_hash, role)
			VALUES ($1, $2, $3, $4,
			        CASE WHEN EXISTS (SELECT 1 FROM users) THEN 'member' ELSE 'admin' END)
			RETURNING `+userColumns, tenantID, r.Username, r.Email, hash)
		if err != nil {
			return mapErr(err, "username")
		}
		if u, err = pgx.CollectExactlyOneRow(rows, scanUser); err != nil {
			return mapErr(err, "username")
		}
		token, _, err = issueToken(ctx, tx, tenantID, u.ID, "session", nil, sessionTTL)
		return err
	})
	return u, token, err
}

// Login checks a password and issues a session token. Wrong password and
// unknown user give the same error after the same amount of hashing.
func (db *DB) Login(ctx context.Context, tenantID int64, username, password string) (User, string, error) {
	var u User
	var hash string
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		return tx.QueryRow(ctx, `SELECT u.id, u.password_hash FROM users u WHERE lower(u.username) = lower($1)`, username).
			Scan(&u.ID, &hash)
	})
	known := err == nil
	if err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			return User{}, "", mapErr(err, "user")
		}
		hash = db.dummyHash
	}
	ok, err := db.verify(ctx, hash, password)
	if err != nil {
		return User{}, "", err
	}
	if !known || !ok {
		return User{}, "", Errorf(CodeUnauthorized, "wrong username or password")
	}
	var token string
	err = db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		var err error
		if u, err = getUser(ctx, tx, u.ID); err != nil {
			return err
		}
		token, _, err = issueToken(ctx, tx, tenantID, u.ID, "session", nil, sessionTTL)
		return err
	})
	return u, token, err
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// Session is an authenticated bearer token.
type Session struct {
	TokenID int64
	User    User
}

// Authenticate resolves a bearer token to its user. Expired, revoked and
// foreign-tenant tokens are all simply unauthorized. While the bus
// listens, a session found is served from memory until a Control says
// otherwise (see sessionCache); failures are never cached.
func (db *DB) Authenticate(ctx context.Context, tenantID int64, token string) (Session, error) {
	key := newSessionKey(tenantID, token)
	s, epoch, ok := db.sessions.get(key)
	if ok {
		return s, nil
	}
	return db.lookupSession(ctx, key, epoch)
}

// lookupSession is Authenticate's database side (apart, so that a cache
// hit allocates nothing), storing what it finds unless epoch has passed.
func (db *DB) lookupSession(ctx context.Context, key sessionKey, epoch uint64) (Session, error) {
	// Every signed-in request that the cache does not answer comes
	// through here, so it takes one round trip: the tenant setting and
	// the lookup go as one pipelined batch, which Postgres runs as one
	// implicit transaction.
	//
	// left is how long the answer holds, by the database's clock: until
	// the token expires, or a temporary ban runs out. Counting it from
	// before the query keeps the cached copy from outliving it, whatever
	// the two clocks say.
	var s Session
	var left float64
	start := time.Now()
	err := db.rowTenant(ctx, key.tenantID, func(row pgx.Row) (err error) {
		s.User, err = scanUserWith(row, &s.TokenID, &left)
		return err
	}, `
		SELECT t.id,
		       extract(epoch FROM least(t.expires_at,
		               CASE WHEN u.banned_at IS NOT NULL AND u.banned_until > now() THEN u.banned_until END) - now())::float8,
		       `+userColumns+`
		FROM tokens t JOIN users u ON u.tenant_id = t.tenant_id AND u.id = t.user_id
		WHERE t.hash = $1 AND t.kind = 'session' AND t.revoked_at IS NULL AND t.expires_at > now()`,
		key.hash[:])
	err = mapErr(err, "token")
	if isNotFound(err) {
		return Session{}, Errorf(CodeUnauthorized, "invalid or expired token")
	}
	if err != nil {
		return Session{}, err
	}
	db.sessions.put(key, s, start.Add(time.Duration(left*float64(time.Second))), epoch)
	return s, nil
}

// Logout revokes one session token and closes the sockets opened with it.
func (db *DB) Logout(ctx context.Context, tenantID, tokenID int64) error {
	return db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, tokenID); err != nil {
			return mapErr(err, "token")
		}
		return notifyControl(ctx, tx, ControlRevoke, tenantID, tokenID)
	})
}

// CreateTicket issues a single-use WebSocket ticket for a signed-in user,
// tied to the session token that asked for it.
func (db *DB) CreateTicket(ctx context.Context, tenantID, userID, sessionTokenID int64) (string, time.Time, error) {
	var ticket string
	var expires time.Time
	err := db.WithTenant(ctx, tenantID, func(tx *Tx) error {
		var err error
		ticket, expires, err = issueToken(ctx, tx, tenantID, userID, "ticket", &sessionTokenID, TicketTTL)
		return err
	})
	return ticket, expires, err
}

// RedeemTicket consumes a ticket and returns the session it stands for,
// in one statement and one round trip: the UPDATE ... WHERE revoked_at IS
// NULL lets exactly one of two racing redeemers win (the loser's UPDATE
// waits for the winner's row lock, then finds the ticket used), and a
// ticket dies with its session.
func (db *DB) RedeemTicket(ctx context.Context, tenantID int64, ticket string) (Session, error) {
	var s Session
	err := inOneTrip(ctx, db, tenantID, func(tripArgs) (string, []any) {
		return redeemTicketSQL, []any{hashToken(ticket)}
	}, func(row pgx.Row) (_ []Notification, err error) {
		s.User, err = scanUserWith(row, &s.TokenID)
		return nil, err
	})
	err = mapErr(err, "ticket")
	if isNotFound(err) {
		return Session{}, Errorf(CodeUnauthorized, "invalid, used or expired ticket")
	}
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// redeemTicketSQL consumes a ticket and answers its session token's id and
// user. The ticket counts as used only once its one-trip transaction has
// committed, at the batch's end, after the row has come back.
const redeemTicketSQL = `
		WITH redeemed AS (
			UPDATE tokens t SET revoked_at = now()
			FROM tokens p
			WHERE t.hash = $1 AND t.kind = 'ticket' AND t.revoked_at IS NULL AND t.expires_at > now()
			  AND p.tenant_id = t.tenant_id AND p.id = t.parent_id
			  AND p.revoked_at IS NULL AND p.expires_at > now()
			RETURNING t.tenant_id, t.user_id, t.parent_id
		)
		SELECT r.parent_id, ` + userColumns + `
		FROM redeemed r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id`

// GetUser reads one user of the tenant.
func (db *DB) GetUser(ctx context.Context, tenantID, userID int64) (User, error) {
	return inTenant(ctx, db, tenantID, func(tx *Tx) (User, error) {
		return getUser(ctx, tx, userID)
	})
}

func getUser(ctx context.Context, tx *Tx, userID int64) (User, error) {
	rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, userID)
	if err != nil {
		return User{}, mapErr(err, "user")
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	return u, mapErr(err, "user")
}

// issueToken stores only a hash of a fresh random token: a leaked tokens
// table does not leak sessions.
func issueToken(ctx context.Context, tx *Tx, tenantID, userID int64, kind string, parentID *int64, ttl time.Duration) (string, time.Time, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, fmt.Errorf("read token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	var expires time.Time
	err := tx.QueryRow(ctx, `
		INSERT INTO tokens (tenant_id, user_id, kind, parent_id, hash, expires_at)
		VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
		RETURNING expires_at`, tenantID, userID, kind, parentID, hashToken(token), ttl).Scan(&expires)
	if err != nil {
		return "", time.Time{}, mapErr(err, "token")
	}
	return token, expires.UTC(), nil
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
