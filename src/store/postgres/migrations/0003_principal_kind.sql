-- gatehouse schema version 3: service clients (SPEC §4 client credentials) are principals
-- of kind 'client' in the users table, so users and clients share one name namespace (the
-- unique `canonical`). Every row written before this migration is a user.
ALTER TABLE users
    ADD COLUMN kind text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'client'));
