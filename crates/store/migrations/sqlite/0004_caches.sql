-- Pipeline caches (`cache: { key, paths }`) kept for agents and the built-in executor:
-- one entry per repository and resolved key, whose files are artifact blobs (the same
-- content-addressed store). The first entry saved under a key is kept; `last_used_at`
-- moves on every fetch, and the least recently used entries are evicted first.
CREATE TABLE caches (
    id            INTEGER PRIMARY KEY,
    repo_id       BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    cache_key     TEXT   NOT NULL,
    -- The artifact manifest (path -> digest, size, mode) as JSON.
    manifest_json TEXT   NOT NULL,
    files         BIGINT NOT NULL,
    -- Sum of the files' sizes (a blob two entries share counts in both).
    size          BIGINT NOT NULL,
    -- The run whose job saved it, while that run exists.
    run_id        BIGINT REFERENCES runs (id) ON DELETE SET NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    UNIQUE (repo_id, cache_key)
);
-- Eviction order.
CREATE INDEX caches_last_used ON caches (last_used_at, id);

-- The blobs each entry names, so that a blob's users are found without reading manifests:
-- a lease may fetch the blobs of its repository's entries, and an evicted entry's blobs
-- are deleted only when no artifact or other entry still names them.
CREATE TABLE cache_blobs (
    cache_id BIGINT NOT NULL REFERENCES caches (id) ON DELETE CASCADE,
    digest   TEXT   NOT NULL,
    PRIMARY KEY (cache_id, digest)
);
CREATE INDEX cache_blobs_digest ON cache_blobs (digest);
CREATE INDEX artifacts_digest ON artifacts (digest);
