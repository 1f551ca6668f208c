-- The W3C traceparent of the transaction that wrote an event, so that the
-- fan-out on every instance joins the trace of the write. NULL when the
-- write was not traced (tracing off): no cost then.
ALTER TABLE events ADD COLUMN trace_parent text
    CHECK (trace_parent IS NULL OR length(trace_parent) <= 64);
