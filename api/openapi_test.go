package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"agora/api"
	"agora/store"
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
