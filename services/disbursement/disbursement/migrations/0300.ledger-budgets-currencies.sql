-- depends: 0200.tranches-per-plan

-- The double-entry ledger: the only place balances live. Amounts are integer minor units of the
-- account's currency; a transfer moves one amount between two accounts of the same currency, so
-- each currency's books balance on their own (cross-currency movements go through one trading
-- account per currency). After TigerBeetle: balances are four running sums per account, and an
-- account may forbid its debits (pending included) to exceed its credits.
CREATE TABLE ledger_accounts (
    id             text        PRIMARY KEY,  -- "budget:MA-AVRR-2026", "payable:orange_money_ci:XOF", ...
    currency       char(3)     NOT NULL,
    kind           text        NOT NULL CHECK (kind IN
                       ('funding', 'budget', 'commitment', 'payable', 'paid', 'returned', 'trading')),
    programme      text,
    debits_must_not_exceed_credits boolean NOT NULL DEFAULT false,
    debits_pending  bigint     NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint     NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint     NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint     NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    -- Postings to this account are numbered 1, 2, ... in the order they were applied (the posting
    -- events carry the number, so a reader can tell it missed or repeated one).
    last_seq       bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The budget limit, enforced by the database whatever the code does: available never below zero.
    CONSTRAINT available_never_negative CHECK (
        NOT debits_must_not_exceed_credits OR debits_pending + debits_posted <= credits_posted)
);

-- Immutable transfers. `id` is the idempotency key: the same key again is a no-op, the same key
-- with other content is refused. Two phases: `pending` reserves; one later `post_pending` (at most
-- the pending amount, the rest released) or `void_pending` resolves it, exactly once.
CREATE TABLE ledger_transfers (
    id              text        PRIMARY KEY,
    seq             bigserial   UNIQUE,  -- the order transfers were recorded in
    debit_account   text        NOT NULL REFERENCES ledger_accounts (id),
    credit_account  text        NOT NULL REFERENCES ledger_accounts (id),
    currency        char(3)     NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor >= 0),
    phase           text        NOT NULL CHECK (phase IN ('posted', 'pending', 'post_pending', 'void_pending')),
    pending_id      text        REFERENCES ledger_transfers (id),
    kind            text        NOT NULL,  -- fund, reserve, release, convert, owe, settle, return, void
    programme       text,
    case_id         text,
    reference       text,       -- the tranche's payment reference
    conversion_id   text,       -- the two legs of one currency conversion share it
    rate            text,       -- on conversion legs: payout units per unit of the plan's currency
    cause           text,       -- the event (or command) that made it
    actor           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (debit_account <> credit_account),
    CHECK ((phase IN ('post_pending', 'void_pending')) = (pending_id IS NOT NULL))
);
-- A pending transfer is posted or voided once, by construction.
CREATE UNIQUE INDEX ledger_pending_resolved_once ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_by_case ON ledger_transfers (case_id);
CREATE INDEX ledger_transfers_by_reference ON ledger_transfers (reference);

CREATE FUNCTION ledger_transfers_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are immutable: % refused on transfer %', TG_OP, OLD.id;
END $$;
CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_are_immutable();

-- A tranche keeps three amounts: the plan's (currency, amount_minor, as before), the programme's
-- (what the budget reserved) and the payout's (what the beneficiary or vendor is paid, in the
-- currency of the payout's country), with the rate locked at release. Tranches created before the
-- ledger have no programme amount: they are paid as before and outside the ledger.
ALTER TABLE tranches
    ADD COLUMN programme_code     text,
    ADD COLUMN programme_currency char(3),
    ADD COLUMN programme_minor    bigint CHECK (programme_minor >= 0),
    ADD COLUMN payout_currency    char(3),
    ADD COLUMN payout_minor       bigint CHECK (payout_minor >= 0),
    ADD COLUMN rate               text,
    ADD COLUMN programme_rate     text,
    ADD COLUMN rate_source        text,
    ADD COLUMN rate_date          date,
    ADD COLUMN payee              text,
    ADD COLUMN hold_reason        text,
    -- The component the tranche was cut from (its amount in the plan's currency and every tranche's
    -- share, "1=60;2=40"): the payout amount is this tranche's part of the converted component.
    ADD COLUMN component_minor    bigint,
    ADD COLUMN component_shares   text,
    -- The pending transfer reserving it: "reserve:<reference>", then ":r2", ":r3"... when a
    -- revision changes its amount (the old reserve is voided, a transfer id is never reused).
    ADD COLUMN reserve_id         text;

UPDATE tranches SET payout_currency = currency, payout_minor = amount_minor, rate = '1', rate_source = 'same_currency'
WHERE status NOT IN ('planned', 'cancelled');

-- Tranches waiting for something (a rate, budget): the background waiter looks at these every second.
CREATE INDEX tranches_waiting ON tranches (case_id) WHERE hold_reason IS NOT NULL;

-- Every tranche transition: when, from what to what, why (the event or command id) and by whom.
CREATE TABLE tranche_transitions (
    id           bigserial   PRIMARY KEY,
    case_id      text        NOT NULL,
    plan_id      text        NOT NULL,
    component_id text        NOT NULL,
    seq          integer     NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    reason       text,
    cause        text        NOT NULL,
    actor        text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tranche_transitions_by_case ON tranche_transitions (case_id, plan_id, component_id, seq);

-- Grants waiting for budget, in the order they were approved (queued_seq): funded in that order.
CREATE TABLE budget_holds (
    case_id      text        PRIMARY KEY,
    programme    text        NOT NULL,
    queued_seq   bigserial   UNIQUE,
    currency     char(3)     NOT NULL,
    amount_minor bigint      NOT NULL,
    held_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX budget_holds_in_order ON budget_holds (programme, queued_seq);

-- Exchange rates finance loads: units of `currency` per one euro from `effective_date` on. A rate
-- once loaded is never changed (a correction is a new effective date); XOF and XAF are pegged
-- and never loaded.
CREATE TABLE exchange_rates (
    currency       char(3)     NOT NULL,
    effective_date date        NOT NULL,
    per_eur        numeric     NOT NULL CHECK (per_eur > 0),
    source         text        NOT NULL,
    loaded_by      text        NOT NULL,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (currency, effective_date)
);
