package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"agora/store"
)

// errorBody is the envelope of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[store.Code]int{
	store.CodeBadRequest:   http.StatusBadRequest,
	store.CodeUnauthorized: http.StatusUnauthorized,
	store.CodeForbidden:    http.StatusForbidden,
	store.CodeNotFound:     http.StatusNotFound,
	store.CodeConflict:     http.StatusConflict,
	codeTooLarge:           http.StatusRequestEntityTooLarge,
	store.CodeInvalid:      http.StatusUnprocessableEntity,
	codeRateLimited:        http.StatusTooManyRequests,
	codeInternal:           http.StatusInternalServerError,
	store.CodeUnavailable:  http.StatusServiceUnavailable,
}

// retryAfterUnavailable is the Retry-After of a 503, in seconds.
const retryAfterUnavailable = "2"

// Codes only the HTTP layer produces.
const (
	codeTooLarge    store.Code = "payload_too_large"
	codeRateLimited store.Code = "rate_limited"
	codeInternal    store.Code = "internal"
)

// codeOfStatus classifies Echo's own errors (unknown route, body limit...).
func codeOfStatus(status int) store.Code {
	switch status {
	case http.StatusUnauthorized:
		return store.CodeUnauthorized
	case http.StatusForbidden:
		return store.CodeForbidden
	case http.StatusNotFound:
		return store.CodeNotFound
	case http.StatusConflict:
		return store.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return codeTooLarge
	case http.StatusUnprocessableEntity:
		return store.CodeInvalid
	case http.StatusTooManyRequests:
		return codeRateLimited
	case http.StatusServiceUnavailable:
		return store.CodeUnavailable
	}
	if status >= 400 && status < 500 {
		return store.CodeBadRequest
	}
	return codeInternal
}

// handleError is Echo's HTTPErrorHandler: every error leaves through here
// as the documented envelope. Only internal errors are logged with detail;
// the client never sees it.
func handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := http.StatusInternalServerError, errorDetail{Code: string(codeInternal), Message: "internal error"}
	var se *store.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &se):
		status = statusOf[se.Code]
		body = errorDetail{Code: string(se.Code), Message: se.Message, Fields: se.Fields}
		if se.Code == store.CodeInvalid && len(se.Fields) > 0 {
			body.Message = validationMessage(c.Path(), se.Fields)
		}
		if se.Code == store.CodeUnavailable {
			zerolog.Ctx(c.Request().Context()).Warn().Err(err).Msg("unavailable")
		}
	case errors.As(err, &he):
		status = he.Code
		code := codeOfStatus(status)
		body = errorDetail{Code: string(code), Message: http.StatusText(status)}
		if msg, ok := he.Message.(string); ok && code != codeInternal {
			body.Message = msg
		}
		if status == http.StatusMethodNotAllowed {
			body.Message = "method not allowed"
		}
		if code == codeInternal {
			body.Message = "internal error"
			zerolog.Ctx(c.Request().Context()).Error().Err(err).Msg("request failed")
		}
	default:
		zerolog.Ctx(c.Request().Context()).Error().Err(err).Msg("request failed")
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable && c.Response().Header().Get("Retry-After") == "" {
		// An outage or a full queue is usually over in seconds; clients
		// that honour this spread their retries instead of hammering.
		c.Response().Header().Set("Retry-After", retryAfterUnavailable)
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, errorBody{Error: body})
	}
	if werr != nil {
		zerolog.Ctx(c.Request().Context()).Debug().Err(werr).Msg("write error response")
	}
}

// apiError builds an error the handler can return directly.
func apiError(code store.Code, msg string) error {
	return &store.Error{Code: code, Message: msg}
}
