-- User accounts of the web UI (issue 6): a name, an argon2id password hash (PHC string;
-- the password itself is never stored), a role, and when the account was made, last
-- changed (password or role) and disabled. Names are unique and never renamed.
CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);
