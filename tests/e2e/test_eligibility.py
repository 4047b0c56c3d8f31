"""Eligibility on the real broker and Postgres: already assisted across instances, revisions that
cannot overpay, answers for events the case can no longer take."""

from __future__ import annotations

from reintegra.contract import samples
from reintegra.contract.upstream import (
    CASE_REGISTERED,
    CASE_WITHDRAWN,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
)
from reintegra.relay import partition_for_key
from reintegra.topics import INTAKE_CASE_EVENTS
from support import instances_sharing, publish, second_instance, watch

GROUP = "reintegra-eligibility"


def second_eligibility_instance(stack):
    return second_instance(stack, "eligibility")


async def two_instances_owning(bootstrap_servers: str, timeout_s: float = 60) -> list[set[int]]:
    return await instances_sharing(bootstrap_servers, GROUP, INTAKE_CASE_EVENTS, 2, timeout_s)


def case_id_on(partitions: set[int], prefix: str, start: int) -> tuple[str, int]:
    n = start
    while partition_for_key(f"{prefix}-{n}".encode(), 6) not in partitions:
        n += 1
    return f"{prefix}-{n}", n + 1


def case_records(case_id: str, *, document_number: str, source: str = samples.DEFAULT_SOURCE,
                 vulnerabilities: list[str] | None = None, plan: dict | None = None) -> list:
    registered = samples.sample_case_registered(case_id, document_number=document_number, person_id=f"P-{case_id}",
                                                vulnerabilities=vulnerabilities or [])
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, registered, source=source),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id), source=source),
        samples.cloudevent(PLAN_APPROVED, case_id, plan or samples.sample_plan_approved(
            case_id, f"PL-{case_id}", cash_amount="250000", currency="XOF", inkind=False), source=source),
    ]
    return [samples.structured_record(e) for e in events]


async def test_same_person_in_two_cases_at_once_on_two_instances_gives_one_approval(stack, run_id):
    with second_eligibility_instance(stack):
        members = await two_instances_owning(stack.bootstrap_servers)
        pairs, n = [], 0
        for _ in range(4):  # each pair: one case on each instance's partitions, same person
            first, n = case_id_on(members[0], f"DUP-{run_id}", n)
            second, n = case_id_on(members[1], f"DUP-{run_id}", n)
            pairs.append((first, second))
        cases = [c for pair in pairs for c in pair]
        watcher = await watch(stack.bootstrap_servers, f"DUP-{run_id}", {})
        try:
            records = []
            for i, (first, second) in enumerate(pairs):
                document = f"CI-DUP{run_id}{i}"
                # The second system registers the same person under its own case id and source.
                records += case_records(first, document_number=document)
                records += case_records(second, document_number=document.lower().replace("-", " "),
                                        source="urn:casesys:ma-oujda")
            # Interleave so both cases of a pair reach eligibility in the same moment.
            await publish(stack.bootstrap_servers, [records[i] for step in range(3) for i in range(step, len(records), 3)])
            decided = ("eligibility.approved", "eligibility.review_required", "eligibility.rejected")
            done = await watcher.wait_until(
                lambda: all(any(s in decided for s, _ in watcher.observed.history.get(c, ())) for c in cases), 90)
            assert done, {c: [s for s, _ in watcher.observed.history.get(c, ())] for c in cases}
        finally:
            await watcher.stop()
    for first, second in pairs:
        outcomes = {c: [s for s, _ in watcher.observed.history[c] if s in decided] for c in (first, second)}
        assert sorted(o[0] for o in outcomes.values()) == ["eligibility.approved", "eligibility.review_required"], outcomes
        held = first if outcomes[first] == ["eligibility.review_required"] else second
        other = second if held == first else first
        reasons = watcher.observed.statuses_of(held, "eligibility.review_required")[0]["reasons"]
        duplicate = [r for r in reasons if r["code"] == "possible_duplicate_beneficiary"]
        assert duplicate and other in duplicate[0]["message"], reasons


async def test_a_revision_is_judged_on_the_whole_grant(stack, run_id):
    """Paid 300 EUR cash, then a revision dropping it for a new 600 EUR component: alone the revision
    fits the 1,800 EUR ceiling, with what was already released it does not, so it is refused."""
    case_id = f"REV-{run_id}"
    plan_id = f"PL-{case_id}"
    original = samples.sample_plan_approved(case_id, plan_id)  # 300 cash now + 1,200 in kind (60 % now)
    revision = samples.sample_plan_approved(case_id, plan_id, cash_amount=None)
    revision["components"].append({**revision["components"][0], "component_id": "c3",
                                   "amount": {"amount": "600.00", "currency": "EUR"}})
    watcher = await watch(stack.bootstrap_servers, case_id, {})
    try:
        await publish(stack.bootstrap_servers, case_records(case_id, document_number=f"D-{case_id}", plan=original))
        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["payment.settled"] == 1, 60)
        await publish(stack.bootstrap_servers, [samples.structured_record(
            samples.cloudevent(PLAN_APPROVED, case_id, revision))])
        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["case.rejected"] == 1, 30)
        await watcher.wait_until(lambda: False, 2)  # nothing else may follow the refusal
    finally:
        await watcher.stop()
    refusal = watcher.observed.statuses_of(case_id, "case.rejected")[0]
    assert "plan_over_ceiling" in {r["code"] for r in refusal["reasons"]}, refusal
    assert refusal["rejected_event"]["type"] == PLAN_APPROVED
    released = [d for d in watcher.observed.statuses_of(case_id, "tranche.released")]
    assert {d["component_id"] for d in released} == {"c1", "c2"}, released
    assert not watcher.observed.statuses_of(case_id, "tranche.cancelled")


async def test_events_for_a_withdrawn_case_get_an_answer(stack, run_id):
    case_id = f"WD-{run_id}"
    plan_id = f"PL-{case_id}"
    records = case_records(case_id, document_number=f"D-{case_id}",
                           plan=samples.sample_plan_approved(case_id, plan_id, cash_amount=None))
    records.append(samples.structured_record(samples.cloudevent(CASE_WITHDRAWN, case_id,
                                                                samples.sample_case_withdrawn(case_id))))
    milestone = samples.cloudevent(MILESTONE_VERIFIED, case_id, samples.sample_milestone_verified(case_id, plan_id))
    watcher = await watch(stack.bootstrap_servers, case_id, {})
    try:
        await publish(stack.bootstrap_servers, records)
        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["tranche.cancelled"] >= 1, 60)
        await publish(stack.bootstrap_servers, [samples.structured_record(milestone)])
        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["case.rejected"] == 1, 30)
    finally:
        await watcher.stop()
    refusal = watcher.observed.statuses_of(case_id, "case.rejected")[0]
    assert [r["code"] for r in refusal["reasons"]] == ["case_withdrawn"]
    assert refusal["rejected_event"] == {"id": milestone["id"], "type": MILESTONE_VERIFIED,
                                         "source": samples.DEFAULT_SOURCE}
