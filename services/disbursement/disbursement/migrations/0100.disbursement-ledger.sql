-- What disbursement knows of each case beyond its tranches (grant, milestones, deliveries).
CREATE TABLE case_facts (
    case_id    text        PRIMARY KEY,
    facts      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per tranche: the money that moves. Amounts are integer minor units.
CREATE TABLE tranches (
    case_id        text        NOT NULL,
    component_id   text        NOT NULL,
    seq            integer     NOT NULL,
    plan_id        text        NOT NULL,
    modality       text        NOT NULL CHECK (modality IN ('cash', 'in_kind')),
    category       text        NOT NULL,
    currency       char(3)     NOT NULL,
    amount_minor   bigint      NOT NULL CHECK (amount_minor >= 0),
    release        text        NOT NULL,
    vendor_id      text,
    status         text        NOT NULL,
    reference      text        UNIQUE,
    transfer_id    text,
    failure_reason text,
    traceparent    text,
    tracestate     text,
    next_attempt_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, component_id, seq)
);
-- The payment dispatcher's queue: cash tranches released and not yet accepted by the provider.
CREATE INDEX tranches_to_send ON tranches (next_attempt_at) WHERE status IN ('released', 'sending') AND modality = 'cash';

-- How far the provider's settlement feed has been applied.
CREATE TABLE provider_cursor (
    provider text   PRIMARY KEY,
    cursor   bigint NOT NULL
);
