DROP TABLE IF EXISTS events, rooms, audit_log, reports, comments, posts, boards, tokens, users, tenants;
DROP FUNCTION IF EXISTS audit_log_append_only();
