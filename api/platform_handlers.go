package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

type createTenantRequest struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func (s *Server) createTenant(c echo.Context) error {
	var req createTenantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	t, err := s.cfg.Store.CreateTenant(c.Request().Context(), req.Slug, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, t)
}

func (s *Server) listTenants(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	page, err := s.cfg.Store.ListTenants(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}
