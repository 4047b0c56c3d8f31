"""The exceptions queue's workflow: transitions, four eyes, what each kind allows, and a property
(no sequence of actions by one person reaches an approved state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from finance.domain.exceptions import (
    ACTIONS,
    APPROVE,
    AUTO_RESOLVE,
    COMMENT,
    FINAL_STATES,
    INVESTIGATE,
    INVESTIGATING,
    OPEN,
    RAISE,
    REJECT,
    REPAY,
    REPAY_APPROVED,
    REPAY_KINDS,
    REPAY_REQUESTED,
    REQUEST_REPAY,
    REQUEST_WRITE_OFF,
    RESOLVE,
    RESOLVED,
    SYSTEM,
    WITHDRAW,
    WRITE_OFF,
    WRITE_OFF_KINDS,
    WRITE_OFF_REQUESTED,
    WRITTEN_OFF,
    Action,
    Decision,
    ExceptionState,
    FourEyesError,
    Request,
    WorkflowError,
    allowed_actions,
    apply,
    open_exception,
    same_person,
)
from hypothesis import given, settings
from hypothesis import strategies as st

AT = datetime(2024, 4, 2, 9, 30, tzinfo=UTC)
ALL_KINDS = ["amount_mismatch", "missing_in_statement", "unexpected_in_statement", "duplicate_in_statement",
             "reversed", "payment_outcome_unresolved", "settlement_mismatch", "unknown_reference",
             "status_after_final", "second_transfer", "invoice_mismatch", "something_new"]


def exception(kind: str = "missing_in_statement", **changes) -> ExceptionState:
    fields = {"id": "exc-1", "kind": kind, "state": OPEN, "reference": "RG-1", "case_id": "case-1",
              "provider": "momo", "amount_minor": 50_000, "currency": "XOF"} | changes
    return ExceptionState(**fields)


def do(exc: ExceptionState, name: str, actor: str, reason: str | None = "because", amount: int | None = None,
       at: datetime = AT):
    return apply(exc, Action(name, reason, amount), actor, at)


def requested(kind: str = WRITE_OFF, by: str = "alice", exc_kind: str = "missing_in_statement") -> ExceptionState:
    exc = exception(exc_kind)
    return do(exc, REQUEST_WRITE_OFF if kind == WRITE_OFF else REQUEST_REPAY, by, "lost by the provider").state


# --------------------------------------------------------------------------- the happy paths


def test_a_new_exception_is_open_with_a_first_history_entry():
    t = open_exception(exception(), SYSTEM, AT, "no statement line 8 days after sending")
    assert t.state.state == OPEN and t.decision is None
    assert (t.entry.action, t.entry.from_state, t.entry.to_state, t.entry.actor) == (RAISE, None, OPEN, SYSTEM)
    with pytest.raises(WorkflowError, match="is open"):
        open_exception(exception(state=INVESTIGATING), SYSTEM, AT)


def test_investigate_then_resolve_with_a_reason():
    t = do(exception(), INVESTIGATE, "alice", None)
    assert t.state.state == INVESTIGATING and t.state.assignee == "alice"
    assert (t.entry.from_state, t.entry.to_state, t.entry.reason) == (OPEN, INVESTIGATING, None)
    t = do(t.state, RESOLVE, "alice", "  the provider confirmed it by phone  ")
    assert t.state.state == RESOLVED and t.entry.reason == "the provider confirmed it by phone" and t.decision is None


def test_a_write_off_requested_by_one_and_approved_by_another_decides_it():
    t = do(exception("amount_mismatch"), REQUEST_WRITE_OFF, "alice", "fee taken by the bank", 1_500)
    assert t.state.state == WRITE_OFF_REQUESTED
    assert t.state.request == Request(WRITE_OFF, "alice", AT, "fee taken by the bank", 1_500)
    assert (t.entry.amount_minor, t.entry.request_kind) == (1_500, WRITE_OFF)
    later = AT + timedelta(hours=3)
    t = do(t.state, APPROVE, "bob", None, at=later)
    assert t.state.state == WRITTEN_OFF and t.state.request is None
    assert t.decision == Decision(WRITE_OFF, "exc-1", "amount_mismatch", "RG-1", "case-1", "momo", 1_500, "XOF",
                                  "fee taken by the bank", "alice", "bob", later)
    assert (t.entry.action, t.entry.from_state, t.entry.to_state) == (APPROVE, WRITE_OFF_REQUESTED, WRITTEN_OFF)


def test_a_write_off_is_of_the_amount_at_stake_unless_said_otherwise():
    t = do(exception("reversed"), REQUEST_WRITE_OFF, "alice", "written off")
    assert t.state.request.amount_minor == 50_000


def test_a_repay_approved_by_another_decides_it():
    t = do(exception("payment_outcome_unresolved"), REQUEST_REPAY, "alice", "the provider lost it")
    assert t.state.state == REPAY_REQUESTED and t.state.request.kind == REPAY
    t = do(t.state, APPROVE, "bob", "ok")
    assert t.state.state == REPAY_APPROVED and t.entry.reason == "ok"
    assert (t.decision.kind, t.decision.requested_by, t.decision.approved_by, t.decision.amount_minor) == (
        REPAY, "alice", "bob", 50_000)


def test_reject_and_withdraw_go_back_to_investigating():
    t = do(requested(WRITE_OFF, "alice"), REJECT, "bob", "find the money first")
    assert t.state.state == INVESTIGATING and t.state.request is None and t.entry.request_kind == WRITE_OFF
    t = do(requested(REPAY, "alice"), WITHDRAW, "ALICE", None)
    assert t.state.state == INVESTIGATING and t.entry.request_kind == REPAY


def test_the_system_resolves_automatically_even_while_a_request_waits():
    t = do(requested(REPAY, "alice"), AUTO_RESOLVE, SYSTEM, "a late statement line matched")
    assert t.state.state == RESOLVED and t.state.request is None and t.entry.request_kind == REPAY
    assert t.decision is None


def test_comments_anywhere_including_final_states_change_nothing():
    for state in (exception(), requested(), do(exception(), RESOLVE, "alice").state):
        t = do(state, COMMENT, "carol", "called the provider")
        assert t.state == state and (t.entry.from_state, t.entry.to_state) == (state.state, state.state)


# --------------------------------------------------------------------------- four eyes


@pytest.mark.parametrize("approver", ["alice", "Alice", " ALICE ", "ａｌｉｃｅ"])  # fullwidth: NFKC makes it alice
def test_the_requester_can_never_approve(approver):
    with pytest.raises(FourEyesError) as error:
        do(requested(WRITE_OFF, "alice"), APPROVE, approver)
    assert error.value.code == "four_eyes"


def test_the_requester_withdraws_and_does_not_reject_and_only_the_requester_withdraws():
    with pytest.raises(WorkflowError) as error:
        do(requested(by="alice"), REJECT, "alice", "changed my mind")
    assert error.value.code == "own_request"
    with pytest.raises(WorkflowError) as error:
        do(requested(by="alice"), WITHDRAW, "bob")
    assert error.value.code == "not_requester"


def test_the_system_decides_nothing_and_people_do_not_auto_resolve():
    for name in (APPROVE, REJECT, INVESTIGATE, RESOLVE):
        with pytest.raises(WorkflowError) as error:
            do(requested(), name, "System")
        assert error.value.code in ("not_allowed_for_actor",)
    with pytest.raises(WorkflowError) as error:
        do(exception(), AUTO_RESOLVE, "alice")
    assert error.value.code == "system_only"


def test_same_person_compares_as_the_auth_principal_does():
    assert same_person("Ｂob ", "bob") and not same_person("bob", "rob") and same_person(None, "")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("final", [RESOLVED, WRITTEN_OFF, REPAY_APPROVED])
def test_final_states_accept_only_comments(final):
    exc = exception(state=final)
    for name in ACTIONS:
        if name == COMMENT:
            continue
        actor = SYSTEM if name == AUTO_RESOLVE else "alice"
        with pytest.raises(WorkflowError) as error:
            do(exc, name, actor)
        assert error.value.code == "invalid_transition", name
    assert allowed_actions(exc, "alice") == [COMMENT] and allowed_actions(exc, SYSTEM) == [COMMENT]


@pytest.mark.parametrize("name", [RESOLVE, REQUEST_WRITE_OFF, REQUEST_REPAY, REJECT, AUTO_RESOLVE])
def test_a_reason_is_required(name):
    exc = requested() if name == REJECT else exception()
    actor = SYSTEM if name == AUTO_RESOLVE else "bob"
    for blank in (None, "", "   "):
        with pytest.raises(WorkflowError) as error:
            do(exc, name, actor, blank)
        assert error.value.code == "reason_required"


def test_a_comment_needs_a_note_and_texts_have_a_limit():
    with pytest.raises(WorkflowError) as error:
        do(exception(), COMMENT, "bob", " ")
    assert error.value.code == "note_required"
    with pytest.raises(WorkflowError) as error:
        do(exception(), RESOLVE, "bob", "x" * 2001)
    assert error.value.code == "text_too_long"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_which_kinds_allow_a_write_off_or_a_repay(kind):
    actions = allowed_actions(exception(kind), "alice")
    assert (REQUEST_WRITE_OFF in actions) == (kind in WRITE_OFF_KINDS)
    assert (REQUEST_REPAY in actions) == (kind in REPAY_KINDS)
    assert RESOLVE in actions and INVESTIGATE in actions
    for name, allowed in ((REQUEST_WRITE_OFF, WRITE_OFF_KINDS), (REQUEST_REPAY, REPAY_KINDS)):
        if kind not in allowed:
            with pytest.raises(WorkflowError) as error:
                do(exception(kind), name, "alice")
            assert error.value.code == "not_allowed_for_kind"


def test_the_kind_rules_as_finance_wants_them():
    assert REPAY_KINDS == {"missing_in_statement", "reversed", "payment_outcome_unresolved"}
    for resolve_only in ("invoice_mismatch", "unknown_reference", "status_after_final", "something_new"):
        assert resolve_only not in WRITE_OFF_KINDS | REPAY_KINDS
    assert "second_transfer" in WRITE_OFF_KINDS and "second_transfer" not in REPAY_KINDS


def test_one_request_at_a_time_and_nothing_else_while_it_waits():
    exc = requested(WRITE_OFF)
    for name in (REQUEST_WRITE_OFF, REQUEST_REPAY, RESOLVE, INVESTIGATE):
        with pytest.raises(WorkflowError) as error:
            do(exc, name, "bob")
        assert error.value.code == "invalid_transition"


def test_approve_reject_withdraw_need_a_waiting_request():
    for name in (APPROVE, REJECT, WITHDRAW):
        with pytest.raises(WorkflowError, match="no request waits"):
            do(exception(), name, "bob")


def test_investigate_only_when_open():
    with pytest.raises(WorkflowError, match="not open"):
        do(exception(state=INVESTIGATING), INVESTIGATE, "bob")


@pytest.mark.parametrize(("amount", "code"), [(0, "invalid_amount"), (-5, "invalid_amount"), (True, "invalid_amount"),
                                              (50_001, "exceeds_amount")])
def test_a_write_off_amount_is_more_than_zero_and_at_most_what_is_at_stake(amount, code):
    with pytest.raises(WorkflowError) as error:
        do(exception("duplicate_in_statement"), REQUEST_WRITE_OFF, "alice", "dup", amount)
    assert error.value.code == code


def test_a_write_off_needs_an_amount_and_a_currency_and_a_repay_takes_none():
    with pytest.raises(WorkflowError) as error:
        do(exception("duplicate_in_statement", amount_minor=None), REQUEST_WRITE_OFF, "alice", "dup")
    assert error.value.code == "amount_required"
    with pytest.raises(WorkflowError) as error:
        do(exception("duplicate_in_statement", currency=None), REQUEST_WRITE_OFF, "alice", "dup", 10)
    assert error.value.code == "amount_required"
    assert do(exception("duplicate_in_statement", amount_minor=None), REQUEST_WRITE_OFF, "a", "d", 7).state.request \
        .amount_minor == 7
    with pytest.raises(WorkflowError) as error:
        do(exception(), REQUEST_REPAY, "alice", "again", 10)
    assert error.value.code == "amount_not_allowed"


def test_unknown_actions_actors_and_naive_times_are_refused():
    with pytest.raises(WorkflowError) as error:
        do(exception(), "delete", "bob")
    assert error.value.code == "unknown_action"
    with pytest.raises(WorkflowError) as error:
        do(exception(), RESOLVE, "  ")
    assert error.value.code == "actor_required"
    with pytest.raises(ValueError, match="timezone"):
        do(exception(), RESOLVE, "bob", at=datetime(2024, 4, 2))


def test_a_state_and_its_request_agree():
    with pytest.raises(ValueError):
        ExceptionState("e", "reversed", WRITE_OFF_REQUESTED)
    with pytest.raises(ValueError):
        ExceptionState("e", "reversed", OPEN, request=Request(REPAY, "a", AT, "r", None))
    with pytest.raises(ValueError):
        ExceptionState("e", "reversed", "lost")


# --------------------------------------------------------------------------- what the UI shows


def test_allowed_actions_per_person():
    exc = requested(WRITE_OFF, "alice")
    assert allowed_actions(exc, "alice") == [WITHDRAW, COMMENT]  # never "approve" on one's own request
    assert allowed_actions(exc, "bob") == [APPROVE, REJECT, COMMENT]
    assert allowed_actions(exc, SYSTEM) == [COMMENT, AUTO_RESOLVE]
    assert allowed_actions(exception("invoice_mismatch"), "bob") == [INVESTIGATE, RESOLVE, COMMENT]
    assert allowed_actions(exception(), "bob") == [INVESTIGATE, RESOLVE, REQUEST_WRITE_OFF, REQUEST_REPAY, COMMENT]
    assert allowed_actions(exception(state=INVESTIGATING), "bob") == [RESOLVE, REQUEST_WRITE_OFF, REQUEST_REPAY,
                                                                      COMMENT]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_KINDS), st.sampled_from(["alice", "bob", SYSTEM]), st.lists(st.sampled_from(ACTIONS)))
def test_allowed_actions_are_exactly_the_actions_apply_accepts(kind, actor, path):
    exc = exception(kind)
    for name in path:
        allowed = allowed_actions(exc, actor)
        try:
            t = do(exc, name, actor, "a reason", None)
        except WorkflowError:
            assert name not in allowed
            continue
        assert name in allowed
        exc = t.state


# --------------------------------------------------------------------------- properties

PEOPLE = ["alice", "Alice", " ALICE", "ａｌｉｃｅ", "bob", SYSTEM]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_KINDS), st.sampled_from(["alice", "bob"]),
       st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(["why", None]),
                          st.sampled_from([None, 1, 50_000])), max_size=12))
def test_no_sequence_of_actions_by_one_person_reaches_an_approved_state(kind, person, steps):
    # One person under any spelling of their name, with the system's automatic help.
    spellings = [person, person.upper(), f" {person.title()} ", SYSTEM]
    exc = exception(kind)
    history = []
    for i, (name, reason, amount) in enumerate(steps):
        actor = spellings[i % len(spellings)]
        try:
            t = do(exc, name, actor, reason, amount, at=AT + timedelta(minutes=i))
        except WorkflowError:
            continue
        assert t.decision is None
        assert t.state.state not in (WRITTEN_OFF, REPAY_APPROVED)
        assert t.entry.from_state == exc.state and t.entry.to_state == t.state.state
        history.append(t.entry)
        exc = t.state


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL_KINDS), st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(PEOPLE)), max_size=14))
def test_every_decision_has_two_different_people_and_final_states_stay_final(kind, steps):
    exc = exception(kind)
    for i, (name, actor) in enumerate(steps):
        before = exc
        try:
            t = do(exc, name, actor, "why", None, at=AT + timedelta(minutes=i))
        except WorkflowError:
            continue
        exc = t.state
        if before.state in FINAL_STATES:
            assert exc == before and t.entry.action == COMMENT
        if t.decision is not None:
            assert not same_person(t.decision.requested_by, t.decision.approved_by)
            assert not same_person(t.decision.approved_by, SYSTEM)
            assert exc.state in (WRITTEN_OFF, REPAY_APPROVED)
            assert (t.decision.kind == REPAY) == (exc.kind in REPAY_KINDS and exc.state == REPAY_APPROVED)
