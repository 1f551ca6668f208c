-- Agora schema. Every tenant-owned table leads its keys with tenant_id, and
-- every reference between tenant-owned rows is a composite (tenant_id, id)
-- foreign key, so a row can never point into another tenant even if a query
-- forgot its filter. Row Level Security (forced, so it binds the table owner
-- too) is the second wall: with app.tenant_id unset, every policy sees NULL
-- and no rows.

CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}$'),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    public     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    username      text NOT NULL,
    email         text,
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'moderator', 'admin')),
    banned_at     timestamptz,
    banned_until  timestamptz,
    ban_reason    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Usernames are unique per tenant without regard to case: "Alice" and
-- "alice" are the same person to readers.
CREATE UNIQUE INDEX users_username_key ON users (tenant_id, lower(username));

CREATE TABLE tokens (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    user_id    bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('session', 'ticket')),
    -- A ticket's session token: revoking the session closes sockets opened
    -- with its tickets too.
    parent_id  bigint,
    hash       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX tokens_user ON tokens (tenant_id, user_id);

CREATE TABLE boards (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    slug        text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, slug)
);

CREATE TABLE posts (
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    board_id         bigint NOT NULL,
    author_id        bigint NOT NULL,
    title            text NOT NULL,
    body             text NOT NULL,
    version          integer NOT NULL DEFAULT 1,
    comment_count    integer NOT NULL DEFAULT 0,
    locked           boolean NOT NULL DEFAULT false,
    pinned           boolean NOT NULL DEFAULT false,
    hidden           boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, board_id) REFERENCES boards (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, author_id) REFERENCES users (tenant_id, id)
);
-- Serves the board listing: pinned first, then newest activity, keyset by id.
CREATE INDEX posts_board_listing ON posts (tenant_id, board_id, pinned DESC, last_activity_at DESC, id DESC);

CREATE TABLE comments (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    post_id    bigint NOT NULL,
    author_id  bigint NOT NULL,
    body       text NOT NULL,
    version    integer NOT NULL DEFAULT 1,
    hidden     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, author_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX comments_post ON comments (tenant_id, post_id, id);

CREATE TABLE reports (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    reporter_id bigint NOT NULL,
    target_type text NOT NULL CHECK (target_type IN ('post', 'comment')),
    target_id   bigint NOT NULL,
    reason      text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    note        text,
    resolved_by bigint,
    resolved_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, reporter_id) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, resolved_by) REFERENCES users (tenant_id, id)
);
-- One open report per reporter and target; once resolved they may report again.
CREATE UNIQUE INDEX reports_one_open ON reports (tenant_id, reporter_id, target_type, target_id) WHERE status = 'open';
CREATE INDEX reports_queue ON reports (tenant_id, status, id DESC);

CREATE TABLE audit_log (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    actor_id    bigint NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   bigint NOT NULL,
    reason      text NOT NULL DEFAULT '',
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, actor_id) REFERENCES users (tenant_id, id)
);

-- The audit log is append-only even for the role that owns it: a grant can be
-- given back by the owner, a trigger cannot be bypassed without DDL.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- rooms.seq is the per-room sequence: the UPDATE that bumps it takes the row
-- lock that orders concurrent writers of one room in commit order.
CREATE TABLE rooms (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name      text NOT NULL,
    seq       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, name)
);

-- The outbox: the source of truth for realtime delivery and resume.
CREATE TABLE events (
    tenant_id  bigint NOT NULL,
    room       text NOT NULL,
    seq        bigint NOT NULL,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, room, seq),
    FOREIGN KEY (tenant_id, room) REFERENCES rooms (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX events_age ON events (tenant_id, created_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'tokens', 'boards', 'posts', 'comments', 'reports',
                             'audit_log', 'rooms', 'events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)$p$, t);
    END LOOP;
END;
$$;
