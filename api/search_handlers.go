package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// search answers GET search?q=&board=&limit=&cursor=. The store checks q;
// a board that is not an id is a bad filter (422), one that names no board
// of this tenant is 404 like the board's own routes.
func (s *Server) search(c echo.Context) error {
	p, err := pageParams(c)
	if err != nil {
		return err
	}
	var boardID int64
	if v := c.QueryParam("board"); v != "" {
		id, ok := parseID(v)
		if !ok {
			return store.Invalid(map[string]string{"board": "must be a board id"})
		}
		boardID = id
	}
	page, err := s.cfg.Store.Search(c.Request().Context(), tenantOf(c).ID, actorOf(c),
		store.SearchParams{Query: c.QueryParam("q"), BoardID: boardID, PageParams: p})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}
