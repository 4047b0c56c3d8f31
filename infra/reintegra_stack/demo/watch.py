"""Follows what the pipeline tells upstream (status topic) and what it refused (dead letters)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from reintegra import jsonfast
from reintegra.money import Money
from reintegra.topics import CASE_STATUS, CONSUMED_TOPICS, UPSTREAM_INVALID, dead_letter_topic

from reintegra_stack.demo.scenario import short_status

DEAD_LETTER_TOPICS = (UPSTREAM_INVALID, *(dead_letter_topic(t) for t in CONSUMED_TOPICS))


@dataclass
class Observed:
    last_status: dict[str, str] = field(default_factory=dict)
    status_counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # case → status → distinct event ids: a redelivered status repeats its id, a status applied twice would not
    status_ids: dict[str, dict[str, set]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    paid_minor: Counter = field(default_factory=Counter)  # currency → minor units settled
    delivered_minor: Counter = field(default_factory=Counter)  # currency → in-kind delivered
    vendors_paid_minor: Counter = field(default_factory=Counter)  # currency → paid to vendors (in kind)
    dead_letters: Counter = field(default_factory=Counter)  # (topic, reason) → count
    trace_ids: dict[str, str] = field(default_factory=dict)
    first_status_at: dict[str, float] = field(default_factory=dict)
    final_status_at: dict[str, float] = field(default_factory=dict)
    # status → (count, monotonic time of the latest one): shows which stage lags under load
    stage_progress: dict[str, tuple[int, float]] = field(default_factory=dict)
    redelivered_statuses: int = 0
    # Statuses that arrived after one with a higher sequence number (kept in the history, but not
    # taken as the case's latest: upstream keeps the highest sequence it has seen).
    late_statuses: int = 0
    last_sequence: dict[str, int] = field(default_factory=dict)
    # case → [(status, data)] in arrival order: what upstream read, reasons included
    history: dict[str, list[tuple[str, dict]]] = field(default_factory=lambda: defaultdict(list))

    def statuses_of(self, case_id: str, status: str) -> list[dict]:
        return [data for s, data in self.history.get(case_id, ()) if s == status]

    def paid(self) -> dict[str, str]:
        return {cur: Money(minor, cur).format_amount() for cur, minor in sorted(self.paid_minor.items())}


async def topic_partitions(bootstrap_servers: str, topics: tuple[str, ...]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


class PipelineWatcher:
    def __init__(self, bootstrap_servers: str, case_prefix: str, final_statuses: dict[str, str] | None = None,
                 *, keep_history: bool = True) -> None:
        self._bootstrap = bootstrap_servers
        self._keep_history = keep_history  # every status's data, for reasons; the benchmark does without
        self._prefix = case_prefix
        self._finals = final_statuses or {}
        self.observed = Observed()
        self._consumer: AIOKafkaConsumer | None = None
        self._settled = 0  # cases whose last status is their expected final one, kept as statuses arrive

    async def start(self) -> None:
        """Start reading from the current end of each topic: call before publishing."""
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                          auto_offset_reset="earliest", max_poll_records=2000)
        await self._consumer.start()
        partitions = await topic_partitions(self._bootstrap, (CASE_STATUS, *DEAD_LETTER_TOPICS))
        self._consumer.assign(partitions)
        ends = await self._consumer.end_offsets(partitions)
        for tp, offset in ends.items():
            self._consumer.seek(tp, offset)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        now = time.monotonic()
        for tp, records in batches.items():
            for record in records:
                if tp.topic == CASE_STATUS:
                    self._on_status(record, now)
                else:
                    self._on_dead_letter(tp.topic, record)

    def _on_status(self, record, now: float) -> None:
        event = jsonfast.loads(record.value)
        case_id = event["subject"]
        if not case_id.startswith(self._prefix):
            return
        status = short_status(event["type"])
        obs = self.observed
        if event["id"] in obs.status_ids[case_id][status]:
            # At-least-once: a status re-published after a crash repeats its id. Like any upstream
            # consumer, ignore it, or a stale copy would look like the case's latest status.
            obs.redelivered_statuses += 1
            return
        sequence = event["data"].get("sequence")
        late = sequence is not None and sequence < obs.last_sequence.get(case_id, -1)
        if late:
            obs.late_statuses += 1
        else:
            if sequence is not None:
                obs.last_sequence[case_id] = sequence
            final = self._finals.get(case_id)
            self._settled += (status == final) - (obs.last_status.get(case_id) == final)
            obs.last_status[case_id] = status
        obs.status_counts[case_id][status] += 1
        obs.status_ids[case_id][status].add(event["id"])
        if self._keep_history:
            obs.history[case_id].append((status, event["data"]))
        obs.first_status_at.setdefault(case_id, now)
        count, _ = obs.stage_progress.get(status, (0, now))
        obs.stage_progress[status] = (count + 1, now)
        if self._finals.get(case_id) == status:
            obs.final_status_at.setdefault(case_id, now)
        traceparent = dict(record.headers or ()).get("traceparent")
        if traceparent and case_id not in obs.trace_ids:
            obs.trace_ids[case_id] = traceparent.decode().split("-")[1]
        amount = event["data"].get("amount")
        if status == "payment.settled" and amount:
            # Cash reached beneficiaries; an in-kind payment settled is a vendor paid for goods.
            paid = obs.vendors_paid_minor if event["data"].get("modality") == "in_kind" else obs.paid_minor
            paid[amount["currency"]] += Money.parse(amount["amount"], amount["currency"]).minor
        if status == "inkind.delivered" and amount:
            obs.delivered_minor[amount["currency"]] += Money.parse(amount["amount"], amount["currency"]).minor

    def _on_dead_letter(self, topic: str, record) -> None:
        headers = dict(record.headers or ())
        reason = headers.get("reintegra-reason-codes") or headers.get("reintegra-dlq-reason") or b"unknown"
        key = (record.key or b"").decode(errors="replace")
        if key and not key.startswith(self._prefix) and topic != UPSTREAM_INVALID:
            return
        self.observed.dead_letters[(topic, reason.decode(errors="replace"))] += 1

    def settled_count(self) -> int:
        """Cases whose last status is the one expected of them."""
        return self._settled

    async def wait_until(self, done: Callable[[], bool], timeout_s: float,
                         on_progress: Callable[[], None] | None = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.poll()
            if on_progress:
                on_progress()
            if done():
                return True
        return False
