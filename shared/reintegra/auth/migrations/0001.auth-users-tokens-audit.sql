-- Users, their API tokens and the audit trail, in schema "auth". Every name is schema-qualified:
-- the services that read these tables have their own schema as search_path.

-- One row per person. username is unique ignoring case (lower(username) index): "K.Benali" and
-- "k.benali" are one person. upstream_ids: how this person appears in upstream events
-- (e.g. a plan's approved_by "caseworker:k.benali"), for the four-eyes check.
CREATE TABLE auth.users (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text        NOT NULL,
    display_name  text        NOT NULL,
    password_hash text,                      -- argon2id; NULL for users who only use API tokens
    roles         text[]      NOT NULL,
    upstream_ids  text[]      NOT NULL DEFAULT '{}',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    -- A new role needs a migration that widens this list, as well as reintegra.auth.roles.
    CONSTRAINT users_roles_known CHECK (roles <@ ARRAY['reviewer', 'finance_viewer', 'finance_approver', 'admin'])
);
CREATE UNIQUE INDEX users_username_ci ON auth.users (lower(username));

-- Only the SHA-256 of a token is kept (hex): the token itself is shown once, at creation.
CREATE TABLE auth.api_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES auth.users (id),
    name         text        NOT NULL,       -- what it is for, e.g. "nightly export"
    token_hash   text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON auth.api_tokens (user_id);

-- Who did or tried what, append-only (the triggers below refuse UPDATE, DELETE and TRUNCATE;
-- a retention job would have to drop them knowingly). actor: a username, "cli:<os user>", or
-- NULL when nobody could be identified.
CREATE TABLE auth.audit (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text,
    action  text        NOT NULL,
    outcome text        NOT NULL,
    detail  jsonb       NOT NULL DEFAULT '{}',
    remote  text
);
CREATE INDEX audit_at ON auth.audit (at);
CREATE INDEX audit_actor ON auth.audit (actor, at);

CREATE FUNCTION auth.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'auth.audit is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON auth.audit
    FOR EACH ROW EXECUTE FUNCTION auth.refuse_audit_change();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON auth.audit
    FOR EACH STATEMENT EXECUTE FUNCTION auth.refuse_audit_change();
