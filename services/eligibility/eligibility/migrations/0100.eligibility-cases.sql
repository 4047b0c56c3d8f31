-- One row per case: what eligibility knows of it, as a JSON document owned by the domain.
CREATE TABLE case_files (
    case_id    text        PRIMARY KEY,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every decision taken, for audit: who was approved or rejected for what, and why.
CREATE TABLE decisions (
    id         bigserial   PRIMARY KEY,
    case_id    text        NOT NULL,
    plan_id    text,
    outcome    text        NOT NULL,
    reasons    jsonb       NOT NULL DEFAULT '[]',
    decided_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_case ON decisions (case_id);
