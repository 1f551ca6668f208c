package store

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// phc matches the argon2id PHC string and captures m, t, p, salt and key.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$`)

// TestPasswordHashStored reads what Register really stored and checks the
// argon2id parameters against OWASP's minimum (m >= 19 MiB, t >= 2, p = 1).
func TestPasswordHashStored(t *testing.T) {
	db, _ := openDB(t, Config{Hasher: DefaultHasher()})
	ctx := testCtx(t)
	tenant, err := db.CreateTenant(ctx, "hashes", "Hashes")
	if err != nil {
		t.Fatal(err)
	}
	alice, _, err := db.Register(ctx, tenant.ID, Registration{Username: "alice", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := db.Register(ctx, tenant.ID, Registration{Username: "bob", Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	stored := func(userID int64) string {
		var h string
		err := db.WithTenant(ctx, tenant.ID, func(tx *Tx) error {
			return tx.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, userID).Scan(&h)
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	ha, hb := stored(alice.ID), stored(bob.ID)
	if ha == hb {
		t.Errorf("two users with the same password got the same hash: no salt?")
	}
	for _, h := range []string{ha, hb} {
		if strings.Contains(h, testPassword) {
			t.Fatalf("the stored hash contains the password")
		}
		m := phc.FindStringSubmatch(h)
		if m == nil {
			t.Fatalf("stored hash %q is not an argon2id v19 PHC string", h)
		}
		mem, _ := strconv.Atoi(m[1])
		passes, _ := strconv.Atoi(m[2])
		lanes, _ := strconv.Atoi(m[3])
		if mem < 19456 || passes < 2 || lanes != 1 {
			t.Errorf("argon2id m=%d t=%d p=%d; want m >= 19456, t >= 2, p = 1", mem, passes, lanes)
		}
		salt, err1 := base64.RawStdEncoding.DecodeString(m[4])
		key, err2 := base64.RawStdEncoding.DecodeString(m[5])
		if err1 != nil || err2 != nil || len(salt) < 16 || len(key) < 32 {
			t.Errorf("salt %d bytes, key %d bytes (%v, %v); want >= 16 and >= 32", len(salt), len(key), err1, err2)
		}
		if ok, err := Verify(h, testPassword); !ok || err != nil {
			t.Errorf("Verify(stored, right password) = %v, %v", ok, err)
		}
		if ok, err := Verify(h, testPassword+"!"); ok || err != nil {
			t.Errorf("Verify(stored, wrong password) = %v, %v", ok, err)
		}
	}
	// The dummy hash that unknown usernames are checked against costs the
	// same as a real one.
	if d, u := phc.FindStringSubmatch(db.dummyHash), phc.FindStringSubmatch(ha); d == nil || d[1] != u[1] || d[2] != u[2] || d[3] != u[3] {
		t.Errorf("dummy hash %q has other parameters than a user's %q", db.dummyHash, ha)
	}

	h := DefaultHasher()
	t0 := time.Now()
	if _, err := h.Hash(testPassword); err != nil {
		t.Fatal(err)
	}
	t.Logf("one argon2id hash with the production parameters took %v", time.Since(t0))
}

func TestPasswordRules(t *testing.T) {
	db, _ := openDB(t, Config{})
	ctx := testCtx(t)
	tenant, err := db.CreateTenant(ctx, "rules", "Rules")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]Registration{
		"short password":     {Username: "carol", Password: "1234567"},
		"long password":      {Username: "carol", Password: strings.Repeat("x", 129)},
		"short username":     {Username: "ca", Password: testPassword},
		"username with dash": {Username: "car-ol", Password: testPassword},
		"bad email":          {Username: "carol", Password: testPassword, Email: ptr("not an email")},
	} {
		if _, _, err := db.Register(ctx, tenant.ID, r); !errors.Is(err, &Error{Code: CodeInvalid}) {
			t.Errorf("%s: %v, want unprocessable", name, err)
		}
	}
	// 128 characters, multi-byte: allowed (the limit counts characters).
	long := strings.Repeat("é", 128)
	u, _, err := db.Register(ctx, tenant.ID, Registration{Username: "carol", Password: long})
	if err != nil {
		t.Fatalf("128-character password: %v", err)
	}
	if _, _, err := db.Login(ctx, tenant.ID, "CAROL", long); err != nil {
		t.Errorf("login with another case of the username: %v", err)
	}
	if _, _, err := db.Register(ctx, tenant.ID, Registration{Username: "Carol", Password: testPassword}); !errors.Is(err, ErrConflict) {
		t.Errorf("username differing only in case: %v, want conflict", err)
	}
	if _, _, err := db.Login(ctx, tenant.ID, u.Username, long[:len(long)-2]); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong password: %v, want unauthorized", err)
	}
}

func TestVerifyRejectsGarbage(t *testing.T) {
	for _, h := range []string{"", "plain", "$2a$12$abc", "$argon2id$v=18$m=19456,t=2,p=1$c2FsdA$a2V5",
		"$argon2id$v=19$m=x,t=2,p=1$c2FsdA$a2V5", "$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5"} {
		if ok, err := Verify(h, "password"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want an error", h, ok, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestHashSlots: with every hashing slot taken, a login queues for at most
// HashWait and is then refused as unavailable without hashing; once a slot
// frees it goes through, and no more than the slots ever hash at once.
func TestHashSlots(t *testing.T) {
	const wait = 200 * time.Millisecond
	db, _ := openDB(t, Config{HashConcurrency: 2, HashWait: wait})
	ctx := testCtx(t)
	tenant, err := db.CreateTenant(ctx, "slots", "Slots")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Register(ctx, tenant.ID, Registration{Username: "alice", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
	if s := db.HashStats(); s.Slots != 2 || s.Hashes != 1 || s.Running != 0 {
		t.Fatalf("after one registration: %+v, want 2 slots, 1 hash, none running", s)
	}

	// Occupy both slots the way two long hashes would.
	release := make(chan struct{})
	holding := make(chan struct{}, 2)
	held := make(chan error, 2)
	for range 2 {
		go func() {
			held <- db.hashes.run(ctx, func() error { holding <- struct{}{}; <-release; return nil })
		}()
	}
	<-holding
	<-holding
	t0 := time.Now()
	_, _, err = db.Login(ctx, tenant.ID, "alice", testPassword)
	took := time.Since(t0)
	if !errors.Is(err, &Error{Code: CodeUnavailable}) {
		t.Fatalf("login with every slot taken: %v, want unavailable", err)
	}
	if took < wait || took > wait+5*time.Second {
		t.Errorf("refused after %v, want after the %v wait", took, wait)
	}
	if s := db.HashStats(); s.Refused != 1 || s.Hashes != 3 || s.Running != 2 {
		t.Errorf("after the refusal: %+v, want 1 refused, 3 hashes (the registration and the two holders), 2 running", s)
	}

	close(release)
	for range 2 {
		if err := <-held; err != nil {
			t.Errorf("holder: %v", err)
		}
	}
	if _, _, err := db.Login(ctx, tenant.ID, "alice", testPassword); err != nil {
		t.Errorf("login once the slots are free: %v", err)
	}

	// A caller that queues gets the slot a finished hash leaves.
	g := newHashGate(1, time.Minute)
	release = make(chan struct{})
	go func() { _ = g.run(ctx, func() error { holding <- struct{}{}; <-release; return nil }) }()
	<-holding
	queued := make(chan error, 1)
	go func() { queued <- g.run(ctx, func() error { return nil }) }()
	select {
	case err := <-queued:
		t.Fatalf("ran while the only slot was held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-queued; err != nil {
		t.Errorf("queued caller: %v", err)
	}
}
