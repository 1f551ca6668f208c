package store

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Hasher hashes passwords with argon2id and writes the PHC string format, so
// parameters can be raised later and old hashes still verify.
type Hasher struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultHasher follows OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane).
func DefaultHasher() Hasher { return Hasher{MemoryKiB: 19 * 1024, Time: 2, Threads: 1} }

const (
	saltLen = 16
	keyLen  = 32
)

// Hash returns a PHC-formatted argon2id hash of password.
func (h Hasher) Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, h.Time, h.MemoryKiB, h.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.MemoryKiB, h.Time, h.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether password matches the PHC hash. It uses the
// parameters stored in the hash, not the Hasher's.
func Verify(hash, password string) (bool, error) {
	p, salt, key, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

func parsePHC(s string) (Hasher, []byte, []byte, error) {
	var h Hasher
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return h, nil, nil, errors.New("password hash: not an argon2id PHC string")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return h, nil, nil, fmt.Errorf("password hash: unsupported version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.MemoryKiB, &h.Time, &h.Threads); err != nil {
		return h, nil, nil, fmt.Errorf("password hash: parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return h, nil, nil, fmt.Errorf("password hash: salt: %w", err)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return h, nil, nil, fmt.Errorf("password hash: key: %w", err)
	}
	return h, salt, key, nil
}

// hashGate bounds how many argon2id computations run at once. Each holds
// its MemoryKiB for the whole computation and keeps a core busy, so running
// more at once than there are cores only adds memory, never throughput: 64
// concurrent logins would take 1.2 GiB at the default parameters.
// Callers beyond the limit queue for at most wait, then are told the
// server is busy instead of queueing without end.
type hashGate struct {
	slots chan struct{}
	wait  time.Duration

	ran, refused atomic.Int64
}

func newHashGate(slots int, wait time.Duration) *hashGate {
	if slots <= 0 {
		slots = runtime.NumCPU()
	}
	if wait <= 0 {
		wait = 3 * time.Second
	}
	return &hashGate{slots: make(chan struct{}, slots), wait: wait}
}

// errHashBusy is returned when no hashing slot freed up in time.
var errHashBusy = &Error{Code: CodeUnavailable, Message: "the server is busy checking passwords; try again"}

// run calls fn once a slot is free.
func (g *hashGate) run(ctx context.Context, fn func() error) error {
	select {
	case g.slots <- struct{}{}:
	default:
		// Only a caller that must queue pays for a timer.
		t := time.NewTimer(g.wait)
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-t.C:
			g.refused.Add(1)
			return errHashBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-g.slots }()
	g.ran.Add(1)
	return fn()
}

// HashStats counts password hashing since Open.
type HashStats struct {
	// Hashes counts argon2id computations (registrations and password
	// checks, a login for an unknown username included).
	Hashes int64
	// Refused counts those refused because no slot freed up in time.
	Refused int64
	// Running is how many run now; Slots is how many may.
	Running, Slots int
}

// HashStats reports the password hashing counters.
func (db *DB) HashStats() HashStats {
	g := db.hashes
	return HashStats{Hashes: g.ran.Load(), Refused: g.refused.Load(), Running: len(g.slots), Slots: cap(g.slots)}
}

// hash hashes a new password in a hashing slot.
func (db *DB) hash(ctx context.Context, password string) (string, error) {
	var h string
	err := db.hashes.run(ctx, func() error {
		var err error
		h, err = db.hasher.Hash(password)
		return err
	})
	return h, err
}

// verify checks a password against its hash in a hashing slot.
func (db *DB) verify(ctx context.Context, hash, password string) (bool, error) {
	var ok bool
	err := db.hashes.run(ctx, func() error {
		var err error
		ok, err = Verify(hash, password)
		return err
	})
	return ok, err
}
