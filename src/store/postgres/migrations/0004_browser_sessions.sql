-- gatehouse schema version 4: browser sessions (SPEC §10). A browser session is a login
-- session with the SHA-256 of its cookie value (never the value), the last recorded use
-- and the remember-me flag; token sessions leave all three NULL.
ALTER TABLE sessions
    ADD COLUMN cookie_hash bytea CHECK (length(cookie_hash) = 32),
    ADD COLUMN last_seen   bigint,
    ADD COLUMN remember_me boolean,
    ADD CONSTRAINT sessions_browser_all_or_none CHECK (
        (cookie_hash IS NULL) = (last_seen IS NULL)
        AND (cookie_hash IS NULL) = (remember_me IS NULL)
    );
