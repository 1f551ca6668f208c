-- People: replies to comments, per-user notifications with their unread
-- counters, and what a user's page reads.

-- A reply names the comment it answers, which must be of the same post:
-- the foreign key spans (tenant_id, post_id, reply_to), so the database
-- itself refuses a reply into another post or tenant. Deleting the
-- answered comment leaves the reply standing, answering nothing (only
-- reply_to is cleared, not the post it lives in). The key needs a unique
-- index on (tenant_id, post_id, id): comments_post had those columns
-- already, so it becomes that index.
ALTER TABLE comments ADD COLUMN reply_to bigint;
CREATE UNIQUE INDEX comments_post_id ON comments (tenant_id, post_id, id);
DROP INDEX comments_post;
ALTER INDEX comments_post_id RENAME TO comments_post;
ALTER TABLE comments ADD CONSTRAINT comments_reply_to_fkey
    FOREIGN KEY (tenant_id, post_id, reply_to) REFERENCES comments (tenant_id, post_id, id)
    ON DELETE SET NULL (reply_to);
-- What that ON DELETE looks up.
CREATE INDEX comments_reply_to ON comments (tenant_id, post_id, reply_to) WHERE reply_to IS NOT NULL;

-- A user's page lists their newest posts and comments.
CREATE INDEX posts_author ON posts (tenant_id, author_id, created_at DESC);
CREATE INDEX comments_author ON comments (tenant_id, author_id, created_at DESC);

-- One row per notification, for one user, written in the transaction of
-- its cause. post_id and comment_id are loose references, like a report's
-- target: a notification outlives what it is about (the list keeps its
-- place and shows it without excerpt or title), and deleting a post must
-- not delete notifications behind the unread counters' back. Ids are never
-- reused, so a loose reference cannot come to name something else.
-- actor_id is who caused it (never the recipient). detail says what
-- happened for the kinds whose text cannot say it: the moderation action,
-- the new role, ban or unban. excerpt is the start of the text as it was
-- written (for a ban, its reason).
CREATE TABLE notifications (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('reply', 'mention', 'moderation', 'report_resolved', 'role', 'ban')),
    actor_id   bigint NOT NULL,
    post_id    bigint,
    comment_id bigint,
    detail     text,
    excerpt    text NOT NULL DEFAULT '',
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, actor_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
    CHECK (user_id <> actor_id)
);
-- A user's list, newest first, and its unread filter.
CREATE INDEX notifications_user ON notifications (tenant_id, user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id, id DESC) WHERE read_at IS NULL;

-- The unread count of each user who was ever notified. Every write that
-- adds or reads notifications updates its user's row in the same
-- statement, so the row lock orders concurrent writers and each one
-- answers the count as of its own commit: the number that events carry
-- is the true one, with no count(*) under a lock.
CREATE TABLE notification_counts (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id   bigint NOT NULL,
    unread    integer NOT NULL DEFAULT 0 CHECK (unread >= 0),
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);

-- The excerpt a notification or a user's page shows of a text: its start,
-- whitespace folded, at most 200 characters.
CREATE FUNCTION body_excerpt(body text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN char_length(t) > 200 THEN left(t, 199) || '…' ELSE t END
    FROM (SELECT btrim(regexp_replace(left(body, 1000), '\s+', ' ', 'g')) AS t) folded
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['notifications', 'notification_counts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)$p$, t);
    END LOOP;
END;
$$;
