// Package api is Agora's HTTP face: the Echo server, its middleware, the
// REST handlers of the public contract, and the one place where errors
// become status codes.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"agora/store"
)

// WebSocket is what the REST layer needs of the realtime side: once the
// tenant and the caller are known, take over the request and upgrade it.
// The api package never imports melody.
type WebSocket interface {
	ServeWS(w http.ResponseWriter, r *http.Request, tenant store.Tenant, actor store.Actor, tokenID int64)
}

// Check is a readiness probe; nil means ready.
type Check func(ctx context.Context) error

// Config holds the server's dependencies.
type Config struct {
	Store *store.DB
	Log   zerolog.Logger
	// AdminToken guards the platform endpoints; empty disables them (404).
	AdminToken string
	// WebSocket serves /api/v1/t/{tenant}/ws; nil: the route is absent.
	WebSocket WebSocket
	// Ready lists what /readyz checks besides the database.
	Ready map[string]Check
	// Web serves everything outside /api (the forum UI); nil: 404.
	Web http.Handler
	// Metrics serves /metrics; nil: the route is absent.
	Metrics http.Handler
	// Middleware runs first on every request (metrics instrumentation).
	Middleware []echo.MiddlewareFunc
	// RateLimits limits writes and login attempts (zero value: defaults).
	RateLimits RateLimits
	// TenantQuota shares the write path among tenants (zero value: none).
	TenantQuota TenantQuota
	// Tracer gives each request a span; nil: no tracing.
	Tracer trace.TracerProvider
}

// Server is the configured Echo application.
type Server struct {
	cfg    Config
	echo   *echo.Echo
	limits *limiters
	quota  *quota
	// openapi is the rendered OpenAPI document.
	openapi []byte
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = handleError
	// Client addresses (logs, per-IP limits) come from the TCP peer unless
	// the operator named trusted proxies: X-Forwarded-For is forgeable.
	if cfg.RateLimits.ClientIP == nil {
		cfg.RateLimits.ClientIP = echo.ExtractIPDirect()
	}
	e.IPExtractor = cfg.RateLimits.ClientIP
	s := &Server{cfg: cfg, echo: e, limits: newLimiters(cfg.RateLimits), quota: newQuota(cfg.TenantQuota), openapi: renderOpenAPI()}

	e.Use(cfg.Middleware...)
	e.Use(requestID)
	if cfg.Tracer != nil {
		// Before the access log, so that its lines carry the trace id.
		e.Use(tracing(cfg.Tracer))
	}
	e.Use(s.accessLog, s.recoverPanic)
	e.Use(middleware.BodyLimit("1MiB"))

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	if cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics))
	}

	v1 := e.Group("/api/v1")
	v1.GET("/openapi.json", s.openAPI)
	platform := v1.Group("", s.requireAdminToken)
	platform.POST("/tenants", s.createTenant)
	platform.GET("/tenants", s.listTenants)

	t := v1.Group("/t/:tenant", s.tenantQuota, s.resolveTenant, s.authenticate, s.idempotent)
	t.POST("/auth/register", s.register, s.limitRegistration)
	t.POST("/auth/login", s.login, s.limitLogin)
	t.POST("/auth/logout", s.logout, requireUser)
	t.GET("/me", s.me, requireUser)
	t.POST("/ws/ticket", s.wsTicket, requireUser)
	if cfg.WebSocket != nil {
		t.GET("/ws", s.websocket)
	}

	r := t.Group("", s.requireReader)
	r.GET("/boards", s.listBoards)
	r.POST("/boards", s.createBoard, requireUser)
	r.GET("/boards/:board/posts", s.listPosts)
	r.POST("/boards/:board/posts", s.createPost, requireUser, s.limitUser(s.limits.posts))
	r.GET("/posts/:post", s.getPost)
	r.PATCH("/posts/:post", s.updatePost, requireUser, s.limitUser(s.limits.edits))
	r.DELETE("/posts/:post", s.deletePost, requireUser, s.limitUser(s.limits.edits))
	r.GET("/posts/:post/comments", s.listComments)
	r.POST("/posts/:post/comments", s.createComment, requireUser, s.limitUser(s.limits.comments))
	r.PATCH("/comments/:comment", s.updateComment, requireUser, s.limitUser(s.limits.edits))
	r.DELETE("/comments/:comment", s.deleteComment, requireUser, s.limitUser(s.limits.edits))
	r.GET("/posts/:post/revisions", s.listPostRevisions)
	r.GET("/comments/:comment/revisions", s.listCommentRevisions)
	r.GET("/search", s.search)
	s.reactionRoutes(r)
	s.readRoutes(r)
	s.modRoutes(t, r)
	s.peopleRoutes(t, r)

	if cfg.Web != nil {
		e.GET("/*", echo.WrapHandler(cfg.Web))
	}
	return s
}

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Routes lists the registered method and path pairs (for the OpenAPI test).
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }

// NewHTTPServer wraps a handler with the timeouts a public server needs.
// WriteTimeout stays 0: WebSocket connections are long-lived and keep their
// own deadlines.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{}
	ready := true
	check := func(name string, err error) {
		status[name] = "ok"
		if err != nil {
			// Details go to the log, not to whoever polls the probe.
			zerolog.Ctx(ctx).Warn().Err(err).Str("check", name).Msg("not ready")
			status[name] = "unavailable"
			ready = false
		}
	}
	check("database", s.cfg.Store.Ping(ctx))
	for name, fn := range s.cfg.Ready {
		check(name, fn(ctx))
	}
	if !ready {
		return c.JSON(http.StatusServiceUnavailable, status)
	}
	return c.JSON(http.StatusOK, status)
}
