DROP TABLE IF EXISTS notification_counts, notifications;
DROP FUNCTION IF EXISTS body_excerpt(text);
DROP INDEX IF EXISTS comments_author, posts_author, comments_reply_to;
ALTER TABLE comments DROP CONSTRAINT IF EXISTS comments_reply_to_fkey;
ALTER TABLE comments DROP COLUMN IF EXISTS reply_to;
-- comments_post goes back to the plain index 0001 made.
CREATE INDEX comments_post_plain ON comments (tenant_id, post_id, id);
DROP INDEX comments_post;
ALTER INDEX comments_post_plain RENAME TO comments_post;
