-- depends: 0300.ledger-budgets-currencies

-- A tranche is paid in attempts: attempt 1 under the tranche's reference, a re-issue (after a
-- failure and a new payout) under `REF-2`, `REF-3`... The payout an attempt was sent to is kept, so
-- a failure re-issues at once when the beneficiary's payout changed in the meantime.
ALTER TABLE tranches ADD COLUMN attempt int NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE tranches ADD COLUMN sent_payout jsonb;
-- The provider the money goes through: the wallet's or bank's for cash, the vendor's bank for in kind.
ALTER TABLE tranches ADD COLUMN pay_via text;

-- The instruction to a provider, committed before any call: the frozen request (its exact body)
-- is what every attempt sends, whatever changes afterwards. `state`:
--   sending    claimed; the first call's outcome is not recorded yet
--   unknown    a call's outcome is unknown (timeout, reset, 5xx): ask the provider before resending
--   pending    the provider accepted it; waiting for its settlement (callback or poll)
--   settled | failed   final, as the provider reported
--   refused    refused before anything was executed (invalid payee, 4xx): nothing left the account
--   unresolved the deadline passed without a known outcome: a finance exception, never resent
--   mismatch   settled for another amount or currency than instructed: a finance exception
CREATE TABLE payment_instructions (
    reference          text        PRIMARY KEY,
    tranche_reference  text        NOT NULL,
    attempt            int         NOT NULL,
    previous_reference text        REFERENCES payment_instructions (reference),
    case_id            text        NOT NULL,
    plan_id            text        NOT NULL,
    component_id       text        NOT NULL,
    seq                int         NOT NULL,
    payee_kind         text        NOT NULL DEFAULT 'beneficiary' CHECK (payee_kind IN ('beneficiary', 'vendor')),
    provider           text        NOT NULL,
    amount_minor       bigint      NOT NULL CHECK (amount_minor > 0),
    currency           char(3)     NOT NULL,
    request            jsonb,      -- FrozenRequest.to_json(); NULL only when refused before freezing
    state              text        NOT NULL CHECK (state IN
                           ('sending', 'unknown', 'pending', 'settled', 'failed', 'refused', 'unresolved', 'mismatch')),
    sends              int         NOT NULL DEFAULT 0,  -- create calls made
    lookups            int         NOT NULL DEFAULT 0,  -- status lookups made
    lease_token        uuid,       -- the dispatcher call in flight; its result is recorded only under it
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    deadline_at        timestamptz NOT NULL,
    transfer_id        text,
    pickup_code        text,
    last_outcome       text,
    last_error         text,
    traceparent        text,
    tracestate         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tranche_reference, attempt)
);
CREATE INDEX payment_instructions_due ON payment_instructions (provider, next_attempt_at)
    WHERE state IN ('sending', 'unknown', 'pending');

-- What providers said, by callback or by lookup, whichever came first: one row per (provider,
-- transfer id, status), so a duplicate, late or replayed report is never applied twice.
CREATE TABLE provider_events (
    id           bigserial   PRIMARY KEY,
    provider     text        NOT NULL,
    transfer_id  text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'settled', 'failed')),
    reference    text        NOT NULL,
    amount_minor bigint,
    currency     char(3),
    reason       text,
    pickup_code  text,
    via          text        NOT NULL CHECK (via IN ('callback', 'lookup', 'send')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    applied_at   timestamptz,
    outcome      text,
    UNIQUE (provider, transfer_id, status)
);
CREATE INDEX provider_events_unapplied ON provider_events (id) WHERE applied_at IS NULL;

-- A report that could not be read (a malformed callback or lookup answer): kept aside with why,
-- so that the rest keep flowing and someone can look at it.
CREATE TABLE provider_entries_set_aside (
    id          bigserial   PRIMARY KEY,
    provider    text        NOT NULL,
    via         text        NOT NULL,
    error       text        NOT NULL,
    raw         text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Payments a person must look at (finance): never dropped, raised once per kind and subject.
CREATE TABLE payment_exceptions (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL,  -- outcome_unresolved, amount_mismatch, unknown_reference, ...
    provider    text,
    reference   text,
    case_id     text,
    details     jsonb       NOT NULL,
    dedupe_key  text        NOT NULL UNIQUE,
    raised_at   timestamptz NOT NULL DEFAULT now()
);

-- Released cash tranches waiting for their first instruction, per provider (the claim of 'sending'
-- tranches is now the instructions' own).
DROP INDEX tranches_to_send;
CREATE INDEX tranches_to_send ON tranches (pay_via, next_attempt_at)
    WHERE (status = 'released' AND modality = 'cash') OR (status = 'delivered' AND modality = 'in_kind');

-- Matched vendor invoices: an invoice number is paid once per vendor, whichever case it arrives on.
CREATE TABLE vendor_invoices (
    vendor_id      text        NOT NULL,
    invoice_number text        NOT NULL,  -- normalised (three_way_match.invoice_key)
    case_id        text        NOT NULL,
    reference      text        NOT NULL,  -- the tranche it paid
    matched_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (vendor_id, invoice_number)
);
