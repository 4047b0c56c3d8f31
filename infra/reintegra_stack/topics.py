"""Create the Reintegra topics (``reintegra.topics.ALL_TOPICS``) that do not exist yet.

Used by ``reintegra topics`` (the one-shot compose service), the dev supervisor and tests.
Existing topics keep their partitions (resizing would move keys between partitions and break
per-case order); their configs are brought to what Reintegra needs (e.g. the dead-letter size
limit) while every other override an operator set is kept. Where the broker cannot describe or
alter configs (Tansu), that step is skipped with a warning.

The topics that keep records' original bytes (`upstream.case-events.v1.invalid` and every `.dlq`)
hold personal data, so they get a bounded retention (`retention.ms`): 7 days, or
`REINTEGRA_DEAD_LETTER_RETENTION_DAYS`. Unset, 7 days is a ceiling: an existing topic keeping its
records longer (or following the broker's default) is brought down to it, one an operator set
shorter keeps its own. Set, it is the retention: every such topic is brought to exactly that.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code
from reintegra.topics import ALL_TOPICS, DEAD_LETTER_SUFFIX

log = logging.getLogger(__name__)

__all__ = ["ensure_topics"]


def _replication_factor() -> int:
    return int(os.environ.get("REINTEGRA_TOPIC_REPLICATION", "1"))


# Dead-letter topics keep the original record plus reason headers: a record that was just within the
# broker's size limit must still fit there once the headers are added.
DEAD_LETTER_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


RETENTION_ENV = "REINTEGRA_DEAD_LETTER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 7
_DAY_MS = 24 * 3600 * 1000


def holds_original_bytes(topic: str) -> bool:
    """Topics whose records are other topics' records, byte for byte: personal data included."""
    return topic.endswith((".invalid", DEAD_LETTER_SUFFIX))


def original_bytes_retention() -> tuple[int, bool]:
    """(retention.ms of the topics holding original bytes, whether REINTEGRA_DEAD_LETTER_RETENTION_DAYS set it)."""
    raw = os.environ.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS * _DAY_MS, False
    try:
        days = float(raw)
    except ValueError:
        raise ValueError(f"{RETENTION_ENV} must be a number of days (e.g. 7 or 0.5), not {raw!r}") from None
    ms = round(days * _DAY_MS) if math.isfinite(days) else 0
    if ms < 1 or ms > 2**63 - 1:
        raise ValueError(f"{RETENTION_ENV} must be a positive number of days, not {raw!r}: "
                         "these topics hold personal data and may not keep it for ever")
    return ms, True


def topic_configs(topic: str) -> dict[str, str]:
    """The configs a topic is created with (and that `align_topic_configs` brings existing ones to)."""
    if holds_original_bytes(topic):
        retention_ms, _ = original_bytes_retention()
        return {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES), "retention.ms": str(retention_ms)}
    return {}


def _needs_change(key: str, wanted: str, entry: tuple | None, api_version: int, retention_is_set: bool) -> bool:
    """Whether an existing topic's `key` (its describe_configs entry, None if absent) must be set to `wanted`."""
    current = entry[1] if entry is not None else None
    if key != "retention.ms":
        return current != wanted
    if entry is None or not _is_topic_override(api_version, entry):
        return True  # the broker's default, whatever it is today: not a bound this topic owns
    if retention_is_set:
        return current != wanted
    try:
        return not 0 < int(current) <= int(wanted)  # -1 (for ever) or longer: too long; shorter is fine
    except (TypeError, ValueError):
        return True


async def ensure_topics(
    bootstrap_servers: str,
    partitions: int = 6,
    topics: tuple[str, ...] = ALL_TOPICS,
    timeout_s: float = 60.0,
) -> None:
    """Create missing topics, then wait until metadata shows each with a leader per partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="reintegra-topics")
    await admin.start()
    try:
        missing = [t for t in topics if t not in set(await admin.list_topics())]
        created: set[str] = set()
        if missing:
            replication = _replication_factor()
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication,
                          topic_configs=topic_configs(t)) for t in missing]
            )
            for topic, error_code, *_ in response.topic_errors:
                error = for_code(error_code)
                if error_code == 0:
                    created.add(topic)
                # another process (a second supervisor, the compose job) may have won the race
                elif error is not TopicAlreadyExistsError:
                    raise error(f"creating topic {topic!r} failed")
            if created:
                log.info("created topics: %s", ", ".join(t for t in missing if t in created))
        await _wait_for_leaders(admin, topics, timeout_s)
        existing = tuple(t for t in topics if t not in created)
        if existing:
            await align_topic_configs(admin, existing)
    finally:
        await admin.close()


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source: an override set on this topic


async def align_topic_configs(admin: AIOKafkaAdminClient, topics: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Set the configs Reintegra needs on existing topics; returns what was changed, per topic.

    AlterConfigs replaces a topic's whole set of overrides, so the current overrides are read
    first and sent back with ours: an operator's compaction or other settings survive, and so does
    a retention shorter than the ceiling on the topics holding original bytes (see the module's
    docstring)."""
    wanted = {t: topic_configs(t) for t in topics if topic_configs(t)}
    if not wanted:
        return {}
    _, retention_is_set = original_bytes_retention()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in wanted])
    except Exception as exc:  # noqa: BLE001 - e.g. Tansu, which has no DescribeConfigs
        log.warning("cannot read topic configs (%r); existing topics keep theirs", exc)
        return {}
    to_alter: dict[str, dict[str, str]] = {}
    changed: dict[str, dict[str, str]] = {}
    for response in responses:
        for error_code, _message, _type, topic, entries, *_ in response.resources:
            if error_code != 0 or topic not in wanted:
                log.warning("cannot read the configs of %s (error %d); left as they are", topic, error_code)
                continue
            current = {entry[0]: entry for entry in entries}
            overrides = {entry[0]: entry[1] for entry in entries if _is_topic_override(response.API_VERSION, entry)}
            changes = {k: v for k, v in wanted[topic].items()
                       if _needs_change(k, v, current.get(k), response.API_VERSION, retention_is_set)}
            if changes:
                to_alter[topic] = {**overrides, **changes}
                changed[topic] = changes
    if not to_alter:
        return {}
    try:
        altered = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs=c) for t, c in to_alter.items()])
    except Exception as exc:  # noqa: BLE001 - e.g. Tansu, which reads configs but cannot alter them
        log.warning("cannot alter topic configs (%r); existing topics keep theirs", exc)
        return {}
    for response in altered:
        for error_code, message, _type, topic in response.resources:
            if error_code != 0:
                log.warning("cannot alter the configs of %s (error %d: %s)", topic, error_code, message)
                changed.pop(topic, None)
    for topic, changes in changed.items():
        log.info("topic %s: set %s", topic, ", ".join(f"{k}={v}" for k, v in sorted(changes.items())))
    return changed


def _is_topic_override(api_version: int, entry: tuple) -> bool:
    if api_version == 0:
        return not entry[3] and not entry[2]  # v0: is_default False, not read-only
    return entry[3] == _DYNAMIC_TOPIC_CONFIG


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: tuple[str, ...], timeout_s: float) -> None:
    # Creation is asynchronous on the broker: producers racing ahead would see
    # UNKNOWN_TOPIC_OR_PARTITION / LEADER_NOT_AVAILABLE until every partition has a leader.
    deadline = time.monotonic() + timeout_s
    while True:
        not_ready = _topics_without_leaders(await admin.describe_topics(list(topics)), topics)
        if not not_ready:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics without leaders after {timeout_s:.0f} s: {', '.join(sorted(not_ready))}")
        await asyncio.sleep(0.25)


def _topics_without_leaders(described: list[dict], wanted: tuple[str, ...]) -> set[str]:
    ready = {
        t["topic"]
        for t in described
        if t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
    }
    return set(wanted) - ready
