-- A new comment is the write people make most, and each statement of it
-- was a round trip: the post's counter, the comment, its event, the
-- board's post.activity, the author's read position and read.updated, the
-- notifications and their events. On a busy server every round trip waits
-- in the run queue behind the fan-out, so the whole write is one function
-- here, called in one round trip together with the tenant setting.
--
-- The payloads of the events it writes are built here, and must read
-- exactly as the server's own encoding of the same types does (the store
-- tests compare them): ids as strings, times as json_time writes them.
-- All functions are SECURITY INVOKER: row level security applies to them
-- as to any statement of the serving role.
--
-- The board's post.activity leaves the comment's transaction for a queue
-- (activity_queue below), so that a board's writers do not all wait on
-- its room.

-- A time as Go's encoding/json writes it: RFC 3339 in UTC, the fraction
-- without trailing zeros (Postgres keeps microseconds).
CREATE FUNCTION json_time(t timestamptz) RETURNS text LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || rtrim(rtrim(to_char(t AT TIME ZONE 'UTC', '.US'), '0'), '.') || 'Z'
$$;

-- publish_event appends one event to a room's outbox: the room's row lock
-- orders concurrent writers of one room, so seq follows commit order with
-- no gaps. With a channel it also rings the doorbell inside the
-- transaction ("tenant room seq"); without one the server rings it after
-- the commit.
CREATE FUNCTION publish_event(p_tenant bigint, p_room text, p_type text, p_payload jsonb, p_trace text, p_channel text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    INSERT INTO rooms AS r (tenant_id, name, seq) VALUES (p_tenant, p_room, 1)
    ON CONFLICT (tenant_id, name) DO UPDATE SET seq = r.seq + 1
    RETURNING r.seq INTO next_seq;
    INSERT INTO events (tenant_id, room, seq, type, payload, trace_parent)
    VALUES (p_tenant, p_room, next_seq, p_type, p_payload, p_trace);
    IF p_channel IS NOT NULL THEN
        PERFORM pg_notify(p_channel, p_tenant::text || ' ' || p_room || ' ' || next_seq);
    END IF;
    RETURN next_seq;
END $$;

-- post.activity waits here before it goes to the board's room. Every
-- comment changes its post's count, and a board room's seq is one row that
-- every writer of the board must lock until its commit: the board's
-- comments would all queue behind each other's commits there. So a comment
-- (and a hide, an unhide, a delete) stores its post's new counts in its own
-- transaction, and flush_activity publishes what is queued, many at once,
-- in a transaction of its own shortly after. Each write still makes
-- exactly one post.activity, with the counts it made.
CREATE TABLE activity_queue (
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    board_id         bigint NOT NULL,
    post_id          bigint NOT NULL,
    comment_count    integer NOT NULL,
    last_activity_at timestamptz NOT NULL,
    trace_parent     text,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX activity_queue_post ON activity_queue (tenant_id, post_id);
ALTER TABLE activity_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_queue FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activity_queue
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint);

-- flush_activity publishes up to p_limit queued post.activity events of a
-- tenant to their boards' rooms, oldest first, and answers their rooms and
-- seqs. A post's entries are queued under its row lock, so their ids follow
-- its commits, and a flush publishes what it took in id order; a second
-- flush that saw the same entries waits on their row locks until the first
-- one committed, and finds them gone. So a post's counts reach its board in
-- the order they were written, whichever instance flushes. The advisory
-- lock makes a tenant's flushes take turns as a whole rather than row by
-- row.
CREATE FUNCTION flush_activity(p_tenant bigint, p_limit integer, p_channel text)
RETURNS TABLE (event_rooms text[], event_seqs bigint[]) LANGUAGE plpgsql AS $$
DECLARE
    q record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('agora.activity_queue'), hashtext(p_tenant::text));
    event_rooms := '{}';
    event_seqs := '{}';
    FOR q IN
        WITH d AS (
            DELETE FROM activity_queue
            WHERE id IN (SELECT a.id FROM activity_queue a ORDER BY a.id LIMIT p_limit)
            RETURNING *
        )
        SELECT * FROM d ORDER BY d.id
    LOOP
        event_rooms := event_rooms || ('board:' || q.board_id);
        event_seqs := event_seqs || publish_event(p_tenant, 'board:' || q.board_id, 'post.activity',
            jsonb_build_object('id', q.post_id::text, 'comment_count', q.comment_count,
                               'last_activity_at', json_time(q.last_activity_at)),
            q.trace_parent, p_channel);
    END LOOP;
    RETURN NEXT;
END $$;

-- notify_rows writes the notifications of one cause, bumps each
-- recipient's unread count and answers each recipient's notification.created
-- payload, as they may see it, with the count as of this write. Recipients:
-- the post's author (p_post_author), then p_to in order, then the users
-- named in p_mentions (lower-cased) as mentions; deduplicated (the first
-- reason wins, so a reply that also mentions is a reply), never the actor,
-- at most ten, and only those who may see what it is about unless p_always
-- (for the people in p_to). Counters are locked and rows answered in user
-- id order; callers publish to the user rooms in that order too, so two
-- writes that concern the same people cannot deadlock.
--
-- Everything it reads is found by key or by parameter, so the generic plan
-- is a handful of index lookups whatever the statistics; left to choose,
-- Postgres plans the parameter arrays afresh on every call, which costs
-- several times what running the plan does.
CREATE FUNCTION notify_rows(
    p_tenant bigint, p_to bigint[], p_kind text, p_mentions text[], p_post bigint, p_comment bigint,
    p_excerpt text, p_detail text, p_actor bigint, p_post_author boolean, p_always boolean)
RETURNS TABLE (recipient bigint, notification jsonb) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
        WITH cand AS (
            SELECT p.author_id AS user_id, 0::bigint AS ord FROM posts p WHERE p.id = p_post AND p_post_author
            UNION ALL
            SELECT d.user_id, d.ord FROM unnest(p_to) WITH ORDINALITY AS d (user_id, ord)
            UNION ALL
            SELECT u.id, 1000 + array_position(p_mentions, lower(u.username)) FROM users u
            WHERE lower(u.username) = ANY (p_mentions)
        ), target AS (
            SELECT coalesce(p.hidden, false) OR coalesce(cm.hidden, false) AS hidden,
                   coalesce(cm.body, p.body) AS body
            FROM (SELECT) one
            LEFT JOIN posts p ON p.id = p_post
            LEFT JOIN comments cm ON cm.id = p_comment
        ), who AS (
            -- A subquery per candidate: a key lookup each, never a scan of
            -- the tenant's users.
            SELECT c.user_id, c.ord,
                   (SELECT u.role IN ('moderator', 'admin') FROM users u WHERE u.id = c.user_id) AS moderates
            FROM cand c WHERE c.user_id <> p_actor
        ), pick AS (
            SELECT DISTINCT ON (w.user_id) w.user_id, w.ord, w.moderates
            FROM who w, target t
            WHERE (p_always AND w.ord < 1000) OR NOT t.hidden OR w.moderates
            ORDER BY w.user_id, w.ord
        ), ins AS (
            INSERT INTO notifications (tenant_id, user_id, kind, actor_id, post_id, comment_id, excerpt, detail)
            SELECT p_tenant, k.user_id, CASE WHEN k.ord < 1000 THEN p_kind ELSE 'mention' END, p_actor, p_post, p_comment,
                   coalesce(body_excerpt(t.body), body_excerpt(p_excerpt)), p_detail
            FROM (SELECT * FROM pick ORDER BY ord LIMIT 10) k, target t
            ORDER BY k.user_id
            RETURNING *
        ), cnt AS (
            INSERT INTO notification_counts AS nc (tenant_id, user_id, unread)
            SELECT i.tenant_id, i.user_id, 1 FROM ins i ORDER BY i.user_id
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET unread = nc.unread + 1
            RETURNING nc.user_id, nc.unread
        ), seen AS (
            -- visible is notificationVisible's rule (store/notifications.go),
            -- which lists and replays apply; the store tests compare the
            -- event with the listed notification.
            SELECT i.*, cnt.unread,
                   (p.id IS NOT NULL AND (i.comment_id IS NULL OR cm.id IS NOT NULL)
                    AND (k.moderates OR NOT (p.hidden OR coalesce(cm.hidden, false)))) AS visible,
                   p.title, a.username AS actor_name
            FROM ins i JOIN cnt ON cnt.user_id = i.user_id JOIN pick k ON k.user_id = i.user_id
            JOIN users a ON a.id = p_actor
            LEFT JOIN posts p ON p.id = p_post
            LEFT JOIN comments cm ON cm.id = p_comment
        )
        SELECT s.user_id, jsonb_build_object(
            'notification', jsonb_build_object(
                'id', s.id::text,
                'kind', s.kind,
                'actor', CASE WHEN s.kind IN ('reply', 'mention')
                              THEN jsonb_build_object('id', s.actor_id::text, 'username', s.actor_name) END,
                'post', CASE WHEN s.post_id IS NOT NULL
                             THEN jsonb_build_object('id', s.post_id::text,
                                                     'title', CASE WHEN s.visible THEN s.title ELSE '' END) END,
                'comment_id', s.comment_id::text,
                'excerpt', CASE WHEN s.post_id IS NULL OR s.visible THEN s.excerpt ELSE '' END,
                'detail', s.detail,
                'read', s.read_at IS NOT NULL,
                'created_at', json_time(s.created_at)),
            'unread_count', s.unread) AS payload
        FROM seen s ORDER BY s.user_id;
END $$;

-- notify_cause writes the notifications of one cause (notify_rows) and
-- sends each recipient its notification.created.
CREATE FUNCTION notify_cause(
    p_tenant bigint, p_to bigint[], p_kind text, p_mentions text[], p_post bigint, p_comment bigint,
    p_excerpt text, p_detail text, p_actor bigint, p_post_author boolean, p_always boolean,
    p_trace text, p_channel text)
RETURNS TABLE (event_room text, event_seq bigint) LANGUAGE plpgsql AS $$
DECLARE
    n record;
BEGIN
    FOR n IN SELECT * FROM notify_rows(p_tenant, p_to, p_kind, p_mentions, p_post, p_comment,
                                       p_excerpt, p_detail, p_actor, p_post_author, p_always)
    LOOP
        event_room := 'user:' || n.recipient;
        event_seq := publish_event(p_tenant, event_room, 'notification.created', n.notification, p_trace, p_channel);
        RETURN NEXT;
    END LOOP;
END $$;

-- create_comment adds a comment to a post (answering comment p_reply_to of
-- the same post, or none), counts it, and sends what it changes:
-- comment.created to the post's room, post.activity to the board's (by way
-- of activity_queue), the author's read position (read.updated), and the
-- notifications of the post's author, the answered comment's author and
-- the people p_mentions names.
-- It answers the comment as comment.created carries it, and the rooms and
-- seqs of every event it wrote, for the doorbell.
--
-- Locks are taken in the order of every other write: the answered comment
-- (key share, so it cannot be deleted under the reply), the post, then the
-- rooms. Refusals raise: P0002 no such post (or hidden from the author),
-- AGRPL the answered comment is not a visible comment of this post, AGLCK
-- the post is locked.
CREATE FUNCTION create_comment(
    p_tenant bigint, p_post bigint, p_reply_to bigint, p_author bigint, p_moderates boolean,
    p_body text, p_body_html text, p_mentions text[], p_trace text, p_channel text)
RETURNS TABLE (comment jsonb, event_rooms text[], event_seqs bigint[]) LANGUAGE plpgsql AS $$
DECLARE
    answered_author bigint;
    post record;
    c comments;
    author_name text;
    read_moved boolean;
    n record;
BEGIN
    IF p_reply_to IS NOT NULL THEN
        SELECT cm.author_id INTO answered_author
        FROM comments cm JOIN posts p ON p.tenant_id = cm.tenant_id AND p.id = cm.post_id
        WHERE cm.id = p_reply_to AND cm.post_id = p_post AND ((NOT cm.hidden AND NOT p.hidden) OR p_moderates)
        FOR KEY SHARE OF cm;
    END IF;
    UPDATE posts SET comment_count = comment_count + 1, last_activity_at = now()
    WHERE id = p_post AND (NOT hidden OR p_moderates)
    RETURNING locked, board_id, comment_count, last_activity_at INTO post;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'post not found' USING ERRCODE = 'P0002';
    END IF;
    IF p_reply_to IS NOT NULL AND answered_author IS NULL THEN
        RAISE EXCEPTION 'reply_to is not a comment of this post' USING ERRCODE = 'AGRPL';
    END IF;
    IF post.locked AND NOT p_moderates THEN
        RAISE EXCEPTION 'the post is locked' USING ERRCODE = 'AGLCK';
    END IF;

    INSERT INTO comments (tenant_id, post_id, author_id, body, body_html, reply_to)
    VALUES (p_tenant, p_post, p_author, p_body, p_body_html, p_reply_to)
    RETURNING * INTO c;
    SELECT u.username INTO author_name FROM users u WHERE u.id = p_author;
    comment := jsonb_build_object(
        'id', c.id::text,
        'post_id', c.post_id::text,
        'reply_to', c.reply_to::text,
        'author', jsonb_build_object('id', c.author_id::text, 'username', author_name),
        'body', c.body,
        'body_html', c.body_html,
        'version', c.version,
        'hidden', c.hidden,
        'created_at', json_time(c.created_at),
        'updated_at', json_time(c.updated_at),
        'edited_at', json_time(c.edited_at),
        'reactions', c.reactions);
    event_rooms := ARRAY['post:' || p_post];
    event_seqs := ARRAY[publish_event(p_tenant, event_rooms[1], 'comment.created', comment, p_trace, p_channel)];
    INSERT INTO activity_queue (tenant_id, board_id, post_id, comment_count, last_activity_at, trace_parent)
    VALUES (p_tenant, post.board_id, p_post, post.comment_count, post.last_activity_at, p_trace);

    -- The author has read the post up to their own comment.
    INSERT INTO read_state (tenant_id, user_id, post_id, last_read_comment_id) VALUES (p_tenant, p_author, p_post, c.id)
    ON CONFLICT (tenant_id, user_id, post_id) DO UPDATE
    SET last_read_comment_id = EXCLUDED.last_read_comment_id, updated_at = now()
    WHERE read_state.last_read_comment_id < EXCLUDED.last_read_comment_id;
    read_moved := FOUND;

    -- The author's read.updated and the notifications go out in user id
    -- order, as every write takes user rooms: one writer answering
    -- another's post while the other answers theirs must not deadlock.
    FOR n IN
        SELECT r.recipient AS user_id, 'notification.created' AS type, r.notification AS payload
        FROM notify_rows(p_tenant, CASE WHEN answered_author IS NULL THEN '{}'::bigint[] ELSE ARRAY[answered_author] END,
                         'reply', p_mentions, p_post, c.id, '', NULL, p_author, true, false) r
        UNION ALL
        SELECT p_author, 'read.updated', jsonb_build_object('post_id', p_post::text, 'last_read_comment_id', c.id::text)
        WHERE read_moved
        ORDER BY 1
    LOOP
        event_rooms := event_rooms || ('user:' || n.user_id);
        event_seqs := event_seqs || publish_event(p_tenant, 'user:' || n.user_id, n.type, n.payload, p_trace, p_channel);
    END LOOP;
    RETURN NEXT;
END $$;
