"""Matching statement lines with expected payments: every edge case a finance person meets, and
properties (every line and payment lands in exactly one result; the same input, in any order, gives
the same outcome)."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from finance.domain.matching import (
    AMOUNT_MISMATCH,
    DUPLICATE_IN_STATEMENT,
    EXCEPTION_KINDS,
    IN_FLIGHT,
    KINDS,
    MATCHED,
    MISSING_IN_STATEMENT,
    OTHER_CREDIT,
    PAYMENT_KINDS,
    REVERSED,
    SEEN_IN_OTHER_STATEMENT,
    UNEXPECTED_IN_STATEMENT,
    ExpectedPayment,
    ImportedLine,
    PriorRuns,
    is_exception,
    match,
)
from finance.domain.statements import StatementLine
from hypothesis import given, settings
from hypothesis import strategies as st

PROVIDER = "momo"
AS_OF = date(2024, 3, 31)
SENT = date(2024, 3, 1)


def payment(reference: str, amount: int = 50_000, *, currency: str = "XOF", sent_on: date = SENT,
            settled_on: date | None = SENT, modality: str = "cash", case_id: str | None = "case-1") -> ExpectedPayment:
    return ExpectedPayment(reference, PROVIDER, case_id, amount, currency, sent_on, settled_on, modality)


def line(line_id: str, reference: str | None, amount: int = 50_000, *, statement: str = "st-1", currency: str = "XOF",
         direction: str = "debit", reversal: bool = False, provider_ref: str | None = None,
         day: date = date(2024, 3, 2)) -> ImportedLine:
    return ImportedLine(line_id, statement, StatementLine(
        location=f"{statement}:{line_id}", booking_date=day, value_date=None,
        provider_ref=provider_ref if provider_ref is not None else f"tx-{line_id}", reference=reference,
        amount_minor=amount, currency=currency, direction=direction, reversal=reversal, counterparty=None,
        status="booked"))


def run(expected, lines, *, prior: PriorRuns | None = None, as_of: date = AS_OF, days: int = 7):
    return match(PROVIDER, expected, lines, as_of=as_of, missing_after_days=days, prior=prior)


def kinds(outcome) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(r.kind, r.reference, r.line_ids) for r in outcome.results]


# --------------------------------------------------------------------------- one payment, one line


def test_a_debit_with_our_reference_and_amount_matches():
    outcome = run([payment("RG-1", modality="in_kind")], [line("l1", "RG-1")])
    (result,) = outcome.results
    assert (result.kind, result.reference, result.line_ids, result.statement_ids) == (MATCHED, "RG-1", ("l1",), ("st-1",))
    assert (result.expected_minor, result.found_minor, result.currency) == (50_000, 50_000, "XOF")
    assert (result.provider, result.case_id, result.modality) == (PROVIDER, "case-1", "in_kind")
    assert result.key == "matched:RG-1" and not result.is_exception and not result.resolves
    assert outcome.counts[MATCHED] == 1 and sum(outcome.counts.values()) == 1
    assert list(outcome.counts) == list(KINDS) and outcome.exceptions == ()


def test_another_amount_is_a_mismatch_saying_expected_and_found():
    (result,) = run([payment("RG-1", 50_000)], [line("l1", "RG-1", 49_000)]).results
    assert result.kind == AMOUNT_MISMATCH and result.is_exception and result.key == "amount_mismatch:RG-1"
    assert result.details["expected"] == {"amount_minor": 50_000, "currency": "XOF"}
    assert result.details["found"] == {"amount_minor": 49_000, "currency": "XOF"}
    assert result.details["difference_minor"] == -1_000


def test_another_currency_is_a_mismatch_even_for_the_same_amount():
    (result,) = run([payment("RG-1", 50_000)], [line("l1", "RG-1", 50_000, currency="EUR")]).results
    assert result.kind == AMOUNT_MISMATCH
    assert result.details["found"]["currency"] == "EUR" and result.details["difference_minor"] is None


def test_currency_and_reference_compare_ignoring_case_and_spaces():
    outcome = run([payment("RG-abc", currency="xof ")], [line("l1", "  RG-ABC ")])
    assert kinds(outcome) == [(MATCHED, "RG-abc", ("l1",))]
    assert outcome.results[0].currency == "XOF"


@pytest.mark.parametrize(("sent_on", "kind"), [
    (AS_OF - timedelta(days=7), IN_FLIGHT),  # exactly the allowance: not late yet
    (AS_OF - timedelta(days=8), MISSING_IN_STATEMENT),
    (AS_OF, IN_FLIGHT),
    (AS_OF + timedelta(days=1), IN_FLIGHT),  # sent after the statements end
])
def test_a_payment_on_no_line_is_missing_only_after_the_allowance(sent_on, kind):
    (result,) = run([payment("RG-1", sent_on=sent_on, settled_on=None)], []).results
    assert result.kind == kind and result.line_ids == () and result.found_minor is None
    assert result.details["days_since_sent"] == (AS_OF - sent_on).days
    assert result.details["settled_on"] is None and result.is_exception == (kind == MISSING_IN_STATEMENT)


def test_a_debit_naming_none_of_ours_or_nothing_is_unexpected():
    outcome = run([], [line("l1", "RG-other"), line("l2", None), line("l3", "   ")])
    assert kinds(outcome) == [(UNEXPECTED_IN_STATEMENT, None, ("l2",)), (UNEXPECTED_IN_STATEMENT, None, ("l3",)),
                              (UNEXPECTED_IN_STATEMENT, "RG-other", ("l1",))]
    assert [r.details["why"] for r in outcome.results] == [
        "a debit without a reference", "a debit without a reference", "a debit naming none of our payments"]
    assert outcome.results[2].key == "unexpected_in_statement:l1" and outcome.results[2].currency == "XOF"
    assert outcome.results[1].details["line_reference"] == "   "  # what the line said, kept in the details


def test_money_in_naming_none_of_ours_is_listed_but_no_exception():
    outcome = run([], [line("l1", None, direction="credit"), line("l2", "FLOAT TOP-UP", direction="credit")])
    assert [r.kind for r in outcome.results] == [OTHER_CREDIT, OTHER_CREDIT] and outcome.exceptions == ()


def test_a_reversal_of_nothing_of_ours_is_unexpected():
    (result,) = run([], [line("l1", "RG-x", direction="credit", reversal=True)]).results
    assert result.kind == UNEXPECTED_IN_STATEMENT and result.details["why"] == "a reversal of no payment of ours"


# --------------------------------------------------------------------------- several lines for one reference


def test_a_second_transfer_for_a_paid_reference_is_a_duplicate():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("l2", "RG-1", day=date(2024, 3, 3))])
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l2",)), (MATCHED, "RG-1", ("l1",))]
    duplicate = outcome.results[0]
    assert duplicate.details["matched_line_id"] == "l1" and duplicate.key == "duplicate_in_statement:l2"
    assert duplicate.case_id == "case-1" and duplicate.expected_minor == 50_000 and duplicate.found_minor == 50_000


def test_of_two_amounts_the_exact_one_matches_and_the_other_is_a_duplicate():
    # The wrong amount comes first; the exact one still matches.
    outcome = run([payment("RG-1", 50_000)], [line("l1", "RG-1", 5_000), line("l2", "RG-1", 50_000, day=date(2024, 3, 9))])
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l1",)), (MATCHED, "RG-1", ("l2",))]
    assert outcome.results[0].found_minor == 5_000


def test_of_two_wrong_amounts_the_first_is_the_mismatch_and_the_second_a_duplicate():
    outcome = run([payment("RG-1", 50_000)], [line("l2", "RG-1", 6_000, day=date(2024, 3, 4)), line("l1", "RG-1", 5_000)])
    assert kinds(outcome) == [(AMOUNT_MISMATCH, "RG-1", ("l1",)), (DUPLICATE_IN_STATEMENT, "RG-1", ("l2",))]


def test_the_same_transfer_twice_in_one_file_is_a_duplicate():
    outcome = run([payment("RG-1")], [line("l1", "RG-1", provider_ref="tx-9"), line("l2", "RG-1", provider_ref="tx-9")])
    assert [r.kind for r in outcome.results] == [DUPLICATE_IN_STATEMENT, MATCHED]


def test_the_same_transfer_in_overlapping_statements_is_no_second_payment():
    outcome = run([payment("RG-1")], [line("l1", "RG-1", provider_ref="tx-9", statement="march"),
                                      line("l2", "RG-1", provider_ref="tx-9", statement="week-13")])
    assert kinds(outcome) == [(MATCHED, "RG-1", ("l1",)), (SEEN_IN_OTHER_STATEMENT, "RG-1", ("l2",))]
    assert outcome.results[1].details["same_as_line_id"] == "l1" and outcome.exceptions == ()


def test_the_same_provider_id_with_another_amount_in_another_file_is_a_duplicate():
    outcome = run([payment("RG-1")], [line("l1", "RG-1", provider_ref="tx-9", statement="a"),
                                      line("l2", "RG-1", 1, provider_ref="tx-9", statement="b")])
    assert [r.kind for r in outcome.results] == [DUPLICATE_IN_STATEMENT, MATCHED]


def test_a_duplicate_seen_again_in_another_file_is_one_duplicate():
    outcome = run([payment("RG-1")], [line("l1", "RG-1", statement="a", provider_ref="tx-1"),
                                      line("l2", "RG-1", statement="a", provider_ref="tx-2"),
                                      line("l3", "RG-1", statement="b", provider_ref="tx-2")])
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l2",)), (MATCHED, "RG-1", ("l1",)),
                              (SEEN_IN_OTHER_STATEMENT, "RG-1", ("l3",))]


# --------------------------------------------------------------------------- money back


def test_a_reversal_after_the_match_is_reversed_and_the_match_stands():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("l2", "RG-1", direction="credit", reversal=True,
                                                               day=date(2024, 3, 10))])
    assert kinds(outcome) == [(REVERSED, "RG-1", ("l2",)), (MATCHED, "RG-1", ("l1",))]
    reversed_ = outcome.results[0]
    assert reversed_.details["matched_line_id"] == "l1" and reversed_.details["partial"] is False
    assert reversed_.key == "reversed:l2" and reversed_.case_id == "case-1"


def test_a_plain_credit_naming_our_payment_is_money_back():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("l2", "rg-1", 20_000, direction="credit")])
    assert kinds(outcome)[0] == (REVERSED, "RG-1", ("l2",)) and outcome.results[0].details["partial"] is True


def test_a_reversal_flagged_on_a_debit_line_is_still_money_back():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("l2", "RG-1", reversal=True)])
    assert [r.kind for r in outcome.results] == [REVERSED, MATCHED]


def test_a_reversal_without_a_prior_debit_is_unexpected_and_the_payment_still_missing():
    outcome = run([payment("RG-1")], [line("l1", "RG-1", direction="credit", reversal=True)])
    assert kinds(outcome) == [(MISSING_IN_STATEMENT, "RG-1", ()), (UNEXPECTED_IN_STATEMENT, "RG-1", ("l1",))]
    assert outcome.results[1].details["why"] == "money back for a payment no statement line shows paid"


def test_one_reversal_in_two_overlapping_statements_is_reversed_once():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"),
                                      line("r1", "RG-1", direction="credit", provider_ref="rev-1", statement="a"),
                                      line("r2", "RG-1", direction="credit", provider_ref="rev-1", statement="b")])
    assert [r.kind for r in outcome.results] == [REVERSED, MATCHED, SEEN_IN_OTHER_STATEMENT]


# --------------------------------------------------------------------------- earlier runs


def test_what_an_earlier_run_matched_is_not_reported_again():
    prior = PriorRuns(reconciled={"RG-1": "l1"})
    outcome = run([payment("RG-1"), payment("RG-2")], [line("l1", "RG-1"), line("l2", "RG-2")], prior=prior)
    assert kinds(outcome) == [(MATCHED, "RG-2", ("l2",))]
    assert outcome.reconciled_before == ("RG-1",) and outcome.lines_reconciled_before == ("l1",)


def test_after_an_earlier_match_a_new_debit_is_a_duplicate_a_credit_a_reversal_a_repeat_nothing_new():
    prior = PriorRuns(reconciled={"RG-1": "l1"})
    lines = [line("l1", "RG-1", provider_ref="tx-1", statement="feb"),
             line("l2", "RG-1", provider_ref="tx-1", statement="march"),  # the same transfer, next file
             line("l3", "RG-1", provider_ref="tx-3", statement="march"),
             line("l4", "RG-1", direction="credit", statement="march")]
    outcome = run([payment("RG-1")], lines, prior=prior)
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l3",)), (REVERSED, "RG-1", ("l4",)),
                              (SEEN_IN_OTHER_STATEMENT, "RG-1", ("l2",))]
    assert all(r.details["matched_line_id"] == "l1" for r in outcome.results[:2])


def test_an_earlier_match_whose_line_is_not_given_still_makes_a_new_debit_a_duplicate():
    outcome = run([], [line("l9", "rg-1")], prior=PriorRuns(reconciled={"RG-1": "l1"}))
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l9",))]
    assert outcome.results[0].case_id is None and outcome.reconciled_before == ()


def test_a_blank_reference_in_the_earlier_matches_makes_no_line_ours():
    outcome = run([], [line("l1", None)], prior=PriorRuns(reconciled={" ": "l0"}))
    assert kinds(outcome) == [(UNEXPECTED_IN_STATEMENT, None, ("l1",))]


def test_a_hand_match_of_a_line_with_a_garbled_reference_stands():
    prior = PriorRuns(reconciled={"RG-1": "l1"})
    outcome = run([payment("RG-1")], [line("l1", "RG 1 garbled")], prior=prior)
    assert outcome.results == () and outcome.lines_reconciled_before == ("l1",)


def test_a_late_line_for_a_payment_reported_missing_matches_and_resolves_it():
    prior = PriorRuns(open_findings={"missing_in_statement:RG-1", "missing_in_statement:RG-2"})
    outcome = run([payment("RG-1"), payment("RG-2", sent_on=date(2024, 1, 1))], [line("l1", "RG-1")], prior=prior)
    assert kinds(outcome) == [(MISSING_IN_STATEMENT, "RG-2", ()), (MATCHED, "RG-1", ("l1",))]
    assert outcome.results[1].resolves == ("missing_in_statement:RG-1",)
    assert outcome.results[0].resolves == ()  # still missing: the same finding, not resolved
    assert outcome.resolving == (outcome.results[1],)


def test_a_late_line_with_another_amount_resolves_the_missing_and_raises_a_mismatch():
    prior = PriorRuns(open_findings={"missing_in_statement:RG-1"})
    (result,) = run([payment("RG-1")], [line("l1", "RG-1", 1)], prior=prior).results
    assert result.kind == AMOUNT_MISMATCH and result.resolves == ("missing_in_statement:RG-1",)


def test_a_line_unexpected_before_its_payment_was_known_matches_and_resolves_that():
    prior = PriorRuns(open_findings={"unexpected_in_statement:l1"})
    (result,) = run([payment("RG-1")], [line("l1", "RG-1")], prior=prior).results
    assert result.kind == MATCHED and result.resolves == ("unexpected_in_statement:l1",)


def test_an_exact_line_arriving_after_a_mismatch_matches_and_resolves_it():
    prior = PriorRuns(open_findings={"amount_mismatch:RG-1"})
    outcome = run([payment("RG-1")], [line("l1", "RG-1", 1), line("l2", "RG-1", day=date(2024, 3, 9))], prior=prior)
    assert kinds(outcome) == [(DUPLICATE_IN_STATEMENT, "RG-1", ("l1",)), (MATCHED, "RG-1", ("l2",))]
    assert outcome.results[1].resolves == ("amount_mismatch:RG-1",)


def test_a_reversal_unexpected_before_its_debit_arrived_is_now_reversed():
    prior = PriorRuns(open_findings={"unexpected_in_statement:r1"})
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("r1", "RG-1", direction="credit")], prior=prior)
    assert outcome.results[0].kind == REVERSED and outcome.results[0].resolves == ("unexpected_in_statement:r1",)


# --------------------------------------------------------------------------- inputs that contradict themselves


def test_inputs_that_contradict_themselves_are_refused():
    with pytest.raises(ValueError, match="goes through"):
        match(PROVIDER, [ExpectedPayment("RG-1", "bank", None, 1, "XOF", SENT, None, "cash")], [],
              as_of=AS_OF, missing_after_days=7)
    with pytest.raises(ValueError, match="two expected payments"):
        run([payment("RG-1"), payment("rg-1 ")], [])
    with pytest.raises(ValueError, match="two different lines"):
        run([], [line("l1", "RG-1"), line("l1", "RG-2")])
    with pytest.raises(ValueError, match="never negative"):
        run([], [], days=-1)
    with pytest.raises(ValueError, match="without a reference"):
        run([payment(" ")], [])


def test_the_same_line_given_twice_counts_once():
    outcome = run([payment("RG-1")], [line("l1", "RG-1"), line("l1", "RG-1")])
    assert kinds(outcome) == [(MATCHED, "RG-1", ("l1",))]


def test_exceptions_are_the_five_statement_kinds():
    assert [k for k in KINDS if is_exception(k)] == list(EXCEPTION_KINDS)
    assert not is_exception("in_flight") and not is_exception("whatever")


def test_results_list_exceptions_first_then_by_reference_then_line():
    outcome = run([payment("RG-10"), payment("RG-9", sent_on=date(2024, 1, 1)), payment("RG-2")],
                  [line("l1", "RG-10"), line("l2", "RG-2", 7), line("l3", None)])
    assert kinds(outcome) == [(AMOUNT_MISMATCH, "RG-2", ("l2",)), (MISSING_IN_STATEMENT, "RG-9", ()),
                              (UNEXPECTED_IN_STATEMENT, None, ("l3",)), (MATCHED, "RG-10", ("l1",))]


# --------------------------------------------------------------------------- properties

REFERENCES = ["RG-a", "RG-b", "RG-c", "RG-d"]
LINE_REFERENCES = [*REFERENCES, "rg-A", " RG-b ", "other", None]


@st.composite
def scenarios(draw):
    references = draw(st.lists(st.sampled_from(REFERENCES), unique=True))
    expected = [payment(r, draw(st.sampled_from([100, 200])), currency=draw(st.sampled_from(["XOF", "EUR"])),
                        sent_on=AS_OF - timedelta(days=draw(st.integers(0, 20)))) for r in references]
    count = draw(st.integers(0, 12))
    lines = [line(f"l{i}", draw(st.sampled_from(LINE_REFERENCES)), draw(st.sampled_from([100, 200])),
                  statement=draw(st.sampled_from(["s1", "s2"])), currency=draw(st.sampled_from(["XOF", "EUR"])),
                  direction=draw(st.sampled_from(["debit", "debit", "credit"])), reversal=draw(st.booleans()),
                  provider_ref=draw(st.sampled_from(["tx-1", "tx-2", "tx-3"])),
                  day=date(2024, 3, 1) + timedelta(days=draw(st.integers(0, 3))))
             for i in range(count)]
    line_ids = [f"l{i}" for i in range(count)] + ["gone"]
    reconciled = draw(st.dictionaries(st.sampled_from(REFERENCES), st.sampled_from(line_ids), max_size=2))
    findings = draw(st.sets(st.sampled_from([f"{k}:{s}" for k in EXCEPTION_KINDS for s in REFERENCES + line_ids])))
    return expected, lines, PriorRuns(reconciled=reconciled, open_findings=frozenset(findings))


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_every_line_and_every_payment_lands_in_exactly_one_result(scenario):
    expected, lines, prior = scenario
    outcome = run(expected, lines, prior=prior)
    reported = [line_id for r in outcome.results for line_id in r.line_ids]
    assert sorted(reported + list(outcome.lines_reconciled_before)) == sorted(item.line_id for item in lines)
    for p in expected:
        about_it = [r for r in outcome.results if r.kind in PAYMENT_KINDS and r.reference == p.reference]
        assert len(about_it) + (p.reference in outcome.reconciled_before) == 1
    assert sum(outcome.counts.values()) == len(outcome.results)
    assert len({r.key for r in outcome.results}) == len(outcome.results)
    for r in outcome.results:
        if r.kind == MATCHED:
            assert (r.expected_minor, r.currency) == (r.found_minor, r.details["found"]["currency"])
        assert set(r.resolves) <= set(prior.open_findings) and r.key not in r.resolves


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_the_same_input_in_any_order_gives_the_same_outcome(scenario, rnd: random.Random):
    expected, lines, prior = scenario
    first = run(expected, lines, prior=prior)
    assert run(expected, lines, prior=prior) == first
    shuffled_expected, shuffled_lines = list(expected), list(lines)
    rnd.shuffle(shuffled_expected)
    rnd.shuffle(shuffled_lines)
    assert run(shuffled_expected, shuffled_lines, prior=prior) == first


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_what_a_run_matched_is_not_reported_by_the_next(scenario):
    expected, lines, prior = scenario
    first = run(expected, lines)
    matched = {r.reference: r.line_ids[0] for r in first.results if r.kind == MATCHED}
    second = run(expected, lines, prior=PriorRuns(reconciled=matched))
    assert not {r.reference for r in second.results if r.kind in PAYMENT_KINDS} & set(matched)
    assert set(second.lines_reconciled_before) == set(matched.values())
    # Nothing else changes: the other findings are the same.
    assert [r for r in second.results] == [r for r in first.results if r.kind != MATCHED or r.reference not in matched]
