// Package apitest starts the real Agora API in-process, on loopback, against
// a fresh test database, and gives tests a small client for it.
//
// A test package that uses it needs the private PostgreSQL of store/pgtest:
//
//	func TestMain(m *testing.M) { pgtest.Main(m, store.MigrateUp) }
//
//	func TestX(t *testing.T) {
//		s := apitest.Start(t, apitest.Options{})
//		s.NewTenant(t, "acme")
//		_, token := s.Register(t, "acme", "alice")
//		var b store.Board
//		s.MustDo(t, "POST", apitest.TenantPath("acme", "boards"), token,
//			map[string]string{"name": "General"}, http.StatusCreated, &b)
//	}
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"agora/api"
	"agora/store"
	"agora/store/pgtest"
)

// Password is the password Register gives every user.
const Password = "correct horse battery staple"

// Options configures Start. The zero value is a server on a fresh database
// with the platform endpoints disabled.
type Options struct {
	// DatabaseURL is the database to serve; "" creates one with
	// pgtest.NewDatabase. Several servers given the same URL share one
	// database, like instances behind a load balancer.
	DatabaseURL string
	// AdminToken enables the platform endpoints (/api/v1/tenants).
	AdminToken string
	// Hasher hashes passwords; the zero value is store.DefaultHasher(), the
	// production parameters. Tests that register many users may pass
	// something cheaper; tests of hashing must not.
	Hasher store.Hasher
	// ConfigureStore may adjust the store.Config before the store opens
	// (pool and hashing limits).
	ConfigureStore func(cfg *store.Config)
	// Verbose sends the server's logs to tb.Log (shown with -v or on
	// failure); otherwise they are discarded.
	Verbose bool
	// Configure may adjust the api.Config before the server is built (add a
	// WebSocket handler, readiness checks, a web handler). cfg.Log is
	// already set. It may register tb.Cleanup: those run after the HTTP
	// server has closed and before the database pool closes.
	Configure func(tb testing.TB, db *store.DB, cfg *api.Config)
}

// Server is a running API.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port", without a trailing slash.
	URL         string
	DatabaseURL string
	DB          *store.DB
	AdminToken  string
	// Log is the server's logger (writes to tb.Log or nowhere).
	Log    zerolog.Logger
	Client *http.Client
}

// Start serves the API on 127.0.0.1 until tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		dbURL = pgtest.NewDatabase(tb)
	}
	log := zerolog.Nop()
	if opts.Verbose {
		log = NewLogger(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scfg := store.Config{URL: dbURL, Hasher: opts.Hasher}
	if opts.ConfigureStore != nil {
		opts.ConfigureStore(&scfg)
	}
	db, err := store.Open(ctx, scfg)
	if err != nil {
		tb.Fatalf("apitest: open store: %v", err)
	}
	tb.Cleanup(db.Close)
	if _, err := db.CheckSafety(ctx, false); err != nil {
		tb.Fatalf("apitest: %v", err)
	}

	cfg := api.Config{Store: db, Log: log, AdminToken: opts.AdminToken}
	if opts.Configure != nil {
		opts.Configure(tb, db, &cfg)
	}
	h := api.New(cfg)
	ts := httptest.NewUnstartedServer(h)
	// The production server's timeouts, so tests see what clients see.
	ts.Config = api.NewHTTPServer(ts.Listener.Addr().String(), h)
	ts.Start()
	tb.Cleanup(ts.Close)

	client := ts.Client()
	client.Timeout = 30 * time.Second
	return &Server{
		URL:         ts.URL,
		DatabaseURL: dbURL,
		DB:          db,
		AdminToken:  opts.AdminToken,
		Log:         log,
		Client:      client,
	}
}

// NewLogger returns a logger that writes to tb.Log until tb has ended, and
// drops lines after that (a goroutine outliving its test must not panic).
func NewLogger(tb testing.TB) zerolog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(w.stop) // registered first, so it runs last
	return zerolog.New(zerolog.ConsoleWriter{Out: w, NoColor: true, TimeFormat: "15:04:05.000"}).
		With().Timestamp().Logger()
}

type tbWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// TenantPath is the URL path of a tenant endpoint: TenantPath("acme",
// "boards") is "/api/v1/t/acme/boards".
func TenantPath(slug, rest string) string {
	return "/api/v1/t/" + slug + "/" + strings.TrimPrefix(rest, "/")
}

// Response is one HTTP response, fully read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Request is a request before it is sent; Call fills in the defaults.
type Request struct {
	Method string
	Path   string // with query, relative to the server's URL
	Token  string // "": no Authorization header
	// Body is nil (none), a string or []byte (sent raw), an io.Reader
	// (sent raw, chunked), or any other value (sent as JSON).
	Body   any
	Header http.Header
}

// Call sends a request and reads the whole response. It fails tb only when
// the request cannot be made at all.
func (s *Server) Call(tb testing.TB, r Request) Response {
	tb.Helper()
	var body io.Reader
	var length int64 = -1
	switch b := r.Body.(type) {
	case nil:
		length = 0
	case string:
		body, length = strings.NewReader(b), int64(len(b))
	case []byte:
		body, length = bytes.NewReader(b), int64(len(b))
	case io.Reader:
		body = b
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			tb.Fatalf("apitest: encode request body: %v", err)
		}
		body, length = bytes.NewReader(enc), int64(len(enc))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, s.URL+r.Path, body)
	if err != nil {
		tb.Fatalf("apitest: %s %s: %v", r.Method, r.Path, err)
	}
	if length >= 0 {
		req.ContentLength = length
	} else {
		req.ContentLength = -1 // unknown: sent chunked
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		tb.Fatalf("apitest: %s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("apitest: %s %s: read body: %v", r.Method, r.Path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// Do sends a request and returns the status and the body. body is nil, a
// string or []byte (sent raw), or any other value (sent as JSON).
func (s *Server) Do(tb testing.TB, method, path, token string, body any) (int, []byte) {
	tb.Helper()
	r := s.Call(tb, Request{Method: method, Path: path, Token: token, Body: body})
	return r.Status, r.Body
}

// MustDo is Do that fails tb unless the status is want, and decodes the
// JSON response into out when out is not nil.
func (s *Server) MustDo(tb testing.TB, method, path, token string, body any, want int, out any) {
	tb.Helper()
	status, resp := s.Do(tb, method, path, token, body)
	if status != want {
		tb.Fatalf("%s %s: status %d, want %d; body: %s", method, path, status, want, resp)
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", method, path, resp, err)
		}
	}
}

// NewTenant creates a tenant (through the store: it needs no admin token).
func (s *Server) NewTenant(tb testing.TB, slug string) store.Tenant {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := s.DB.CreateTenant(ctx, slug, "Tenant "+slug)
	if err != nil {
		tb.Fatalf("apitest: create tenant %q: %v", slug, err)
	}
	return t
}

// Register signs up a user with Password over the API and returns the user
// and a session token. The first user of a tenant is its admin.
func (s *Server) Register(tb testing.TB, tenantSlug, username string) (store.User, string) {
	tb.Helper()
	var out struct {
		User  store.User `json:"user"`
		Token string     `json:"token"`
	}
	s.MustDo(tb, http.MethodPost, TenantPath(tenantSlug, "auth/register"), "",
		map[string]string{"username": username, "password": Password}, http.StatusCreated, &out)
	if out.Token == "" {
		tb.Fatalf("apitest: register %s/%s: empty token", tenantSlug, username)
	}
	return out.User, out.Token
}

// CreateBoard creates a board as an admin.
func (s *Server) CreateBoard(tb testing.TB, tenantSlug, token, name string) store.Board {
	tb.Helper()
	var b store.Board
	s.MustDo(tb, http.MethodPost, TenantPath(tenantSlug, "boards"), token,
		map[string]string{"name": name}, http.StatusCreated, &b)
	return b
}

// CreatePost starts a thread on a board.
func (s *Server) CreatePost(tb testing.TB, tenantSlug, token string, boardID int64, title, body string) store.Post {
	tb.Helper()
	var p store.Post
	s.MustDo(tb, http.MethodPost, TenantPath(tenantSlug, fmt.Sprintf("boards/%d/posts", boardID)), token,
		map[string]string{"title": title, "body": body}, http.StatusCreated, &p)
	return p
}

// CreateComment replies to a post.
func (s *Server) CreateComment(tb testing.TB, tenantSlug, token string, postID int64, body string) store.Comment {
	tb.Helper()
	var c store.Comment
	s.MustDo(tb, http.MethodPost, TenantPath(tenantSlug, fmt.Sprintf("posts/%d/comments", postID)), token,
		map[string]string{"body": body}, http.StatusCreated, &c)
	return c
}

// ErrorBody is the documented error envelope.
type ErrorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

// DecodeError parses an error response, failing tb unless it is exactly
// the envelope {"error": {"code", "message"[, "fields"]}} with a non-empty
// code and message.
func DecodeError(tb testing.TB, body []byte) ErrorBody {
	tb.Helper()
	if err := CheckErrorEnvelope(body); err != nil {
		tb.Fatal(err)
	}
	var e ErrorBody
	_ = json.Unmarshal(body, &e)
	return e
}

// CheckErrorEnvelope reports how body differs from the error envelope.
func CheckErrorEnvelope(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("error body %q is not a JSON object: %v", body, err)
	}
	if len(top) != 1 || top["error"] == nil {
		return fmt.Errorf("error body %s: want exactly one key, \"error\"", body)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		return fmt.Errorf("error body %s: \"error\" is not an object", body)
	}
	for k := range inner {
		if k != "code" && k != "message" && k != "fields" {
			return fmt.Errorf("error body %s: unexpected key %q", body, k)
		}
	}
	var e ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("error body %s: %v", body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		return fmt.Errorf("error body %s: code and message must be non-empty strings", body)
	}
	return nil
}

// Query builds "path?k=v&..." from pairs, escaping the values.
func Query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// Eventually polls cond every few milliseconds until it returns true or
// timeout passes, then fails tb with msg.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(wait)
	}
}
