package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// readRoutes registers read state.
func (s *Server) readRoutes(readers *echo.Group) {
	readers.PUT("/posts/:post/read", s.markRead, requireUser)
}

type readRequest struct {
	CommentID flexID `json:"comment_id"`
}

// markRead moves the caller's read position in a post: to comment_id, or,
// with no body, {} or a null comment_id, to the newest comment now.
func (s *Server) markRead(c echo.Context) error {
	postID, err := pathID(c, "post")
	if err != nil {
		return err
	}
	var req readRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	var commentID *int64
	if req.CommentID.set {
		// An id that is no id (0) names no comment: the store's 422.
		commentID = &req.CommentID.id
	}
	if err := s.cfg.Store.MarkRead(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID, commentID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
