package api

// Safe retries (API.md, Conventions; docs/api.md, "Safe retries"): a POST
// that carries an Idempotency-Key runs once, and a retry with the same key
// gets the first answer again.
//
// How a keyed request runs. The middleware claims the key in a short
// transaction of its own, committed before the handler runs, so that a
// concurrent request with the same key finds it taken (409) instead of
// running too. The handler then writes in its own transaction as it always
// does, and that same transaction marks the key applied (the request's
// context carries the claim; see store.WithIdempotencyClaim): the write and
// "this key was used" commit or vanish together. The answer exists only
// once the handler has rendered it, after its transaction, so it is
// recorded afterwards. If the server dies, or loses the database, between
// the commit and recording the answer, the claim stays applied without an
// answer: retries get 409 while its lease (idempotencyLease) runs, and then
// a 409 that says the answer was lost. A retry never runs a committed write
// again. A claim that was never applied (the request failed or its server
// died before writing) is taken over after the lease, and a request whose
// lease was taken over cannot record its answer over the new holder's.
//
// The database never sees the key itself. Everything stored is derived
// from it (HMAC-SHA256 with the key as the secret): the row's name, the
// request's fingerprint, and the AES-GCM key that seals the answer. So the
// table gives a reader nothing to replay: a registration's answer carries a
// session token, which Agora otherwise keeps only as a hash.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"agora/store"
)

const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
	maxIdempotencyKeyLen = 200
	// idempotencyTTL is how long a key is remembered (API.md: 24 h).
	idempotencyTTL = 24 * time.Hour
	// idempotencyLease is how long a claim without an answer holds its
	// key: far longer than a request can run (a statement times out after
	// 5 s, an idle transaction after 30 s), so only a request whose server
	// died loses its key to a retry.
	idempotencyLease = time.Minute
	// recordTimeout bounds recording an answer, which must not depend on
	// the client still being there: a client that gave up is the one that
	// will retry.
	recordTimeout = 5 * time.Second

	// The two POSTs whose key is not the signed-in user's.
	registerRoute = "/api/v1/t/:tenant/auth/register"
	loginRoute    = "/api/v1/t/:tenant/auth/login"
)

// idempotent makes keyed POSTs safe to retry. It runs after authentication
// and before the per-route limits, so a replay costs no rate-limit token.
func (s *Server) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		keys, sent := req.Header[headerIdempotencyKey]
		if req.Method != http.MethodPost || !sent {
			return next(c)
		}
		scope := idempotencyScope(c)
		if scope == "" {
			return next(c)
		}
		if len(keys) != 1 || !validIdempotencyKey(keys[0]) {
			return apiError(store.CodeBadRequest, "Idempotency-Key must be sent once, as 1 to 200 printable ASCII characters")
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			var he *echo.HTTPError
			if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
				return apiError(codeTooLarge, "request body is larger than 1 MiB")
			}
			return apiError(store.CodeBadRequest, "could not read the request body")
		}
		req.Body = io.NopCloser(bytes.NewReader(body))

		kr := newKeyedRequest(keys[0], scope, req.Method, req.URL.Path, body)
		tenantID := tenantOf(c).ID
		use, err := s.cfg.Store.ClaimIdempotencyKey(req.Context(), tenantID, kr.key, idempotencyTTL, idempotencyLease)
		if err != nil {
			return err
		}
		switch {
		case use.Claimed:
			return s.runKeyed(c, next, tenantID, kr)
		case !hmac.Equal(use.Request, kr.key.Request):
			return apiError(store.CodeConflict, "this Idempotency-Key was already used for a different request")
		case use.Lost:
			return apiError(store.CodeConflict, "the request with this Idempotency-Key was carried out, but its answer was lost: read the result instead of retrying")
		case use.Response == nil:
			// Retry-After tells this 409 apart from the others: only this
			// one goes away by waiting.
			c.Response().Header().Set("Retry-After", "1")
			return apiError(store.CodeConflict, "a request with this Idempotency-Key is still running; retry in a moment")
		}
		return kr.replay(c, *use.Response)
	}
}

// idempotencyScope says whose key this is: the signed-in user's, or for a
// registration the client address's. "" means the header is ignored
// (auth/login, and anonymous callers, which the route refuses anyway).
func idempotencyScope(c echo.Context) string {
	switch c.Path() {
	case loginRoute:
		return ""
	case registerRoute:
		return "address:" + c.RealIP()
	}
	if a := actorOf(c); !a.Anonymous() {
		return "user:" + strconv.FormatInt(a.UserID, 10)
	}
	return ""
}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// runKeyed runs the handler holding the key and records its answer.
func (s *Server) runKeyed(c echo.Context, next echo.HandlerFunc, tenantID int64, kr keyedRequest) error {
	req := c.Request()
	c.SetRequest(req.WithContext(store.WithIdempotencyClaim(req.Context(), tenantID, kr.key)))
	res := c.Response()
	tee := &teeWriter{ResponseWriter: res.Writer}
	res.Writer = tee
	answered := false
	defer func() {
		res.Writer = tee.ResponseWriter
		if !answered { // the handler panicked: recoverPanic answers 500, which is not kept
			s.settleKey(c, tenantID, kr, 0, nil)
		}
	}()
	if err := next(c); err != nil {
		c.Error(err) // render the error now, so that it can be recorded
	}
	answered = true
	s.settleKey(c, tenantID, kr, res.Status, tee.body.Bytes())
	return nil
}

// settleKey records a kept answer, or gives the key up for any other.
func (s *Server) settleKey(c echo.Context, tenantID int64, kr keyedRequest, status int, body []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), recordTimeout)
	defer cancel()
	var err error
	if keptAnswer(status) {
		err = s.cfg.Store.RecordIdempotentResponse(ctx, tenantID, kr.key, store.IdempotentResponse{
			Status:      status,
			ContentType: c.Response().Header().Get(echo.HeaderContentType),
			Body:        kr.sealAnswer(body),
		})
	} else {
		err = s.cfg.Store.ReleaseIdempotencyKey(ctx, tenantID, kr.key)
	}
	if err != nil {
		// The answer is on its way to the client regardless; the claim
		// stays without one until its lease runs out.
		zerolog.Ctx(ctx).Warn().Err(err).Int("status", status).Msg("settle idempotency key")
	}
}

// keptAnswer says which answers a retry replays: successes and client
// errors, but not a 429 (the limit may have passed by the retry) nor a
// server error (nothing was done; the retry runs again).
func keptAnswer(status int) bool {
	return status >= 200 && status < 300 ||
		status >= 400 && status < 500 && status != http.StatusTooManyRequests
}

// teeWriter passes the answer through and keeps a copy to record.
type teeWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// keyedRequest is what is derived from one request's Idempotency-Key.
type keyedRequest struct {
	key  store.IdempotencyKey
	aead cipher.AEAD
}

func newKeyedRequest(key, scope, method, path string, body []byte) keyedRequest {
	derive := func(label string, parts ...[]byte) []byte {
		m := hmac.New(sha256.New, []byte(key))
		writePart(m, []byte(label))
		for _, p := range parts {
			writePart(m, p)
		}
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(derive("agora answer seal", []byte(scope)))
	if err != nil {
		panic(err) // a 32-byte key is always valid for AES-256
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err) // the standard nonce size is always supported
	}
	claim := make([]byte, 16)
	_, _ = rand.Read(claim)
	return keyedRequest{
		key: store.IdempotencyKey{
			Hash:    derive("agora key", []byte(scope)),
			Request: derive("agora request", []byte(method), []byte(path), body),
			Claim:   claim,
		},
		aead: aead,
	}
}

// writePart writes p length-prefixed, so that no two different lists of
// parts hash alike.
func writePart(h hash.Hash, p []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(p)))
	h.Write(n[:])
	h.Write(p)
}

// sealAnswer encrypts an answer body, bound to its request: nonce, then
// ciphertext.
func (kr keyedRequest) sealAnswer(body []byte) []byte {
	nonce := make([]byte, kr.aead.NonceSize(), kr.aead.NonceSize()+len(body)+kr.aead.Overhead())
	_, _ = rand.Read(nonce)
	return kr.aead.Seal(nonce, nonce, body, kr.key.Request)
}

func (kr keyedRequest) openAnswer(sealed []byte) ([]byte, error) {
	n := kr.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed answer too short")
	}
	return kr.aead.Open(nil, sealed[:n], sealed[n:], kr.key.Request)
}

// replay sends the recorded answer again.
func (kr keyedRequest) replay(c echo.Context, r store.IdempotentResponse) error {
	body, err := kr.openAnswer(r.Body)
	if err != nil {
		return fmt.Errorf("open recorded answer: %w", err)
	}
	c.Response().Header().Set(headerReplayed, "true")
	if r.ContentType == "" {
		return c.NoContent(r.Status)
	}
	return c.Blob(r.Status, r.ContentType, body)
}
