DROP FUNCTION create_comment(bigint, bigint, bigint, bigint, boolean, text, text, text[], text, text);
DROP FUNCTION notify_cause(bigint, bigint[], text, text[], bigint, bigint, text, text, bigint, boolean, boolean, text, text);
DROP FUNCTION notify_rows(bigint, bigint[], text, text[], bigint, bigint, text, text, bigint, boolean, boolean);
DROP FUNCTION flush_activity(bigint, integer, text);
DROP TABLE activity_queue;
DROP FUNCTION publish_event(bigint, text, text, jsonb, text, text);
DROP FUNCTION json_time(timestamptz);
