-- Safe retries (API.md, Conventions): one row per Idempotency-Key that a
-- caller used in the last 24 hours, written when its request starts and
-- completed with the answer. The server keeps only what it derives from the
-- key, never the key: key_hash names the caller and the key, request_hash
-- fingerprints the request, and the answer is sealed with a key derived
-- from it. A reader of this table can therefore neither replay nor read an
-- answer, which matters because a registration's answer carries a session
-- token, and tokens are otherwise stored only hashed.
CREATE TABLE idempotency_keys (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL,
    request_hash bytea NOT NULL,
    -- The request that holds the key; only it may record the answer.
    claim        bytea NOT NULL,
    -- NULL while that request is still running.
    status       smallint,
    content_type text,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key_hash)
);
-- Serves pruning: each claim removes a few expired rows of its tenant.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (tenant_id, expires_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotency_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint);
