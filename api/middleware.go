package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"agora/store"
)

// Keys of the request-scoped values middleware leaves for handlers.
const (
	keyTenant  = "agora.tenant"
	keyActor   = "agora.actor"
	keyTokenID = "agora.token_id"
)

// requestID echoes a sane client X-Request-Id or makes one, and gives the
// request a logger that carries it.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			b := make([]byte, 12)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		c.Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// validRequestID keeps log lines safe from whatever a client sends.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// accessLog logs one line per request and puts a request logger into the
// request context, which later middleware enrich with tenant and user.
// The path is logged without its query: a WebSocket ticket travels there.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		id, _ := c.Get(echo.HeaderXRequestID).(string)
		lc := s.cfg.Log.With().Str("request_id", id)
		if sc := trace.SpanContextFromContext(req.Context()); sc.IsValid() {
			lc = lc.Str("trace_id", sc.TraceID().String())
		}
		logger := lc.Logger()
		c.SetRequest(req.WithContext(logger.WithContext(req.Context())))

		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := zerolog.InfoLevel
		switch {
		case status >= 500:
			level = zerolog.ErrorLevel
		case status >= 400:
			level = zerolog.WarnLevel
		}
		// The context logger: by now it carries tenant and user too.
		zerolog.Ctx(c.Request().Context()).WithLevel(level).Str("method", req.Method).
			Str("path", req.URL.Path).
			Str("route", c.Path()).
			Int("status", status).
			Int64("bytes_out", c.Response().Size).
			Dur("latency", time.Since(start)).
			Str("remote_ip", c.RealIP()).
			Msg("request")
		return nil
	}
}

// recoverPanic turns a panic into a logged 500 with the error envelope.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				zerolog.Ctx(c.Request().Context()).Error().
					Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("handler panicked")
				err = apiError(codeInternal, "internal error")
			}
		}()
		return next(c)
	}
}

// requireAdminToken guards the platform endpoints. With no token
// configured they do not exist.
func (s *Server) requireAdminToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.AdminToken == "" {
			return apiError(store.CodeNotFound, "not found")
		}
		tok, ok := bearer(c)
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
			return apiError(store.CodeUnauthorized, "operator token required")
		}
		return next(c)
	}
}

// resolveTenant maps {tenant} to a tenant; unknown slugs are 404.
func (s *Server) resolveTenant(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t, err := s.cfg.Store.TenantBySlug(c.Request().Context(), c.Param("tenant"))
		if err != nil {
			return err
		}
		c.Set(keyTenant, t)
		zerolog.Ctx(c.Request().Context()).UpdateContext(func(l zerolog.Context) zerolog.Context {
			return l.Str("tenant", t.Slug)
		})
		return next(c)
	}
}

// authenticate resolves a bearer token, if any, to the acting user. No
// header means an anonymous reader; a bad token is 401, never anonymous.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Header.Get(echo.HeaderAuthorization) == "" {
			c.Set(keyActor, store.Actor{})
			return next(c)
		}
		tok, ok := bearer(c)
		if !ok {
			return apiError(store.CodeUnauthorized, "Authorization must be: Bearer <token>")
		}
		sess, err := s.cfg.Store.Authenticate(c.Request().Context(), tenantOf(c).ID, tok)
		if err != nil {
			return err
		}
		s.setUser(c, sess.User, sess.TokenID)
		return next(c)
	}
}

func (s *Server) setUser(c echo.Context, u store.User, tokenID int64) {
	c.Set(keyActor, store.ActorOf(u))
	c.Set(keyTokenID, tokenID)
	zerolog.Ctx(c.Request().Context()).UpdateContext(func(l zerolog.Context) zerolog.Context {
		return l.Str("user", u.Username)
	})
}

func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// requireUser refuses anonymous callers.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if actorOf(c).Anonymous() {
			return apiError(store.CodeUnauthorized, "sign in first")
		}
		return next(c)
	}
}

// requireReader lets anyone read a public tenant; a private one needs a
// signed-in, unbanned member.
func (s *Server) requireReader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if tenantOf(c).Public {
			return next(c)
		}
		a := actorOf(c)
		if a.Anonymous() {
			return apiError(store.CodeUnauthorized, "sign in first")
		}
		if a.Banned {
			return apiError(store.CodeForbidden, "you are banned")
		}
		return next(c)
	}
}

func tenantOf(c echo.Context) store.Tenant { t, _ := c.Get(keyTenant).(store.Tenant); return t }
func actorOf(c echo.Context) store.Actor   { a, _ := c.Get(keyActor).(store.Actor); return a }
func tokenIDOf(c echo.Context) int64       { id, _ := c.Get(keyTokenID).(int64); return id }
