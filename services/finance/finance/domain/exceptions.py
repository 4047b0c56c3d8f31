"""The exceptions queue's workflow (pure): who may do what to a finance exception, four eyes on money.

    open ──investigate──▶ investigating
    open | investigating ──resolve──▶ resolved
                         ──request_write_off──▶ write_off_requested ──approve──▶ written_off
                         ──request_repay──────▶ repay_requested ─────approve──▶ repay_approved
    a request ──reject (another person) | withdraw (its requester)──▶ investigating
    any state not final ──auto_resolve (the system: e.g. a late statement line matched)──▶ resolved
    final states (resolved, written_off, repay_approved) take comments only

Approving a request is a decision about money, so its approver is never its requester (usernames
compared as `reintegra.auth.principal` compares them: NFKC, case-folded, trimmed) and never the
system. A re-pay sends the money again: only for a payment that did not arrive (missing, reversed,
outcome unknown). A write-off books a loss: only for the kinds about money. Anything else, and kinds
this module does not know, can only be resolved with a reason.

`apply` never changes what happened before: it returns the new state and one history entry to
append, and on approval the decision the service publishes to disbursement.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime

# Kinds raised by statement matching (see finance.domain.matching) and by disbursement.
AMOUNT_MISMATCH = "amount_mismatch"
MISSING_IN_STATEMENT = "missing_in_statement"
UNEXPECTED_IN_STATEMENT = "unexpected_in_statement"
DUPLICATE_IN_STATEMENT = "duplicate_in_statement"
REVERSED = "reversed"
PAYMENT_OUTCOME_UNRESOLVED = "payment_outcome_unresolved"
SETTLEMENT_MISMATCH = "settlement_mismatch"
UNKNOWN_REFERENCE = "unknown_reference"
STATUS_AFTER_FINAL = "status_after_final"
SECOND_TRANSFER = "second_transfer"
INVOICE_MISMATCH = "invoice_mismatch"

# Sending again only makes sense when the money did not reach the payee.
REPAY_KINDS = frozenset({MISSING_IN_STATEMENT, REVERSED, PAYMENT_OUTCOME_UNRESOLVED})
# A loss can only be booked where money went wrong.
WRITE_OFF_KINDS = frozenset({AMOUNT_MISMATCH, MISSING_IN_STATEMENT, UNEXPECTED_IN_STATEMENT, DUPLICATE_IN_STATEMENT,
                             REVERSED, PAYMENT_OUTCOME_UNRESOLVED, SETTLEMENT_MISMATCH, SECOND_TRANSFER})

OPEN = "open"
INVESTIGATING = "investigating"
WRITE_OFF_REQUESTED = "write_off_requested"
REPAY_REQUESTED = "repay_requested"
RESOLVED = "resolved"
WRITTEN_OFF = "written_off"
REPAY_APPROVED = "repay_approved"
STATES = (OPEN, INVESTIGATING, WRITE_OFF_REQUESTED, REPAY_REQUESTED, RESOLVED, WRITTEN_OFF, REPAY_APPROVED)
FINAL_STATES = frozenset({RESOLVED, WRITTEN_OFF, REPAY_APPROVED})
REQUESTED_STATES = frozenset({WRITE_OFF_REQUESTED, REPAY_REQUESTED})

RAISE = "raise"  # the history's first entry (not an action anyone takes)
INVESTIGATE = "investigate"
RESOLVE = "resolve"
REQUEST_WRITE_OFF = "request_write_off"
REQUEST_REPAY = "request_repay"
APPROVE = "approve"
REJECT = "reject"
WITHDRAW = "withdraw"
COMMENT = "comment"
AUTO_RESOLVE = "auto_resolve"
ACTIONS = (INVESTIGATE, RESOLVE, REQUEST_WRITE_OFF, REQUEST_REPAY, APPROVE, REJECT, WITHDRAW, COMMENT, AUTO_RESOLVE)
# What the text of each action is called, when one is required.
_TEXT_REQUIRED = {RESOLVE: "reason", REQUEST_WRITE_OFF: "reason", REQUEST_REPAY: "reason", REJECT: "reason",
                  AUTO_RESOLVE: "reason", COMMENT: "note"}

WRITE_OFF, REPAY = "write_off", "repay"  # what a request asks for, and what an approval decides
SYSTEM = "system"  # the actor of automatic actions

MAX_TEXT = 2000


class WorkflowError(Exception):
    """An action the workflow refuses; `code` is stable, `message` says why in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FourEyesError(WorkflowError):
    def __init__(self, message: str) -> None:
        super().__init__("four_eyes", message)


def same_person(a: str | None, b: str | None) -> bool:
    """As `reintegra.auth.principal._comparable` compares usernames: it can only make more names
    equal, the safe direction for four eyes."""
    return _comparable(a or "") == _comparable(b or "")


def _comparable(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


@dataclass(frozen=True)
class Request:
    """A write-off or re-pay waiting for someone else's approval."""

    kind: str  # WRITE_OFF | REPAY
    requested_by: str
    requested_at: datetime
    reason: str
    amount_minor: int | None  # a write-off's amount; a re-pay's is the payment's (None: disbursement knows it)


@dataclass(frozen=True)
class ExceptionState:
    id: str
    kind: str
    state: str
    reference: str | None = None
    case_id: str | None = None
    provider: str | None = None
    amount_minor: int | None = None  # what is at stake, in `currency`: a write-off is at most this
    currency: str | None = None
    request: Request | None = None  # set exactly while a request waits
    assignee: str | None = None  # who is investigating

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"{self.state!r} is no exception state")
        if (self.request is not None) != (self.state in REQUESTED_STATES):
            raise ValueError(f"an exception {self.state} {'has no' if self.request is None else 'has a'} request")

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class Action:
    name: str
    reason: str | None = None  # the reason, or a comment's note
    amount_minor: int | None = None  # a write-off's amount (default: the exception's)


@dataclass(frozen=True)
class HistoryEntry:
    exception_id: str
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str
    reason: str | None = None
    amount_minor: int | None = None
    request_kind: str | None = None  # what was requested, approved, rejected or withdrawn


@dataclass(frozen=True)
class Decision:
    """An approved write-off or re-pay, for disbursement to carry out."""

    kind: str  # WRITE_OFF | REPAY
    exception_id: str
    exception_kind: str
    reference: str | None
    case_id: str | None
    provider: str | None
    amount_minor: int | None
    currency: str | None
    reason: str
    requested_by: str
    approved_by: str
    approved_at: datetime


@dataclass(frozen=True)
class Transition:
    state: ExceptionState
    entry: HistoryEntry  # to append to the exception's history
    decision: Decision | None = None  # on approval only


def open_exception(exc: ExceptionState, actor: str, at: datetime, reason: str | None = None) -> Transition:
    """A new exception, open, with the history's first entry."""
    _check_time(at)
    if exc.state != OPEN or exc.request is not None:
        raise WorkflowError("invalid_transition", "a new exception is open")
    return Transition(exc, HistoryEntry(exc.id, at, actor, RAISE, None, OPEN, _clean(reason)))


def allowed_actions(exc: ExceptionState, actor: str) -> list[str]:
    """What `actor` may do now, in ACTIONS order (the buttons to show). The reason or amount an
    action needs is not asked here: `apply` checks what the actor gives."""
    return [name for name in ACTIONS if _refusal(exc, name, actor) is None]


def apply(exc: ExceptionState, action: Action, actor: str, at: datetime) -> Transition:
    """Do `action` as `actor` at `at`; WorkflowError (FourEyesError) when it is not allowed."""
    _check_time(at)
    refusal = _refusal(exc, action.name, actor)
    if refusal is not None:
        raise refusal
    text = _required_text(action)
    name = action.name
    if name == COMMENT:
        return _step(exc, exc, action, actor, at, text)
    if name == INVESTIGATE:
        return _step(exc, replace(exc, state=INVESTIGATING, assignee=actor), action, actor, at, text)
    if name in (RESOLVE, AUTO_RESOLVE):
        # An automatic resolution drops a waiting request: there is nothing left to pay or write off.
        pending = exc.request.kind if exc.request else None
        return _step(exc, replace(exc, state=RESOLVED, request=None), action, actor, at, text, request_kind=pending)
    if name == REQUEST_WRITE_OFF:
        amount = _write_off_amount(exc, action.amount_minor)
        request = Request(WRITE_OFF, actor, at, text, amount)  # type: ignore[arg-type]
        return _step(exc, replace(exc, state=WRITE_OFF_REQUESTED, request=request), action, actor, at, text,
                     amount, WRITE_OFF)
    if name == REQUEST_REPAY:
        if action.amount_minor is not None:
            raise WorkflowError("amount_not_allowed", "a re-pay sends the payment's own amount again")
        request = Request(REPAY, actor, at, text, exc.amount_minor)  # type: ignore[arg-type]
        return _step(exc, replace(exc, state=REPAY_REQUESTED, request=request), action, actor, at, text,
                     exc.amount_minor, REPAY)
    assert exc.request is not None  # approve, reject, withdraw: _refusal checked a request waits
    request = exc.request
    if name in (REJECT, WITHDRAW):
        return _step(exc, replace(exc, state=INVESTIGATING, request=None), action, actor, at, text,
                     request.amount_minor, request.kind)
    decided = WRITTEN_OFF if request.kind == WRITE_OFF else REPAY_APPROVED
    decision = Decision(request.kind, exc.id, exc.kind, exc.reference, exc.case_id, exc.provider,
                        request.amount_minor, exc.currency, request.reason, request.requested_by, actor, at)
    transition = _step(exc, replace(exc, state=decided, request=None), action, actor, at, text,
                       request.amount_minor, request.kind)
    return replace(transition, decision=decision)


# --------------------------------------------------------------------------- rules


def _refusal(exc: ExceptionState, name: str, actor: str) -> WorkflowError | None:
    """Why `actor` may not take action `name` now (None: allowed). One place for the rules, so
    `allowed_actions` and `apply` cannot disagree."""
    if name not in ACTIONS:
        return WorkflowError("unknown_action", f"{name!r} is no action (one of {', '.join(ACTIONS)})")
    if not _comparable(actor or ""):
        return WorkflowError("actor_required", "every action is taken by someone")
    system = same_person(actor, SYSTEM)
    if name == AUTO_RESOLVE and not system:
        return WorkflowError("system_only", "only the system resolves exceptions automatically; resolve with a reason")
    if system and name not in (AUTO_RESOLVE, COMMENT):
        # Nothing automatic may decide money or stand in for a person in the four-eyes chain.
        return WorkflowError("not_allowed_for_actor", f"the system cannot {name.replace('_', ' ')}")
    if name == COMMENT:
        return None
    if exc.is_final:
        return WorkflowError("invalid_transition", f"the exception is {exc.state}: only comments can be added")
    state = exc.state
    if name == INVESTIGATE and state != OPEN:
        return WorkflowError("invalid_transition", f"the exception is {state}, not open")
    if name in (RESOLVE, REQUEST_WRITE_OFF, REQUEST_REPAY) and state in REQUESTED_STATES:
        return WorkflowError("invalid_transition", f"a {exc.request.kind.replace('_', '-')} request waits "  # type: ignore[union-attr]
                             "for approval: it is approved, rejected or withdrawn first")
    if name == REQUEST_WRITE_OFF and exc.kind not in WRITE_OFF_KINDS:
        return WorkflowError("not_allowed_for_kind", f"a {exc.kind} exception cannot be written off, only resolved")
    if name == REQUEST_REPAY and exc.kind not in REPAY_KINDS:
        return WorkflowError("not_allowed_for_kind", f"a {exc.kind} exception cannot be re-paid: only a payment "
                             "that did not arrive is sent again")
    if name in (APPROVE, REJECT, WITHDRAW):
        if exc.request is None:
            return WorkflowError("invalid_transition", f"the exception is {state}: no request waits")
        own = same_person(actor, exc.request.requested_by)
        if name == APPROVE and own:
            return FourEyesError(f"{actor} requested this {exc.request.kind.replace('_', '-')}: "
                                 "someone else must approve it")
        if name == REJECT and own:
            return WorkflowError("own_request", "a request is taken back with withdraw, not rejected by its requester")
        if name == WITHDRAW and not own:
            return WorkflowError("not_requester", f"only {exc.request.requested_by} can withdraw their request")
    return None


def _required_text(action: Action) -> str | None:
    text = _clean(action.reason)
    what = _TEXT_REQUIRED.get(action.name)
    if what and not text:
        raise WorkflowError(f"{what}_required", f"{action.name.replace('_', ' ')} needs a {what}")
    if text and len(text) > MAX_TEXT:
        raise WorkflowError("text_too_long", f"at most {MAX_TEXT} characters")
    return text


def _write_off_amount(exc: ExceptionState, amount_minor: int | None) -> int:
    amount = exc.amount_minor if amount_minor is None else amount_minor
    if amount is None or exc.currency is None:
        raise WorkflowError("amount_required", "a write-off needs an amount (the exception has none, or no currency)")
    if type(amount) is not int or amount <= 0:
        raise WorkflowError("invalid_amount", f"a write-off is more than 0 minor units, not {amount!r}")
    if exc.amount_minor is not None and amount > exc.amount_minor:
        raise WorkflowError("exceeds_amount", f"a write-off of {amount} is more than the {exc.amount_minor} at stake")
    return amount


def _clean(text: str | None) -> str | None:
    return (text or "").strip() or None


def _check_time(at: datetime) -> None:
    # History is read across services and time zones: a naive time means nothing.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times are timezone-aware")


def _step(before: ExceptionState, after: ExceptionState, action: Action, actor: str, at: datetime,
          text: str | None, amount_minor: int | None = None, request_kind: str | None = None) -> Transition:
    entry = HistoryEntry(before.id, at, actor, action.name, before.state, after.state, text, amount_minor,
                         request_kind)
    return Transition(after, entry)
