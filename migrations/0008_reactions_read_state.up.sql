-- Reactions, read state, and a comment_count that counts what members see.

-- Each post and comment keeps its reaction counts beside it, {"like": 3}
-- with only kinds above zero, updated in the transaction of every reaction
-- write. Every read gets them with the row it reads anyway; counting the
-- reaction rows on each read would cost a scan per object listed.
ALTER TABLE posts ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}';
ALTER TABLE comments ADD COLUMN reactions jsonb NOT NULL DEFAULT '{}';

-- One row per user and kind: the primary key makes a second PUT a no-op,
-- and leads with the object, so one user's reactions on a page of objects
-- and the cascade of a deleted object are both index scans.
CREATE TABLE post_reactions (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    post_id    bigint NOT NULL,
    user_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('like', 'love', 'laugh', 'wow', 'sad', 'thanks')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, post_id, user_id, kind),
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE TABLE comment_reactions (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    comment_id bigint NOT NULL,
    user_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('like', 'love', 'laugh', 'wow', 'sad', 'thanks')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, comment_id, user_id, kind),
    FOREIGN KEY (tenant_id, comment_id) REFERENCES comments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

-- How far each user has read each post. last_read_comment_id is a
-- position in the thread (comment ids grow with time), not a reference:
-- deleting that comment must not make the whole thread unread again.
CREATE TABLE read_state (
    tenant_id            bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id              bigint NOT NULL,
    post_id              bigint NOT NULL,
    last_read_comment_id bigint NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, post_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE
);
-- Deleting a post removes its read state through this.
CREATE INDEX read_state_post ON read_state (tenant_id, post_id);

-- The visible comments of a post in thread order: unread counts and the
-- newest visible comment are index-only range scans of it.
CREATE INDEX comments_visible ON comments (tenant_id, post_id, id) WHERE NOT hidden;

-- Row level security is forced on the owner too, and a migration has no
-- tenant: the recount and the backfill would see no rows. The file runs as
-- one transaction, so nobody else ever sees the tables unforced.
ALTER TABLE posts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;

-- comment_count counted hidden comments too; from now on it counts what a
-- member can see.
WITH counted AS (
    SELECT p.tenant_id, p.id,
           (SELECT count(*) FROM comments c
            WHERE c.tenant_id = p.tenant_id AND c.post_id = p.id AND NOT c.hidden) AS n
    FROM posts p
)
UPDATE posts p SET comment_count = counted.n
FROM counted
WHERE p.tenant_id = counted.tenant_id AND p.id = counted.id AND p.comment_count <> counted.n;

-- Writing a comment marks the post read up to it; comments written before
-- read state existed get the same, so nobody's own comments count as
-- unread. (read_state has no row level security yet: see below.)
INSERT INTO read_state (tenant_id, user_id, post_id, last_read_comment_id)
SELECT tenant_id, author_id, post_id, max(id) FROM comments
GROUP BY tenant_id, author_id, post_id;

ALTER TABLE posts FORCE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['post_reactions', 'comment_reactions', 'read_state'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)$p$, t);
    END LOOP;
END;
$$;
