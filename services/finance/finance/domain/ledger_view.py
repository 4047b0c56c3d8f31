"""Finance's view of the ledger, built from disbursement's posting events (pure).

Disbursement publishes every posting on `reintegra.ledger.postings.v1`, one event per account
touched (see disbursement.ledger_repository.apply): the account, its kind and currency, and its
postings numbered 1, 2, ... per account. Balances here follow disbursement.domain.ledger exactly:

    posted        the posted sum of its side grows by the amount
    pending       the pending sum of its side grows by the amount (a reserve)
    post_pending  the pending sum shrinks by the pending amount, the posted sum grows by the amount
                  posted (at most the pending amount: the rest is released)
    void_pending  the pending sum shrinks by the pending amount

Events arrive at least once: a posting is identified by its account and transfer (a transfer
debits one account and credits another, never the same), so a redelivery counts once.
`check_invariants` says whether the view is whole and the ledger's rules hold in it, one named and
explained result per rule, for the report's "ledger invariants" section.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any

FUNDING, BUDGET, COMMITMENT, PAYABLE, PAID, RETURNED, TRADING = (
    "funding", "budget", "commitment", "payable", "paid", "returned", "trading")
# How an account id starts, per kind (disbursement.domain.ledger's account constructors).
ID_PREFIX = {FUNDING: "funding:", BUDGET: "budget:", COMMITMENT: "commitment:", PAYABLE: "payable:",
             PAID: "paid:", RETURNED: "returned:", TRADING: "fx:"}
POSTED, PENDING, POST_PENDING, VOID_PENDING = "posted", "pending", "post_pending", "void_pending"
PHASES = (POSTED, PENDING, POST_PENDING, VOID_PENDING)
DEBIT, CREDIT = "debit", "credit"
CONVERT = "convert"
VENDOR_PREFIX = "vendor:"  # in-kind payees are vendor:<id>; cash payees are providers

MAX_EXAMPLES = 20


@dataclass(frozen=True)
class LedgerAccount:
    id: str
    kind: str
    currency: str
    programme: str | None = None


@dataclass(frozen=True)
class LedgerPosting:
    """One posting of an event, with its account's facts and the day it was booked (the event's time)."""

    account: str
    account_kind: str
    account_currency: str
    account_programme: str | None
    seq: int
    transfer_id: str
    side: str  # debit | credit
    phase: str
    amount_minor: int  # for post_pending: what was posted; the pending amount is pending_amount_minor
    currency: str
    kind: str
    counter_account: str
    programme: str | None
    case_id: str | None
    reference: str | None
    booked_on: date
    pending_id: str | None = None
    pending_amount_minor: int = 0
    conversion_id: str | None = None
    rate: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.account, self.transfer_id


def postings_from_event(data: Mapping[str, Any], booked_on: date) -> list[LedgerPosting]:
    """The postings of one `reintegra.ledger.postings.v1` event's data; KeyError/ValueError when it is
    not one (the consumer parks it)."""
    account = str(data["account"])
    result = []
    for p in data["postings"]:
        amount, pending_amount = p["amount_minor"], p.get("pending_amount_minor", 0) or 0
        if type(amount) is not int or type(pending_amount) is not int or type(p["seq"]) is not int:
            raise ValueError(f"posting {p.get('seq')!r} of {account}: amounts and seq are integers")
        if p["side"] not in (DEBIT, CREDIT) or p["phase"] not in PHASES:
            raise ValueError(f"posting {p['seq']} of {account}: side {p['side']!r}, phase {p['phase']!r}")
        result.append(LedgerPosting(
            account=account, account_kind=str(data["kind"]), account_currency=str(data["currency"]),
            account_programme=data.get("programme"), seq=p["seq"], transfer_id=str(p["transfer_id"]),
            side=p["side"], phase=p["phase"], amount_minor=amount, currency=str(p["currency"]),
            kind=str(p.get("kind") or ""), counter_account=str(p["counter_account"]), programme=p.get("programme"),
            case_id=p.get("case_id"), reference=p.get("reference"), booked_on=booked_on,
            pending_id=p.get("pending_id"), pending_amount_minor=pending_amount,
            conversion_id=p.get("conversion_id"), rate=p.get("rate")))
    return result


@dataclass(slots=True)
class Balance:
    """An account's four running sums (disbursement.domain.ledger.Balance)."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def available(self) -> int:
        """What a budget can still hand out: credits posted less every debit, pending included."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def held(self) -> int:
        """What a credit-side account (commitment, payable, returned) holds, pending included."""
        return self.credits_posted + self.credits_pending - self.debits_posted - self.debits_pending

    @property
    def posted_credit(self) -> int:
        """Credits posted less debits posted: what a paid account has paid, a trading account's position."""
        return self.credits_posted - self.debits_posted

    def add(self, other: Balance) -> None:
        self.debits_pending += other.debits_pending
        self.debits_posted += other.debits_posted
        self.credits_pending += other.credits_pending
        self.credits_posted += other.credits_posted


def change_of(posting: LedgerPosting) -> Balance:
    """What one posting changes on its account (as disbursement.ledger_repository.apply computes it)."""
    resolved = posting.phase in (POST_PENDING, VOID_PENDING)
    posted = posting.amount_minor if posting.phase in (POSTED, POST_PENDING) else 0
    pending = posting.amount_minor if posting.phase == PENDING else (-posting.pending_amount_minor if resolved else 0)
    if posting.side == DEBIT:
        return Balance(debits_pending=pending, debits_posted=posted)
    return Balance(credits_pending=pending, credits_posted=posted)


def unique_postings(postings: Iterable[LedgerPosting], until: date | None = None) -> list[LedgerPosting]:
    """Each posting once (the first delivery of it), booked on or before `until` when given."""
    seen: dict[tuple[str, str], LedgerPosting] = {}
    for p in postings:
        if until is None or p.booked_on <= until:
            seen.setdefault(p.key, p)
    return list(seen.values())


def balances(postings: Iterable[LedgerPosting], until: date | None = None) -> dict[str, Balance]:
    """Every account's balance from its postings (at the end of day `until` when given)."""
    result: dict[str, Balance] = {}
    for p in unique_postings(postings, until):
        result.setdefault(p.account, Balance()).add(change_of(p))
    return dict(sorted(result.items()))


def accounts_of(postings: Iterable[LedgerPosting]) -> dict[str, LedgerAccount]:
    """The accounts the postings name, as their first posting describes them."""
    result: dict[str, LedgerAccount] = {}
    for p in postings:
        result.setdefault(p.account, LedgerAccount(p.account, p.account_kind, p.account_currency, p.account_programme))
    return dict(sorted(result.items()))


def payee_of(account_id: str) -> str | None:
    """The payee of a payable or paid account (`payable:<payee>:<currency>`; a vendor's is vendor:<id>)."""
    kind, _, rest = account_id.partition(":")
    if kind not in ("payable", "paid"):
        return None
    payee, colon, _currency = rest.rpartition(":")
    return payee if colon else None


# --------------------------------------------------------------------------- invariants


@dataclass(frozen=True)
class InvariantResult:
    name: str
    description: str
    unit: str  # what `checked` counts
    checked: int
    violations: tuple[str, ...]  # the first few, as sentences
    violation_count: int

    @property
    def ok(self) -> bool:
        return self.violation_count == 0


@dataclass
class _Check:
    name: str
    description: str
    unit: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def result(self, max_examples: int) -> InvariantResult:
        return InvariantResult(self.name, self.description, self.unit, self.checked,
                               tuple(self.problems[:max_examples]), len(self.problems))


def check_invariants(postings: Iterable[LedgerPosting], accounts: Mapping[str, LedgerAccount] | None = None, *,
                     max_examples: int = MAX_EXAMPLES) -> list[InvariantResult]:
    """The ledger's rules, checked on the view: whether every posting arrived and the money adds up.

    `accounts` (default: as the postings describe them) are what each account is; a posting naming
    an account outside them is a violation."""
    everything = list(postings)
    unique = unique_postings(everything)
    known = dict(accounts) if accounts is not None else accounts_of(unique)
    sums = balances(unique)
    by_transfer: dict[str, list[LedgerPosting]] = defaultdict(list)
    for p in unique:
        by_transfer[p.transfer_id].append(p)
    checks = [
        _sequence(everything),
        _accounts(unique, known),
        _transfer_legs(by_transfer),
        _currency_balance(sums, known),
        _pending_resolution(by_transfer),
        _budget_limits(sums, known),
        _holdings(sums, known),
        _paid_only_grows(unique, known),
        _conversions(unique, known),
    ]
    return [c.result(max_examples) for c in checks]


def _sequence(postings: list[LedgerPosting]) -> _Check:
    check = _Check("posting-sequence", "every account's postings are numbered 1, 2, ... with none missing, and a "
                   "posting delivered twice is the same posting: the view has all of the ledger", "accounts")
    by_key: dict[tuple[str, str], LedgerPosting] = {}
    by_seq: dict[str, dict[int, str]] = defaultdict(dict)
    for p in postings:
        first = by_key.setdefault(p.key, p)
        if _content(first) != _content(p):
            check.problems.append(f"{p.account}: transfer {p.transfer_id} arrived twice with different content")
        transfer = by_seq[p.account].setdefault(p.seq, p.transfer_id)
        if transfer != p.transfer_id:
            check.problems.append(f"{p.account}: posting {p.seq} is both {transfer} and {p.transfer_id}")
    check.checked = len(by_seq)
    for account, numbered in sorted(by_seq.items()):
        missing = sorted(set(range(1, max(numbered) + 1)) - set(numbered))
        if missing:
            check.problems.append(f"{account}: posting{'s' if len(missing) > 1 else ''} "
                                  f"{_ranges(missing)} of {max(numbered)} not received")
        if min(numbered) < 1:
            check.problems.append(f"{account}: posting numbers start at 1, not {min(numbered)}")
    return check


def _content(p: LedgerPosting) -> tuple:
    # The day booked is when the event was read, not part of the posting: a redelivery may differ.
    return tuple(getattr(p, f.name) for f in fields(p) if f.name != "booked_on")


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _accounts(postings: list[LedgerPosting], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("accounts", "every posting names a known account of one kind, currency and programme, in that "
                   "account's currency, and the account's id says its kind", "accounts")
    described: dict[str, set[tuple]] = defaultdict(set)
    for p in postings:
        described[p.account].add((p.account_kind, p.account_currency, p.account_programme))
        account = known.get(p.account)
        if account is None:
            check.problems.append(f"{p.account}: no such account (posting {p.seq}, transfer {p.transfer_id})")
        elif p.currency != account.currency:
            check.problems.append(f"{p.account}: transfer {p.transfer_id} in {p.currency} on an account in "
                                  f"{account.currency}")
    for account_id, descriptions in sorted(described.items()):
        if len(descriptions) > 1:
            check.problems.append(f"{account_id}: described as {len(descriptions)} different accounts")
    for account in known.values():
        prefix = ID_PREFIX.get(account.kind)
        if prefix is None or not account.id.startswith(prefix):
            check.problems.append(f"{account.id}: a {account.kind} account's id does not start with "
                                  f"{prefix or 'a known prefix'}")
    check.checked = len(set(known) | set(described))
    return check


def _transfer_legs(by_transfer: Mapping[str, list[LedgerPosting]]) -> _Check:
    check = _Check("transfer-legs", "each transfer debits one account and credits another for the same amount in "
                   "one currency and phase (pending: more than 0; never below 0), and both legs have arrived",
                   "transfers")
    check.checked = len(by_transfer)
    for transfer_id, legs in sorted(by_transfer.items()):
        debits = [p for p in legs if p.side == DEBIT]
        credits = [p for p in legs if p.side == CREDIT]
        if len(debits) != 1 or len(credits) != 1:
            have = ", ".join(f"{p.side} {p.account}" for p in legs)
            check.problems.append(f"transfer {transfer_id}: {len(debits)} debit and {len(credits)} credit legs "
                                  f"({have}): {'a leg has not arrived' if len(legs) == 1 else 'one leg per side'}")
            continue
        debit, credit = debits[0], credits[0]
        if debit.account == credit.account:
            check.problems.append(f"transfer {transfer_id}: debits and credits the same account {debit.account}")
        if debit.counter_account != credit.account or credit.counter_account != debit.account:
            check.problems.append(f"transfer {transfer_id}: its legs name other counter accounts")
        for what in ("amount_minor", "currency", "phase", "pending_id", "pending_amount_minor", "kind"):
            if getattr(debit, what) != getattr(credit, what):
                check.problems.append(f"transfer {transfer_id}: debit {what} {getattr(debit, what)!r}, "
                                      f"credit {what} {getattr(credit, what)!r}")
        if debit.amount_minor < 0 or (debit.phase == PENDING and debit.amount_minor == 0):
            check.problems.append(f"transfer {transfer_id}: {debit.phase} amount {debit.amount_minor} is not allowed")
    return check


def _currency_balance(sums: Mapping[str, Balance], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("currency-balance", "per currency, the accounts' debits equal their credits, posted and pending "
                   "alike (every transfer moves one amount within one currency)", "currencies")
    totals: dict[str, Balance] = defaultdict(Balance)
    for account_id, balance in sums.items():
        account = known.get(account_id)
        if account is not None:
            totals[account.currency].add(balance)
    check.checked = len(totals)
    for currency, t in sorted(totals.items()):
        for phase, debits, credits in (("posted", t.debits_posted, t.credits_posted),
                                       ("pending", t.debits_pending, t.credits_pending)):
            if debits != credits:
                check.problems.append(f"{currency}: {phase} debits {debits} but {phase} credits {credits} "
                                      f"(off by {debits - credits})")
    return check


def _pending_resolution(by_transfer: Mapping[str, list[LedgerPosting]]) -> _Check:
    check = _Check("pending-resolution", "each pending transfer is posted or voided at most once, between the same "
                   "accounts; a post is at most the pending amount, a void exactly it, and what was pending is "
                   "what the resolution says", "pending transfers and resolutions")
    pendings = {t: legs[0] for t, legs in by_transfer.items() if legs[0].phase == PENDING}
    resolutions: dict[str, list[LedgerPosting]] = defaultdict(list)
    for legs in by_transfer.values():
        if legs[0].phase in (POST_PENDING, VOID_PENDING):
            resolutions[legs[0].pending_id or ""].append(legs[0])
    check.checked = len(pendings) + sum(len(r) for r in resolutions.values())
    for pending_id, resolved_by in sorted(resolutions.items()):
        ids = sorted(r.transfer_id for r in resolved_by)
        if not pending_id:
            check.problems.extend(f"transfer {i}: resolves no pending transfer" for i in ids)
            continue
        if len(ids) > 1:
            check.problems.append(f"pending transfer {pending_id} is resolved {len(ids)} times ({', '.join(ids)})")
        pending = pendings.get(pending_id)
        for r in sorted(resolved_by, key=lambda r: r.transfer_id):
            if pending is None:
                what = "is not pending" if pending_id in by_transfer else "has not arrived"
                check.problems.append(f"transfer {r.transfer_id} resolves {pending_id}, which {what}")
                continue
            if {r.account, r.counter_account} != {pending.account, pending.counter_account} \
                    or r.currency != pending.currency:
                check.problems.append(f"transfer {r.transfer_id} resolves {pending_id} between other accounts")
            if r.pending_amount_minor != pending.amount_minor:
                check.problems.append(f"transfer {r.transfer_id} says {pending_id} was pending for "
                                      f"{r.pending_amount_minor}, it was for {pending.amount_minor}")
            if r.phase == POST_PENDING and r.amount_minor > pending.amount_minor:
                check.problems.append(f"transfer {r.transfer_id} posts {r.amount_minor} of {pending_id}, "
                                      f"pending for {pending.amount_minor}")
            if r.phase == VOID_PENDING and r.amount_minor != pending.amount_minor:
                check.problems.append(f"transfer {r.transfer_id} voids {r.amount_minor} of {pending_id}, "
                                      f"pending for {pending.amount_minor}")
    return check


def _of_kind(sums: Mapping[str, Balance], known: Mapping[str, LedgerAccount], *kinds: str) -> list[tuple[str, Balance]]:
    return [(a, b) for a, b in sums.items() if a in known and known[a].kind in kinds]


def _budget_limits(sums: Mapping[str, Balance], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("budget-limits", "no budget hands out more than it was given: available (credits posted - debits "
                   "posted - debits pending) is never below 0", "budget accounts")
    budgets = _of_kind(sums, known, BUDGET)
    check.checked = len(budgets)
    for account_id, b in budgets:
        if b.available < 0:
            check.problems.append(f"{account_id}: available is {b.available} (credits posted {b.credits_posted} - "
                                  f"debits posted {b.debits_posted} - debits pending {b.debits_pending})")
    return check


def _holdings(sums: Mapping[str, Balance], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("holdings-not-negative", "what commitment, payable and returned accounts hold (credits - debits, "
                   "pending included) is never below 0: nothing is owed or paid on that was not committed",
                   "commitment, payable and returned accounts")
    holding = _of_kind(sums, known, COMMITMENT, PAYABLE, RETURNED)
    check.checked = len(holding)
    for account_id, b in holding:
        if b.held < 0:
            check.problems.append(f"{account_id}: holds {b.held}")
    return check


def _paid_only_grows(postings: list[LedgerPosting], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("paid-only-grows", "what was paid is never taken back: a paid account is only credited, by "
                   "posted transfers (money that comes back is a new movement, not a debit of paid)", "paid accounts")
    paid = {a for a, account in known.items() if account.kind == PAID}
    check.checked = len(paid)
    for p in sorted(postings, key=lambda p: (p.account, p.seq)):
        if p.account in paid and (p.side == DEBIT or p.phase != POSTED):
            check.problems.append(f"{p.account}: transfer {p.transfer_id} is a {p.phase} {p.side}")
    return check


def _conversions(postings: list[LedgerPosting], known: Mapping[str, LedgerAccount]) -> _Check:
    check = _Check("conversions", "a conversion has two transfers in two currencies at one rate, through the "
                   "trading accounts: one credits a currency's fx account, the other debits another's", "conversions")
    by_conversion: dict[str, list[LedgerPosting]] = defaultdict(list)
    for p in postings:
        if p.conversion_id:
            by_conversion[p.conversion_id].append(p)
    check.checked = len(by_conversion)
    for conversion_id, legs in sorted(by_conversion.items()):
        transfers = {p.transfer_id: p.currency for p in legs}
        if len(transfers) != 2 or len(set(transfers.values())) != 2:
            check.problems.append(f"conversion {conversion_id}: {len(transfers)} transfer(s) in "
                                  f"{', '.join(sorted(set(transfers.values())))}, not two in two currencies")
        rates = {p.rate for p in legs}
        if len(rates) != 1 or None in rates:
            check.problems.append(f"conversion {conversion_id}: rates {sorted(map(str, rates))}, not one")
        trading = [p for p in legs if p.account in known and known[p.account].kind == TRADING]
        sides = sorted((p.side, p.currency) for p in trading)
        if len(sides) != 2 or {s for s, _ in sides} != {DEBIT, CREDIT} or sides[0][1] == sides[1][1]:
            check.problems.append(f"conversion {conversion_id}: through the trading accounts as "
                                  f"{', '.join(f'{s} {c}' for s, c in sides) or 'nothing'}")
    return check
