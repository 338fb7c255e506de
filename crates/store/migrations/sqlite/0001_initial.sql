-- The first schema of gantry's store (SQLite). Times are unix milliseconds; maps and lists
-- are JSON text; states are lowercase words. Kept column-for-column equal to the
-- PostgreSQL schema: the same SQL runs against both.

CREATE TABLE repos (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    url            TEXT    NOT NULL,
    webhook_secret TEXT,
    created_at     BIGINT  NOT NULL,
    last_error     TEXT,
    last_polled_at BIGINT,
    next_poll_at   BIGINT
);

-- Last seen head of each ref, so polling starts a run once per new commit.
CREATE TABLE ref_heads (
    repo_id   BIGINT NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    git_ref   TEXT   NOT NULL,
    commit_id TEXT   NOT NULL,
    PRIMARY KEY (repo_id, git_ref)
);

CREATE TABLE pipelines (
    id          INTEGER PRIMARY KEY,
    repo_id     BIGINT  NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    -- Number of the latest run; incremented under the row's write lock, so concurrent
    -- creates never share a number.
    last_number BIGINT  NOT NULL DEFAULT 0,
    UNIQUE (repo_id, name)
);

CREATE TABLE runs (
    id                INTEGER PRIMARY KEY,
    pipeline_id       BIGINT  NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    -- Copied from the pipeline so that listing one repository's runs is an index range.
    repo_id           BIGINT  NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    number            BIGINT  NOT NULL,
    state             TEXT    NOT NULL,
    event             TEXT    NOT NULL,
    git_ref           TEXT    NOT NULL,
    commit_id         TEXT    NOT NULL,
    cause             TEXT    NOT NULL,
    params            TEXT    NOT NULL,
    plan_json         TEXT,
    pipeline_path     TEXT,
    pipeline_text     TEXT,
    error             TEXT,
    concurrency_group TEXT,
    concurrency_limit BIGINT,
    rerun_of          BIGINT  REFERENCES runs (id) ON DELETE SET NULL,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    dedup_key         TEXT,
    created_at        BIGINT  NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
CREATE UNIQUE INDEX runs_pipeline_number ON runs (pipeline_id, number);
CREATE UNIQUE INDEX runs_pipeline_dedup ON runs (pipeline_id, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX runs_pipeline_id ON runs (pipeline_id, id);
CREATE INDEX runs_repo_id ON runs (repo_id, id);
CREATE INDEX runs_state_id ON runs (state, id);

CREATE TABLE jobs (
    run_id           BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx              BIGINT  NOT NULL,
    name             TEXT    NOT NULL,
    job_key          TEXT    NOT NULL,
    needs            TEXT    NOT NULL,
    runs_on          TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    attempt          BIGINT  NOT NULL DEFAULT 0,
    lease_id         TEXT    UNIQUE,
    lease_deadline   BIGINT,
    executor         TEXT,
    message          TEXT,
    exit_code        BIGINT,
    manifest_json    TEXT,
    queued_at        BIGINT,
    started_at       BIGINT,
    finished_at      BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, idx)
);
-- The queue: only queued jobs, in hand-out order.
CREATE INDEX jobs_queued ON jobs (run_id, idx) WHERE state = 'queued';
-- Leases to expire.
CREATE INDEX jobs_running ON jobs (lease_deadline) WHERE state = 'running';

CREATE TABLE artifacts (
    run_id  BIGINT NOT NULL,
    job_idx BIGINT NOT NULL,
    path    TEXT   NOT NULL,
    digest  TEXT   NOT NULL,
    size    BIGINT NOT NULL,
    PRIMARY KEY (run_id, job_idx, path),
    FOREIGN KEY (run_id, job_idx) REFERENCES jobs (run_id, idx) ON DELETE CASCADE
);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    hash       TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
-- A name is reused after revocation (rotating the admin token), never twice at once.
CREATE UNIQUE INDEX tokens_live_name ON tokens (name) WHERE revoked_at IS NULL;
