"""A realistic sample of upstream traffic, with what each case should end as.

Cases are spread over Côte d'Ivoire (XOF), Senegal (XOF) and Guinea (EUR, until rates for GNF are
loaded) cash grants and the contract's EUR cash + in-kind plan, under programme MA-AVRR-2026's
rules (cash alone at most EUR 400, ceilings by age, a top-up for victims of trafficking), with the
rough edges upstream systems really produce: duplicate deliveries, a plan before its case, invalid
events, withdrawals, a blocked wallet, unaccompanied minors held for review, plans over the ceiling.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field

from reintegra.contract import samples
from reintegra.contract.upstream import (
    BENEFICIARY_UPDATED,
    CASE_REGISTERED,
    CASE_WITHDRAWN,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
)

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

# origin country → (plan currency, cash range in whole units, mobile-money provider, phone prefix, digits).
# A cash-only plan stays within the programme's EUR 400 cash allowance (262,383 XOF).
ORIGINS = {
    "CI": ("XOF", (100_000, 260_000), "orange_money_ci", "+22507", 8),
    "SN": ("XOF", (100_000, 260_000), "wave_sn", "+22177", 7),
    "GN": ("EUR", (150, 400), "orange_money_gn", "+22462", 7),
}
MINOR_BIRTH_DATE = "2010-05-01"  # 16 on the sample plans' date


@dataclass
class PlannedCase:
    case_id: str
    kind: str
    expected_final: str  # the last status type upstream should see for this case (short form)
    trace_id: str
    records: list[Record] = field(default_factory=list)
    sampled: bool = True


@dataclass
class Scenario:
    cases: list[PlannedCase]
    records: list[Record]  # publishing order
    blocked_msisdns: list[str]
    garbage_records: int
    duplicate_deliveries: int


def short_status(event_type: str) -> str:
    """reintegration.payment.settled.v1 → payment.settled"""
    return event_type.removeprefix("reintegration.").rsplit(".", 1)[0]


class _CaseWriter:
    def __init__(self, case: PlannedCase, rng: random.Random) -> None:
        self.case = case
        self.rng = rng

    def event(self, type_: str, data: dict) -> Record:
        event = samples.cloudevent(type_, self.case.case_id, data)
        flags = "01" if self.case.sampled else "00"  # the upstream's own sampling decision, which we follow
        traceparent = f"00-{self.case.trace_id}-{self.rng.getrandbits(64):016x}-{flags}"
        return samples.structured_record(event, traceparent)


def _phone(rng: random.Random, origin: str) -> str:
    _, _, _, prefix, digits = ORIGINS[origin]
    return prefix + "".join(str(rng.randint(0, 9)) for _ in range(digits))


def _cash_plan(rng: random.Random, case_id: str, origin: str, phone: str) -> dict:
    currency, (low, high), provider, _, _ = ORIGINS[origin]
    whole = rng.randrange(low, high, 5_000 if currency == "XOF" else 5)
    return samples.sample_plan_approved(
        case_id, f"PL-{case_id[-6:]}", currency=currency, cash_amount=str(whole), inkind=False,
        payout=samples.mobile_money_payout(phone, provider),
    )


def _build(kind: str, case: PlannedCase, rng: random.Random, blocked: list[str]) -> None:
    w = _CaseWriter(case, rng)
    origin = rng.choice(list(ORIGINS)) if kind not in ("mixed_eur", "top_up") else "CI"
    phone = _phone(rng, origin)
    language = rng.choices(["fr", "en", "ar"], weights=[75, 20, 5])[0]
    registered = samples.sample_case_registered(
        case.case_id, phone=phone, preferred_language=language, origin_country=origin,
        vulnerabilities=VULNERABILITIES.get(kind) or rng.choice([[], ["single_parent"], []]),
        consent=kind != "no_consent", person_id=f"P-{case.case_id}", document_number=f"DOC-{case.case_id}",
        date_of_birth=MINOR_BIRTH_DATE if kind == "review" else "1994-03-02",
    )
    returned = samples.sample_return_completed(case.case_id, arrival_country=origin)
    plan_id = f"PL-{case.case_id[-6:]}"
    if kind in ("mixed_eur", "withdrawn"):
        plan = samples.sample_plan_approved(case.case_id, plan_id, cash_amount="300.00" if kind == "mixed_eur" else None,
                                            payout=samples.mobile_money_payout(phone) if kind == "mixed_eur" else None)
    elif kind == "top_up":  # above the EUR 1,800 adult ceiling, within it plus the EUR 500 top-up
        plan = samples.sample_plan_approved(case.case_id, plan_id, cash_amount="500.00", inkind="1700.00",
                                            payout=samples.mobile_money_payout(phone))
    elif kind == "over_ceiling":
        plan = samples.sample_plan_approved(case.case_id, plan_id, cash_amount="900.00", inkind="1600.00",
                                            payout=samples.mobile_money_payout(phone))
    else:
        plan = _cash_plan(rng, case.case_id, origin, phone)
    if kind == "payment_failed":
        blocked.append(plan["payout"]["msisdn"])

    events = [w.event(CASE_REGISTERED, registered), w.event(RETURN_COMPLETED, returned)]
    if kind == "beneficiary_update":
        new_phone = _phone(rng, origin)
        update = samples.sample_beneficiary_updated(case.case_id, phone=new_phone, preferred_language=language,
                                                    payout=samples.mobile_money_payout(new_phone, ORIGINS[origin][2]))
        events.append(w.event(BENEFICIARY_UPDATED, update))
    if kind == "invalid_amount":
        # A JSON number for an amount: rejected, never rounded.
        bad = json.loads(json.dumps(plan))
        bad["components"][0]["amount"]["amount"] = 250000
        events.append(w.event(PLAN_APPROVED, bad))
    else:
        events.append(w.event(PLAN_APPROVED, plan))
    if kind in ("mixed_eur", "top_up"):
        first, second = ("720.00", "480.00") if kind == "mixed_eur" else ("1020.00", "680.00")  # 60 % / 40 %
        events += [
            w.event(DELIVERY_CONFIRMED, samples.sample_delivery_confirmed(
                case.case_id, plan_id, amount=first, invoice_number=f"INV-{case.case_id}-1")),
            w.event(MILESTONE_VERIFIED, samples.sample_milestone_verified(case.case_id, plan_id)),
            w.event(DELIVERY_CONFIRMED, samples.sample_delivery_confirmed(
                case.case_id, plan_id, tranche_seq=2, amount=second, invoice_number=f"INV-{case.case_id}-2")),
        ]
    if kind == "withdrawn":
        events.append(w.event(CASE_WITHDRAWN, samples.sample_case_withdrawn(case.case_id)))
    if kind == "out_of_order":
        events = [events[2], events[1], events[0]]  # the plan and the return before the case
    case.records = events


VULNERABILITIES = {"review": ["unaccompanied_minor"], "top_up": ["victim_of_trafficking", "medical_condition"]}

KINDS: dict[str, tuple[int, str]] = {  # kind → (weight, expected final status)
    "cash": (50, "grant.completed"),
    "mixed_eur": (13, "grant.completed"),
    "top_up": (3, "grant.completed"),
    "out_of_order": (8, "grant.completed"),
    "beneficiary_update": (4, "grant.completed"),
    "over_ceiling": (5, "eligibility.rejected"),
    "review": (4, "eligibility.review_required"),
    "withdrawn": (5, "tranche.cancelled"),
    "no_consent": (3, "case.rejected"),
    "invalid_amount": (2, "case.rejected"),
    "payment_failed": (3, "payment.failed"),
}


def garbage_records() -> list[Record]:
    """Records no parser can read a case from: they must still end on the .invalid topic."""
    ce = [("content-type", b"application/cloudevents+json")]
    return [
        (None, b"\xff\xfe not utf-8 at all", ce),
        (b"??", b"{ this is not json", ce),
        (None, json.dumps({"specversion": "0.3", "id": "x1", "source": "urn:casesys:ma-rabat"}).encode(), ce),
        (None, json.dumps({"specversion": "1.0", "id": "x2", "source": "urn:casesys:ma-rabat",
                           "type": "reintegration.unknown.v1", "subject": "??", "data": {}}).encode(), ce),
    ]


def build_scenario(n_cases: int = 300, *, seed: int | None = None, run_id: str | None = None,
                   duplicate_share: float = 0.15) -> Scenario:
    rng = random.Random(seed)
    run_id = run_id or secrets.token_hex(3).upper()
    kinds = rng.choices(list(KINDS), weights=[w for w, _ in KINDS.values()], k=n_cases)
    blocked: list[str] = []
    cases = []
    for i, kind in enumerate(kinds):
        case = PlannedCase(f"DEMO-{run_id}-{i:06d}", kind, KINDS[kind][1], f"{rng.getrandbits(128):032x}")
        _build(kind, case, rng, blocked)
        cases.append(case)
    # Interleave cases as live traffic does while keeping each case's own order.
    queues = [list(c.records) for c in cases]
    records: list[Record] = []
    duplicates = 0
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        record = queue.pop(0)
        records.append(record)
        if rng.random() < duplicate_share:  # at-least-once producers deliver some events 2-3 times
            for _ in range(rng.choice([1, 2])):
                records.append(record)
                duplicates += 1
    garbage = garbage_records()
    for record in garbage:
        records.insert(rng.randrange(len(records)), record)
    return Scenario(cases, records, blocked, len(garbage), duplicates)


def simple_cash_scenario(n_cases: int, *, run_id: str, seed: int = 7, sampled_share: float = 0.01) -> Scenario:
    """The benchmark's load: cash cases only, three events each, no faults; an upstream that
    samples `sampled_share` of its traces (the rest still carry their trace context)."""
    rng = random.Random(seed)
    cases = []
    for i in range(n_cases):
        case = PlannedCase(f"BENCH-{run_id}-{i:07d}", "cash", "grant.completed", f"{rng.getrandbits(128):032x}",
                           sampled=rng.random() < sampled_share)
        _build("cash", case, rng, [])
        cases.append(case)
    records = [r for c in cases for r in c.records]
    return Scenario(cases, records, [], 0, 0)

