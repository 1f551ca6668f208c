-- A keyed request's write and "this key was used" commit together: every
-- tenant transaction of the request that holds a key sets applied in the
-- same transaction as its write. A claim that is applied but has no answer
-- (its server died between the commit and recording the answer) is never
-- taken over, so a retry cannot run the write a second time.
ALTER TABLE idempotency_keys ADD COLUMN applied boolean NOT NULL DEFAULT false;
