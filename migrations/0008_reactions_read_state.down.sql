DROP TABLE read_state;
DROP TABLE comment_reactions;
DROP TABLE post_reactions;
DROP INDEX comments_visible;
ALTER TABLE posts DROP COLUMN reactions;
ALTER TABLE comments DROP COLUMN reactions;

-- Before 0008 comment_count counted hidden comments too, and the code of
-- that version keeps it that way. Row level security is lifted for the
-- recount as in the up migration.
ALTER TABLE posts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;
WITH counted AS (
    SELECT p.tenant_id, p.id,
           (SELECT count(*) FROM comments c WHERE c.tenant_id = p.tenant_id AND c.post_id = p.id) AS n
    FROM posts p
)
UPDATE posts p SET comment_count = counted.n
FROM counted
WHERE p.tenant_id = counted.tenant_id AND p.id = counted.id AND p.comment_count <> counted.n;
ALTER TABLE posts FORCE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
