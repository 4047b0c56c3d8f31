-- Finance's own views, built from events only (it reads no other service's tables):
-- the ledger's postings, the payments' statuses and disbursement's exceptions.

-- Every ledger posting, once: (account, seq) is the ledger's own numbering per account.
CREATE TABLE ledger_postings (
    account          text        NOT NULL,
    seq              bigint      NOT NULL,
    account_kind     text        NOT NULL,
    account_currency char(3)     NOT NULL,
    account_programme text,
    transfer_id      text        NOT NULL,
    side             text        NOT NULL CHECK (side IN ('debit', 'credit')),
    phase            text        NOT NULL,
    amount_minor     bigint      NOT NULL,
    currency         char(3)     NOT NULL,
    kind             text        NOT NULL,
    counter_account  text,
    programme        text,
    case_id          text,
    reference        text,
    pending_id       text,
    pending_amount_minor bigint,
    conversion_id    text,
    rate             text,
    posted_at        timestamptz NOT NULL,  -- the posting event's time
    PRIMARY KEY (account, seq)
);
CREATE INDEX ledger_postings_programme ON ledger_postings (programme, posted_at);

-- One row per payment attempt (its reference), from the case status events.
CREATE TABLE payments (
    reference        text        PRIMARY KEY,
    case_id          text        NOT NULL,
    plan_id          text,
    component_id     text,
    tranche_seq      integer,
    modality         text        NOT NULL,
    category         text,
    provider         text,
    vendor_id        text,
    programme        text,
    amount_minor     bigint      NOT NULL,
    currency         char(3)     NOT NULL,
    programme_amount_minor bigint,
    programme_currency char(3),
    status           text        NOT NULL,  -- released | sent | settled | failed | cancelled | held
    status_reason    text,
    released_at      timestamptz,
    sent_at          timestamptz,
    settled_at       timestamptz,
    failed_at        timestamptz,
    -- Reconciled: the statement line that shows it, and the run that matched them.
    reconciled_line  text,
    reconciled_run   bigint,
    last_event_at    timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_provider_status ON payments (provider, status);
CREATE INDEX payments_programme ON payments (programme);

-- Imported statement files: the same bytes for the same provider are imported once.
CREATE TABLE statements (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider       text        NOT NULL,
    format         text        NOT NULL,
    filename       text        NOT NULL,
    sha256         text        NOT NULL,
    statement_id   text,
    account        text,
    currency       char(3),
    period_start   date,
    period_end     date,
    opening_minor  bigint,
    closing_minor  bigint,
    line_count     integer     NOT NULL,
    new_lines      integer     NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    imported_by    text        NOT NULL,
    UNIQUE (provider, sha256)
);

-- Statement lines, once each: the CSV, camt.053 and MT940 of one day give the same line ids.
CREATE TABLE statement_lines (
    line_id        text        PRIMARY KEY,
    provider       text        NOT NULL,
    statement      bigint      NOT NULL REFERENCES statements (id),
    location       text        NOT NULL,
    booking_date   date        NOT NULL,
    value_date     date,
    provider_ref   text,
    reference      text,
    amount_minor   bigint      NOT NULL CHECK (amount_minor > 0),
    currency       char(3)     NOT NULL,
    direction      text        NOT NULL CHECK (direction IN ('debit', 'credit')),
    reversal       boolean     NOT NULL,
    counterparty   text,
    status         text        NOT NULL,
    -- What matching concluded for the line, and in which run.
    result         text,
    result_run     bigint
);
CREATE INDEX statement_lines_provider ON statement_lines (provider, result);
CREATE INDEX statement_lines_reference ON statement_lines (reference);

CREATE TABLE reconciliation_runs (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text,                  -- NULL: every provider
    as_of       date        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    started_by  text        NOT NULL,
    counts      jsonb       NOT NULL DEFAULT '{}'
);

CREATE TABLE match_results (
    run_id        bigint  NOT NULL REFERENCES reconciliation_runs (id),
    n             integer NOT NULL,
    kind          text    NOT NULL,
    key           text    NOT NULL,    -- the finding's key, the same in every run
    provider      text,
    reference     text,
    case_id       text,
    line_ids      text[]  NOT NULL DEFAULT '{}',
    expected_minor bigint,
    found_minor   bigint,
    currency      char(3),
    details       jsonb   NOT NULL DEFAULT '{}',
    exception_id  bigint,
    PRIMARY KEY (run_id, n)
);

-- The exceptions queue: from statements and from disbursement. dedupe_key: raised once.
CREATE TABLE exceptions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text        NOT NULL,
    source       text        NOT NULL CHECK (source IN ('statement', 'disbursement')),
    provider     text,
    reference    text,
    case_id      text,
    amount_minor bigint,
    currency     char(3),
    details      jsonb       NOT NULL DEFAULT '{}',
    state        text        NOT NULL,
    request      jsonb,                 -- the pending write-off or re-pay request, if any
    assignee     text,                  -- who is investigating it
    dedupe_key   text        NOT NULL UNIQUE,
    raised_at    timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      integer     NOT NULL DEFAULT 1
);
CREATE INDEX exceptions_state ON exceptions (state, kind);

-- Every step of every exception, append-only: resolving never loses the history.
CREATE TABLE exception_events (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exception_id bigint      NOT NULL REFERENCES exceptions (id),
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,
    action       text        NOT NULL,
    from_state   text,
    to_state     text        NOT NULL,
    reason       text,
    details      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX exception_events_exception ON exception_events (exception_id, id);

CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER exception_events_append_only BEFORE UPDATE OR DELETE ON exception_events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

-- Decisions sent to disbursement (a write-off, a re-pay), and what disbursement answered.
CREATE TABLE decisions (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exception_id bigint      NOT NULL REFERENCES exceptions (id) UNIQUE,
    kind         text        NOT NULL CHECK (kind IN ('write_off', 'repay')),
    reference    text,
    case_id      text,
    payload      jsonb       NOT NULL,
    decided_at   timestamptz NOT NULL DEFAULT now(),
    outcome      text,
    outcome_at   timestamptz
);
