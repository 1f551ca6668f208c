package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Code classifies an error for callers. The values are the machine codes of
// the public API, so the HTTP layer needs only a status table.
type Code string

const (
	CodeBadRequest   Code = "bad_request"
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"
	CodeInvalid      Code = "unprocessable"
	CodeForbidden    Code = "forbidden"
	CodeUnauthorized Code = "unauthorized"
	CodeUnavailable  Code = "unavailable"
)

// Error is an error the caller can act on: its Message is safe to show to a
// client. Anything that is not an *Error is internal.
type Error struct {
	Code    Code
	Message string
	// Fields names the offending input fields of a CodeInvalid error.
	Fields map[string]string
	// cause is the driver error behind a CodeUnavailable error, for logs.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.cause.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrNotFound) true for any not-found error,
// whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

var (
	ErrNotFound     = &Error{Code: CodeNotFound, Message: "not found"}
	ErrConflict     = &Error{Code: CodeConflict, Message: "conflict"}
	ErrForbidden    = &Error{Code: CodeForbidden, Message: "forbidden"}
	ErrUnauthorized = &Error{Code: CodeUnauthorized, Message: "unauthorized"}
)

// What CheckSafety refuses besides superusers and unforced Row Level
// Security, for the caller to say what to set instead.
var (
	// ErrRoleOwnsSchema: the serving role owns the database, the schema or
	// objects in it.
	ErrRoleOwnsSchema = errors.New("the serving database role owns the schema")
	// ErrRoleLacksRights: the serving role has not been granted its rights
	// (the migrations grant them when they know the role).
	ErrRoleLacksRights = errors.New("the serving database role lacks its rights")
)

// Errorf returns an *Error with a formatted client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns a validation error naming its fields.
func Invalid(fields map[string]string) *Error {
	return &Error{Code: CodeInvalid, Message: "validation failed", Fields: fields}
}

// unavailable is a CodeUnavailable error: the database cannot serve now,
// the client should retry.
func unavailable(msg string, cause error) *Error {
	return &Error{Code: CodeUnavailable, Message: msg, cause: cause}
}

// lost makes a lost or refused database connection CodeUnavailable and
// leaves every other error as it is.
func lost(err error) error {
	var se *Error
	if err == nil || errors.As(err, &se) || !connectionLost(err) {
		return err
	}
	return unavailable("the database is unavailable", err)
}

// connectionLost reports whether err says the database cannot be reached
// or refuses work right now (down, restarting, out of connection slots,
// not accepting connections, connection broken) rather than anything
// about the statement. A connect refused for our credentials or database
// name is a configuration error, not an outage, and is not one of these.
func connectionLost(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	isPg := errors.As(err, &pe)
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return !isPg || !(strings.HasPrefix(pe.Code, "28") || // invalid_authorization_specification
			pe.Code == "3D000" || // invalid_catalog_name: no such database
			pe.Code == "42501") // insufficient_privilege: no CONNECT right
	}
	if isPg {
		switch pe.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now: starting up, recovering
			"53300": // too_many_connections
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// mapErr turns driver errors into the typed errors above by SQLSTATE, never
// by message text. Errors it does not know stay internal, wrapped.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Errorf(CodeNotFound, "%s not found", what)
	}
	if connectionLost(err) {
		return unavailable("the database is unavailable", fmt.Errorf("%s: %w", what, err))
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return Errorf(CodeConflict, "%s already exists", what)
		case "23503": // foreign_key_violation: the referenced row is not there (for this tenant)
			return Errorf(CodeNotFound, "%s refers to something that does not exist", what)
		case "22021", "22P05": // text Postgres cannot store (NUL): the client's input, not our bug
			return Errorf(CodeInvalid, "%s contains characters that cannot be stored", what)
		case "57014": // query_canceled: statement timeout or cancelled request
			if errors.Is(err, context.Canceled) {
				return err
			}
			return unavailable("the database took too long", fmt.Errorf("%s: %w", what, err))
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
