package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// The moderation actions each have a route of their own (POST
// mod/posts/{post}/lock ...), in the order API.md lists them.
func postModActions() []string {
	return []string{store.ActionLock, store.ActionUnlock, store.ActionPin, store.ActionUnpin, store.ActionHide, store.ActionUnhide}
}

func commentModActions() []string { return []string{store.ActionHide, store.ActionUnhide} }

// modRoutes registers reporting (for readers) and the moderation API.
// Every mod/* route answers anonymous callers 401 and members 403 before
// it looks at its target, so probing ids tells a member nothing.
func (s *Server) modRoutes(t, readers *echo.Group) {
	readers.POST("/reports", s.createReport, requireUser, s.limitUser(s.limits.reports))

	mod := []echo.MiddlewareFunc{requireUser, requireModerator}
	t.GET("/mod/reports", s.listReports, mod...)
	t.POST("/mod/reports/:report/resolve", s.resolveReport, mod...)
	for _, a := range postModActions() {
		t.POST("/mod/posts/:post/"+a, s.moderatePost(a), mod...)
	}
	for _, a := range commentModActions() {
		t.POST("/mod/comments/:comment/"+a, s.moderateComment(a), mod...)
	}
	t.GET("/mod/users", s.listMembers, mod...)
	t.POST("/mod/users/:user/ban", s.banUser, mod...)
	t.POST("/mod/users/:user/unban", s.unbanUser, mod...)
	t.PUT("/mod/users/:user/role", s.setRole, requireUser, requireAdmin)
	t.GET("/mod/audit", s.listAudit, mod...)
}

// requireModerator admits moderators and admins who are not banned.
func requireModerator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := actorOf(c)
		if !a.Moderates() {
			return apiError(store.CodeForbidden, "moderators only")
		}
		if a.Banned {
			return apiError(store.CodeForbidden, "you are banned")
		}
		return next(c)
	}
}

// requireAdmin admits admins who are not banned.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a := actorOf(c)
		if a.Role != store.RoleAdmin {
			return apiError(store.CodeForbidden, "admins only")
		}
		if a.Banned {
			return apiError(store.CodeForbidden, "you are banned")
		}
		return next(c)
	}
}

// decodeOptional is decode for bodies that may be left out entirely
// (moderation actions take an optional {"reason"}).
func decodeOptional(c echo.Context, v any) error {
	req := c.Request()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err // the body limit's 413
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return decode(c, v)
}

// flexID is an id in a request body: the contract writes ids as strings,
// and a number is accepted too. Anything else names nothing (0).
type flexID struct {
	set bool
	id  int64
}

func (f *flexID) UnmarshalJSON(b []byte) error {
	f.set = string(b) != "null"
	var s string
	if json.Unmarshal(b, &s) != nil {
		s = string(b)
	}
	if id, ok := parseID(s); ok {
		f.id = id
	}
	return nil
}

type reportRequest struct {
	TargetType string `json:"target_type"`
	TargetID   flexID `json:"target_id"`
	Reason     string `json:"reason"`
}

func (s *Server) createReport(c echo.Context) error {
	var req reportRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if !req.TargetID.set {
		return store.Invalid(map[string]string{"target_id": "required"})
	}
	r, err := s.cfg.Store.CreateReport(c.Request().Context(), tenantOf(c).ID, actorOf(c), store.NewReport{
		TargetType: req.TargetType, TargetID: req.TargetID.id, Reason: req.Reason})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, r)
}

func (s *Server) listReports(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	status := c.QueryParam("status")
	if status == "" {
		status = store.ReportOpen
	}
	page, err := s.cfg.Store.ListReports(c.Request().Context(), tenantOf(c).ID, actorOf(c), status, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

type resolveRequest struct {
	Note string `json:"note"`
}

func (s *Server) resolveReport(c echo.Context) error {
	id, err := pathID(c, "report")
	if err != nil {
		return err
	}
	var req resolveRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	r, err := s.cfg.Store.ResolveReport(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, req.Note)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) moderatePost(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "post")
		if err != nil {
			return err
		}
		var req reasonRequest
		if err := decodeOptional(c, &req); err != nil {
			return err
		}
		p, err := s.cfg.Store.ModeratePost(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, action, req.Reason)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, p)
	}
}

func (s *Server) moderateComment(action string) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "comment")
		if err != nil {
			return err
		}
		var req reasonRequest
		if err := decodeOptional(c, &req); err != nil {
			return err
		}
		cm, err := s.cfg.Store.ModerateComment(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, action, req.Reason)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, cm)
	}
}

// listMembers is the members page: ?q= a username prefix, ?banned=true
// only those banned now (false or absent: everyone, as unread= does).
func (s *Server) listMembers(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	f := store.MemberFilter{Prefix: c.QueryParam("q")}
	switch c.QueryParam("banned") {
	case "true":
		f.BannedOnly = true
	case "", "false":
	default:
		return store.Invalid(map[string]string{"banned": "must be true or false"})
	}
	page, err := s.cfg.Store.ListMembers(c.Request().Context(), tenantOf(c).ID, actorOf(c), f, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

type banRequest struct {
	Reason string  `json:"reason"`
	Until  *string `json:"until"`
}

func (s *Server) banUser(c echo.Context) error {
	id, err := pathID(c, "user")
	if err != nil {
		return err
	}
	var req banRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ban := store.Ban{Reason: req.Reason}
	if req.Until != nil {
		t, err := time.Parse(time.RFC3339, *req.Until)
		if err != nil {
			return store.Invalid(map[string]string{"until": "must be an RFC 3339 time, e.g. 2030-01-02T15:04:05Z"})
		}
		ban.Until = &t
	}
	u, err := s.cfg.Store.BanUser(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, ban)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

func (s *Server) unbanUser(c echo.Context) error {
	id, err := pathID(c, "user")
	if err != nil {
		return err
	}
	var req reasonRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	u, err := s.cfg.Store.UnbanUser(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

type roleRequest struct {
	Role   *string `json:"role"`
	Reason string  `json:"reason"`
}

func (s *Server) setRole(c echo.Context) error {
	id, err := pathID(c, "user")
	if err != nil {
		return err
	}
	var req roleRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Role == nil {
		return store.Invalid(map[string]string{"role": "required"})
	}
	u, err := s.cfg.Store.SetRole(c.Request().Context(), tenantOf(c).ID, actorOf(c), id, store.Role(*req.Role), req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

func (s *Server) listAudit(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Store.ListAudit(c.Request().Context(), tenantOf(c).ID, actorOf(c), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}
