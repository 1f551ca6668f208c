package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// getUserPage answers a user's name, role, joining date and newest posts
// and comments that the caller may see; an unknown name is 404.
func (s *Server) getUserPage(c echo.Context) error {
	u, err := s.cfg.Store.GetUserPage(c.Request().Context(), tenantOf(c).ID, actorOf(c), c.Param("username"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}
