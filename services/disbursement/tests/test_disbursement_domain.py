"""Disbursement's pure domain: splitting amounts into tranches and one case's grant lifecycle."""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction

import pytest
from disbursement.domain.case import (
    CASE_REJECTED,
    GRANT_COMPLETED,
    INKIND_DELIVERED,
    INKIND_ORDERED,
    PAYMENT_FAILED,
    PAYMENT_SENT,
    PAYMENT_SETTLED,
    TRANCHE_CANCELLED,
    TRANCHE_RELEASED,
    CaseLedger,
)
from disbursement.domain.tranche import ANY_PLAN, Facts, payment_reference, tranches_of_plan
from disbursement.publishing import drain
from hypothesis import given, settings
from hypothesis import strategies as st
from reintegra import jsonfast
from reintegra.contract.reasons import CASE_STATE_CODES
from reintegra.money import Money, split_minor
from reintegra.topics import CASE_STATUS

# --------------------------------------------------------------------------------------------
# split_minor
# --------------------------------------------------------------------------------------------


def test_sixty_forty_of_1200_eur_is_720_and_480():
    total = Money.parse("1200.00", "EUR")
    parts = split_minor(total.minor, [60, 40])
    assert [str(Money(p, "EUR")) for p in parts] == ["720.00 EUR", "480.00 EUR"]


def test_xof_has_no_minor_units_and_the_odd_unit_goes_to_the_largest_remainder():
    # 100001 × 33% = 33000.33, × 33% = 33000.33, × 34% = 34000.34: floors sum to 100000 and the
    # one unit left over goes to the tranche with the largest remainder (the 34 % one).
    total = Money.parse("100001", "XOF")
    assert total.minor == 100001
    assert split_minor(total.minor, [33, 33, 34]) == [33000, 33000, 34001]


@pytest.mark.parametrize(
    ("total", "shares", "expected"),
    [
        (1, [50, 50], [1, 0]),  # 0.5 / 0.5: tie, the earlier tranche gets the unit
        (3, [25, 25, 25, 25], [1, 1, 1, 0]),  # 0.75 each: three units to the first three
        (5, [10, 10, 80], [1, 0, 4]),  # 0.5 / 0.5 / 4.0
        # 10 × 33.33 % = 3.333 (twice), 10 × 33.34 % = 3.334: one unit left, largest remainder .334
        (10, ["33.33", "33.33", "33.34"], [3, 3, 4]),
    ],
)
def test_small_totals_and_ties(total, shares, expected):
    assert split_minor(total, shares) == expected
    assert sum(split_minor(total, shares)) == total


@pytest.mark.parametrize("total", [0, 1, 2, 7, 99, 100, 101, 999_999, 120_000, 1_300_000, 18_000_000, 10**15 + 3])
@pytest.mark.parametrize(
    "shares",
    [[100], [60, 40], [50, 50], [33, 33, 34], ["33.33", "33.33", "33.34"], [10] * 10, ["0.5", "99.5"],
     ["12.5", "12.5", "75"], [1] * 100],
)
def test_parts_always_sum_to_the_total(total, shares):
    parts = split_minor(total, shares)
    assert len(parts) == len(shares)
    assert sum(parts) == total
    assert all(p >= 0 for p in parts)


@pytest.mark.parametrize("shares", [[60, 30], [60, 41], [], ["33.3", "33.3", "33.3"]])
def test_shares_not_summing_to_100_are_refused(shares):
    with pytest.raises(ValueError):
        split_minor(1000, shares)


@st.composite
def shares_summing_to_100(draw):
    """1..12 positive shares in hundredths of a percent that sum to exactly 100."""
    n = draw(st.integers(min_value=1, max_value=12))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=9999), min_size=n - 1, max_size=n - 1,
                                unique=True)))
    bounds = [0, *cuts, 10000]
    hundredths = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    as_text = draw(st.booleans())
    return [str(Decimal(h) / 100) if as_text else Decimal(h) / 100 for h in hundredths]


@settings(max_examples=300, deadline=None)
@given(total=st.integers(min_value=0, max_value=10**12), shares=shares_summing_to_100())
def test_split_is_a_largest_remainder_apportionment(total, shares):
    parts = split_minor(total, shares)
    exact = [Fraction(total) * Fraction(str(s)) / 100 for s in shares]
    # Exact sum, and every part is the exact share rounded down or up by less than one unit.
    assert sum(parts) == total
    for part, e in zip(parts, exact, strict=False):
        assert part - 1 < e <= part + 1 and part >= 0
        assert part in (int(e), int(e) + 1)
    # Largest remainder: a part rounded up never has a smaller remainder than a part rounded down,
    # and on a tie the earlier tranche is the one rounded up.
    up = [i for i, (p, e) in enumerate(zip(parts, exact, strict=False)) if p > e]
    down = [i for i, (p, e) in enumerate(zip(parts, exact, strict=False)) if p <= e and e != p]
    for i in up:
        for j in down:
            ri, rj = exact[i] - int(exact[i]), exact[j] - int(exact[j])
            assert ri > rj or (ri == rj and i < j)


def test_largest_remainder_holds_for_long_amounts_and_precise_shares():
    total = 10**18 + 7
    shares = ["33.333333333333", "33.333333333333", "33.333333333334"]
    # Exact: 333333333333330002.33333333333331 (twice) and 333333333333340002.33333333333338;
    # one unit is left over and the third tranche has the largest remainder.
    assert split_minor(total, shares) == [333333333333330002, 333333333333330002, 333333333333340003]


# --------------------------------------------------------------------------------------------
# CaseLedger
# --------------------------------------------------------------------------------------------

CASE = "MA-2026-000123"
PLAN = "PL-5531"
PAYOUT = {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"}
NEW_PAYOUT = {"method": "mobile_money", "provider": "mtn_momo_ci", "msisdn": "+2250709998877"}
CONTACT = {"phone": "+2250701020304", "preferred_language": "fr"}
MILESTONE = "business_established"


def contract_plan(plan_id: str = PLAN, *, cash: str = "300.00", inkind: str = "1200.00", currency: str = "EUR",
                  payout: dict | None = None) -> dict:
    """The contract page's example plan: c1 cash on approval; c2 in kind, 60 % on approval, 40 % at a milestone."""
    return {
        "case_id": CASE, "plan_id": plan_id, "approved_by": "caseworker:k.benali",
        "approved_at": "2026-10-20T09:30:00Z", "payout": payout or dict(PAYOUT),
        "components": [
            {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
             "amount": {"amount": cash, "currency": currency},
             "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]},
            {"component_id": "c2", "modality": "in_kind", "category": "business_startup",
             "amount": {"amount": inkind, "currency": currency}, "vendor_id": "V-ABJ-017",
             "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                          {"seq": 2, "share_percent": 40, "release": f"milestone:{MILESTONE}"}]},
        ],
    }


def cash_plan(plan_id: str = PLAN, *, amount: str = "250000", currency: str = "XOF",
              tranches: list[dict] | None = None) -> dict:
    return {
        "case_id": CASE, "plan_id": plan_id, "payout": dict(PAYOUT),
        "components": [{"component_id": "c1", "modality": "cash", "category": "immediate_needs",
                        "amount": {"amount": amount, "currency": currency},
                        "tranches": tranches or [{"seq": 1, "share_percent": 100, "release": "on_approval"}]}],
    }


def grant(plan: dict, contact: dict | None = None) -> dict:
    return {"case_id": CASE, "program_code": "MA-AVRR-2026", "plan": plan, "contact": contact or dict(CONTACT)}


def new_ledger() -> CaseLedger:
    return CaseLedger(case_id=CASE, facts=Facts(), tranches={})


def emitted(ledger: CaseLedger) -> list[tuple[str, str, int | None]]:
    """(status type, component_id, seq) of what the ledger emitted, then forget it (like publishing does)."""
    out = [(t, d.get("component_id"), d.get("tranche_seq")) for t, d, _ in ledger.statuses]
    ledger.statuses.clear()
    return out


def tranche_key(component_id: str, seq: int, plan_id: str = PLAN) -> tuple[str, str, int]:
    return plan_id, component_id, seq


def statuses_of(ledger: CaseLedger, plan_id: str = PLAN) -> dict[tuple[str, int], str]:
    """(component_id, seq) → status of the tranches of one plan."""
    return {(t.component_id, t.seq): t.status for t in ledger.tranches.values() if t.plan_id == plan_id}


def settle(ledger: CaseLedger, key: tuple[str, str, int], transfer_id: str = "T-1") -> None:
    ledger.payment_sent(key, transfer_id)
    ledger.payment_settled(key)


def test_approve_releases_on_approval_tranches_and_orders_in_kind_ones():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))

    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "ordered", ("c2", 2): "planned"}
    assert emitted(ledger) == [
        (TRANCHE_RELEASED, "c1", 1),
        (TRANCHE_RELEASED, "c2", 1),
        (INKIND_ORDERED, "c2", 1),
    ]
    amounts = {(t.component_id, t.seq): t.money() for t in ledger.tranches.values()}
    assert amounts == {("c1", 1): Money(30000, "EUR"), ("c2", 1): Money(72000, "EUR"), ("c2", 2): Money(48000, "EUR")}
    assert ledger.facts.grant["payout"] == PAYOUT
    assert ledger.facts.grant["plan_id"] == PLAN
    assert ledger.notices == []


def test_milestone_tranche_waits_for_its_milestone():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": "some_other_milestone"})
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    assert emitted(ledger) == [(CASE_REJECTED, None, None)]  # unknown_milestone, see the refusal table

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert ledger.tranches[tranche_key("c2", 2)].status == "ordered"
    assert emitted(ledger) == [(TRANCHE_RELEASED, "c2", 2), (INKIND_ORDERED, "c2", 2)]

    # The same milestone verified again changes nothing.
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert emitted(ledger) == []


def test_milestone_verified_before_the_grant_releases_at_approval():
    ledger = new_ledger()
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert ledger.tranches == {}
    assert emitted(ledger) == []

    ledger.approve(grant(contract_plan()))
    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "ordered", ("c2", 2): "ordered"}


def test_delivery_confirmed_for_an_ordered_tranche_marks_it_delivered():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)

    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 1,
                             "vendor_id": "V-ABJ-017", "delivered_at": "2026-11-02T11:00:00Z",
                             "invoice": {"number": "INV-1", "amount": {"amount": "720.00", "currency": "EUR"}}})
    assert ledger.tranches[tranche_key("c2", 1)].status == "delivered"
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    assert emitted(ledger) == [(INKIND_DELIVERED, "c2", 1)]


def test_delivery_confirmed_before_the_order_is_applied_once_ordered():
    ledger = new_ledger()
    # Proof of delivery for the milestone tranche arrives first (before the grant, even).
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 2})
    ledger.approve(grant(contract_plan()))
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    emitted(ledger)

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert ledger.tranches[tranche_key("c2", 2)].status == "delivered"
    assert emitted(ledger) == [(TRANCHE_RELEASED, "c2", 2), (INKIND_ORDERED, "c2", 2), (INKIND_DELIVERED, "c2", 2)]


def test_tranche_seq_as_string_in_delivery_still_matches():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": "1"})
    assert ledger.tranches[tranche_key("c2", 1)].status == "delivered"


def test_withdraw_cancels_what_is_not_sent_and_keeps_what_is():
    ledger = new_ledger()
    plan = contract_plan()
    plan["components"].append({
        "component_id": "c3", "modality": "cash", "category": "housing",
        "amount": {"amount": "100.00", "currency": "EUR"},
        "tranches": [{"seq": 1, "share_percent": 50, "release": "on_approval"},
                     {"seq": 2, "share_percent": 50, "release": "on_approval"}]})
    ledger.approve(grant(plan))
    ledger.payment_sent(tranche_key("c1", 1), "T-c1")  # sent, not yet settled
    settle(ledger, tranche_key("c3", 1), "T-c3")  # settled
    ledger.tranches[tranche_key("c3", 2)].status = "sending"  # being sent by the dispatcher right now
    emitted(ledger)
    before = statuses_of(ledger)
    assert before == {("c1", 1): "sent", ("c2", 1): "ordered", ("c2", 2): "planned",
                      ("c3", 1): "settled", ("c3", 2): "sending"}

    ledger.withdraw({"case_id": CASE, "reason": "beneficiary_request", "withdrawn_at": "2026-11-10T08:00:00Z"})
    assert statuses_of(ledger) == {("c1", 1): "sent", ("c2", 1): "cancelled", ("c2", 2): "cancelled",
                                   ("c3", 1): "settled", ("c3", 2): "sending"}
    cancelled = [(t, d) for t, d, _ in ledger.statuses]
    assert [(t, d["component_id"], d["tranche_seq"]) for t, d in cancelled] == [
        (TRANCHE_CANCELLED, "c2", 1), (TRANCHE_CANCELLED, "c2", 2)]
    assert all(d["reason"] == "beneficiary_request" and d["status"] == "tranche_cancelled" for _, d in cancelled)
    ledger.statuses.clear()

    # Money already sent stays sent: its settlement is still recorded.
    ledger.payment_settled(tranche_key("c1", 1))
    assert ledger.tranches[tranche_key("c1", 1)].status == "settled"
    # A second withdrawal, a late approval, a late milestone change nothing (the milestone is answered).
    ledger.withdraw({"case_id": CASE})
    ledger.approve(grant(contract_plan("PL-LATE")))
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert [t for t, _, _ in ledger.statuses] == [PAYMENT_SETTLED, CASE_REJECTED]
    assert ledger.statuses[1][1]["reasons"][0]["code"] == "case_withdrawn"
    assert ledger.tranches[tranche_key("c2", 2)].status == "cancelled"


def test_withdraw_without_a_reason_uses_case_withdrawn():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    emitted(ledger)
    ledger.withdraw({"case_id": CASE})
    assert ledger.statuses[0][1]["reason"] == "case_withdrawn"


def test_withdraw_before_the_grant_blocks_a_later_approval():
    ledger = new_ledger()
    ledger.withdraw({"case_id": CASE, "reason": "beneficiary_request"})
    ledger.approve(grant(contract_plan()))
    assert ledger.tranches == {}
    assert ledger.statuses == []


def test_payment_settled_sends_a_notice_in_the_contacts_language():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan(), contact={"phone": "+2250701020304", "preferred_language": "ar"}))
    settle(ledger, tranche_key("c1", 1))

    assert len(ledger.notices) == 1
    notice = ledger.notices[0]
    reference = ledger.tranches[tranche_key("c1", 1)].reference
    assert notice == {
        "kind": "payment_settled", "case_id": CASE, "phone": "+2250701020304", "language": "ar",
        "params": {"amount": {"amount": "300.00", "currency": "EUR"}, "reference": reference,
                   "component_id": "c1", "tranche_seq": 1},
    }
    # Settled again (a replayed settlement): no second notice.
    ledger.payment_settled(tranche_key("c1", 1))
    assert len(ledger.notices) == 1


def test_payment_settled_uses_the_contact_from_a_later_beneficiary_update():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_PAYOUT,
                               "contact": {"phone": "+2250709998877", "preferred_language": "en"}})
    assert ledger.facts.grant["payout"] == NEW_PAYOUT
    settle(ledger, tranche_key("c1", 1))
    assert (ledger.notices[0]["phone"], ledger.notices[0]["language"]) == ("+2250709998877", "en")


def test_grant_completed_exactly_once_when_every_tranche_is_settled_or_delivered():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 1})
    settle(ledger, tranche_key("c1", 1))
    assert GRANT_COMPLETED not in [t for t, _, _ in ledger.statuses]  # c2/2 still waits for its milestone
    assert not ledger.facts.completed

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 2})
    completed = [(t, d) for t, d, _ in ledger.statuses if t == GRANT_COMPLETED]
    assert len(completed) == 1
    data = completed[0][1]
    assert data["case_id"] == CASE and data["status"] == "grant_completed" and data["plan_id"] == PLAN
    assert data["paid"] == [{"currency": "EUR", "amount_minor": 150000}]  # 300 + 720 + 480
    assert ledger.facts.completed

    # Anything arriving later does not complete the grant again.
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 2})
    ledger.payment_settled(tranche_key("c1", 1))
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert [t for t, _, _ in ledger.statuses].count(GRANT_COMPLETED) == 1


def test_payment_failed_marks_the_tranche_failed_with_its_reason():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    ledger.payment_sent(tranche_key("c1", 1), "T-9")
    emitted(ledger)

    ledger.payment_failed(tranche_key("c1", 1), "account_closed")
    tranche = ledger.tranches[tranche_key("c1", 1)]
    assert tranche.status == "failed" and tranche.failure_reason == "account_closed"
    [(type_, data, _)] = ledger.statuses
    assert type_ == PAYMENT_FAILED
    assert data["status"] == "payment_failed" and data["reason"] == "account_closed"
    assert data["reference"] == tranche.reference
    # The beneficiary is told too; a failed payment is not settled later, and the grant is not completed.
    [notice] = ledger.notices
    assert notice["kind"] == "payment_failed" and notice["params"]["reference"] == tranche.reference
    ledger.notices.clear()
    ledger.payment_settled(tranche_key("c1", 1))
    assert tranche.status == "failed"
    assert ledger.notices == [] and not ledger.facts.completed


NEW_WALLET = {"method": "mobile_money", "provider": "mtn_momo_ci", "msisdn": "+2250709998877"}


def test_a_failed_payment_is_reissued_under_a_new_reference_once_the_payout_changes():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    key = tranche_key("c1", 1)
    ledger.tranches[key].sent_payout = dict(PAYOUT)  # what the dispatcher froze
    ledger.payment_sent(key, "T-9")
    ledger.payment_failed(key, "PAYEE_NOT_FOUND")
    emitted(ledger)
    tranche = ledger.tranches[key]
    first_reference = tranche.reference

    # The same payout again changes nothing: it would fail again.
    ledger.update_beneficiary({"case_id": CASE, "payout": dict(PAYOUT)})
    assert tranche.status == "failed" and tranche.attempt == 1

    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_WALLET})
    assert tranche.status == "released" and tranche.attempt == 2
    assert tranche.payment_ref == f"{first_reference}-2" and tranche.previous_payment_ref == first_reference
    [(type_, data, _)] = [s for s in ledger.statuses if s[0] == TRANCHE_RELEASED]
    assert data["reference"] == f"{first_reference}-2" and data["previous_reference"] == first_reference
    assert data["attempt"] == 2 and data["reason"] == "reissued"


def test_a_failure_after_the_payout_changed_reissues_at_once():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    key = tranche_key("c1", 1)
    ledger.tranches[key].sent_payout = dict(PAYOUT)
    ledger.payment_sent(key, "T-9")
    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_WALLET})  # while the payment is out
    assert ledger.tranches[key].status == "sent"  # a payment on its way is never changed
    emitted(ledger)
    ledger.payment_failed(key, "PAYEE_NOT_FOUND")
    assert [t for t, _, _ in ledger.statuses] == [PAYMENT_FAILED, TRANCHE_RELEASED]
    assert ledger.tranches[key].attempt == 2


def test_a_failed_tranche_is_cancelled_when_the_case_is_withdrawn():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    key = tranche_key("c1", 1)
    ledger.payment_sent(key, "T-9")
    ledger.payment_failed(key, "PAYEE_NOT_FOUND")
    ledger.withdraw({"case_id": CASE})
    assert ledger.tranches[key].status == "cancelled"


def test_payment_results_for_tranches_not_released_are_ignored():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    ledger.payment_sent(tranche_key("c2", 2), "T-x")  # still planned
    ledger.payment_settled(tranche_key("c2", 2))
    ledger.payment_failed(tranche_key("c2", 2), "x")
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    assert emitted(ledger) == [] and ledger.notices == []


def test_payment_sent_records_the_transfer_and_a_status():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    emitted(ledger)
    ledger.payment_sent(tranche_key("c1", 1), "T-42")
    assert ledger.tranches[tranche_key("c1", 1)].transfer_id == "T-42"
    assert emitted(ledger) == [(PAYMENT_SENT, "c1", 1)]


def test_revise_changes_only_tranches_not_released_yet():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    released_before = copy.deepcopy(ledger.tranches[tranche_key("c1", 1)])
    ordered_before = copy.deepcopy(ledger.tranches[tranche_key("c2", 1)])

    # Revision of the same plan: every amount doubled; the milestone tranche is the only one still planned.
    revised = contract_plan(cash="600.00", inkind="2400.00")
    ledger.revise({"case_id": CASE, "plan": revised, "contact": CONTACT})

    assert ledger.tranches[tranche_key("c1", 1)] == released_before
    assert ledger.tranches[tranche_key("c2", 1)] == ordered_before
    assert ledger.tranches[tranche_key("c2", 2)].money() == Money(96000, "EUR")
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    assert len(ledger.tranches) == 3
    assert emitted(ledger) == []

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    [(_, data, _), _] = ledger.statuses
    assert data["amount"] == {"amount": "960.00", "currency": "EUR"} and data["plan_id"] == PLAN


def test_revise_cancels_planned_tranches_it_removes_and_releases_new_on_approval_ones():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    revised = contract_plan()
    revised["components"][1]["tranches"] = [{"seq": 1, "share_percent": 100, "release": "on_approval"}]
    revised["components"].append({"component_id": "c3", "modality": "cash", "category": "education",
                                  "amount": {"amount": "50.00", "currency": "EUR"},
                                  "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]})
    ledger.revise({"case_id": CASE, "plan": revised, "contact": CONTACT})

    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "ordered", ("c2", 2): "cancelled",
                                   ("c3", 1): "released"}
    statuses = [(t, d) for t, d, _ in ledger.statuses]
    assert [(t, d["component_id"], d["tranche_seq"]) for t, d in statuses] == [
        (TRANCHE_CANCELLED, "c2", 2), (TRANCHE_RELEASED, "c3", 1)]
    assert statuses[0][1]["reason"] == "removed_by_revision"


def test_revise_with_a_new_payout_changes_the_payout_for_payments_not_sent():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    ledger.revise({"case_id": CASE, "plan": {**cash_plan(), "payout": NEW_PAYOUT}, "contact": CONTACT})
    assert ledger.facts.grant["payout"] == NEW_PAYOUT
    ledger.revise({"case_id": CASE, "plan": {**cash_plan("PL-r2"), "payout": PAYOUT}, "contact": CONTACT})
    assert ledger.facts.grant["payout"] == PAYOUT


def test_revise_before_the_grant_is_ignored_and_after_withdrawal_is_answered():
    ledger = new_ledger()
    ledger.revise({"case_id": CASE, "plan": contract_plan(), "contact": CONTACT})
    assert ledger.tranches == {} and ledger.facts.grant is None
    assert emitted(ledger) == []  # out of order, tolerated: not refused

    ledger.approve(grant(contract_plan()))
    ledger.withdraw({"case_id": CASE})
    emitted(ledger)
    before = copy.deepcopy(ledger.tranches)
    for plan_id in (PLAN, "PL-r2"):
        ledger.revise({"case_id": CASE, "plan": contract_plan(plan_id, inkind="9000.00"), "contact": CONTACT})
        assert ledger.tranches == before
        assert emitted(ledger) == [(CASE_REJECTED, None, None)]


def test_beneficiary_update_before_the_grant_keeps_the_new_payout_and_contact():
    ledger = new_ledger()
    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_PAYOUT,
                               "contact": {"phone": "+2250709998877", "preferred_language": "en"}})
    assert ledger.tranches == {}
    assert emitted(ledger) == []  # nothing to release without a grant

    ledger.approve(grant(contract_plan()))  # the plan still carries the old payout
    assert ledger.facts.grant["payout"] == NEW_PAYOUT
    assert ledger.facts.grant["contact"] == {"phone": "+2250709998877", "preferred_language": "en"}
    assert "pending" not in ledger.facts.grant
    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "ordered", ("c2", 2): "planned"}

    # And a second approve (a redelivery) is still ignored.
    emitted(ledger)
    ledger.approve(grant(contract_plan("PL-other", cash="999.00")))
    assert emitted(ledger) == [] and ledger.facts.grant["plan_id"] == PLAN


def test_beneficiary_update_without_payout_keeps_the_plans_payout():
    ledger = new_ledger()
    ledger.update_beneficiary({"case_id": CASE, "contact": {"phone": "+2250709998877", "preferred_language": "fr"}})
    ledger.approve(grant(contract_plan()))
    assert ledger.facts.grant["payout"] == PAYOUT
    assert ledger.facts.grant["contact"]["phone"] == "+2250709998877"


def test_duplicate_approve_is_ignored():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    first = copy.deepcopy(ledger.tranches)
    emitted(ledger)
    ledger.changed.clear()

    ledger.approve(grant(contract_plan()))
    ledger.approve(grant(contract_plan("PL-9999", cash="1.00")))
    assert ledger.tranches == first
    assert emitted(ledger) == [] and ledger.changed == set()


def test_status_event_data_carries_plan_component_seq_amount_and_reference():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    settle(ledger, tranche_key("c1", 1))
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 1})

    expected_amount = {("c1", 1): {"amount": "300.00", "currency": "EUR"},
                       ("c2", 1): {"amount": "720.00", "currency": "EUR"}}
    seen = set()
    for type_, data, tranche in ledger.statuses:
        key = (data["component_id"], data["tranche_seq"])
        seen.add(type_)
        assert data["case_id"] == CASE
        assert data["plan_id"] == PLAN
        assert data["amount"] == expected_amount[key]
        assert data["reference"] == payment_reference(CASE, PLAN, *key)
        assert data["status"] == type_.split(".")[1] + "_" + type_.split(".")[2]
        assert tranche is ledger.tranches[tranche_key(*key)]
        if key[0] == "c2":
            assert data["vendor_id"] == "V-ABJ-017" and data["modality"] == "in_kind"
        else:
            assert "vendor_id" not in data and data["modality"] == "cash"
    assert seen == {TRANCHE_RELEASED, INKIND_ORDERED, PAYMENT_SENT, PAYMENT_SETTLED, INKIND_DELIVERED}


def test_xof_tranche_amounts_are_written_without_decimals():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan(amount="100001", tranches=[
        {"seq": 1, "share_percent": 33, "release": "on_approval"},
        {"seq": 2, "share_percent": 33, "release": "on_approval"},
        {"seq": 3, "share_percent": 34, "release": "on_approval"}])))
    amounts = [d["amount"] for _, d, _ in ledger.statuses]
    assert amounts == [{"amount": "33000", "currency": "XOF"}, {"amount": "33000", "currency": "XOF"},
                       {"amount": "34001", "currency": "XOF"}]


def test_tranches_are_split_in_seq_order_even_when_listed_out_of_order():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan(amount="0.01", currency="EUR", tranches=[
        {"seq": 2, "share_percent": 50, "release": "milestone:later"},
        {"seq": 1, "share_percent": 50, "release": "on_approval"}])))
    # 0.01 EUR split 50/50: the tie goes to the earlier tranche, seq 1.
    assert ledger.tranches[tranche_key("c1", 1)].amount_minor == 1
    assert ledger.tranches[tranche_key("c1", 2)].amount_minor == 0


def test_payment_reference_is_deterministic_and_distinct_per_tranche():
    ref = payment_reference(CASE, PLAN, "c1", 1)
    assert ref == payment_reference(CASE, PLAN, "c1", 1)
    assert ref.startswith("RG-")
    others = {
        payment_reference(CASE, PLAN, "c1", 2),
        payment_reference(CASE, PLAN, "c2", 1),
        payment_reference(CASE, "PL-other", "c1", 1),
        payment_reference("MA-2026-000124", PLAN, "c1", 1),
        # No ambiguity from joining the parts: ("c1", 11) vs ("c11", 1).
        payment_reference(CASE, PLAN, "c11", 1),
    }
    assert ref not in others and len(others) == 5
    assert payment_reference(CASE, PLAN, "c1", 11) != payment_reference(CASE, PLAN, "c11", 1)


def test_references_of_one_plan_are_all_distinct():
    refs = {payment_reference(CASE, PLAN, f"c{c}", s) for c in range(1, 101) for s in range(1, 21)}
    assert len(refs) == 100 * 20


def test_released_tranches_carry_their_reference_and_a_new_ledger_from_json_round_trips_facts():
    ledger = new_ledger()
    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_PAYOUT})
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    facts = Facts.from_json(ledger.facts.to_json())
    assert facts == ledger.facts
    restored = CaseLedger(case_id=CASE, facts=facts, tranches={})
    restored.approve(grant(contract_plan()))
    assert restored.facts.grant["payout"] == NEW_PAYOUT
    assert all(t.reference == payment_reference(CASE, *t.key) for t in restored.tranches.values())


# --------------------------------------------------------------------------------------------
# Plans: milestones per plan, replacement plans, refusals answered
# --------------------------------------------------------------------------------------------

OTHER_PLAN = "PL-7702"
UPSTREAM = {"source": "urn:casesys:ma-rabat", "id": "evt-42", "type": "reintegration.milestone.verified.v1"}


def milestone(plan_id: str = PLAN, name: str = MILESTONE, upstream: dict | None = UPSTREAM) -> dict:
    data = {"case_id": CASE, "plan_id": plan_id, "milestone": name, "verified_at": "2027-01-15T14:00:00Z"}
    if upstream is not None:
        data["upstream_event"] = upstream
    return data


def delivery(component_id: str = "c2", seq: int = 1, plan_id: str = PLAN, upstream: dict | None = UPSTREAM) -> dict:
    data = {"case_id": CASE, "plan_id": plan_id, "component_id": component_id, "tranche_seq": seq,
            "vendor_id": "V-ABJ-017", "delivered_at": "2026-11-02T11:00:00Z",
            "invoice": {"number": "INV-1", "amount": {"amount": "720.00", "currency": "EUR"}}}
    if upstream is not None:
        data["upstream_event"] = upstream
    return data


def revision(plan: dict, upstream: dict | None = UPSTREAM) -> dict:
    data = {"case_id": CASE, "plan": plan, "contact": dict(CONTACT)}
    if upstream is not None:
        data["upstream_event"] = upstream
    return data


def replacement_plan(plan_id: str = OTHER_PLAN) -> dict:
    """A reviewer's replacement for the contract plan: 200 EUR cash now, a 500 EUR kit at another milestone."""
    return {
        "case_id": CASE, "plan_id": plan_id, "payout": dict(PAYOUT),
        "components": [
            {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
             "amount": {"amount": "200.00", "currency": "EUR"},
             "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]},
            {"component_id": "c3", "modality": "in_kind", "category": "vocational_training",
             "amount": {"amount": "500.00", "currency": "EUR"}, "vendor_id": "V-ABJ-020",
             "tranches": [{"seq": 1, "share_percent": 100, "release": "milestone:training_started"}]},
        ],
    }


def refusals(ledger: CaseLedger) -> list[dict]:
    return [d for t, d, _ in ledger.statuses if t == CASE_REJECTED]


def test_a_milestone_releases_only_tranches_of_the_plan_it_names():
    ledger = new_ledger()
    ledger.verify_milestone(milestone(OTHER_PLAN))  # before the grant: kept, for its own plan
    ledger.approve(grant(contract_plan()))
    assert ledger.tranches[tranche_key("c2", 2)].status == "planned"
    assert ledger.facts.milestones == {OTHER_PLAN: [MILESTONE]}
    emitted(ledger)

    ledger.verify_milestone(milestone(PLAN))
    assert ledger.tranches[tranche_key("c2", 2)].status == "ordered"
    assert ledger.facts.milestones == {OTHER_PLAN: [MILESTONE], PLAN: [MILESTONE]}


def test_milestones_verified_before_the_grant_wait_for_the_grant_of_their_plan():
    ledger = new_ledger()
    ledger.verify_milestone(milestone(PLAN))
    ledger.verify_milestone(milestone(OTHER_PLAN, "training_started"))
    ledger.approve(grant(contract_plan()))
    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "ordered", ("c2", 2): "ordered"}
    emitted(ledger)

    # The replacement plan's milestone was verified long ago: its tranche is due at once.
    ledger.revise(revision(replacement_plan()))
    assert statuses_of(ledger, OTHER_PLAN) == {("c1", 1): "released", ("c3", 1): "ordered"}


def test_a_replacement_plan_cancels_what_the_old_plan_has_not_released_and_adds_its_own_tranches():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    settle(ledger, tranche_key("c1", 1))
    emitted(ledger)
    ledger.notices.clear()
    old = copy.deepcopy({k: t for k, t in ledger.tranches.items() if t.status != "planned"})

    ledger.revise(revision(replacement_plan()))

    # What the old plan released keeps its amount and status; its milestone tranche is cancelled.
    assert {k: ledger.tranches[k] for k in old} == old
    assert statuses_of(ledger) == {("c1", 1): "settled", ("c2", 1): "ordered", ("c2", 2): "cancelled"}
    # The new plan's tranches are new tranches (new references), released when due.
    assert statuses_of(ledger, OTHER_PLAN) == {("c1", 1): "released", ("c3", 1): "planned"}
    assert ledger.tranches[tranche_key("c1", 1, OTHER_PLAN)].reference == payment_reference(CASE, OTHER_PLAN, "c1", 1)
    assert ledger.tranches[tranche_key("c1", 1, OTHER_PLAN)].reference != ledger.tranches[tranche_key("c1", 1)].reference
    assert ledger.facts.grant["plan_id"] == OTHER_PLAN
    statuses = [(t, d) for t, d, _ in ledger.statuses]
    assert [(t, d["plan_id"], d["component_id"], d["tranche_seq"]) for t, d in statuses] == [
        (TRANCHE_CANCELLED, PLAN, "c2", 2), (TRANCHE_RELEASED, OTHER_PLAN, "c1", 1)]
    assert statuses[0][1]["reason"] == "replaced_by_plan"
    emitted(ledger)

    # The old plan's milestone no longer releases anything; the new plan's does.
    ledger.verify_milestone(milestone(PLAN))
    assert [r["reasons"][0]["code"] for r in refusals(ledger)] == ["plan_mismatch"]
    assert ledger.tranches[tranche_key("c2", 2)].status == "cancelled"
    emitted(ledger)
    ledger.verify_milestone(milestone(OTHER_PLAN, "training_started"))
    assert emitted(ledger) == [(TRANCHE_RELEASED, "c3", 1), (INKIND_ORDERED, "c3", 1)]


def test_after_a_replacement_goods_ordered_under_the_old_plan_are_still_delivered_and_the_grant_completes():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    settle(ledger, tranche_key("c1", 1))
    ledger.revise(revision(replacement_plan()))
    ledger.verify_milestone(milestone(OTHER_PLAN, "training_started"))
    settle(ledger, tranche_key("c1", 1, OTHER_PLAN))
    ledger.confirm_delivery(delivery("c3", 1, OTHER_PLAN))
    emitted(ledger)

    # The old plan's milestone tranche was cancelled: a delivery for it names a plan that is gone.
    ledger.confirm_delivery(delivery("c2", 2, PLAN))
    assert [r["reasons"][0]["code"] for r in refusals(ledger)] == ["plan_mismatch"]
    assert not ledger.facts.completed
    emitted(ledger)

    # The kit ordered before the replacement is owed: its delivery completes the grant, once.
    ledger.confirm_delivery(delivery("c2", 1, PLAN))
    completed = [d for t, d, _ in ledger.statuses if t == GRANT_COMPLETED]
    assert [t for t, _, _ in ledger.statuses] == [INKIND_DELIVERED, GRANT_COMPLETED]
    # 300 (old cash) + 720 (old kit, first tranche) + 200 (new cash) + 500 (new kit)
    assert completed[0]["paid"] == [{"currency": "EUR", "amount_minor": 172000}]
    assert completed[0]["plan_id"] == OTHER_PLAN


def test_a_revision_of_the_same_plan_never_touches_a_settled_tranche():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    settle(ledger, tranche_key("c1", 1))
    settled = copy.deepcopy(ledger.tranches[tranche_key("c1", 1)])
    emitted(ledger)
    without_c1 = contract_plan(cash="999.00")
    without_c1["components"] = without_c1["components"][1:]
    for plan in (contract_plan(cash="999.00"), without_c1):
        ledger.revise(revision(plan))
        assert ledger.tranches[tranche_key("c1", 1)] == settled
    assert TRANCHE_RELEASED not in [t for t, _, _ in ledger.statuses]


def completed_ledger() -> CaseLedger:
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    settle(ledger, tranche_key("c1", 1))
    assert ledger.facts.completed
    return ledger


def approved_ledger() -> CaseLedger:
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    return ledger


def withdrawn_ledger() -> CaseLedger:
    ledger = approved_ledger()
    ledger.withdraw({"case_id": CASE, "reason": "beneficiary_request"})
    return ledger


def replaced_ledger() -> CaseLedger:
    ledger = approved_ledger()
    ledger.revise(revision(replacement_plan()))
    return ledger


def revised_without_milestone_ledger() -> CaseLedger:
    """The same plan revised: the milestone tranche c2/2 removed."""
    ledger = approved_ledger()
    plan = contract_plan()
    plan["components"][1]["tranches"] = [{"seq": 1, "share_percent": 100, "release": "on_approval"}]
    ledger.revise(revision(plan))
    return ledger


def withdrawn_before_the_grant_ledger() -> CaseLedger:
    ledger = new_ledger()
    ledger.withdraw({"case_id": CASE})
    return ledger


REFUSALS = [
    # (case, state before, event, data, reason code, reason field)
    ("revision after completion", completed_ledger, "revise", revision(cash_plan(amount="999999")),
     "grant_completed", None),
    ("replacement after completion", completed_ledger, "revise", revision(cash_plan(OTHER_PLAN)), "grant_completed", None),
    ("milestone after completion", completed_ledger, "verify_milestone", milestone(), "grant_completed", None),
    ("delivery after completion", completed_ledger, "confirm_delivery", delivery("c1", 1), "grant_completed", None),
    ("milestone for another plan", approved_ledger, "verify_milestone", milestone(OTHER_PLAN),
     "plan_mismatch", "data.plan_id"),
    ("milestone for a replaced plan", replaced_ledger, "verify_milestone", milestone(PLAN),
     "plan_mismatch", "data.plan_id"),
    ("delivery for another plan", approved_ledger, "confirm_delivery", delivery("c2", 1, OTHER_PLAN),
     "plan_mismatch", "data.plan_id"),
    ("delivery for a replaced plan's cancelled tranche", replaced_ledger, "confirm_delivery",
     delivery("c2", 2, PLAN), "plan_mismatch", "data.plan_id"),
    ("milestone nothing waits for", approved_ledger, "verify_milestone", milestone(name="roof_repaired"),
     "unknown_milestone", "data.milestone"),
    ("milestone whose tranche a revision removed", revised_without_milestone_ledger, "verify_milestone", milestone(),
     "unknown_milestone", "data.milestone"),
    ("delivery for a component the plan lacks", approved_ledger, "confirm_delivery", delivery("c9", 1),
     "unknown_tranche", "data.component_id"),
    ("delivery for a tranche the component lacks", approved_ledger, "confirm_delivery", delivery("c2", 3),
     "unknown_tranche", "data.tranche_seq"),
    ("delivery for a tranche a revision removed", revised_without_milestone_ledger, "confirm_delivery",
     delivery("c2", 2), "unknown_tranche", "data.tranche_seq"),
    ("delivery for a cash tranche", approved_ledger, "confirm_delivery", delivery("c1", 1),
     "unknown_tranche", "data.component_id"),
    ("delivery after withdrawal", withdrawn_ledger, "confirm_delivery", delivery(), "case_withdrawn", None),
    ("milestone after withdrawal", withdrawn_ledger, "verify_milestone", milestone(), "case_withdrawn", None),
    ("revision after withdrawal", withdrawn_ledger, "revise", revision(contract_plan()), "case_withdrawn", None),
    ("replacement after withdrawal", withdrawn_ledger, "revise", revision(replacement_plan()), "case_withdrawn", None),
    ("milestone after a withdrawal before the grant", withdrawn_before_the_grant_ledger, "verify_milestone",
     milestone(), "case_withdrawn", None),
]


@pytest.mark.parametrize(("state", "action", "data", "code", "field_path"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_events_are_answered_once_and_change_nothing(state, action, data, code, field_path):
    ledger = state()
    emitted(ledger)
    ledger.notices.clear()
    ledger.changed.clear()
    ledger.facts_changed = False
    tranches_before, facts_before = copy.deepcopy(ledger.tranches), copy.deepcopy(ledger.facts.to_json())

    getattr(ledger, action)(copy.deepcopy(data))

    [(type_, status, tranche)] = ledger.statuses
    assert type_ == CASE_REJECTED and tranche is None
    assert status["case_id"] == CASE and status["status"] == "rejected"
    [reason] = status["reasons"]
    assert (reason["code"], reason["field"]) == (code, field_path)
    assert code in CASE_STATE_CODES and reason["message"]
    assert status["rejected_event"] == {"id": "evt-42", "type": "reintegration.milestone.verified.v1",
                                        "source": "urn:casesys:ma-rabat"}
    assert ledger.tranches == tranches_before and ledger.changed == set()
    assert ledger.facts.to_json() == facts_before and not ledger.facts_changed
    assert ledger.notices == []


ACCEPTED_QUIETLY = [
    # (case, state before, event, data): tolerated or already applied, so no answer
    ("revision before the grant", new_ledger, "revise", revision(contract_plan())),
    ("milestone before the grant", new_ledger, "verify_milestone", milestone()),
    ("milestone for another plan before the grant", new_ledger, "verify_milestone", milestone(OTHER_PLAN)),
    ("delivery before the grant", new_ledger, "confirm_delivery", delivery("c9", 4)),
    ("milestone verified again", lambda: _after(approved_ledger(), "verify_milestone", milestone()),
     "verify_milestone", milestone()),
    ("delivery for a planned in-kind tranche", approved_ledger, "confirm_delivery", delivery("c2", 2)),
    ("delivery for goods a replaced plan ordered", replaced_ledger, "confirm_delivery", delivery("c2", 1, PLAN)),
]


def _after(ledger: CaseLedger, action: str, data: dict) -> CaseLedger:
    getattr(ledger, action)(data)
    return ledger


@pytest.mark.parametrize(("state", "action", "data"), [r[1:] for r in ACCEPTED_QUIETLY],
                         ids=[r[0] for r in ACCEPTED_QUIETLY])
def test_events_tolerated_or_applied_are_not_refused(state, action, data):
    ledger = state()
    emitted(ledger)
    getattr(ledger, action)(copy.deepcopy(data))
    assert refusals(ledger) == []


def test_a_refusal_without_the_upstream_event_still_answers_with_an_empty_reference():
    ledger = approved_ledger()
    emitted(ledger)
    ledger.verify_milestone(milestone(OTHER_PLAN, upstream=None))
    [status] = refusals(ledger)
    assert status["rejected_event"] == {"id": None, "type": None, "source": None}


def test_a_refusal_is_published_with_an_id_derived_from_its_cause():
    def refused_messages():
        ledger = approved_ledger()
        emitted(ledger)
        ledger.verify_milestone(milestone(OTHER_PLAN))
        return drain(ledger, "cause-1")

    first, again = refused_messages(), refused_messages()
    assert len(first) == 1 and first[0].topic == CASE_STATUS
    event = jsonfast.loads(first[0].value)
    assert event["type"] == CASE_REJECTED and event["data"]["reasons"][0]["code"] == "plan_mismatch"
    assert event["id"] == jsonfast.loads(again[0].value)["id"]


# --------------------------------------------------------------------------------------------
# Facts stored by earlier versions
# --------------------------------------------------------------------------------------------


def old_facts(grant_plan_id: str | None) -> dict:
    """Facts as the version before plans were tracked stored them."""
    old_grant = None if grant_plan_id is None else {
        "plan_id": grant_plan_id, "program_code": "MA-AVRR-2026", "payout": dict(PAYOUT), "contact": dict(CONTACT)}
    return {"grant": old_grant, "milestones": [MILESTONE], "withdrawn": False, "completed": False,
            "deliveries": {"c2/1": {"vendor_id": "V-ABJ-017", "delivered_at": None, "invoice": None}}}


@pytest.mark.parametrize(
    ("stored", "expected_milestones", "expected_deliveries"),
    [
        (old_facts(PLAN), {PLAN: [MILESTONE]}, {PLAN: {"c2/1"}}),
        (old_facts(None), {ANY_PLAN: [MILESTONE]}, {ANY_PLAN: {"c2/1"}}),
        ({"grant": None, "milestones": {PLAN: ["a"], OTHER_PLAN: ["b"]},
          "deliveries": {PLAN: {"c2/1": {}}}, "withdrawn": False, "completed": False},
         {PLAN: ["a"], OTHER_PLAN: ["b"]}, {PLAN: {"c2/1"}}),
        ({"grant": None, "milestones": [], "deliveries": {}, "withdrawn": False, "completed": False}, {}, {}),
    ],
    ids=["old list under a grant", "old list before the grant", "per plan", "empty"],
)
def test_facts_stored_by_earlier_versions_load_into_the_plan_they_belong_to(
        stored, expected_milestones, expected_deliveries):
    facts = Facts.from_json(stored)
    assert facts.milestones == expected_milestones
    assert {plan: set(d) for plan, d in facts.deliveries.items()} == expected_deliveries
    assert Facts.from_json(jsonfast.loads(jsonfast.dumps(facts.to_json()))) == facts


def test_old_milestones_before_the_grant_apply_to_the_plan_then_approved():
    ledger = CaseLedger(case_id=CASE, facts=Facts.from_json(old_facts(None)), tranches={})
    ledger.approve(grant(contract_plan()))
    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "delivered", ("c2", 2): "ordered"}
    assert ledger.facts.milestones == {PLAN: [MILESTONE]} and set(ledger.facts.deliveries) == {PLAN}


def test_old_milestones_under_a_grant_are_the_current_plans():
    ledger = CaseLedger(case_id=CASE, facts=Facts.from_json(old_facts(PLAN)), tranches={})
    for tranche in tranches_of_plan(CASE, contract_plan()):
        ledger.tranches[tranche.key] = tranche
    ledger.verify_milestone(milestone())  # already verified: nothing to answer
    assert refusals(ledger) == []
    ledger.revise(revision(contract_plan(inkind="1000.00")))  # the revision releases what is due
    assert statuses_of(ledger) == {("c1", 1): "released", ("c2", 1): "delivered", ("c2", 2): "ordered"}


# --------------------------------------------------------------------------------------------
# Property: whatever arrives, in any order, nothing is released twice or re-created
# --------------------------------------------------------------------------------------------

PLAN_IDS = ["PL-A", "PL-B", "PL-C"]
MILESTONE_NAMES = ["m1", "m2", "m3"]
COMPONENT_IDS = ["c1", "c2", "c3"]
SHARES = {1: [100], 2: [50, 50], 3: [20, 30, 50]}
# How far a tranche has gone; a tranche never moves back, and the last rank is final.
PROGRESS = {"planned": 0, "released": 1, "ordered": 2, "sending": 2, "sent": 3, "delivered": 4,
            "settled": 4, "failed": 4, "cancelled": 4}
FINAL = {"delivered", "settled", "cancelled"}  # failed is not: a re-issue or a withdrawal follows


@st.composite
def random_plans(draw):
    components = []
    for component_id in draw(st.lists(st.sampled_from(COMPONENT_IDS), min_size=1, max_size=3, unique=True)):
        modality = draw(st.sampled_from(["cash", "in_kind"]))
        shares = SHARES[draw(st.integers(min_value=1, max_value=3))]
        releases = st.sampled_from(["on_approval", *(f"milestone:{m}" for m in MILESTONE_NAMES)])
        component = {
            "component_id": component_id, "modality": modality, "category": "housing",
            "amount": {"amount": str(draw(st.integers(min_value=1, max_value=10**6))), "currency": "XOF"},
            "tranches": [{"seq": n, "share_percent": share, "release": draw(releases)}
                         for n, share in enumerate(shares, start=1)],
        }
        if modality == "in_kind":
            component["vendor_id"] = "V-1"
        components.append(component)
    return {"case_id": CASE, "plan_id": draw(st.sampled_from(PLAN_IDS)), "payout": dict(PAYOUT),
            "components": components}


operations = st.one_of(
    st.tuples(st.just("approve"), random_plans()),
    st.tuples(st.just("revise"), random_plans()),
    st.tuples(st.just("milestone"), st.sampled_from(PLAN_IDS), st.sampled_from([*MILESTONE_NAMES, "unknown"])),
    st.tuples(st.just("delivery"), st.sampled_from(PLAN_IDS), st.sampled_from(COMPONENT_IDS),
              st.integers(min_value=1, max_value=3)),
    st.tuples(st.just("withdraw")),
    st.tuples(st.sampled_from(["claim", "sent", "settled", "failed"]), st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("update"), st.sampled_from(["+2250709998877", "+2250701112233"])),
)


def plan_total_minor(plan: dict) -> int:
    return sum(Money.parse(c["amount"]["amount"], c["amount"]["currency"]).minor for c in plan["components"])


def apply_operation(ledger: CaseLedger, op: tuple) -> None:
    kind = op[0]
    if kind == "approve":
        ledger.approve({**grant(op[1]), "upstream_event": UPSTREAM})
    elif kind == "revise":
        ledger.revise(revision(op[1]))
    elif kind == "milestone":
        ledger.verify_milestone(milestone(op[1], op[2]))
    elif kind == "delivery":
        ledger.confirm_delivery(delivery(op[2], op[3], op[1]))
    elif kind == "withdraw":
        ledger.withdraw({"case_id": CASE, "upstream_event": UPSTREAM})
    elif kind == "update":
        ledger.update_beneficiary({"case_id": CASE, "payout": {**PAYOUT, "msisdn": op[1]}})
    elif ledger.tranches:
        key = sorted(ledger.tranches)[op[1] % len(ledger.tranches)]
        tranche = ledger.tranches[key]
        if kind == "claim" and tranche.status == "released" and tranche.modality == "cash":
            # What the dispatcher's claim does in Postgres: the payout is frozen with the instruction.
            tranche.status, tranche.sent_payout = "sending", (ledger.facts.grant or {}).get("payout")
        elif kind == "sent":
            ledger.payment_sent(key, "T-1")
        elif kind == "settled":
            ledger.payment_settled(key)
        elif kind == "failed":
            ledger.payment_failed(key, "rejected_by_provider")


@settings(max_examples=400, deadline=None)
@given(ops=st.lists(operations, max_size=30))
def test_no_sequence_of_events_releases_a_tranche_twice_or_re_creates_what_was_released(ops):
    ledger = new_ledger()
    released: set[tuple[str, str, int]] = set()
    budget = 0  # what was released before the last plan change, plus that plan's total
    completions = 0
    for op in ops:
        before = {key: (t.status, t.amount_minor) for key, t in ledger.tranches.items()}
        released_before = sum(ledger.tranches[k].amount_minor for k in released)
        facts_before = copy.deepcopy(ledger.facts.to_json())
        had_grant = ledger.plan_id is not None

        apply_operation(ledger, op)
        statuses, ledger.statuses = ledger.statuses, []

        refused = [s for s in statuses if s[0] == CASE_REJECTED]
        if refused:  # one answer, and nothing else changed
            assert len(statuses) == 1
            assert {key: (t.status, t.amount_minor) for key, t in ledger.tranches.items()} == before
            assert ledger.facts.to_json() == facts_before
        for type_, data, _ in statuses:
            if type_ == TRANCHE_RELEASED:
                key = (data["plan_id"], data["component_id"], data["tranche_seq"])
                if data.get("attempt", 1) > 1:  # a re-issue: only of a failed payment, under a new reference
                    assert key in released and before.get(key, (None,))[0] == "failed", f"{key} re-issued"
                    assert data["reference"] != data["previous_reference"]
                else:
                    assert key not in released, f"{key} released twice"
                released.add(key)
            completions += type_ == GRANT_COMPLETED
        plan_changed = (op[0] == "approve" and not had_grant and ledger.plan_id is not None) or (
            op[0] == "revise" and had_grant and not refused)
        if plan_changed:
            budget = released_before + plan_total_minor(op[1])

        for key, (status, amount) in before.items():
            now = ledger.tranches[key]  # a tranche is never dropped
            if status != "planned":
                assert now.amount_minor == amount, f"{key} {status} changed amount"
            reissued = status == "failed" and now.status in ("released", "sending") and now.attempt > 1
            assert reissued or PROGRESS[now.status] >= PROGRESS[status], f"{key} went back from {status} to {now.status}"
            if status in FINAL:
                assert now.status == status
        assert sum(ledger.tranches[k].amount_minor for k in released) <= budget
        assert all(t.status != "planned" for k, t in ledger.tranches.items() if k in released)
        # And nothing is left behind: only the current plan has planned tranches, none of them due.
        verified = ledger.facts.milestones_of(ledger.plan_id) if ledger.plan_id else []
        for t in ledger.tranches.values():
            if t.status == "planned":
                assert t.plan_id == ledger.plan_id and not ledger.facts.withdrawn
                assert t.release != "on_approval" and t.release.split(":", 1)[1] not in verified
    assert completions <= 1


def test_a_settlement_for_a_payment_whose_answer_was_lost_still_reports_it_sent_first():
    """A crash between the provider's answer and our commit leaves the tranche `sending`; when the
    settlement arrives before the resend, upstream must still read payment.sent, then settled."""
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    key = tranche_key("c1", 1)
    ledger.tranches[key].status = "sending"
    ledger.statuses.clear()
    ledger.payment_settled(key)
    assert [s for s, _, t in ledger.statuses if t is not None and t.key == key] == [
        "reintegration.payment.sent.v1", "reintegration.payment.settled.v1"]
    assert ledger.tranches[key].status == "settled"
