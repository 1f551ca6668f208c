package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// reactionRoutes registers reactions on posts and comments: PUT adds one
// of the caller's, DELETE takes it back; both answer the object's counts
// and the caller's own kinds.
func (s *Server) reactionRoutes(readers *echo.Group) {
	limit := []echo.MiddlewareFunc{requireUser, s.limitUser(s.limits.reactions)}
	readers.PUT("/posts/:post/reactions/:kind", s.reactToPost(true), limit...)
	readers.DELETE("/posts/:post/reactions/:kind", s.reactToPost(false), limit...)
	readers.PUT("/comments/:comment/reactions/:kind", s.reactToComment(true), limit...)
	readers.DELETE("/comments/:comment/reactions/:kind", s.reactToComment(false), limit...)
}

func (s *Server) reactToPost(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		postID, err := pathID(c, "post")
		if err != nil {
			return err
		}
		st, err := s.cfg.Store.ReactToPost(c.Request().Context(), tenantOf(c).ID, actorOf(c), postID, c.Param("kind"), on)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, st)
	}
}

func (s *Server) reactToComment(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		commentID, err := pathID(c, "comment")
		if err != nil {
			return err
		}
		st, err := s.cfg.Store.ReactToComment(c.Request().Context(), tenantOf(c).ID, actorOf(c), commentID, c.Param("kind"), on)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, st)
	}
}
