"""The seeded stream of upstream cases, in the upstream contract's format, with what each must end as.

Everything is drawn from `random.Random(seed)`: case ids, event ids, phones, amounts, kinds and the
order of publication, so the same seed publishes the same bytes (event `time`s are fixed too).
The builders follow tests/support.py (`cash_case_records`, `held_case_records`,
`inkind_completion_records`, `payout_case_records`, `beneficiary_update_record`) and the demo's
scenario; they are copied here so that the harness does not import the test tree.
"""

from __future__ import annotations

import json
import random
import uuid
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
from reintegra.money import Money, split_minor

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

EVENT_TIME = "2026-10-21T08:00:00Z"
BUDGET_PROGRAMME = "MA-BUDGET-CHAOS"
BUDGET_GRANT = Money.parse("200.00", "EUR")  # paid as 131,191 XOF to a wallet in Côte d'Ivoire
MINOR_BIRTH_DATE = "2010-05-01"
# The most one case can be granted under MA-AVRR-2026 (a minor's ceiling and the top-up): the main
# programme's budget is sized from it so that only MA-BUDGET-CHAOS ever runs out.
LARGEST_GRANT = Money.parse("3300.00", "EUR")

# origin → (plan currency, cash range in whole units, mobile-money provider, phone prefix, digits)
ORIGINS = {
    "CI": ("XOF", (100_000, 260_000), "orange_money_ci", "+22507", 8),
    "SN": ("XOF", (100_000, 260_000), "wave_sn", "+22177", 7),
}
MOMO_PROVIDERS = ("orange_money_ci", "wave_sn", "mtn_momo_ci")

# kind → (weight, expected final status). "budget" cases end completed or held (see Scenario.budget_fits).
KINDS: dict[str, tuple[int, str]] = {
    "cash": (40, "grant.completed"),
    "out_of_order": (8, "grant.completed"),
    "inkind": (10, "grant.completed"),
    "beneficiary_update": (4, "grant.completed"),
    "review": (4, "eligibility.review_required"),
    "over_ceiling": (4, "eligibility.rejected"),
    "no_consent": (3, "case.rejected"),
    "invalid_amount": (3, "case.rejected"),
    "withdrawn": (3, "tranche.cancelled"),
    "payment_failed": (3, "payment.failed"),
    "budget": (8, "grant.completed|grant.held"),
}
VALID_FINALS = {"grant.completed", "grant.held"}


@dataclass
class Case:
    case_id: str
    kind: str
    expected: str  # "a|b": either
    records: list[Record] = field(default_factory=list)
    msisdn: str = ""

    def accepts(self, status: str | None) -> bool:
        return status in self.expected.split("|")


@dataclass
class Scenario:
    seed: int
    prefix: str
    cases: list[Case]
    records: list[Record]  # publishing order (duplicates and garbage included)
    duplicates: int
    garbage: int
    blocked_msisdns: list[str]
    budget_cases: int
    budget_fits: int
    # cash cases kept aside, published by a fault that meets no traffic (a crash point nobody
    # reaches while the system is idle); once published they are cases like the others
    probes: list[Case] = field(default_factory=list)

    @property
    def main_budget_amount(self) -> str:
        return Money((len(self.cases) + len(self.probes)) * LARGEST_GRANT.minor, "EUR").format_amount()

    @property
    def budget_amount(self) -> str:
        return Money(max(1, self.budget_fits) * BUDGET_GRANT.minor, "EUR").format_amount()

    def summary(self) -> dict:
        by_kind: dict[str, int] = {}
        for c in self.cases:
            by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
        return {"cases": len(self.cases), "records": len(self.records), "duplicate_deliveries": self.duplicates,
                "garbage_records": self.garbage, "by_kind": by_kind, "budget_cases": self.budget_cases,
                "budget_fits": self.budget_fits}


class _Writer:
    def __init__(self, rng: random.Random, case_id: str) -> None:
        self.rng = rng
        self.case_id = case_id

    def event(self, type_: str, data: dict) -> Record:
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        event = samples.cloudevent(type_, self.case_id, data, id=event_id, time=EVENT_TIME)
        return samples.structured_record(event)


def _phone(rng: random.Random, origin: str) -> str:
    _, _, _, prefix, digits = ORIGINS[origin]
    return prefix + "".join(str(rng.randint(0, 9)) for _ in range(digits))


def _build(rng: random.Random, case: Case, blocked: list[str]) -> None:
    w = _Writer(rng, case.case_id)
    kind, cid = case.kind, case.case_id
    origin = "CI" if kind in ("inkind", "budget", "review", "over_ceiling", "withdrawn") else rng.choice(list(ORIGINS))
    currency, (low, high), provider, _, _ = ORIGINS[origin]
    phone = _phone(rng, origin)
    case.msisdn = phone
    registered = samples.sample_case_registered(
        cid, phone=phone, origin_country=origin, person_id=f"P-{cid}", document_number=f"DOC-{cid}",
        full_name=f"Chaos Person {cid[-6:]}", consent=kind != "no_consent",
        vulnerabilities=["unaccompanied_minor"] if kind == "review" else [],
        date_of_birth=MINOR_BIRTH_DATE if kind == "review" else "1994-03-02",
        preferred_language=rng.choice(["fr", "fr", "fr", "en", "ar"]))
    if kind == "budget":
        registered["program_code"] = BUDGET_PROGRAMME
    returned = samples.sample_return_completed(cid, arrival_country=origin)
    plan_id = f"PL-{cid}"
    payout = samples.mobile_money_payout(phone, provider)
    if kind == "inkind":
        plan = samples.sample_plan_approved(cid, plan_id, currency="EUR", cash_amount="300.00", inkind="1200.00",
                                            payout=samples.mobile_money_payout(phone))
    elif kind == "withdrawn":
        plan = samples.sample_plan_approved(cid, plan_id, currency="EUR", cash_amount=None, inkind="1200.00",
                                            payout=None)
    elif kind == "over_ceiling":
        plan = samples.sample_plan_approved(cid, plan_id, currency="EUR", cash_amount="900.00", inkind="1600.00",
                                            payout=samples.mobile_money_payout(phone))
    elif kind == "budget":
        plan = samples.sample_plan_approved(cid, plan_id, currency="EUR", cash_amount=BUDGET_GRANT.format_amount(),
                                            inkind=False, payout=samples.mobile_money_payout(phone))
    else:
        whole = rng.randrange(low, high, 5_000)
        plan = samples.sample_plan_approved(cid, plan_id, currency=currency, cash_amount=str(whole), inkind=False,
                                            payout=payout)
    if kind == "payment_failed":
        blocked.append(phone)

    events = [w.event(CASE_REGISTERED, registered), w.event(RETURN_COMPLETED, returned)]
    if kind == "beneficiary_update":
        new_phone = _phone(rng, origin)
        update = samples.sample_beneficiary_updated(cid, phone=new_phone,
                                                    payout=samples.mobile_money_payout(new_phone, provider))
        events.append(w.event(BENEFICIARY_UPDATED, update))
        case.msisdn = new_phone
    if kind == "invalid_amount":
        bad = json.loads(json.dumps(plan))
        bad["components"][0]["amount"]["amount"] = 250000  # a JSON number: rejected, never rounded
        events.append(w.event(PLAN_APPROVED, bad))
    else:
        events.append(w.event(PLAN_APPROVED, plan))
    if kind == "inkind":
        total = Money.parse("1200.00", "EUR")
        first, second = split_minor(total.minor, [60, 40])
        events += [
            w.event(DELIVERY_CONFIRMED, samples.sample_delivery_confirmed(
                cid, plan_id, amount=Money(first, "EUR").format_amount(), invoice_number=f"INV-{cid}-1")),
            w.event(MILESTONE_VERIFIED, samples.sample_milestone_verified(cid, plan_id)),
            w.event(DELIVERY_CONFIRMED, samples.sample_delivery_confirmed(
                cid, plan_id, tranche_seq=2, amount=Money(second, "EUR").format_amount(),
                invoice_number=f"INV-{cid}-2")),
        ]
    if kind == "withdrawn":
        events.append(w.event(CASE_WITHDRAWN, samples.sample_case_withdrawn(cid)))
    if kind == "out_of_order":
        events = [events[2], events[1], events[0]]  # the plan and the return before the case
    case.records = events


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


def build_scenario(seed: int, n_cases: int, *, duplicate_share: float = 0.12) -> Scenario:
    rng = random.Random(f"cases:{seed}")
    prefix = f"CHAOS{seed}"
    kinds = rng.choices(list(KINDS), weights=[w for w, _ in KINDS.values()], k=n_cases)
    blocked: list[str] = []
    cases = []
    for i, kind in enumerate(kinds):
        case = Case(f"{prefix}-{i:06d}", kind, KINDS[kind][1])
        _build(rng, case, blocked)
        cases.append(case)
    budget_cases = sum(c.kind == "budget" for c in cases)
    # the budget covers 60 % of its grants (at least one); the rest are held
    budget_fits = max(1, (budget_cases * 6) // 10) if budget_cases else 0
    queues = [list(c.records) for c in cases]
    records: list[Record] = []
    late: list[tuple[int, Record]] = []  # (index to insert at, record): re-deliveries long after the first
    duplicates = 0
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        record = queue.pop(0)
        records.append(record)
        if rng.random() < duplicate_share:  # at-least-once producers deliver some events 2-3 times
            for _ in range(rng.choice([1, 2])):
                duplicates += 1
                if rng.random() < 0.5:
                    records.append(record)  # at once (a retried send)
                else:  # later, after the case moved on (a producer replaying its log)
                    late.append((len(records) + rng.randrange(1, 4 * n_cases + 2), record))
    for index, record in sorted(late, key=lambda item: item[0], reverse=True):
        records.insert(min(index, len(records)), record)
    garbage = garbage_records()
    for record in garbage:
        records.insert(rng.randrange(len(records) + 1), record)
    probe_rng = random.Random(f"probes:{seed}")
    probes = []
    for i in range(50):
        probe = Case(f"{prefix}-P{i:03d}", "cash", KINDS["cash"][1])
        _build(probe_rng, probe, [])
        probes.append(probe)
    return Scenario(seed, prefix, cases, records, duplicates, len(garbage), blocked, budget_cases, budget_fits,
                    probes)
