-- The finance console's sign-ins: server-side sessions and the login attempts that throttle
-- guessing. Both live in Postgres so that every console instance sees the same ones.
-- user_id refers to auth.users without a foreign key: the auth schema is migrated after this one.

-- One row per signed-in browser. The cookie carries the session id (signed); only its SHA-256 is
-- kept here, so whoever reads this table cannot take a session over.
CREATE TABLE console_sessions (
    id_hash        text        PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
    user_id        bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,           -- absolute end, whatever the activity
    csrf_secret    text        NOT NULL,
    locale         text,
    -- The review API token issued at sign-in for a reviewer: its id (to revoke it at sign-out or
    -- expiry) and the token sealed with a key derived from the session id, which only the
    -- browser's cookie holds.
    review_token_id     bigint,
    review_token_sealed bytea
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Every sign-in attempt, kept for the throttling window (and pruned after it). username_key is
-- the name tried, lowercased (usernames ignore case), whether or not such a user exists.
CREATE TABLE login_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    username_key text        NOT NULL,
    remote       text        NOT NULL,
    succeeded    boolean     NOT NULL
);
CREATE INDEX login_attempts_username ON login_attempts (username_key, at);
CREATE INDEX login_attempts_remote ON login_attempts (remote, at);
