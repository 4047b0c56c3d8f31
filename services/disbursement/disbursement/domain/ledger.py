"""The double-entry ledger's rules (pure): accounts, immutable transfers, two phases, limits.

After TigerBeetle: an account keeps four running sums (debits and credits, pending and posted);
a transfer moves one amount from a debit account to a credit account of the same currency; a
pending transfer reserves and is later posted (at most its amount, the rest released) or voided,
exactly once; an account may forbid its debits, pending included, to exceed its credits (a
budget's available amount never goes below zero).

`Books` is one transaction's view: the balances of the accounts the transaction has locked
(the limited ones, whose limits it must check), and what it changes. The repository applies
what it decided: new transfers, and per account the sums to add, in account order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FUNDING, BUDGET, COMMITMENT, PAYABLE, PAID, RETURNED, TRADING = (
    "funding", "budget", "commitment", "payable", "paid", "returned", "trading")

POSTED, PENDING, POST_PENDING, VOID_PENDING = "posted", "pending", "post_pending", "void_pending"


class LedgerError(Exception):
    """A transfer the ledger refuses; `code` says why (TigerBeetle's result codes, in words)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ExceedsAvailable(LedgerError):
    def __init__(self, account: str, amount: int, available: int) -> None:
        super().__init__("exceeds_available", f"{amount} is more than the {available} available on {account}")
        self.account = account
        self.available = available


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    currency: str
    kind: str
    programme: str | None = None
    # Debits (pending included) may never exceed credits: a budget.
    limited: bool = False


def funding_account(programme: str, currency: str) -> Account:
    """Where a programme's money comes from (donors): its debits are what was put in."""
    return Account(f"funding:{programme}", currency, FUNDING, programme)


def budget_account(programme: str, currency: str) -> Account:
    return Account(f"budget:{programme}", currency, BUDGET, programme, limited=True)


def commitment_account(programme: str, currency: str) -> Account:
    """Grants reserved (pending) and released tranches on their way to a payee."""
    return Account(f"commitment:{programme}", currency, COMMITMENT, programme)


def returned_account(programme: str, currency: str) -> Account:
    """Money that came back (a payment failed, a released tranche was cancelled) on its way to the budget."""
    return Account(f"returned:{programme}", currency, RETURNED, programme)


def trading_account(currency: str) -> Account:
    """The currency trading account: a conversion credits one currency's and debits the other's."""
    return Account(f"fx:{currency}", currency, TRADING)


def payable_account(payee: str, currency: str) -> Account:
    """What is owed through a provider (cash) or to a vendor (in kind), in the payout currency."""
    return Account(f"payable:{payee}:{currency}", currency, PAYABLE)


def paid_account(payee: str, currency: str) -> Account:
    return Account(f"paid:{payee}:{currency}", currency, PAID)


@dataclass(slots=True)
class Balance:
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def available(self) -> int:
        """What a limited account can still be debited: credits posted less every debit, pending included."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def add(self, other: Balance) -> None:
        self.debits_pending += other.debits_pending
        self.debits_posted += other.debits_posted
        self.credits_pending += other.credits_pending
        self.credits_posted += other.credits_posted

    def is_zero(self) -> bool:
        return not (self.debits_pending or self.debits_posted or self.credits_pending or self.credits_posted)


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str  # the idempotency key
    debit: str
    credit: str
    currency: str
    amount: int
    phase: str = POSTED
    pending_id: str | None = None
    kind: str = ""
    programme: str | None = None
    case_id: str | None = None
    reference: str | None = None
    conversion_id: str | None = None
    rate: str | None = None
    cause: str | None = None
    actor: str | None = None

    def content(self) -> tuple:
        """What must be identical for the same id to be the same transfer (cause and actor may differ:
        a redelivery of the same decision is the same transfer)."""
        return (self.debit, self.credit, self.currency, self.amount, self.phase, self.pending_id, self.kind,
                self.programme, self.case_id, self.reference, self.conversion_id, self.rate)


@dataclass(frozen=True, slots=True)
class Posting:
    """One side of a transfer as one account sees it."""

    account: str
    transfer_id: str
    side: str  # debit | credit
    phase: str
    amount: int  # for post_pending: the amount posted; the pending amount was `pending_amount`
    currency: str
    pending_amount: int = 0


@dataclass
class Books:
    """One transaction's ledger: locked balances in, new transfers and balance changes out."""

    # Accounts whose balances were read under lock (every limited account a transfer may debit).
    balances: dict[str, Balance] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    # Accounts opened by this transaction (did not exist before it).
    opened: set[str] = field(default_factory=set)
    changes: dict[str, Balance] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    postings: list[Posting] = field(default_factory=list)
    _resolved: set[str] = field(default_factory=set)
    _by_id: dict[str, Transfer] = field(default_factory=dict)

    # --- accounts ---------------------------------------------------------------------------
    def load(self, account: Account, balance: Balance) -> None:
        """An account read under lock, with its balance."""
        self.accounts[account.id] = account
        self.balances[account.id] = balance

    def open(self, account: Account) -> Account:
        """Make sure the account exists (opened by this transaction when it did not)."""
        known = self.accounts.get(account.id)
        if known is None:
            if account.limited:
                raise LedgerError("account_not_locked", f"{account.id} has limits: it must be loaded under lock first")
            self.accounts[account.id] = account
            self.opened.add(account.id)
            return account
        if (known.currency, known.kind) != (account.currency, account.kind):
            raise LedgerError("account_mismatch", f"{account.id} is a {known.kind} account in {known.currency}, "
                              f"not a {account.kind} account in {account.currency}")
        return known

    def is_new(self, account_id: str) -> bool:
        """Whether a loaded account has never had a transfer (a budget not opened yet)."""
        balance = self.balances.get(account_id)
        return balance is not None and balance.is_zero() and account_id not in self.changes

    def available(self, account_id: str) -> int:
        if account_id not in self.balances:
            raise LedgerError("account_not_locked", f"{account_id} was not loaded under lock")
        return self.balances[account_id].available

    # --- transfers --------------------------------------------------------------------------
    def transfer(self, transfer: Transfer) -> Transfer:
        """Apply a posted or pending transfer; refused (nothing changes) when it breaks a rule."""
        if transfer.phase not in (POSTED, PENDING) or transfer.pending_id is not None:
            raise LedgerError("invalid_phase", "use post() or void() to resolve a pending transfer")
        if self._repeated(transfer):
            return transfer
        debit, credit = self._check_accounts(transfer)
        pending = transfer.phase == PENDING
        # Zero is allowed (a conversion leg of a tranche too small to survive rounding keeps its pair).
        if type(transfer.amount) is not int or transfer.amount < 0 or (pending and transfer.amount == 0):
            raise LedgerError("invalid_amount", f"transfer {transfer.id}: amount {transfer.amount!r}")
        if debit.limited:
            available = self.available(debit.id)
            if transfer.amount > available:
                raise ExceedsAvailable(debit.id, transfer.amount, available)
        self._record(transfer,
                     Balance(debits_pending=transfer.amount) if pending else Balance(debits_posted=transfer.amount),
                     Balance(credits_pending=transfer.amount) if pending else Balance(credits_posted=transfer.amount))
        return transfer

    def post(self, pending: Transfer, transfer_id: str, amount: int | None = None, **details) -> Transfer:
        """Post a pending transfer for at most its amount; what is not posted goes back (released)."""
        amount = pending.amount if amount is None else amount
        if type(amount) is not int or amount < 0 or amount > pending.amount:
            raise LedgerError("exceeds_pending_amount",
                              f"cannot post {amount!r} of pending transfer {pending.id} for {pending.amount}")
        transfer = self._resolution(pending, transfer_id, POST_PENDING, amount, details)
        if transfer is None:
            return self._by_id[transfer_id]
        self._record(transfer,
                     Balance(debits_pending=-pending.amount, debits_posted=amount),
                     Balance(credits_pending=-pending.amount, credits_posted=amount),
                     pending_amount=pending.amount)
        return transfer

    def void(self, pending: Transfer, transfer_id: str, **details) -> Transfer:
        """Release a pending transfer whole."""
        transfer = self._resolution(pending, transfer_id, VOID_PENDING, pending.amount, details)
        if transfer is None:
            return self._by_id[transfer_id]
        self._record(transfer, Balance(debits_pending=-pending.amount), Balance(credits_pending=-pending.amount),
                     pending_amount=pending.amount)
        return transfer

    # --- internals --------------------------------------------------------------------------
    def _check_accounts(self, transfer: Transfer) -> tuple[Account, Account]:
        if transfer.debit == transfer.credit:
            raise LedgerError("accounts_must_be_different", f"transfer {transfer.id} debits and credits {transfer.debit}")
        debit, credit = self.accounts.get(transfer.debit), self.accounts.get(transfer.credit)
        for account_id, account in ((transfer.debit, debit), (transfer.credit, credit)):
            if account is None:
                raise LedgerError("account_not_found", f"transfer {transfer.id}: no account {account_id}")
            if account.currency != transfer.currency:
                raise LedgerError("currency_mismatch", f"transfer {transfer.id} in {transfer.currency} "
                                  f"touches {account_id}, an account in {account.currency}")
        return debit, credit  # type: ignore[return-value]

    def _repeated(self, transfer: Transfer) -> bool:
        """The same id twice in one transaction: a no-op when identical, refused otherwise."""
        seen = self._by_id.get(transfer.id)
        if seen is None:
            return False
        if seen.content() != transfer.content():
            raise LedgerError("exists_with_different_content", f"transfer {transfer.id} exists with other content")
        return True

    def _resolution(self, pending: Transfer, transfer_id: str, phase: str, amount: int,
                    details: dict) -> Transfer | None:
        transfer = Transfer(transfer_id, pending.debit, pending.credit, pending.currency, amount, phase, pending.id,
                            programme=pending.programme, case_id=pending.case_id, reference=pending.reference,
                            **details)
        if self._repeated(transfer):
            return None
        if pending.phase != PENDING:
            raise LedgerError("pending_transfer_not_pending", f"{pending.id} is not a pending transfer")
        if pending.id in self._resolved:
            raise LedgerError("pending_transfer_already_resolved", f"{pending.id} was already posted or voided")
        self._check_accounts(pending)
        self._resolved.add(pending.id)
        return transfer

    def _record(self, transfer: Transfer, debit_change: Balance, credit_change: Balance, pending_amount: int = 0) -> None:
        for account_id, change in ((transfer.debit, debit_change), (transfer.credit, credit_change)):
            self.changes.setdefault(account_id, Balance()).add(change)
            if account_id in self.balances:
                self.balances[account_id].add(change)
        self.transfers.append(transfer)
        self._by_id[transfer.id] = transfer
        for account_id, side in ((transfer.debit, "debit"), (transfer.credit, "credit")):
            self.postings.append(Posting(account_id, transfer.id, side, transfer.phase, transfer.amount,
                                         transfer.currency, pending_amount))
