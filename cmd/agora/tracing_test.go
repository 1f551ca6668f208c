package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"agora/realtime/wstest"
)

// One trace shows a REST write, its tenant transaction and commit, and the
// fan-out of its event on every instance: the traceparent stored with the
// event carries the trace across the outbox to the other instance.
func TestTraceFollowsWriteToFanOutOnEveryInstance(t *testing.T) {
	dbs := newDatabases(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var logs syncBuffer
	one, two := startTraced(t, dbs, tp, &logs, "one"), startTraced(t, dbs, tp, &logs, "two")
	if _, err := one.db.CreateTenant(t.Context(), "traced", "Traced"); err != nil {
		t.Fatal(err)
	}

	call := func(a *app, token, method, path string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, a.URL()+"/api/v1/t/traced"+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, res.StatusCode, out)
		}
		return out
	}
	token := call(one, "", "POST", "/auth/register", map[string]string{"username": "tracer", "password": "tracer-password"})["token"].(string)
	board := call(one, token, "POST", "/boards", map[string]string{"name": "Traces"})["id"].(string)
	post := call(one, token, "POST", "/boards/"+board+"/posts", map[string]string{"title": "Trace me", "body": "hello"})["id"].(string)

	room := "post:" + post
	var clients []*wstest.Client
	for _, a := range []*app{one, two} {
		c, _, err := wstest.Dial(t, "ws"+strings.TrimPrefix(a.URL(), "http")+"/api/v1/t/traced/ws",
			http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			t.Fatal(err)
		}
		c.Subscribe(room, nil)
		clients = append(clients, c)
	}
	exp.Reset()
	call(one, token, "POST", "/posts/"+post+"/comments", map[string]string{"body": "traced comment"})
	for _, c := range clients {
		c.Events(room, 1, 5*time.Second)
	}

	// The fan-out spans end right after the sends, so wait for both.
	var fanouts []tracetest.SpanStub
	for deadline := time.Now().Add(5 * time.Second); len(fanouts) < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("fan-out spans: %d, want one per instance", len(fanouts))
		}
		fanouts = fanouts[:0]
		for _, s := range exp.GetSpans() {
			if s.Name == "realtime.fanout" && attr(s, "agora.event") == "comment.created" {
				fanouts = append(fanouts, s)
			}
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, within the deadline above
	}
	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var request *tracetest.SpanStub
	for i, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		if s.Name == "POST /api/v1/t/:tenant/posts/:post/comments" {
			request = &spans[i]
		}
	}
	if request == nil {
		t.Fatal("no span for the REST call")
	}
	traceID := request.SpanContext.TraceID()
	instances := map[string]bool{}
	for _, f := range fanouts {
		if f.SpanContext.TraceID() != traceID {
			t.Errorf("fan-out on %s is in trace %s, want the write's %s", attr(f, "agora.instance"), f.SpanContext.TraceID(), traceID)
		}
		tx, ok := byID[f.Parent.SpanID()]
		if !ok || tx.Name != "store.tenant_tx" || tx.Parent.SpanID() != request.SpanContext.SpanID() {
			t.Errorf("fan-out's parent is %q (parent %s), want the write's tenant transaction under the request", tx.Name, tx.Parent.SpanID())
		}
		instances[attr(f, "agora.instance")] = true
	}
	if len(instances) != 2 {
		t.Errorf("fan-out spans came from instances %v, want both", instances)
	}
	// A comment is one round trip whose end is the commit, so its
	// transaction span says so instead of having a commit span of its own.
	commits := 0
	for _, s := range spans {
		if s.SpanContext.TraceID() != traceID {
			continue
		}
		if s.Name == "store.commit" && byID[s.Parent.SpanID()].Name == "store.tenant_tx" ||
			s.Name == "store.tenant_tx" && attr(s, "agora.one_trip") == "true" {
			commits++
		}
	}
	if commits == 0 {
		t.Error("the write's transaction has no commit span and is not marked as one round trip")
	}
	// The request's log lines carry its trace id.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"route":"/api/v1/t/:tenant/posts/:post/comments"`) {
			found = found || strings.Contains(line, `"trace_id":"`+traceID.String()+`"`)
		}
	}
	if !found {
		t.Errorf("no access log line of the traced request carries trace_id %s", traceID)
	}
}

func newDatabases(t *testing.T) databases {
	env := withNewDatabase(t, map[string]string{})
	return databases{URL: env["DATABASE_URL"], OwnerURL: env["AGORA_MIGRATE_DATABASE_URL"]}
}

// startTraced serves an instance named name on dbs, tracing into tp and
// logging into logs, until the test ends.
func startTraced(t *testing.T, dbs databases, tp trace.TracerProvider, logs *syncBuffer, name string) *app {
	t.Helper()
	cfg, _, err := parseConfig("serve", []string{"-addr", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(logs).With().Str("instance", name).Logger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := start(ctx, cfg, log, dbs, tp)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := a.http.Serve(a.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve %s: %v", name, err)
		}
	}()
	t.Cleanup(func() { a.shutdown(); <-served })
	return a
}

// A WebSocket session's log lines carry the trace and request id of its
// upgrade request, the line of its close with why it closed included,
// although the request itself is long gone by then.
func TestSessionLogLinesCarryTheUpgradeTrace(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	var logs syncBuffer
	a := startTraced(t, newDatabases(t), tp, &logs, "one")
	if _, err := a.db.CreateTenant(t.Context(), "traced", "Traced"); err != nil {
		t.Fatal(err)
	}
	// The caller's trace, so that the test knows its id up front.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	c, resp, err := wstest.Dial(t, "ws"+strings.TrimPrefix(a.URL(), "http")+"/api/v1/t/traced/ws",
		http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}})
	if err != nil {
		t.Fatal(err)
	}
	requestID := resp.Header.Get("X-Request-Id")
	if requestID == "" {
		t.Fatal("the upgrade answered no X-Request-Id")
	}
	c.Subscribe("tenant", nil)
	if err := c.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")); err != nil {
		t.Fatal(err)
	}

	type line struct {
		Msg       string `json:"message"`
		TraceID   string `json:"trace_id"`
		RequestID string `json:"request_id"`
		Tenant    string `json:"tenant"`
		Code      int    `json:"code"`
		Reason    string `json:"reason"`
	}
	var closed *line
	for deadline := time.Now().Add(5 * time.Second); closed == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no \"session closed\" line in the log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling for a condition, within the deadline above
		for _, raw := range strings.Split(logs.String(), "\n") {
			var l line
			if json.Unmarshal([]byte(raw), &l) == nil && l.Msg == "session closed" {
				closed = &l
			}
		}
	}
	want := line{Msg: "session closed", TraceID: traceID, RequestID: requestID, Tenant: "traced", Code: 1000, Reason: closed.Reason}
	if *closed != want || closed.Reason == "" {
		t.Errorf("session closed line %+v, want %+v with a reason", *closed, want)
	}
	opened := false
	for _, raw := range strings.Split(logs.String(), "\n") {
		var l line
		if json.Unmarshal([]byte(raw), &l) == nil && l.Msg == "session open" {
			opened = l.TraceID == traceID && l.RequestID == requestID
		}
	}
	if !opened {
		t.Errorf("no session open line with trace_id %s and request_id %s", traceID, requestID)
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// Tracing costs nothing unless an OTLP endpoint is configured.
func TestTracingIsOffWithoutAnEndpoint(t *testing.T) {
	tp, flush, err := newTracing(t.Context(), envOf(map[string]string{}))
	if err != nil || tp != nil {
		t.Fatalf("no endpoint: provider %v, error %v; want none", tp, err)
	}
	if err := flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	tp, flush, err = newTracing(t.Context(), envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}))
	if err != nil || tp == nil {
		t.Fatalf("with an endpoint: provider %v, error %v; want one", tp, err)
	}
	if err := flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}
