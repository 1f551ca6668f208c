package api

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// peopleRoutes registers what is about people: one's own notifications
// (under me/, signed in) and users' pages (for readers).
func (s *Server) peopleRoutes(t, readers *echo.Group) {
	t.GET("/me/notifications", s.listNotifications, requireUser)
	t.GET("/me/notifications/unread_count", s.unreadCount, requireUser)
	t.POST("/me/notifications/read", s.markNotificationsRead, requireUser)
	readers.GET("/users/:username", s.getUserPage)
}

func (s *Server) listNotifications(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	var unread bool
	switch c.QueryParam("unread") {
	case "", "false":
	case "true":
		unread = true
	default:
		return store.Invalid(map[string]string{"unread": "must be true or false"})
	}
	page, err := s.cfg.Store.ListNotifications(c.Request().Context(), tenantOf(c).ID, actorOf(c), unread, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

type unreadCountResponse struct {
	UnreadCount int64 `json:"unread_count"`
}

func (s *Server) unreadCount(c echo.Context) error {
	n, err := s.cfg.Store.UnreadCount(c.Request().Context(), tenantOf(c).ID, actorOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, unreadCountResponse{UnreadCount: n})
}

type markReadRequest struct {
	IDs []string `json:"ids"`
	All bool     `json:"all"`
}

// markNotificationsRead takes {"ids": [...]} or {"all": true}. An id that
// is not one of the caller's notifications is 404 and nothing is marked
// (see store.MarkRead); one that cannot be an id at all is 422.
func (s *Server) markNotificationsRead(c echo.Context) error {
	var req markReadRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if len(req.IDs) > store.MaxMarkRead {
		return store.Invalid(map[string]string{"ids": "at most " + strconv.Itoa(store.MaxMarkRead)})
	}
	ids := make([]int64, 0, len(req.IDs))
	for _, raw := range req.IDs {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			return store.Invalid(map[string]string{"ids": "must be notification ids"})
		}
		ids = append(ids, id)
	}
	n, err := s.cfg.Store.MarkNotificationsRead(c.Request().Context(), tenantOf(c).ID, actorOf(c), ids, req.All)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, unreadCountResponse{UnreadCount: n})
}
