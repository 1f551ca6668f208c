package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"agora/api"
	"agora/api/apitest"
	"agora/realtime"
	"agora/store"
	"agora/store/pgtest"
)

type nopWebSocket struct{}

func (nopWebSocket) ServeWS(http.ResponseWriter, *http.Request, store.Tenant, store.Actor, int64) {}

// routeParam is Echo's :param, OpenAPI's {param}.
var routeParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPIMatchesRoutes: the document served at /api/v1/openapi.json
// lists exactly the method and path pairs the server routes, in both
// directions, with every optional route (metrics, WebSocket) switched on.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	srv := api.New(api.Config{
		Metrics:   http.NotFoundHandler(),
		WebSocket: nopWebSocket{},
		Web:       http.NotFoundHandler(),
	})
	routes := map[string]bool{}
	for _, r := range srv.Routes() {
		// Echo lists its internal not-found routes (method
		// "echo_route_not_found"); /* is the web UI, not part of the API.
		if !standardMethods[r.Method] || r.Path == "/*" {
			continue
		}
		routes[r.Method+" "+routeParam.ReplaceAllString(r.Path, "{$1}")] = true
	}

	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components map[string]map[string]any            `json:"components"`
	}
	raw := rec.Body.Bytes()
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}

	documented := map[string]bool{}
	opIDs := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			id, _ := op["operationId"].(string)
			if id == "" || opIDs[id] != "" {
				t.Errorf("%s: operationId %q missing or also used by %s", key, id, opIDs[id])
			}
			opIDs[id] = key
			checkOperation(t, key, path, op)
		}
	}
	for key := range routes {
		if !documented[key] {
			t.Errorf("route %s is not in the OpenAPI document", key)
		}
	}
	for key := range documented {
		if !routes[key] {
			t.Errorf("the OpenAPI document lists %s, which the server does not route", key)
		}
	}
	if len(routes) < 30 {
		t.Errorf("only %d routes: the comparison is not looking at the real router", len(routes))
	}

	// Every $ref points at something that exists.
	for _, m := range regexp.MustCompile(`"\$ref":\s*"#/components/([A-Za-z]+)/([A-Za-z]+)"`).FindAllStringSubmatch(string(raw), -1) {
		if _, ok := doc.Components[m[1]][m[2]]; !ok {
			t.Errorf("dangling $ref #/components/%s/%s", m[1], m[2])
		}
	}
	for _, name := range []string{"Error", "User", "Post", "Comment", "Board", "Report", "AuditEntry", "Tenant"} {
		if doc.Components["schemas"][name] == nil {
			t.Errorf("no schema %s", name)
		}
	}
}

// checkOperation: path parameters are declared, there is a success
// response, and errors use the shared envelope.
func checkOperation(t *testing.T, key, path string, op map[string]any) {
	t.Helper()
	var declared []string
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		p := p.(map[string]any)
		if p["in"] == "path" {
			declared = append(declared, p["name"].(string))
		}
	}
	for _, m := range regexp.MustCompile(`\{([a-z]+)\}`).FindAllStringSubmatch(path, -1) {
		if !slices.Contains(declared, m[1]) {
			t.Errorf("%s: path parameter %s is not declared", key, m[1])
		}
	}
	responses, _ := op["responses"].(map[string]any)
	ok := false
	for code, r := range responses {
		if code[0] == '2' || code == "101" {
			ok = true
		}
		if code[0] == '4' || code[0] == '5' {
			if ref, _ := r.(map[string]any)["$ref"].(string); !strings.HasPrefix(ref, "#/components/responses/") && key != "GET /readyz" {
				t.Errorf("%s: response %s does not use the error envelope", key, code)
			}
		}
	}
	if !ok {
		t.Errorf("%s: no success response", key)
	}
}

// TestOpenAPIWebSocketStatuses: every status the WebSocket route answers
// before the upgrade, driven out of the real hub one by one, is a response
// of GET /api/v1/t/{tenant}/ws in the document, and the document lists no
// refusal the route cannot give (but 500, which no client can provoke).
// 429 and 503 carry the Retry-After their responses document.
func TestOpenAPIWebSocketStatuses(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	var hub *realtime.Hub
	s := apitest.Start(t, apitest.Options{DatabaseURL: dbURL, Hasher: fastHasher, Configure: func(tb testing.TB, db *store.DB, cfg *api.Config) {
		hub = realtime.New(realtime.Config{History: db, Bus: store.NewBus(db, dbURL), Log: cfg.Log, MaxTenantSessions: 1})
		hub.Run()
		cfg.WebSocket = hub
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hub.Shutdown(ctx)
		})
	}})
	s.NewTenant(t, "acme")
	ws := "ws" + strings.TrimPrefix(s.URL, "http") + "/api/v1/t/"
	got := map[int]http.Header{}
	refusal := func(what, url string, header http.Header, want int) {
		t.Helper()
		conn, resp, err := websocket.DefaultDialer.Dial(url, header)
		if err == nil {
			_ = conn.Close()
			t.Fatalf("%s: upgraded, want %d", what, want)
		}
		if resp == nil || resp.StatusCode != want {
			t.Fatalf("%s: %v (response %v), want %d", what, err, resp, want)
		}
		got[want] = resp.Header
	}

	resp, err := http.Get(s.URL + "/api/v1/t/acme/ws")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("GET without an upgrade: %d, want 400", resp.StatusCode)
	}
	got[400] = resp.Header
	refusal("a bad token", ws+"acme/ws", http.Header{"Authorization": {"Bearer nope"}}, 401)
	refusal("a used-up ticket", ws+"acme/ws?ticket=nope", nil, 401)
	refusal("a foreign Origin", ws+"acme/ws", http.Header{"Origin": {"https://elsewhere.example"}}, 403)
	refusal("an unknown tenant", ws+"nobody/ws", nil, 404)
	first, _, err := websocket.DefaultDialer.Dial(ws+"acme/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	refusal("past the tenant's session quota", ws+"acme/ws", nil, 429)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	refusal("while shutting down", ws+"acme/ws", nil, 503)

	var doc struct {
		Paths      map[string]map[string]struct{ Responses map[string]map[string]any }
		Components struct{ Responses map[string]map[string]any }
	}
	s.MustDo(t, "GET", "/api/v1/openapi.json", "", nil, 200, &doc)
	documented := doc.Paths["/api/v1/t/{tenant}/ws"]["get"].Responses
	if documented["101"] == nil {
		t.Error("101 is not documented")
	}
	for status, header := range got {
		r := documented[strconv.Itoa(status)]
		if r == nil {
			t.Errorf("the route answers %d, which is not documented", status)
			continue
		}
		ref, _ := r["$ref"].(string)
		component := doc.Components.Responses[strings.TrimPrefix(ref, "#/components/responses/")]
		headers, _ := component["headers"].(map[string]any)
		_, retry := headers["Retry-After"]
		if sent := header.Get("Retry-After") != ""; sent != retry {
			t.Errorf("%d: Retry-After sent %v, documented %v", status, sent, retry)
		}
	}
	for code := range documented {
		status, _ := strconv.Atoi(code)
		if _, seen := got[status]; status >= 400 && status != 500 && !seen {
			t.Errorf("%d is documented, but the test does not provoke it: provoke it, or remove it from the document", status)
		}
	}
}
