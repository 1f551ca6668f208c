package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI serves the document rendered once by New (openapi_doc.go).
func (s *Server) openAPI(c echo.Context) error {
	return c.JSONBlob(http.StatusOK, s.openapi)
}
