package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"agora/store"
)

// decode reads a JSON object body into v. Malformed JSON is 400; a field of
// the wrong type is 422 naming the field; unknown fields are ignored, so a
// body that sets role, author_id or tenant_id changes nothing (request
// structs simply have no such fields).
func decode(c echo.Context, v any) error {
	dec := json.NewDecoder(c.Request().Body)
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var httpErr *echo.HTTPError // the body limit middleware's reader fails with 413
	switch {
	case errors.As(err, &tooBig),
		errors.As(err, &httpErr) && httpErr.Code == http.StatusRequestEntityTooLarge:
		return apiError(codeTooLarge, "request body is larger than 1 MiB")
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return &store.Error{Code: store.CodeInvalid, Message: "validation failed",
			Fields: map[string]string{typeErr.Field: "must be " + jsonKind(typeErr.Type.Kind().String())}}
	case errors.As(err, &typeErr):
		return apiError(store.CodeBadRequest, "request body must be a JSON object")
	case errors.Is(err, io.EOF):
		return apiError(store.CodeBadRequest, "request body must be a JSON object")
	default:
		return apiError(store.CodeBadRequest, "malformed JSON: "+err.Error())
	}
}

func jsonKind(goKind string) string {
	switch {
	case goKind == "string" || goKind == "ptr":
		return "a string"
	case goKind == "bool":
		return "a boolean"
	case strings.HasPrefix(goKind, "int") || strings.HasPrefix(goKind, "float"):
		return "a number"
	}
	return "of another type"
}

// pathID reads a numeric id from the path. Anything that is not an id
// names nothing, so it is 404 like an id that does not exist.
func pathID(c echo.Context, name string) (int64, error) {
	id, ok := parseID(c.Param(name))
	if !ok {
		return 0, apiError(store.CodeNotFound, name+" not found")
	}
	return id, nil
}

// parseID accepts a positive id in canonical decimal only, as room names
// do: "001" or "+1" would otherwise be a second URL for object 1. A first
// digit of 1 to 9 rules out signs and leading zeros; ParseInt the rest.
func parseID(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// pageParams reads ?limit= and ?cursor=. A limit outside 1 to MaxLimit is
// refused rather than capped, so a client never silently gets fewer items
// than it asked for.
func pageParams(c echo.Context) (store.PageParams, error) {
	p := store.PageParams{Limit: store.DefaultLimit, Cursor: c.QueryParam("cursor")}
	if s := c.QueryParam("limit"); s != "" {
		n, ok := parseID(s)
		if !ok || n > store.MaxLimit {
			return p, &store.Error{Code: store.CodeInvalid, Message: "validation failed",
				Fields: map[string]string{"limit": "must be a whole number from 1 to 200"}}
		}
		p.Limit = int(n)
	}
	return p, nil
}
