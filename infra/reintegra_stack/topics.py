"""Create the Reintegra topics (``reintegra.topics.ALL_TOPICS``) that do not exist yet.

Used by ``reintegra topics`` (the one-shot compose service), the dev supervisor and tests.
Works on Apache Kafka and on Tansu: only CreateTopics and Metadata requests are sent
(Tansu does not support CreatePartitions, so existing topics are never resized).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from reintegra.topics import ALL_TOPICS, DEAD_LETTER_SUFFIX

log = logging.getLogger(__name__)

__all__ = ["ensure_topics"]


def _replication_factor() -> int:
    return int(os.environ.get("REINTEGRA_TOPIC_REPLICATION", "1"))


# Dead-letter topics keep the original record plus reason headers: a record that was just within the
# broker's size limit must still fit there once the headers are added.
DEAD_LETTER_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def topic_configs(topic: str) -> dict[str, str]:
    if topic.endswith((".invalid", DEAD_LETTER_SUFFIX)):
        return {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)}
    return {}


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
        if missing:
            replication = _replication_factor()
            response = await admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication,
                          topic_configs=topic_configs(t)) for t in missing]
            )
            for topic, error_code, *_ in response.topic_errors:
                error = for_code(error_code)
                # another process (a second supervisor, the compose job) may have won the race
                if error_code != 0 and error is not TopicAlreadyExistsError:
                    raise error(f"creating topic {topic!r} failed")
            log.info("created topics: %s", ", ".join(missing))
        await _wait_for_leaders(admin, topics, timeout_s)
    finally:
        await admin.close()


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
