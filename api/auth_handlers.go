package api

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"agora/store"
)

type credentials struct {
	Username string  `json:"username"`
	Password string  `json:"password"`
	Email    *string `json:"email"`
}

type authResponse struct {
	User  store.User `json:"user"`
	Token string     `json:"token"`
}

func (s *Server) register(c echo.Context) error {
	var req credentials
	if err := decode(c, &req); err != nil {
		return err
	}
	u, token, err := s.cfg.Store.Register(c.Request().Context(), tenantOf(c).ID,
		store.Registration{Username: req.Username, Password: req.Password, Email: req.Email})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, authResponse{User: u, Token: token})
}

func (s *Server) login(c echo.Context) error {
	var req credentials
	if err := decode(c, &req); err != nil {
		return err
	}
	u, token, err := s.cfg.Store.Login(c.Request().Context(), tenantOf(c).ID, req.Username, req.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, authResponse{User: u, Token: token})
}

func (s *Server) logout(c echo.Context) error {
	if err := s.cfg.Store.Logout(c.Request().Context(), tenantOf(c).ID, tokenIDOf(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) me(c echo.Context) error {
	u, err := s.cfg.Store.GetUser(c.Request().Context(), tenantOf(c).ID, actorOf(c).UserID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

type ticketResponse struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) wsTicket(c echo.Context) error {
	ticket, expires, err := s.cfg.Store.CreateTicket(c.Request().Context(), tenantOf(c).ID, actorOf(c).UserID, tokenIDOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ticketResponse{Ticket: ticket, ExpiresAt: expires})
}

// websocket authenticates the upgrade request (bearer header, single-use
// ticket, or nobody) and hands it to the realtime side. A bad ticket is
// 401 before any upgrade.
func (s *Server) websocket(c echo.Context) error {
	if ticket := c.QueryParam("ticket"); ticket != "" && actorOf(c).Anonymous() {
		sess, err := s.cfg.Store.RedeemTicket(c.Request().Context(), tenantOf(c).ID, ticket)
		if err != nil {
			return err
		}
		s.setUser(c, sess.User, sess.TokenID)
	}
	res := c.Response()
	hj := &hijackWatch{ResponseWriter: res.Writer}
	res.Writer = hj
	s.cfg.WebSocket.ServeWS(res, c.Request(), tenantOf(c), actorOf(c), tokenIDOf(c))
	if hj.hijacked.Load() {
		// The 101 went out over the hijacked connection, past Echo: say so
		// to the access log and the metrics, which read the status here.
		res.Status = http.StatusSwitchingProtocols
	}
	return nil
}

// hijackWatch notes whether the upgrade took the connection over.
type hijackWatch struct {
	http.ResponseWriter
	hijacked atomic.Bool
}

func (w *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked.Store(true)
	}
	return conn, brw, err
}

func (w *hijackWatch) Unwrap() http.ResponseWriter { return w.ResponseWriter }
