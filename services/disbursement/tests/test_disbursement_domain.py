"""Disbursement's pure domain: splitting amounts into tranches and one case's grant lifecycle."""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction

import pytest
from disbursement.domain.case import (
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
from disbursement.domain.ledger import Facts, payment_reference
from disbursement.domain.split import split_minor
from hypothesis import given, settings
from hypothesis import strategies as st
from reintegra.money import Money

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


def statuses_of(ledger: CaseLedger) -> dict[tuple[str, int], str]:
    return {key: t.status for key, t in ledger.tranches.items()}


def settle(ledger: CaseLedger, key: tuple[str, int], transfer_id: str = "T-1") -> None:
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
    amounts = {key: t.money() for key, t in ledger.tranches.items()}
    assert amounts == {("c1", 1): Money(30000, "EUR"), ("c2", 1): Money(72000, "EUR"), ("c2", 2): Money(48000, "EUR")}
    assert ledger.facts.grant["payout"] == PAYOUT
    assert ledger.facts.grant["plan_id"] == PLAN
    assert ledger.notices == []


def test_milestone_tranche_waits_for_its_milestone():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": "some_other_milestone"})
    assert ledger.tranches[("c2", 2)].status == "planned"
    assert emitted(ledger) == []

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert ledger.tranches[("c2", 2)].status == "ordered"
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
    assert ledger.tranches[("c2", 1)].status == "delivered"
    assert ledger.tranches[("c2", 2)].status == "planned"
    assert emitted(ledger) == [(INKIND_DELIVERED, "c2", 1)]


def test_delivery_confirmed_before_the_order_is_applied_once_ordered():
    ledger = new_ledger()
    # Proof of delivery for the milestone tranche arrives first (before the grant, even).
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 2})
    ledger.approve(grant(contract_plan()))
    assert ledger.tranches[("c2", 2)].status == "planned"
    emitted(ledger)

    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert ledger.tranches[("c2", 2)].status == "delivered"
    assert emitted(ledger) == [(TRANCHE_RELEASED, "c2", 2), (INKIND_ORDERED, "c2", 2), (INKIND_DELIVERED, "c2", 2)]


def test_tranche_seq_as_string_in_delivery_still_matches():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": "1"})
    assert ledger.tranches[("c2", 1)].status == "delivered"


def test_withdraw_cancels_what_is_not_sent_and_keeps_what_is():
    ledger = new_ledger()
    plan = contract_plan()
    plan["components"].append({
        "component_id": "c3", "modality": "cash", "category": "housing",
        "amount": {"amount": "100.00", "currency": "EUR"},
        "tranches": [{"seq": 1, "share_percent": 50, "release": "on_approval"},
                     {"seq": 2, "share_percent": 50, "release": "on_approval"}]})
    ledger.approve(grant(plan))
    ledger.payment_sent(("c1", 1), "T-c1")  # sent, not yet settled
    settle(ledger, ("c3", 1), "T-c3")  # settled
    ledger.tranches[("c3", 2)].status = "sending"  # being sent by the dispatcher right now
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
    ledger.payment_settled(("c1", 1))
    assert ledger.tranches[("c1", 1)].status == "settled"
    # A second withdrawal, a late approval, a late milestone change nothing.
    ledger.withdraw({"case_id": CASE})
    ledger.approve(grant(contract_plan("PL-LATE")))
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert [t for t, _, _ in ledger.statuses] == [PAYMENT_SETTLED]
    assert ledger.tranches[("c2", 2)].status == "cancelled"


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
    settle(ledger, ("c1", 1))

    assert len(ledger.notices) == 1
    notice = ledger.notices[0]
    reference = ledger.tranches[("c1", 1)].reference
    assert notice == {
        "kind": "payment_settled", "case_id": CASE, "phone": "+2250701020304", "language": "ar",
        "params": {"amount": {"amount": "300.00", "currency": "EUR"}, "reference": reference,
                   "component_id": "c1", "tranche_seq": 1},
    }
    # Settled again (a replayed settlement): no second notice.
    ledger.payment_settled(("c1", 1))
    assert len(ledger.notices) == 1


def test_payment_settled_uses_the_contact_from_a_later_beneficiary_update():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    ledger.update_beneficiary({"case_id": CASE, "payout": NEW_PAYOUT,
                               "contact": {"phone": "+2250709998877", "preferred_language": "en"}})
    assert ledger.facts.grant["payout"] == NEW_PAYOUT
    settle(ledger, ("c1", 1))
    assert (ledger.notices[0]["phone"], ledger.notices[0]["language"]) == ("+2250709998877", "en")


def test_grant_completed_exactly_once_when_every_tranche_is_settled_or_delivered():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    ledger.confirm_delivery({"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": 1})
    settle(ledger, ("c1", 1))
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
    ledger.payment_settled(("c1", 1))
    ledger.verify_milestone({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert [t for t, _, _ in ledger.statuses].count(GRANT_COMPLETED) == 1


def test_payment_failed_marks_the_tranche_failed_with_its_reason():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    ledger.payment_sent(("c1", 1), "T-9")
    emitted(ledger)

    ledger.payment_failed(("c1", 1), "account_closed")
    tranche = ledger.tranches[("c1", 1)]
    assert tranche.status == "failed" and tranche.failure_reason == "account_closed"
    [(type_, data, _)] = ledger.statuses
    assert type_ == PAYMENT_FAILED
    assert data["status"] == "payment_failed" and data["reason"] == "account_closed"
    assert data["reference"] == tranche.reference
    # A failed payment is not settled later, and the grant is not completed.
    ledger.payment_settled(("c1", 1))
    assert tranche.status == "failed"
    assert ledger.notices == [] and not ledger.facts.completed


def test_payment_results_for_tranches_not_released_are_ignored():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    ledger.payment_sent(("c2", 2), "T-x")  # still planned
    ledger.payment_settled(("c2", 2))
    ledger.payment_failed(("c2", 2), "x")
    assert ledger.tranches[("c2", 2)].status == "planned"
    assert emitted(ledger) == [] and ledger.notices == []


def test_payment_sent_records_the_transfer_and_a_status():
    ledger = new_ledger()
    ledger.approve(grant(cash_plan()))
    emitted(ledger)
    ledger.payment_sent(("c1", 1), "T-42")
    assert ledger.tranches[("c1", 1)].transfer_id == "T-42"
    assert emitted(ledger) == [(PAYMENT_SENT, "c1", 1)]


def test_revise_changes_only_tranches_not_released_yet():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    released_before = copy.deepcopy(ledger.tranches[("c1", 1)])
    ordered_before = copy.deepcopy(ledger.tranches[("c2", 1)])

    # Revision: every amount doubled; the milestone tranche is the only one still planned.
    revised = contract_plan("PL-5531-r2", cash="600.00", inkind="2400.00")
    ledger.revise({"case_id": CASE, "plan": revised, "contact": CONTACT})

    assert ledger.tranches[("c1", 1)] == released_before
    assert ledger.tranches[("c2", 1)] == ordered_before
    assert ledger.tranches[("c2", 2)].money() == Money(96000, "EUR")
    assert ledger.tranches[("c2", 2)].plan_id == "PL-5531-r2"
    assert ledger.tranches[("c2", 2)].status == "planned"
    assert ledger.facts.grant["plan_id"] == "PL-5531-r2"
    assert emitted(ledger) == []

    ledger.verify_milestone({"case_id": CASE, "plan_id": "PL-5531-r2", "milestone": MILESTONE})
    [(_, data, _), _] = ledger.statuses
    assert data["amount"] == {"amount": "960.00", "currency": "EUR"} and data["plan_id"] == "PL-5531-r2"


def test_revise_cancels_planned_tranches_it_removes_and_releases_new_on_approval_ones():
    ledger = new_ledger()
    ledger.approve(grant(contract_plan()))
    emitted(ledger)
    revised = contract_plan("PL-r2")
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
    ledger.revise({"case_id": CASE, "plan": {**cash_plan("PL-r2"), "payout": NEW_PAYOUT}, "contact": CONTACT})
    assert ledger.facts.grant["payout"] == NEW_PAYOUT


def test_revise_before_the_grant_or_after_withdrawal_is_ignored():
    ledger = new_ledger()
    ledger.revise({"case_id": CASE, "plan": contract_plan(), "contact": CONTACT})
    assert ledger.tranches == {} and ledger.facts.grant is None

    ledger.approve(grant(contract_plan()))
    ledger.withdraw({"case_id": CASE})
    emitted(ledger)
    ledger.revise({"case_id": CASE, "plan": contract_plan("PL-r2", inkind="9000.00"), "contact": CONTACT})
    assert ledger.tranches[("c2", 2)].status == "cancelled"
    assert ledger.tranches[("c2", 2)].plan_id == PLAN
    assert emitted(ledger) == []


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
    settle(ledger, ("c1", 1))
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
        assert tranche is ledger.tranches[key]
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
    assert ledger.tranches[("c1", 1)].amount_minor == 1
    assert ledger.tranches[("c1", 2)].amount_minor == 0


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
    assert all(t.reference == payment_reference(CASE, PLAN, *t.key) for t in restored.tranches.values())
