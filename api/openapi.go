package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) openAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, openAPIDocument)
}
