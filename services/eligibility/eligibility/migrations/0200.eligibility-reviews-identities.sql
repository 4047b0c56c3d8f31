-- depends: 0100.eligibility-cases

-- Who has been granted assistance: keyed hashes of identity (never the raw document number or
-- person id), one row per (hash, case) whose grant was approved, automatically or by a reviewer.
-- Readers and writers take a transaction-scoped advisory lock per hash first (sorted), so two
-- instances deciding the same person at once see each other's approval.
CREATE TABLE approved_identities (
    identity_hash text        NOT NULL,
    case_id       text        NOT NULL,
    program_code  text        NOT NULL,
    approved_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identity_hash, case_id)
);

-- The review queue: one row per case held for a person's decision, kept after the decision.
-- status: open | awaiting_second_approval | approved | rejected
CREATE TABLE reviews (
    case_id            text        PRIMARY KEY,
    plan_id            text        NOT NULL,
    program_code       text        NOT NULL,
    programme_version  text,
    status             text        NOT NULL,
    kind               text        NOT NULL DEFAULT 'grant',  -- grant | revision | replacement
    reasons            jsonb       NOT NULL DEFAULT '[]',
    facts              jsonb       NOT NULL DEFAULT '{}',   -- minimised: what a reviewer needs, no identity
    plan_total         jsonb,
    programme_total    jsonb,
    second_approval_needed boolean NOT NULL DEFAULT false,
    opened_at          timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_open ON reviews (opened_at) WHERE status IN ('open', 'awaiting_second_approval');

-- Every reviewer action, append-only: who, when, what, why, under which programme version.
CREATE TABLE review_actions (
    id                bigserial   PRIMARY KEY,
    case_id           text        NOT NULL,
    plan_id           text        NOT NULL,
    actor             text        NOT NULL,
    action            text        NOT NULL,   -- approve | reject
    outcome           text        NOT NULL,   -- awaiting_second_approval | approved | rejected
    comment           text        NOT NULL,
    programme_version text,
    at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_actions_case ON review_actions (case_id, id);

-- Decisions now say under which programme version they were taken and every rule's result.
ALTER TABLE decisions ADD COLUMN programme_version text;
ALTER TABLE decisions ADD COLUMN rules jsonb NOT NULL DEFAULT '[]';
ALTER TABLE decisions ADD COLUMN decided_by text NOT NULL DEFAULT 'rules';
