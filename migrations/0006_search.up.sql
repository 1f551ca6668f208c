-- Search over post titles and bodies and comment bodies, in every script.
--
-- Text is folded the same way for documents and queries: Unicode NFKC
-- (full-width letters and digits, half-width kana, compatibility ideographs
-- become their ordinary forms), lower case by ICU (so case is ignored for
-- every alphabet even in a database whose locale is C, where lower() and
-- the text search parser only know ASCII case), and punctuation and
-- symbols outside ASCII become spaces (in a C-locale database the text
-- search parser would otherwise take them for letters and glue words
-- together). Chinese, Japanese and Korean have no spaces between words, so
-- every character of those scripts becomes a word of its own, at its own
-- position; a query for 米饭 is then the phrase 米 <-> 饭, which finds
-- 我喜欢米饭 and not 饭米. The rest is the `simple` text search
-- configuration: words without stemming or stop words.
--
-- Not pg_trgm: its trigrams skip every non-ASCII character in a database
-- whose ctype is C (show_trgm('我喜欢米饭') is empty there), and no trigram
-- index can answer a one- or two-character query, the usual length of a
-- Chinese word.
--
-- search_fold: the punctuation list is separatorRanges in
-- store/search_snippet.go too: change both. ASCII text (most English)
-- takes the short way: it is its own NFKC form and has none of the
-- characters the regular expressions look for, which makes indexing it
-- about a quarter cheaper.
CREATE FUNCTION search_fold(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN t ~ '^[\x01-\x7F]*$' THEN lower(t) ELSE regexp_replace(lower(normalize(t, NFKC) COLLATE "und-x-icu"),
        '[\u0080-\u00BF\u00D7\u00F7\u2000-\u2BFF\u2E00-\u2E7F\u3000-\u3004\u3008-\u3020\u3030\u303D-\u303F'
        '\u30A0\u30FB\uFE00-\uFE6F\uFF00-\uFF65\uFFF0-\uFFFF\U0001F000-\U0001FAFF\U000E0000-\U000E007F]+',
        ' ', 'g') END
$$;

-- The characters that are words on their own. store/search_snippet.go
-- marks matches in snippets with the same list (cjkRanges): change both.
CREATE FUNCTION search_split(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN t ~ '^[\x01-\x7F]*$' THEN t ELSE regexp_replace(t,
        '([\u1100-\u11FF\u2E80-\u2FDF\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303C\u3040-\u309F'
        '\u30A1-\u30FA\u30FC-\u30FF\u3100-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA960-\uA97F\uAC00-\uD7FF'
        '\uF900-\uFAFF\uFF66-\uFFDC\U0001B000-\U0001B16F\U00020000-\U0003FFFF])',
        ' \1 ', 'g') END
$$;

-- A post's title weighs A and its body D, so that ts_rank puts a match in
-- a title far above one in a body; a comment is a body.
CREATE FUNCTION search_document(title text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('simple', search_split(search_fold(coalesce(title, '')))), 'A')
        || to_tsvector('simple', search_split(search_fold(body)))
$$;

-- A query: its whitespace-separated terms must all occur (&); the words of
-- one term must occur in order, next to each other (<->), so a term of
-- Chinese characters is a phrase of characters. A word of three or more
-- characters also matches longer words that begin with it (post finds
-- posts and Postgres); shorter ones only themselves (go is not gone). The
-- lexemes are quoted for tsquery input, which takes them as they are.
-- Empty ('') when q has no words at all.
CREATE FUNCTION search_query(q text) RETURNS tsquery LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH words AS (
        SELECT t.n, l.lexeme, p.pos, p.pos - lag(p.pos) OVER (PARTITION BY t.n ORDER BY p.pos) AS gap
        FROM regexp_split_to_table(search_fold(q), '\s+') WITH ORDINALITY AS t(term, n),
             unnest(to_tsvector('simple', search_split(t.term))) AS l,
             unnest(l.positions) AS p(pos)
    ), phrases AS (
        SELECT string_agg(coalesce(' <' || gap || '> ', '')
                   || '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''''
                   || CASE WHEN char_length(lexeme) >= 3 THEN ':*' ELSE '' END,
               '' ORDER BY pos) AS phrase
        FROM words GROUP BY n
    )
    SELECT coalesce(string_agg('(' || phrase || ')', ' & '), '')::tsquery FROM phrases
$$;

-- The query of the search this transaction runs (set by store/search.go
-- with set_config('app.search_query', ..., true)), or, outside a search, a
-- query that every document matches (no document has a lexeme ' ').
CREATE FUNCTION search_filter() RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(NULLIF(current_setting('app.search_query', true), '')::tsquery, $q$!' '$q$::tsquery)
$$;

-- btree_gin lets one GIN index hold tenant_id next to the document, so a
-- search walks its own tenant's entries only.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- One row per post and per comment, kept by the triggers below in the
-- transaction of every write. board_id and created_at never change;
-- hidden is the row's own flag (a comment of a hidden post is left out
-- by the query, which looks the few hidden posts up).
CREATE TABLE search_docs (
    tenant_id  bigint NOT NULL,
    post_id    bigint NOT NULL,
    comment_id bigint, -- NULL: the post itself
    board_id   bigint NOT NULL,
    hidden     boolean NOT NULL,
    created_at timestamptz NOT NULL,
    doc        tsvector NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, post_id, comment_id),
    FOREIGN KEY (tenant_id, post_id) REFERENCES posts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, comment_id) REFERENCES comments (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX search_docs_comment ON search_docs (tenant_id, comment_id);
CREATE INDEX search_docs_match ON search_docs USING gin (tenant_id, doc);
-- The hidden posts of a tenant, for leaving their comments out.
CREATE INDEX posts_hidden ON posts (tenant_id, id) WHERE hidden;

CREATE FUNCTION search_index_post() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_docs (tenant_id, post_id, board_id, hidden, created_at, doc)
        VALUES (NEW.tenant_id, NEW.id, NEW.board_id, NEW.hidden, NEW.created_at, search_document(NEW.title, NEW.body));
    ELSIF OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body THEN
        UPDATE search_docs SET doc = search_document(NEW.title, NEW.body), hidden = NEW.hidden
        WHERE tenant_id = NEW.tenant_id AND post_id = NEW.id AND comment_id IS NULL;
    ELSE
        UPDATE search_docs SET hidden = NEW.hidden
        WHERE tenant_id = NEW.tenant_id AND post_id = NEW.id AND comment_id IS NULL;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION search_index_comment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO search_docs (tenant_id, post_id, comment_id, board_id, hidden, created_at, doc)
        SELECT NEW.tenant_id, NEW.post_id, NEW.id, p.board_id, NEW.hidden, NEW.created_at, search_document(NULL, NEW.body)
        FROM posts p WHERE p.tenant_id = NEW.tenant_id AND p.id = NEW.post_id;
    ELSIF OLD.body IS DISTINCT FROM NEW.body THEN
        UPDATE search_docs SET doc = search_document(NULL, NEW.body), hidden = NEW.hidden
        WHERE tenant_id = NEW.tenant_id AND comment_id = NEW.id;
    ELSE
        UPDATE search_docs SET hidden = NEW.hidden
        WHERE tenant_id = NEW.tenant_id AND comment_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;

-- UPDATE OF: a comment count or last_activity_at bump (every new comment)
-- does not even call the function.
CREATE TRIGGER posts_search_insert AFTER INSERT ON posts
    FOR EACH ROW EXECUTE FUNCTION search_index_post();
CREATE TRIGGER posts_search_update AFTER UPDATE OF title, body, hidden ON posts
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.body IS DISTINCT FROM NEW.body
                       OR OLD.hidden IS DISTINCT FROM NEW.hidden)
    EXECUTE FUNCTION search_index_post();
CREATE TRIGGER comments_search_insert AFTER INSERT ON comments
    FOR EACH ROW EXECUTE FUNCTION search_index_comment();
CREATE TRIGGER comments_search_update AFTER UPDATE OF body, hidden ON comments
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.hidden IS DISTINCT FROM NEW.hidden)
    EXECUTE FUNCTION search_index_comment();

-- Existing rows. Row level security is forced on the owner too and a
-- migration has no tenant: the file runs as one transaction, so nobody
-- sees the tables unforced.
ALTER TABLE posts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE comments NO FORCE ROW LEVEL SECURITY;
INSERT INTO search_docs (tenant_id, post_id, board_id, hidden, created_at, doc)
SELECT tenant_id, id, board_id, hidden, created_at, search_document(title, body) FROM posts;
INSERT INTO search_docs (tenant_id, post_id, comment_id, board_id, hidden, created_at, doc)
SELECT c.tenant_id, c.post_id, c.id, p.board_id, c.hidden, c.created_at, search_document(NULL, c.body)
FROM comments c JOIN posts p ON p.tenant_id = c.tenant_id AND p.id = c.post_id;
ALTER TABLE posts FORCE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;

-- Tenant isolation like every other table, plus the search itself. Under
-- row level security PostgreSQL evaluates a query's own conditions only
-- after the policy's, unless they are leakproof, and no text search
-- operator is (only a superuser could mark one): `WHERE doc @@ q` would be
-- checked row by row over the whole tenant, never through the GIN index.
-- A policy's condition has no such restriction, so the match lives here.
-- Outside a search search_filter() matches every row: to anything but a
-- search this is an ordinary tenant table.
ALTER TABLE search_docs ENABLE ROW LEVEL SECURITY;
ALTER TABLE search_docs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON search_docs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint AND doc @@ search_filter())
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint);
