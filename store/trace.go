package store

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceParent renders a span context as a W3C traceparent header value, the
// form in which it is stored with events ("" when there is no valid span).
func traceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

// TraceContext returns ctx carrying the remote span context stored with an
// event, so that work done for the event (the fan-out) joins the trace of
// the write that caused it. Without a stored traceparent, ctx is returned
// as it is.
func TraceContext(ctx context.Context, traceParent string) context.Context {
	if traceParent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceParent})
}
