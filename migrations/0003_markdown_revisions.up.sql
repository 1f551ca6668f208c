-- Formatting and edit history: every post and comment keeps, beside the
-- Markdown its author wrote (body), the HTML rendered from it when it was
-- written (body_html), and the time of its last change of title or body
-- (edited_at, NULL until one). The revisions tables keep every text an
-- object has had once it has been edited.

-- SQL cannot run the Markdown renderer, so rows written before this
-- migration get a rendering that is safe without it: the text escaped, in
-- paragraphs split at blank lines, which is what readers saw before
-- formatting existed. The same fallback fills body_html of a row inserted
-- without one (bulk loads, tests writing SQL), so the column is never
-- empty and never unsafe; the application always renders its own.
-- body_html_stale marks the fallback: the server re-renders those rows
-- with the real renderer in the background after it starts.
CREATE FUNCTION escaped_paragraphs(body text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT '<p>' || regexp_replace(
        btrim(replace(replace(replace(replace(replace(replace(body,
            '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&#34;'), '''', '&#39;'), E'\r', ''), E' \t\n'),
        E'\n[ \t]*\n\\s*', '</p>' || E'\n' || '<p>', 'g') || '</p>'
$$;

CREATE FUNCTION fill_body_html() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.body_html := escaped_paragraphs(NEW.body);
    NEW.body_html_stale := true;
    RETURN NEW;
END;
$$;

ALTER TABLE posts ADD COLUMN body_html text, ADD COLUMN body_html_stale boolean NOT NULL DEFAULT false,
    ADD COLUMN edited_at timestamptz;
ALTER TABLE comments ADD COLUMN body_html text, ADD COLUMN body_html_stale boolean NOT NULL DEFAULT false,
    ADD COLUMN edited_at timestamptz;
-- Row level security is forced on the owner too, and a migration has no
-- tenant: the backfill would see no rows. The file runs as one
-- transaction, so nobody else ever sees the tables unforced.
ALTER TABLE posts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;
UPDATE posts SET body_html = escaped_paragraphs(body), body_html_stale = true;
UPDATE comments SET body_html = escaped_paragraphs(body), body_html_stale = true;
ALTER TABLE posts FORCE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;
ALTER TABLE posts ALTER COLUMN body_html SET NOT NULL;
ALTER TABLE comments ALTER COLUMN body_html SET NOT NULL;
CREATE TRIGGER posts_body_html BEFORE INSERT ON posts
    FOR EACH ROW WHEN (NEW.body_html IS NULL) EXECUTE FUNCTION fill_body_html();
CREATE TRIGGER comments_body_html BEFORE INSERT ON comments
    FOR EACH ROW WHEN (NEW.body_html IS NULL) EXECUTE FUNCTION fill_body_html();
-- What the background re-render looks for; empty once it is done.
CREATE INDEX posts_body_html_stale ON posts (tenant_id, id) WHERE body_html_stale;
CREATE INDEX comments_body_html_stale ON comments (tenant_id, id) WHERE body_html_stale;

-- One row per text a post has had, written in the transaction of the edit:
-- the first edit also keeps the original (version 1, by the author, at
-- created_at). version is the post's version once that text was saved, so
-- it may skip numbers (moderation bumps the version too).
CREATE TABLE post_revisions (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    post_id   bigint NOT NULL,
    version   integer NOT NULL,
    title     text NOT NULL,
    body      text NOT NULL,
    edited_by bigint NOT NULL,
    edited_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, post_id, version),
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, edited_by) REFERENCES users (tenant_id, id)
);

CREATE TABLE comment_revisions (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    comment_id bigint NOT NULL,
    version    integer NOT NULL,
    body       text NOT NULL,
    edited_by  bigint NOT NULL,
    edited_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, comment_id, version),
    FOREIGN KEY (tenant_id, comment_id) REFERENCES comments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, edited_by) REFERENCES users (tenant_id, id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['post_revisions', 'comment_revisions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON %I
            USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
            WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)$p$, t);
    END LOOP;
END;
$$;
