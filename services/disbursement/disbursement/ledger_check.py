"""The ledger's invariants as queries anyone can run (``reintegra ledger check``; tests run it after
every scenario), and a summary of budgets and payables.

Every check is one SQL query over schema ``disbursement`` (names are schema-qualified, so it runs on
any connection) that returns one row per violation, as a sentence. They run in one read-only
REPEATABLE READ transaction, so they all see the same snapshot even while the service is writing:

    report = await check_ledger(conn)
    print(format_report(report))
    assert report.ok, report.failed

What is checked (see ``CHECKS`` for the exact queries):

- transfer-accounts: a transfer debits and credits two different accounts, both in its currency;
- currency-balance: per currency, the accounts' debits equal their credits (posted, and pending);
- account-sums: an account's four sums are what its transfers add up to (pending: not yet resolved;
  posted: posted transfers and posted pending ones);
- posting-counters: an account's last_seq is the number of transfers it took part in;
- budget-limits: a limited account (a budget) never has less than 0 available;
- pending-resolution: a pending transfer is resolved at most once, by a transfer between the same
  accounts in the same currency, posting at most the pending amount (a void: exactly it);
- conversions: a conversion has two legs, in two currencies, at one rate, through the trading accounts;
- paid-once: a tranche is settled at most once, for exactly its payout amount;
- tranche-states: a tranche's status agrees with what the ledger holds for it;
- commitments: per programme, the commitment is what planned tranches reserved; per currency, the
  payables are what released tranches still owe;
- database-guards: the database refuses what the ledger forbids (immutable transfers, budget limit,
  one resolution per pending transfer).

Tranches with no programme amount (older than the ledger, or waiting for a rate to be converted) are
outside the ledger: they are counted, not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

SCHEMA = "disbursement"
MAX_EXAMPLES = 20

# Tranche statuses whose money is on a payable account: released, not yet paid or returned.
OWED_STATUSES = ("released", "sending", "sent", "ordered", "delivered")
KNOWN_STATUSES = ("held", "planned", *OWED_STATUSES, "settled", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Check:
    """One invariant: how many things it looks at, and one row (column ``problem``) per violation."""

    name: str
    description: str
    unit: str  # what `checked` counts
    count_sql: str
    violations_sql: str
    note_sql: str | None = None  # one text value shown next to the result (or NULL)

    def sql(self, schema: str = SCHEMA) -> tuple[str, str, str | None]:
        return (_in_schema(self.count_sql, schema), _in_schema(self.violations_sql, schema),
                _in_schema(self.note_sql, schema) if self.note_sql else None)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    description: str
    checked: int
    violations: list[str]  # the first MAX_EXAMPLES, as sentences
    ok: bool
    violation_count: int = 0  # all of them
    unit: str = ""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerReport:
    checks: list[CheckResult]
    schema: str = SCHEMA
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def result(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)


def _in_schema(sql: str, schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    return sql.replace("{s}", f'"{schema}"').replace("{schema_name}", f"'{schema}'")


_OWED = ", ".join(f"'{s}'" for s in OWED_STATUSES)
_KNOWN = ", ".join(f"'{s}'" for s in KNOWN_STATUSES)

# Per tranche in the ledger: what the ledger holds under its reference. A tranche's reserve is
# `reserve:REF`, then `reserve:REF:r2`, `:r3`... when a revision changed its amount (the old one
# voided); tranches.reserve_id names the current one.
_TRANCHE_FACTS = """
    SELECT t.case_id, t.reference, t.status, t.attempt, t.sfx, t.programme_code, t.programme_currency,
           t.programme_minor AS p, t.payout_currency, t.payout_minor AS x, t.payee,
           coalesce(t.reserve_id, 'reserve:' || t.reference) AS reserve_id,
           cur.id IS NOT NULL AS has_current, cur.amount_minor AS current_amount,
           cur_res.phase AS current_resolution,
           rs.n AS reserves, rs.unresolved, rs.unresolved_ids, rs.posted, rs.posted_amount, rs.misdirected,
           owe.n AS owe_n, owe.amount - att.rest AS owe_amount, owe.to_payee AS owe_to_payee, att.open_owes,
           settle.n AS settles,
           ret.id IS NOT NULL AS returned
    FROM (SELECT *, CASE WHEN attempt = 1 THEN '' ELSE ':a' || attempt END AS sfx FROM {s}.tranches) t
    CROSS JOIN LATERAL (
        SELECT count(*) AS n,
               count(*) FILTER (WHERE res.id IS NULL) AS unresolved,
               string_agg(r.id, ', ' ORDER BY r.seq) FILTER (WHERE res.id IS NULL) AS unresolved_ids,
               count(*) FILTER (WHERE res.phase = 'post_pending') AS posted,
               coalesce(sum(res.amount_minor) FILTER (WHERE res.phase = 'post_pending'), 0) AS posted_amount,
               string_agg(r.id, ', ' ORDER BY r.seq) FILTER (
                   WHERE r.phase <> 'pending' OR (r.debit_account, r.credit_account, r.currency) IS DISTINCT FROM
                         ('budget:' || t.programme_code, 'commitment:' || t.programme_code, t.programme_currency)
               ) AS misdirected
        FROM {s}.ledger_transfers r LEFT JOIN {s}.ledger_transfers res ON res.pending_id = r.id
        WHERE r.reference = t.reference AND r.kind = 'reserve') rs
    LEFT JOIN {s}.ledger_transfers cur ON cur.id = coalesce(t.reserve_id, 'reserve:' || t.reference)
    LEFT JOIN LATERAL (SELECT phase FROM {s}.ledger_transfers WHERE pending_id = cur.id ORDER BY seq LIMIT 1) cur_res
        ON true
    CROSS JOIN LATERAL (
        SELECT count(*) AS n, coalesce(sum(o.amount_minor), 0) AS amount,
               coalesce(bool_and(o.credit_account = 'payable:' || t.payee || ':' || t.payout_currency
                                 AND o.currency = t.payout_currency), true) AS to_payee
        FROM {s}.ledger_transfers o
        WHERE o.id IN ('owe:' || t.reference || t.sfx, 'fx-in:' || t.reference || t.sfx)) owe
    CROSS JOIN LATERAL (
        -- every attempt's owe, and every failure's unpay: what is owed now is the difference
        SELECT count(*) FILTER (WHERE a.kind = 'owe' OR a.id LIKE 'fx-in:%')
             - count(*) FILTER (WHERE a.kind = 'unpay' OR a.id LIKE 'unpay-fx-out:%') AS open_owes,
               -- the part of an order its vendor did not invoice, given back
               coalesce(sum(a.amount_minor) FILTER (WHERE a.id IN ('rest-out:' || t.reference,
                                                                   'rest-fx-out:' || t.reference)), 0) AS rest
        FROM {s}.ledger_transfers a WHERE a.reference = t.reference) att
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM {s}.ledger_transfers st
        WHERE st.reference = t.reference AND st.kind = 'settle') settle
    LEFT JOIN {s}.ledger_transfers ret ON ret.id = 'return:' || t.reference
    WHERE t.programme_minor IS NOT NULL AND t.reference IS NOT NULL
"""

CHECKS: tuple[Check, ...] = (
    Check(
        "transfer-accounts",
        "each transfer debits and credits two different, existing accounts in the transfer's currency, "
        "for an amount of at least 0 (a pending one: more than 0)",
        "transfers",
        "SELECT count(*) FROM {s}.ledger_transfers",
        """
        SELECT format('transfer %s: %s', t.id, p.problem) AS problem
        FROM {s}.ledger_transfers t
        LEFT JOIN {s}.ledger_accounts d ON d.id = t.debit_account
        LEFT JOIN {s}.ledger_accounts c ON c.id = t.credit_account
        CROSS JOIN LATERAL (VALUES
            (CASE WHEN t.debit_account = t.credit_account
                  THEN format('debits and credits the same account %s', t.debit_account) END),
            (CASE WHEN d.id IS NULL THEN format('debits %s, which is no account', t.debit_account)
                  WHEN d.currency <> t.currency
                  THEN format('is in %s but debits %s, an account in %s', t.currency, d.id, d.currency) END),
            (CASE WHEN c.id IS NULL THEN format('credits %s, which is no account', t.credit_account)
                  WHEN c.currency <> t.currency
                  THEN format('is in %s but credits %s, an account in %s', t.currency, c.id, c.currency) END),
            (CASE WHEN t.amount_minor < 0 OR (t.amount_minor = 0 AND t.phase = 'pending')
                  THEN format('%s amount %s is not allowed', t.phase, t.amount_minor) END)
        ) AS p(problem)
        WHERE p.problem IS NOT NULL
        ORDER BY t.seq
        """,
    ),
    Check(
        "currency-balance",
        "per currency, the accounts' debits equal their credits, posted and pending alike "
        "(every transfer moves one amount within one currency)",
        "currencies",
        "SELECT count(DISTINCT currency) FROM {s}.ledger_accounts",
        """
        SELECT format('%s: %s debits %s but %s credits %s (off by %s)', b.currency, p.phase, p.debits,
                      p.phase, p.credits, p.debits - p.credits) AS problem
        FROM (SELECT currency, sum(debits_posted) AS dpo, sum(credits_posted) AS cpo,
                     sum(debits_pending) AS dpe, sum(credits_pending) AS cpe
              FROM {s}.ledger_accounts GROUP BY currency) b
        CROSS JOIN LATERAL (VALUES ('posted', b.dpo, b.cpo), ('pending', b.dpe, b.cpe)) AS p(phase, debits, credits)
        WHERE p.debits <> p.credits
        ORDER BY b.currency, p.phase
        """,
    ),
    Check(
        "account-sums",
        "each account's debits and credits, pending and posted, are what its transfers add up to "
        "(pending: pending transfers not yet posted or voided; posted: posted transfers and the posted "
        "amounts of pending ones)",
        "accounts",
        "SELECT count(*) FROM {s}.ledger_accounts",
        """
        WITH resolved AS (
            SELECT DISTINCT pending_id AS id FROM {s}.ledger_transfers WHERE pending_id IS NOT NULL
        ), legs AS (
            SELECT t.debit_account AS account, 'debit' AS side, t.phase, t.amount_minor,
                   t.phase = 'pending' AND r.id IS NULL AS open_pending
            FROM {s}.ledger_transfers t LEFT JOIN resolved r ON r.id = t.id
            UNION ALL
            SELECT t.credit_account, 'credit', t.phase, t.amount_minor, t.phase = 'pending' AND r.id IS NULL
            FROM {s}.ledger_transfers t LEFT JOIN resolved r ON r.id = t.id
        ), sums AS (
            SELECT account,
                   coalesce(sum(amount_minor) FILTER (WHERE side = 'debit' AND open_pending), 0) AS dpe,
                   coalesce(sum(amount_minor) FILTER (WHERE side = 'debit' AND phase IN ('posted', 'post_pending')), 0) AS dpo,
                   coalesce(sum(amount_minor) FILTER (WHERE side = 'credit' AND open_pending), 0) AS cpe,
                   coalesce(sum(amount_minor) FILTER (WHERE side = 'credit' AND phase IN ('posted', 'post_pending')), 0) AS cpo
            FROM legs GROUP BY account
        )
        SELECT format('%s: %s is %s but its transfers add up to %s', a.id, v.column_name, v.stored, v.expected) AS problem
        FROM {s}.ledger_accounts a
        LEFT JOIN sums s ON s.account = a.id
        CROSS JOIN LATERAL (VALUES
            ('debits_pending', a.debits_pending, coalesce(s.dpe, 0)),
            ('debits_posted', a.debits_posted, coalesce(s.dpo, 0)),
            ('credits_pending', a.credits_pending, coalesce(s.cpe, 0)),
            ('credits_posted', a.credits_posted, coalesce(s.cpo, 0))
        ) AS v(column_name, stored, expected)
        WHERE v.stored <> v.expected
        ORDER BY a.id, v.column_name
        """,
    ),
    Check(
        "posting-counters",
        "each account's last_seq (its postings are numbered 1, 2, ...) is the number of transfers it "
        "was debited or credited by",
        "accounts",
        "SELECT count(*) FROM {s}.ledger_accounts",
        """
        WITH touched AS (
            SELECT account, count(*) AS n FROM (
                SELECT debit_account AS account FROM {s}.ledger_transfers
                UNION ALL SELECT credit_account FROM {s}.ledger_transfers) legs
            GROUP BY account)
        SELECT format('%s: last_seq is %s but %s transfers touch it', a.id, a.last_seq, coalesce(t.n, 0)) AS problem
        FROM {s}.ledger_accounts a LEFT JOIN touched t ON t.account = a.id
        WHERE a.last_seq <> coalesce(t.n, 0)
        ORDER BY a.id
        """,
    ),
    Check(
        "budget-limits",
        "every budget account is limited, and no limited account has less than 0 available "
        "(credits posted - debits posted - debits pending)",
        "limited or budget accounts",
        "SELECT count(*) FROM {s}.ledger_accounts WHERE debits_must_not_exceed_credits OR kind = 'budget'",
        """
        SELECT format('%s: %s', id, problem) AS problem FROM (
            SELECT id, format('available is %s (credits posted %s - debits posted %s - debits pending %s)',
                              credits_posted - debits_posted - debits_pending, credits_posted, debits_posted,
                              debits_pending) AS problem
            FROM {s}.ledger_accounts
            WHERE debits_must_not_exceed_credits AND credits_posted - debits_posted - debits_pending < 0
            UNION ALL
            SELECT id, 'is a budget account without its limit (debits_must_not_exceed_credits is false)'
            FROM {s}.ledger_accounts WHERE kind = 'budget' AND NOT debits_must_not_exceed_credits
        ) v
        ORDER BY id
        """,
    ),
    Check(
        "pending-resolution",
        "each pending transfer is posted or voided at most once, by a transfer between the same accounts "
        "in the same currency that resolves a pending transfer; a post is at most the pending amount, "
        "a void exactly it",
        "pending transfers and resolutions",
        "SELECT count(*) FILTER (WHERE phase = 'pending' OR pending_id IS NOT NULL) FROM {s}.ledger_transfers",
        """
        SELECT problem FROM (
            SELECT 0 AS o, min(r.seq) AS seq,
                   format('pending transfer %s is resolved %s times (%s)', r.pending_id, count(*),
                          string_agg(r.id, ', ' ORDER BY r.seq)) AS problem
            FROM {s}.ledger_transfers r WHERE r.pending_id IS NOT NULL
            GROUP BY r.pending_id HAVING count(*) > 1
            UNION ALL
            SELECT 1, r.seq, format('transfer %s: %s', r.id, p.problem)
            FROM {s}.ledger_transfers r
            LEFT JOIN {s}.ledger_transfers q ON q.id = r.pending_id
            CROSS JOIN LATERAL (VALUES
                (CASE WHEN r.pending_id IS NULL AND r.phase IN ('post_pending', 'void_pending')
                      THEN format('is a %s that names no pending transfer', r.phase) END),
                (CASE WHEN r.pending_id IS NOT NULL AND r.phase NOT IN ('post_pending', 'void_pending')
                      THEN format('is %s but names pending transfer %s', r.phase, r.pending_id) END),
                (CASE WHEN r.pending_id IS NOT NULL AND q.id IS NULL
                      THEN format('resolves %s, which does not exist', r.pending_id)
                      WHEN q.phase <> 'pending'
                      THEN format('resolves %s, which is not a pending transfer but %s', q.id, q.phase) END),
                (CASE WHEN q.id IS NOT NULL AND (q.debit_account, q.credit_account, q.currency)
                                                IS DISTINCT FROM (r.debit_account, r.credit_account, r.currency)
                      THEN format('moves %s -> %s in %s but resolves %s, which moves %s -> %s in %s',
                                  r.debit_account, r.credit_account, r.currency, q.id, q.debit_account,
                                  q.credit_account, q.currency) END),
                (CASE WHEN r.phase = 'post_pending' AND r.amount_minor > q.amount_minor
                      THEN format('posts %s, more than the %s pending on %s', r.amount_minor, q.amount_minor, q.id) END),
                (CASE WHEN r.phase = 'void_pending' AND r.amount_minor <> q.amount_minor
                      THEN format('voids %s of the %s pending on %s', r.amount_minor, q.amount_minor, q.id) END)
            ) AS p(problem)
            WHERE p.problem IS NOT NULL AND (r.pending_id IS NOT NULL OR r.phase IN ('post_pending', 'void_pending'))
        ) v
        ORDER BY o, seq
        """,
    ),
    Check(
        "conversions",
        "each conversion has exactly two legs, posted, in two currencies, at one rate: one credits the "
        "trading account of its currency, the other debits the trading account of its own",
        "conversions",
        "SELECT count(DISTINCT conversion_id) FROM {s}.ledger_transfers",
        """
        WITH legs AS (
            SELECT t.*, d.kind = 'trading' AS debits_trading, c.kind = 'trading' AS credits_trading
            FROM {s}.ledger_transfers t
            JOIN {s}.ledger_accounts d ON d.id = t.debit_account
            JOIN {s}.ledger_accounts c ON c.id = t.credit_account
            WHERE t.conversion_id IS NOT NULL
        ), per AS (
            SELECT conversion_id, min(seq) AS seq, count(*) AS n, count(DISTINCT currency) AS currencies,
                   count(DISTINCT rate) AS rates, count(*) FILTER (WHERE rate IS NULL) AS without_rate,
                   count(*) FILTER (WHERE credits_trading AND NOT debits_trading) AS into_trading,
                   count(*) FILTER (WHERE debits_trading AND NOT credits_trading) AS out_of_trading,
                   count(*) FILTER (WHERE phase <> 'posted') AS not_posted,
                   string_agg(id, ', ' ORDER BY seq) AS ids
            FROM legs GROUP BY conversion_id
        )
        SELECT problem FROM (
            SELECT seq, format('conversion %s (%s): %s', conversion_id, ids, p.problem) AS problem
            FROM per CROSS JOIN LATERAL (VALUES
                (CASE WHEN n <> 2 THEN format('has %s legs, not 2', n) END),
                (CASE WHEN n = 2 AND currencies <> 2 THEN 'both legs are in one currency' END),
                (CASE WHEN without_rate > 0 THEN format('%s leg(s) without a rate', without_rate)
                      WHEN rates > 1 THEN 'its legs carry different rates' END),
                (CASE WHEN n = 2 AND (into_trading <> 1 OR out_of_trading <> 1)
                      THEN 'does not go through the trading accounts (one leg into fx:P, one out of fx:X)' END),
                (CASE WHEN not_posted > 0 THEN format('%s leg(s) not posted', not_posted) END)
            ) AS p(problem)
            WHERE p.problem IS NOT NULL
            UNION ALL
            SELECT seq, format('transfer %s is a conversion (kind convert) without a conversion_id', id)
            FROM {s}.ledger_transfers WHERE kind = 'convert' AND conversion_id IS NULL
        ) v
        ORDER BY seq
        """,
    ),
    Check(
        "paid-once",
        "each tranche is settled at most once (one settle transfer per payment reference), for exactly "
        "its payout amount and currency, from its payee's payable",
        "settled references",
        "SELECT count(DISTINCT coalesce(reference, id)) FROM {s}.ledger_transfers WHERE kind = 'settle'",
        """
        SELECT problem FROM (
            SELECT min(s.seq) AS seq, format('%s is paid %s times (%s)', s.reference, count(*),
                                             string_agg(s.id, ', ' ORDER BY s.seq)) AS problem
            FROM {s}.ledger_transfers s WHERE s.kind = 'settle' AND s.reference IS NOT NULL
            GROUP BY s.reference HAVING count(*) > 1
            UNION ALL
            SELECT s.seq, format('transfer %s: %s', s.id, p.problem)
            FROM {s}.ledger_transfers s
            LEFT JOIN {s}.tranches t ON t.reference = s.reference
            CROSS JOIN LATERAL (VALUES
                (CASE WHEN s.reference IS NULL THEN 'is a settle transfer without a payment reference'
                      WHEN t.reference IS NULL THEN format('settles %s, which is no tranche', s.reference)
                      WHEN t.payout_minor IS NULL THEN format('settles %s, which has no payout amount', s.reference)
                      WHEN (s.amount_minor, s.currency) IS DISTINCT FROM (t.payout_minor, t.payout_currency)
                      THEN format('pays %s %s but tranche %s''s payout is %s %s', s.amount_minor, s.currency,
                                  s.reference, t.payout_minor, t.payout_currency) END),
                (CASE WHEN t.payee IS NOT NULL AND s.debit_account <> 'payable:' || t.payee || ':' || t.payout_currency
                      THEN format('pays from %s, not from payable:%s:%s', s.debit_account, t.payee,
                                  t.payout_currency) END)
            ) AS p(problem)
            WHERE s.kind = 'settle' AND p.problem IS NOT NULL
        ) v
        ORDER BY seq
        """,
    ),
    Check(
        "tranche-states",
        "each tranche's status agrees with the ledger (its reserve: tranches.reserve_id, reserve:REF or a "
        "later reserve:REF:rN after a re-pricing voided the earlier one): held - no pending reserve; planned - "
        "its reserve pending, for its programme amount; released/sending/sent/ordered/delivered - its reserve "
        "posted once, its payout owed to its payee (once, over all its attempts); settled - a settle transfer; "
        "failed - its payout unpaid back to the commitment (unpay:REF), waiting for a re-issue; cancelled "
        "- reserve voided, returned, or never reserved; and every transfer naming a reference belongs to a "
        "tranche in the ledger",
        "tranches in the ledger",
        "SELECT count(*) FROM {s}.tranches WHERE programme_minor IS NOT NULL",
        f"""
        WITH f AS ({_TRANCHE_FACTS}),
        problems AS (
            SELECT f.reference, f.case_id, f.status, p.problem
            FROM f CROSS JOIN LATERAL (VALUES
                (CASE WHEN f.status NOT IN ({_KNOWN}) THEN 'unknown status' END),
                (CASE WHEN f.misdirected IS NOT NULL
                      THEN format('%s: not a pending transfer budget:%s -> commitment:%s in %s', f.misdirected,
                                  f.programme_code, f.programme_code, f.programme_currency) END),
                (CASE WHEN f.unresolved > 1 THEN format('%s reserves pending at once (%s)', f.unresolved,
                                                        f.unresolved_ids) END),
                (CASE WHEN f.posted > 1 THEN format('its reserves were posted %s times', f.posted) END),
                -- not released yet: nothing may have left the budget for it
                (CASE WHEN f.status = 'held' AND f.unresolved > 0
                      THEN format('%s still pending', f.unresolved_ids)
                      WHEN f.status = 'planned' AND f.p > 0 AND NOT f.has_current
                      THEN format('no pending reserve (%s does not exist)', f.reserve_id)
                      WHEN f.status = 'planned' AND f.p > 0 AND f.current_resolution IS NOT NULL
                      THEN format('no pending reserve (%s was %s)', f.reserve_id,
                                  replace(f.current_resolution, '_pending', 'ed'))
                      WHEN f.status = 'planned' AND f.p > 0 AND f.current_amount <> f.p
                      THEN format('%s reserves %s but its programme amount is %s', f.reserve_id,
                                  f.current_amount, f.p)
                      WHEN f.status = 'planned' AND f.p = 0 AND f.unresolved > 0
                      THEN format('a programme amount of 0 but %s pending', f.unresolved_ids) END),
                (CASE WHEN f.status IN ('held', 'planned') AND (f.owe_n > 0 OR f.posted > 0)
                      THEN 'money was already released for it' END),
                -- released: the reserve posted, and (until paid or returned) owed to its payee
                (CASE WHEN f.status IN ({_OWED}, 'settled') AND f.unresolved > 0
                      THEN format('%s still pending', f.unresolved_ids)
                      WHEN f.status IN ({_OWED}, 'settled') AND f.p > 0 AND f.posted = 0
                      THEN format('no reserve posted (%s: %s)', f.reserve_id,
                                  CASE WHEN NOT f.has_current THEN 'does not exist'
                                       ELSE replace(f.current_resolution, '_pending', 'ed') END)
                      WHEN f.status IN ({_OWED}, 'settled') AND f.posted = 1 AND f.posted_amount <> f.p
                      THEN format('%s of its reserve posted, its programme amount is %s', f.posted_amount, f.p) END),
                (CASE WHEN f.status IN ({_OWED}, 'settled') AND f.x IS NULL THEN 'no payout amount'
                      WHEN f.status IN ({_OWED}, 'settled') AND f.x > 0 AND f.owe_n = 0
                      THEN format('nothing owed to its payee (no owe:%s or fx-in:%s for attempt %s)', f.reference,
                                  f.reference, f.attempt)
                      WHEN f.status IN ({_OWED}, 'settled') AND f.x > 0 AND f.open_owes <> 1
                      THEN format('owed %s times at once over its attempts', f.open_owes)
                      WHEN f.owe_n > 0 AND (f.owe_amount <> f.x OR NOT f.owe_to_payee)
                      THEN format('owes %s where its payout is %s %s to payable:%s:%s',
                                  f.owe_amount, f.x, f.payout_currency, f.payee, f.payout_currency) END),
                (CASE WHEN f.status = 'settled' AND f.x > 0 AND f.settles = 0
                      THEN format('no settle:%s', f.reference)
                      WHEN f.status <> 'settled' AND f.settles > 0
                      THEN format('paid (settle:%s) although %s', f.reference, f.status) END),
                (CASE WHEN f.status IN ({_OWED}, 'settled', 'held', 'planned', 'failed') AND f.returned
                      THEN format('money returned (return:%s) although %s', f.reference, f.status) END),
                -- failed or cancelled: nothing left reserved or owed
                (CASE WHEN f.status IN ('failed', 'cancelled') AND f.unresolved > 0
                      THEN format('%s still pending', f.unresolved_ids) END),
                (CASE WHEN f.status = 'failed' AND f.x > 0 AND f.open_owes <> 0
                      THEN format('failed, but its payout is still owed (no unpay:%s%s)', f.reference, f.sfx)
                      WHEN f.status = 'cancelled' AND (f.owe_n > 0 OR f.posted > 0) AND NOT f.returned
                      THEN format('released but not returned (no return:%s)', f.reference) END)
            ) AS p(problem)
            WHERE p.problem IS NOT NULL
        ), strays AS (
            SELECT tr.reference, tr.case_id, t.status, format('transfer %s names %s, %s', tr.id, tr.reference,
                   CASE WHEN t.reference IS NULL THEN 'which is no tranche'
                        ELSE 'a tranche outside the ledger (no programme amount)' END) AS problem
            FROM {{s}}.ledger_transfers tr
            LEFT JOIN {{s}}.tranches t ON t.reference = tr.reference
            WHERE tr.reference IS NOT NULL AND (t.reference IS NULL OR t.programme_minor IS NULL)
        )
        SELECT format('%s (case %s, %s): %s', reference, case_id, coalesce(status, 'no tranche'), problem) AS problem
        FROM (SELECT * FROM problems UNION ALL SELECT * FROM strays) v
        ORDER BY reference, problem
        """,
        note_sql="""
        SELECT CASE WHEN count(*) > 0 THEN
            format('%s tranche(s) without a programme amount (older than the ledger, or waiting for a rate): '
                   || 'counted, not checked', count(*)) END
        FROM {s}.tranches WHERE programme_minor IS NULL
        """,
    ),
    Check(
        "commitments",
        "what is committed is what is still to pay: per programme, the commitment balance (credits - "
        "debits, pending included) equals the programme amounts of its planned and failed tranches (a failed "
        "payment's money waits there for its re-issue); per currency, "
        "the payable balances equal the payout amounts of released, sending, sent, ordered and "
        "delivered tranches",
        "programmes and payable currencies",
        """
        SELECT (SELECT count(*) FROM (
                    SELECT programme FROM {s}.ledger_accounts WHERE kind = 'commitment'
                    UNION SELECT programme_code FROM {s}.tranches
                          WHERE programme_minor IS NOT NULL AND status IN ('planned', 'failed')) p)
             + (SELECT count(*) FROM (
                    SELECT currency FROM {s}.ledger_accounts WHERE kind = 'payable'
                    UNION SELECT payout_currency FROM {s}.tranches
                          WHERE programme_minor IS NOT NULL AND status IN ({owed})) c)
        """.replace("{owed}", _OWED),
        f"""
        WITH committed AS (
            SELECT programme, min(currency) AS currency,
                   sum(credits_posted + credits_pending - debits_posted - debits_pending) AS balance
            FROM {{s}}.ledger_accounts WHERE kind = 'commitment' GROUP BY programme
        ), planned AS (
            SELECT programme_code AS programme, sum(programme_minor) AS amount, count(*) AS n
            FROM {{s}}.tranches WHERE programme_minor IS NOT NULL AND status IN ('planned', 'failed')
            GROUP BY programme_code
        ), payable AS (
            SELECT currency, sum(credits_posted + credits_pending - debits_posted - debits_pending) AS balance
            FROM {{s}}.ledger_accounts WHERE kind = 'payable' GROUP BY currency
        ), owed AS (
            SELECT payout_currency AS currency, sum(coalesce(payout_minor, 0)) AS amount, count(*) AS n
            FROM {{s}}.tranches WHERE programme_minor IS NOT NULL AND status IN ({_OWED}) GROUP BY payout_currency
        )
        SELECT problem FROM (
            SELECT 0 AS o, programme AS k,
                   format('programme %s: commitment:%s holds %s %s but its %s planned or failed tranche(s) hold %s',
                          programme, programme, coalesce(c.balance, 0), coalesce(c.currency, ''),
                          coalesce(p.n, 0), coalesce(p.amount, 0)) AS problem
            FROM committed c FULL JOIN planned p USING (programme)
            WHERE coalesce(c.balance, 0) <> coalesce(p.amount, 0)
            UNION ALL
            SELECT 1, currency,
                   format('%s: payable accounts hold %s but %s released tranche(s) owe %s', currency,
                          coalesce(a.balance, 0), coalesce(o.n, 0), coalesce(o.amount, 0))
            FROM payable a FULL JOIN owed o USING (currency)
            WHERE coalesce(a.balance, 0) <> coalesce(o.amount, 0)
        ) v
        ORDER BY o, k
        """,
    ),
    Check(
        "database-guards",
        "the database itself refuses what the ledger forbids: trigger ledger_transfers_immutable (no UPDATE "
        "or DELETE of a transfer), constraint available_never_negative (budget limit), unique index "
        "ledger_pending_resolved_once (one resolution per pending transfer)",
        "guards",
        "SELECT 3",
        """
        SELECT problem FROM (VALUES
            (CASE WHEN NOT EXISTS (
                SELECT 1 FROM pg_trigger tg
                JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_proc f ON f.oid = tg.tgfoid
                WHERE n.nspname = {schema_name} AND c.relname = 'ledger_transfers'
                  AND tg.tgname = 'ledger_transfers_immutable' AND f.proname = 'ledger_transfers_are_immutable'
                  AND tg.tgenabled <> 'D'
                  AND (tg.tgtype & 1) = 1     -- for each row
                  AND (tg.tgtype & 2) = 2     -- before
                  AND (tg.tgtype & 24) = 24)  -- update and delete
             THEN 'trigger ledger_transfers_immutable (BEFORE UPDATE OR DELETE, enabled) is missing on '
                  || 'ledger_transfers: transfers could be changed or deleted' END),
            (CASE WHEN NOT EXISTS (
                SELECT 1 FROM pg_constraint k
                JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = {schema_name} AND c.relname = 'ledger_accounts'
                  AND k.conname = 'available_never_negative' AND k.contype = 'c' AND k.convalidated)
             THEN 'constraint available_never_negative is missing on ledger_accounts: '
                  || 'a budget could go below 0 available' END),
            (CASE WHEN NOT EXISTS (
                SELECT 1 FROM pg_index i
                JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_namespace n ON n.oid = x.relnamespace
                WHERE n.nspname = {schema_name} AND x.relname = 'ledger_pending_resolved_once'
                  AND i.indisunique AND i.indisvalid)
             THEN 'unique index ledger_pending_resolved_once is missing: '
                  || 'a pending transfer could be resolved twice' END)
        ) AS v(problem)
        WHERE problem IS NOT NULL
        """,
    ),
)


async def check_ledger(conn: asyncpg.Connection, *, schema: str = SCHEMA,
                       max_examples: int = MAX_EXAMPLES) -> LedgerReport:
    """Run every check; in one read-only REPEATABLE READ snapshot unless already in a transaction."""
    if conn.is_in_transaction():
        return await _run_checks(conn, schema, max_examples)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _run_checks(conn, schema, max_examples)


async def _run_checks(conn: asyncpg.Connection, schema: str, max_examples: int) -> LedgerReport:
    results = []
    for check in CHECKS:
        count_sql, violations_sql, note_sql = check.sql(schema)
        checked = await conn.fetchval(count_sql)
        rows = await conn.fetch(
            f"SELECT v.problem, count(*) OVER () AS total FROM ({violations_sql}) v LIMIT $1", max_examples)
        note = await conn.fetchval(note_sql) if note_sql else None
        total = rows[0]["total"] if rows else 0
        results.append(CheckResult(check.name, check.description, int(checked or 0), [r["problem"] for r in rows],
                                   total == 0, total, check.unit, note))
    return LedgerReport(results, schema)


def format_report(report: LedgerReport) -> str:
    """What was checked, ✓ or ✗ per check, and the violations found (the first few of each)."""
    width = max((len(c.name) for c in report.checks), default=0)
    lines = [f"Ledger check of schema {report.schema} at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC"]
    for c in report.checks:
        mark = "✓" if c.ok else "✗"
        counted = f"{c.checked} {c.unit}".strip()
        verdict = "" if c.ok else f"  -- {c.violation_count} violation{'s' if c.violation_count != 1 else ''}"
        lines.append(f"{mark} {c.name:<{width}}  {counted}: {c.description}{verdict}")
        if c.note:
            lines.append(f"  {'':<{width}}  ({c.note})")
        for v in c.violations:
            lines.append(f"    - {v}")
        if c.violation_count > len(c.violations):
            lines.append(f"    ... and {c.violation_count - len(c.violations)} more")
    if report.ok:
        lines.append(f"Ledger OK: all {len(report.checks)} checks passed.")
    else:
        lines.append(f"Ledger BROKEN: {len(report.failed)} of {len(report.checks)} checks failed "
                     f"({', '.join(report.failed)}).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- summary

_PROGRAMMES_SQL = """
WITH budgets AS (
    SELECT id, programme, currency, credits_posted, debits_posted, debits_pending
    FROM {s}.ledger_accounts WHERE kind = 'budget'
), credited AS (
    SELECT t.credit_account AS id,
           coalesce(sum(t.amount_minor) FILTER (WHERE t.kind = 'fund'), 0) AS funded,
           coalesce(sum(t.amount_minor) FILTER (WHERE t.kind = 'return'), 0) AS returned
    FROM {s}.ledger_transfers t JOIN budgets b ON b.id = t.credit_account
    WHERE t.phase = 'posted' GROUP BY t.credit_account
), holds AS (
    SELECT programme, min(currency) AS currency, count(*) AS n, sum(amount_minor) AS amount
    FROM {s}.budget_holds GROUP BY programme
), paid AS (
    SELECT programme_code AS programme, sum(programme_minor) AS amount
    FROM {s}.tranches WHERE programme_minor IS NOT NULL AND status = 'settled' GROUP BY programme_code
)
SELECT coalesce(b.programme, h.programme) AS programme, coalesce(b.currency, h.currency) AS currency,
       b.id IS NOT NULL AS has_budget,
       coalesce(c.funded, 0) AS funded, coalesce(b.debits_pending, 0) AS reserved,
       coalesce(b.debits_posted, 0) AS moved_out, coalesce(c.returned, 0) AS returned,
       coalesce(b.credits_posted - b.debits_posted - b.debits_pending, 0) AS available,
       coalesce(p.amount, 0) AS paid,
       coalesce(h.n, 0) AS held_grants, coalesce(h.amount, 0) AS held
FROM budgets b
LEFT JOIN credited c ON c.id = b.id
FULL JOIN holds h ON h.programme = b.programme
LEFT JOIN paid p ON p.programme = coalesce(b.programme, h.programme)
ORDER BY 1
"""

_PAYEES_SQL = """
SELECT substring(id FROM '^[a-z]+:(.*):[A-Z]{3}$') AS payee, currency,
       coalesce(sum(credits_posted + credits_pending - debits_posted - debits_pending)
                FILTER (WHERE kind = 'payable'), 0) AS payable,
       coalesce(sum(credits_posted - debits_posted) FILTER (WHERE kind = 'paid'), 0) AS paid
FROM {s}.ledger_accounts WHERE kind IN ('payable', 'paid')
GROUP BY 1, 2 ORDER BY 2, 1
"""


async def programme_rows(conn: asyncpg.Connection, *, schema: str = SCHEMA) -> list[asyncpg.Record]:
    """Per programme (a budget account, or grants held for one): currency, funded, reserved, moved_out
    (released from the budget), returned, available, paid (programme amount of settled tranches),
    held_grants and held (budget_holds), amounts in minor units of the programme's currency."""
    return await conn.fetch(_in_schema(_PROGRAMMES_SQL, schema))


async def ledger_summary(conn: asyncpg.Connection, *, schema: str = SCHEMA) -> dict[str, Any]:
    """Budgets per programme and payables per currency, amounts in minor units (for the demo)::

        {"programmes": [{"programme", "currency", "funded_minor", "reserved_minor", "moved_out_minor",
                         "returned_minor", "available_minor", "paid_minor", "held_grants", "held_minor"}],
         "currencies": [{"currency", "payable_minor", "paid_minor",
                         "payees": [{"payee", "payable_minor", "paid_minor"}]}]}

    funded + returned - moved_out - reserved = available (what the budget has not handed out);
    moved_out is what left the budget at release, returned what came back from failed or cancelled
    payments.
    """
    programmes = [
        {"programme": r["programme"], "currency": r["currency"].strip(), "funded_minor": int(r["funded"]),
         "reserved_minor": int(r["reserved"]), "moved_out_minor": int(r["moved_out"]),
         "returned_minor": int(r["returned"]), "available_minor": int(r["available"]),
         "paid_minor": int(r["paid"]), "held_grants": int(r["held_grants"]), "held_minor": int(r["held"])}
        for r in await programme_rows(conn, schema=schema)
    ]
    currencies: dict[str, dict[str, Any]] = {}
    for r in await conn.fetch(_in_schema(_PAYEES_SQL, schema)):
        currency = r["currency"].strip()
        entry = currencies.setdefault(currency, {"currency": currency, "payable_minor": 0, "paid_minor": 0,
                                                 "payees": []})
        entry["payable_minor"] += int(r["payable"])
        entry["paid_minor"] += int(r["paid"])
        entry["payees"].append({"payee": r["payee"], "payable_minor": int(r["payable"]), "paid_minor": int(r["paid"])})
    return {"programmes": programmes, "currencies": list(currencies.values())}
