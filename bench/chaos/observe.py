"""What came out, read back at the end from the beginning of every topic and from every store, and
the invariants checked on it (Jepsen-style: everything read, compared with what was sent)."""

from __future__ import annotations

import asyncio
import glob
import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from reintegra.topics import CASE_STATUS, CONSUMED_TOPICS, UPSTREAM_INVALID, dead_letter_topic
from reintegra_stack.demo.watch import topic_partitions

from .cases import Scenario

SCHEMAS = ("intake", "eligibility", "disbursement", "notifications", "finance")
DLQ_TOPICS = tuple(dead_letter_topic(t) for t in CONSUMED_TOPICS)
# Statuses a case has at most one of (one distinct event id); the others repeat per tranche.
ONCE_PER_CASE = ("case.accepted", "eligibility.approved", "eligibility.rejected",
                 "eligibility.review_required", "grant.completed")


def short_status(event_type: str) -> str:
    return event_type.removeprefix("reintegration.").rsplit(".", 1)[0]


def stage(status: str) -> int:
    """intake → eligibility → disbursement: the order of the stages a case's statuses come from."""
    if status.startswith("case."):
        return 0
    if status.startswith("eligibility."):
        return 1
    return 2


@dataclass
class Progress:
    """Live view of the status topic, from its beginning: each case's latest distinct status."""

    prefix: str
    last: dict[str, str] = field(default_factory=dict)
    seen_ids: set = field(default_factory=set)

    def apply(self, value: bytes) -> None:
        try:
            event = json.loads(value)
        except ValueError:
            return
        case_id = event.get("subject") or ""
        if not case_id.startswith(self.prefix) or event.get("id") in self.seen_ids:
            return
        self.seen_ids.add(event.get("id"))
        self.last[case_id] = short_status(event.get("type", ""))


class ProgressReader:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.progress = Progress(prefix)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="earliest", max_poll_records=5000)
        await self._consumer.start()
        parts = await topic_partitions(self.bootstrap, (CASE_STATUS,))
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)

    async def poll(self, timeout_ms: int = 500) -> None:
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        except Exception:  # noqa: BLE001 - the broker may be restarting: try again next poll
            await asyncio.sleep(0.5)
            return
        for records in batches.values():
            for record in records:
                self.progress.apply(record.value)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def read_topics(bootstrap: str, topics: tuple[str, ...], timeout_s: float = 120) -> dict[str, list]:
    """Every record of every topic, from the beginning to the end offsets of now, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                max_poll_records=10000, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    out: dict[str, list] = defaultdict(list)
    try:
        parts = await topic_partitions(bootstrap, topics)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                out[tp.topic].extend(records)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if remaining:
            raise RuntimeError(f"could not read {sorted(map(str, remaining))} to their end within {timeout_s} s")
    finally:
        await consumer.stop()
    return out


async def consumer_lag(bootstrap: str) -> dict[str, int]:
    """Per consumer group of the services: records not yet consumed (end offset - committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    lag: dict[str, int] = {}
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith("reintegra-")]
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if not offsets:
                continue
            ends = await consumer.end_offsets(list(offsets))
            lag[group] = sum(max(0, ends[tp] - meta.offset) for tp, meta in offsets.items() if meta.offset >= 0)
    finally:
        await consumer.stop()
        await admin.close()
    return lag


async def group_members(bootstrap: str) -> dict[str, int]:
    """Members of each service's consumer group (two instances: two members)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups() if g[0].startswith("reintegra-"))
        out = {}
        for group in groups:
            try:
                for response in await admin.describe_consumer_groups([group]):
                    for described in response.groups:
                        out[group] = len(described[5])
            except Exception as exc:  # noqa: BLE001 - a figure, not a check
                out[group] = f"? ({type(exc).__name__})"
        return out
    finally:
        await admin.close()


async def db_backlog(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        out = {}
        for schema in SCHEMAS:
            for table in ("outbox", "outbox_refused"):
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.{table}"):
                    out[f"{schema}.{table}"] = await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}")
        return out
    finally:
        await conn.close()


def sms_ids(state_dir: Path) -> Counter:
    """notice id → lines written, over every SMS outbox file under the state dir."""
    ids: Counter = Counter()
    for path in glob.glob(str(state_dir / "sms" / "*.log")):
        for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            match = re.search(r"(?:^|\s)id=(\S+)", line)
            if match:
                ids[match.group(1)] += 1
    return ids


@dataclass
class Check:
    name: str
    ok: bool
    detail: object = None


async def check_everything(scenario: Scenario, bootstrap: str, database_url: str, state_dir: Path,
                           transfers: list[dict], poison_keys: list[str] = ()) -> tuple[list[Check], dict]:
    from disbursement.ledger_check import check_ledger, format_report

    checks: list[Check] = []
    figures: dict = {}
    cases = {c.case_id: c for c in scenario.cases}
    topics = await read_topics(bootstrap, (CASE_STATUS, UPSTREAM_INVALID, *DLQ_TOPICS))

    # --- the status topic, read from its beginning
    history: dict[str, list[dict]] = defaultdict(list)
    ids_seen: set = set()
    redelivered = 0
    for record in topics[CASE_STATUS]:
        event = json.loads(record.value)
        case_id = event.get("subject") or ""
        if case_id not in cases:
            continue
        if event["id"] in ids_seen:
            redelivered += 1  # a status re-published after a crash repeats its id: skipped, as upstream does
            continue
        ids_seen.add(event["id"])
        seq = event.get("sequence", (event.get("data") or {}).get("sequence"))
        history[case_id].append({"status": short_status(event["type"]), "id": event["id"], "sequence": seq,
                                 "partition": record.partition, "offset": record.offset})
    figures["statuses"] = sum(len(h) for h in history.values())
    figures["statuses_redelivered"] = redelivered

    # 1. every case in its expected final state; nothing lost
    wrong = {}
    for case_id, case in cases.items():
        last = history[case_id][-1]["status"] if history.get(case_id) else None
        if not case.accepts(last):
            wrong[case_id] = {"kind": case.kind, "expected": case.expected, "last": last,
                              "statuses": [h["status"] for h in history.get(case_id, [])]}
    lost = {c: w for c, w in wrong.items() if w["last"] is None}
    figures["cases_attempted"] = len(cases)
    figures["cases_in_expected_state"] = len(cases) - len(wrong)
    figures["lost"] = len(lost)
    rejected_expected = [c for c in cases.values() if c.expected in ("case.rejected", "eligibility.rejected")]
    figures["rejected_as_expected"] = sum(1 for c in rejected_expected if c.case_id not in wrong)
    figures["completed"] = sum(1 for c in cases if history.get(c) and history[c][-1]["status"] == "grant.completed")
    checks.append(Check("every case in its expected final state", not wrong,
                        {"count": len(wrong), "examples": dict(list(wrong.items())[:15]),
                         "by_kind": dict(Counter(w["kind"] for w in wrong.values())),
                         "by_last_status": dict(Counter(str(w["last"]) for w in wrong.values()))}))

    # 1b. the budget: exactly what it covers completed, the rest held
    budget = [c for c in cases.values() if c.kind == "budget"]
    done = sum(1 for c in budget if history.get(c.case_id) and history[c.case_id][-1]["status"] == "grant.completed")
    held = sum(1 for c in budget if history.get(c.case_id) and history[c.case_id][-1]["status"] == "grant.held")
    checks.append(Check("the budget covers exactly what it can", (done, held) == (
        scenario.budget_fits, len(budget) - scenario.budget_fits),
        {"completed": done, "held": held, "fits": scenario.budget_fits, "budget_cases": len(budget)}))

    # 2. a status applied twice shows as two distinct event ids of a once-per-case status
    twice = {}
    for case_id, h in history.items():
        counts = Counter(x["status"] for x in h)
        extra = {s: n for s, n in counts.items() if s in ONCE_PER_CASE and n > 1}
        if extra:
            twice[case_id] = extra
    figures["statuses_applied_twice"] = len(twice)
    checks.append(Check("no once-per-case status published twice (distinct ids)", not twice,
                        dict(list(twice.items())[:15])))

    # 3. no status went backwards
    backwards = {}
    with_sequence = any(x["sequence"] is not None for h in history.values() for x in h)
    for case_id, h in history.items():
        if with_sequence:
            seqs = [x["sequence"] for x in h]
            if any(a is None or b is None or b <= a for a, b in zip(seqs, seqs[1:], strict=False)):
                backwards[case_id] = [(x["status"], x["sequence"]) for x in h]
        else:
            stages = [stage(x["status"]) for x in h]
            if any(b < a for a, b in zip(stages, stages[1:], strict=False)):
                backwards[case_id] = [x["status"] for x in h]
    figures["status_order_by"] = "sequence" if with_sequence else "stage (intake → eligibility → disbursement)"
    figures["statuses_backwards"] = len(backwards)
    checks.append(Check(f"no case's status went backwards (by {figures['status_order_by']})", not backwards,
                        dict(list(backwards.items())[:15])))
    if with_sequence:
        # The stream sends no new event to a case after its decision (only re-deliveries, which the
        # inbox drops), so the stages too only go forward, whatever the sequence numbers say.
        by_stage = {}
        for case_id, h in history.items():
            stages = [stage(x["status"]) for x in h]
            if any(b < a for a, b in zip(stages, stages[1:], strict=False)):
                by_stage[case_id] = [x["status"] for x in h]
        figures["statuses_backwards_by_stage"] = len(by_stage)
        checks.append(Check("no case's status went back a stage (intake → eligibility → disbursement)",
                            not by_stage, dict(list(by_stage.items())[:15])))

    # 4. invalid events on .invalid; nothing on the dead-letter topics
    invalid_keys = Counter((r.key or b"").decode(errors="replace") for r in topics[UPSTREAM_INVALID])
    garbage_seen = sum(n for k, n in invalid_keys.items() if not k.startswith(scenario.prefix))
    invalid_cases = [c.case_id for c in cases.values() if c.kind == "invalid_amount"]
    missing_invalid = [c for c in invalid_cases if invalid_keys.get(c, 0) == 0]
    figures["invalid_records"] = sum(invalid_keys.values())
    checks.append(Check("unreadable and invalid events end on .invalid", garbage_seen >= scenario.garbage
                        and not missing_invalid,
                        {"garbage_sent": scenario.garbage, "garbage_on_invalid": garbage_seen,
                         "invalid_cases_missing": missing_invalid[:10]}))
    dlq = Counter()
    poisoned = Counter()
    for topic in DLQ_TOPICS:
        for r in topics.get(topic, []):
            key = (r.key or b"").decode(errors="replace")
            if key in poison_keys:
                poisoned[key] += 1  # published on purpose (consumer.mid_batch): expected here
                continue
            headers = dict(r.headers or ())
            dlq[(topic, (headers.get("reintegra-dlq-reason") or b"?").decode(errors="replace")[:120])] += 1
    figures["dead_letters"] = sum(dlq.values())
    figures["poison_records_dead_lettered"] = sum(poisoned.values())
    checks.append(Check("no dead letters (processing failures)", not dlq,
                        {f"{t} {reason}": n for (t, reason), n in dlq.items()}))
    if poison_keys:
        missing = [k for k in poison_keys if poisoned[k] < 4]
        checks.append(Check("every poison record published on purpose is dead-lettered", not missing,
                            {"missing": missing, "dead_lettered": dict(poisoned)}))

    # 5. the sandbox: at most one executed transfer per payment reference
    ours = transfers  # the sandbox is this run's own (fresh state dir)
    per_ref = Counter(t["reference"] for t in ours)
    dup_refs = {ref: n for ref, n in per_ref.items() if n > 1}
    figures["sandbox_transfers"] = len(ours)
    figures["duplicated_transfers"] = sum(n - 1 for n in dup_refs.values())
    checks.append(Check("at most one executed transfer per payment reference", not dup_refs,
                        dict(list(dup_refs.items())[:15])))

    conn = await asyncpg.connect(database_url)
    try:
        # 6. the ledger's own invariants
        report = await check_ledger(conn)
        checks.append(Check("reintegra ledger check", report.ok, None if report.ok else format_report(report)))

        # 7. what the ledger paid per reference is what the sandbox executed and settled
        instructions = {r["reference"]: dict(r) for r in await conn.fetch(
            "SELECT reference, tranche_reference, state, amount_minor, currency, case_id "
            "FROM disbursement.payment_instructions")}
        ledger_paid = {r["reference"]: (r["amount"], r["currency"]) for r in await conn.fetch(
            "SELECT reference, sum(amount_minor) AS amount, min(currency) AS currency "
            "FROM disbursement.ledger_transfers WHERE kind = 'settle' AND reference IS NOT NULL GROUP BY reference")}
        sandbox_paid: dict[str, list] = {}
        unknown = []
        for t in ours:
            if t["status"] != "settled":
                continue
            instr = instructions.get(t["reference"])
            if instr is None:
                unknown.append(t["reference"])
                continue
            amount = t.get("settled_amount_minor") or t["amount_minor"]
            prev = sandbox_paid.get(instr["tranche_reference"], [0, t["currency"]])
            sandbox_paid[instr["tranche_reference"]] = [prev[0] + amount, t["currency"]]
        mismatches = {}
        for ref in set(ledger_paid) | set(sandbox_paid):
            lp = ledger_paid.get(ref)
            sp = sandbox_paid.get(ref)
            if lp is None or sp is None or int(lp[0]) != int(sp[0]) or lp[1].strip() != sp[1]:
                mismatches[ref] = {"ledger": lp and [int(lp[0]), lp[1]], "sandbox": sp}
        figures["ledger_settled_references"] = len(ledger_paid)
        figures["ledger_mismatches"] = len(mismatches) + len(unknown)
        checks.append(Check("ledger paid per reference == sandbox settled per reference", not mismatches and not unknown,
                            {"mismatches": dict(list(mismatches.items())[:15]), "unknown_references": unknown[:15]}))

        # 8. SMS: at most one per notice id, every notice sent written once
        notices = {r["notice_id"]: r["status"] for r in await conn.fetch(
            "SELECT notice_id, status FROM notifications.notices")}
        written = sms_ids(state_dir)
        dup_sms = {i: n for i, n in written.items() if n > 1}
        unsent = [i for i, s in notices.items() if s == "pending"]
        sent_not_written = [i for i, s in notices.items() if s == "sent" and i not in written]
        figures["sms_written"] = sum(written.values())
        figures["sms_notices"] = len(notices)
        figures["duplicated_sms"] = sum(n - 1 for n in dup_sms.values())
        checks.append(Check("at most one SMS per notice id", not dup_sms, dict(list(dup_sms.items())[:15])))
        checks.append(Check("every notice sent and written", not unsent and not sent_not_written,
                            {"pending": unsent[:10], "sent_not_written": sent_not_written[:10],
                             "pending_count": len(unsent)}))

        # 9. exceptions nobody raised: payments left unresolved or mismatched, open payment exceptions
        open_states = Counter(i["state"] for i in instructions.values()
                              if i["state"] in ("sending", "unknown", "pending", "unresolved", "mismatch"))
        exceptions = 0
        if await conn.fetchval("SELECT to_regclass('disbursement.payment_exceptions') IS NOT NULL"):
            exceptions = await conn.fetchval("SELECT count(*) FROM disbursement.payment_exceptions")
        figures["payment_exceptions"] = exceptions
        checks.append(Check("no payment left open or raised as an exception", not open_states and not exceptions,
                            {"open_instructions": dict(open_states), "payment_exceptions": exceptions}))
    finally:
        await conn.close()

    # 10. nothing left behind: outboxes empty, consumer lag 0
    backlog = await db_backlog(database_url)
    left = {k: v for k, v in backlog.items() if v}
    checks.append(Check("outbox tables empty", not left, left))
    lag = await consumer_lag(bootstrap)
    checks.append(Check("consumer lag 0", not any(lag.values()), lag))
    return checks, figures
