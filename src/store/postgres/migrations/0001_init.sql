-- gatehouse schema version 1: the tables of the store (see src/store/postgres/mod.rs).
-- Applied by `gatehouse migrate` / `serve` inside one transaction under an advisory lock.

-- Users; `canonical` (the lower-case name) is the unique key names are compared by.
CREATE TABLE users (
    id                  text PRIMARY KEY,
    username            text NOT NULL,
    canonical           text NOT NULL UNIQUE,
    password_hash       text NOT NULL,
    roles               text[] NOT NULL,
    enabled             boolean NOT NULL,
    created             bigint NOT NULL,
    password_changed_at bigint NOT NULL,
    generation          bigint NOT NULL
);

-- Login sessions (refresh-token families), keyed under their user.
CREATE TABLE sessions (
    user_id    text NOT NULL,
    family     text NOT NULL,
    created    bigint NOT NULL,
    generation bigint NOT NULL,
    expires_at bigint NOT NULL,
    ended_at   bigint,
    PRIMARY KEY (user_id, family)
);

-- Refresh tokens: only the SHA-256 of each token is kept.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    family     text NOT NULL,
    user_id    text NOT NULL,
    expires_at bigint NOT NULL,
    spent      boolean NOT NULL
);

-- Access-token ids revoked before their expiry.
CREATE TABLE revoked (
    jti        text PRIMARY KEY,
    expires_at bigint NOT NULL
);

-- Small named values: the generated signing secret.
CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);

-- The change feed. `feed_head` is one row: the last sequence number given out (its row
-- lock, held by a writer until commit, is what puts numbers in commit order) and the
-- highest number trimmed from `changes`.
CREATE TABLE feed_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint NOT NULL,
    trimmed  bigint NOT NULL
);
INSERT INTO feed_head (only_row, seq, trimmed) VALUES (true, 0, 0);

CREATE TABLE changes (
    seq    bigint PRIMARY KEY,
    at     bigint NOT NULL,
    change jsonb NOT NULL
);

-- Every change row wakes the replicas' LISTEN connections (delivered at commit).
CREATE FUNCTION gatehouse_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gatehouse_changes', NEW.seq::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION gatehouse_notify_change();
