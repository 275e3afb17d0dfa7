-- gatehouse schema version 2: login counters shared by every replica (SPEC §4 "Login
-- lockout", §8: "login failures counted on any replica count toward the same lockout").
-- One row per key: `username:<canonical name>`, `address:<client address>`,
-- `registration:<client address>`. The rules are the ones of src/store/counters.rs,
-- applied by the store inside one transaction over the (at most two) rows of an attempt.
-- Times are Unix milliseconds. The signing secret's fingerprint lives in `meta`
-- (key `secret_fingerprint`), which needs no schema change.
CREATE TABLE login_counters (
    key          text PRIMARY KEY,
    window_start bigint NOT NULL,
    attempts     integer NOT NULL CHECK (attempts >= 0),
    locked_until bigint,
    last_seen    bigint NOT NULL,
    -- After this the row counts for nothing (its window and lockout are over): swept.
    expires_at   bigint NOT NULL
);
CREATE INDEX login_counters_expires_at ON login_counters (expires_at);
