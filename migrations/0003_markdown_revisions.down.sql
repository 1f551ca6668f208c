DROP TABLE IF EXISTS comment_revisions, post_revisions;
DROP TRIGGER IF EXISTS comments_body_html ON comments;
DROP TRIGGER IF EXISTS posts_body_html ON posts;
ALTER TABLE comments DROP COLUMN IF EXISTS body_html, DROP COLUMN IF EXISTS body_html_stale, DROP COLUMN IF EXISTS edited_at;
ALTER TABLE posts DROP COLUMN IF EXISTS body_html, DROP COLUMN IF EXISTS body_html_stale, DROP COLUMN IF EXISTS edited_at;
DROP FUNCTION IF EXISTS fill_body_html(), escaped_paragraphs(text);
