"""The topics that keep original records (`.invalid`, `.dlq`: personal data) keep them a bounded time,
on a real broker: created so, and existing ones brought to it by `reintegra topics`."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from reintegra.topics import ALL_TOPICS, UPSTREAM_CASE_EVENTS, UPSTREAM_INVALID
from reintegra_stack.topics import (
    DEAD_LETTER_MAX_MESSAGE_BYTES,
    RETENTION_ENV,
    align_topic_configs,
    ensure_topics,
    original_bytes_retention,
    topic_configs,
)

DAY_MS = 24 * 3600 * 1000
WEEK_MS = 7 * DAY_MS


# --- the configs, without a broker -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "retention_ms", "explicit"),
    [
        (None, WEEK_MS, False),
        ("", WEEK_MS, False),
        ("  ", WEEK_MS, False),
        ("7", WEEK_MS, True),
        ("30", 30 * DAY_MS, True),
        ("0.5", DAY_MS // 2, True),
        (" 2 ", 2 * DAY_MS, True),
    ],
)
def test_the_retention_comes_from_the_environment(monkeypatch, value, retention_ms, explicit):
    if value is None:
        monkeypatch.delenv(RETENTION_ENV, raising=False)
    else:
        monkeypatch.setenv(RETENTION_ENV, value)
    assert original_bytes_retention() == (retention_ms, explicit)


@pytest.mark.parametrize("value", ["0", "-1", "-7", "seven", "inf", "nan", "1e300"])
def test_a_retention_that_is_not_a_bound_is_refused(monkeypatch, value):
    monkeypatch.setenv(RETENTION_ENV, value)
    with pytest.raises(ValueError, match=RETENTION_ENV):
        original_bytes_retention()


@pytest.mark.parametrize(
    ("topic", "bounded"),
    [
        (UPSTREAM_INVALID, True),
        ("reintegra.intake.case-events.v1.dlq", True),
        ("anything.dlq", True),
        ("something.invalid", True),
        (UPSTREAM_CASE_EVENTS, False),
        ("reintegration.case-status.v1", False),
        ("reintegra.dlq.not-a-suffix", False),
    ],
)
def test_which_topics_are_bounded(monkeypatch, topic, bounded):
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    expected = {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES), "retention.ms": str(WEEK_MS)}
    assert topic_configs(topic) == (expected if bounded else {})


def test_every_topic_holding_original_bytes_is_bounded():
    holding = [t for t in ALL_TOPICS if t.endswith((".dlq", ".invalid"))]
    assert UPSTREAM_INVALID in holding and len(holding) >= 9
    assert all("retention.ms" in topic_configs(t) for t in holding)


def test_reintegra_topics_refuses_a_bad_retention_before_touching_the_broker(monkeypatch):
    from reintegra_stack.cli import app
    from typer.testing import CliRunner

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing there: it must not get that far
    monkeypatch.setenv(RETENTION_ENV, "forever")
    result = CliRunner().invoke(app, ["topics", "--wait", "0"], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert RETENTION_ENV in result.output and "'forever'" in result.output


# --- on the broker -------------------------------------------------------------------------------------


@pytest.fixture
def created() -> list[str]:
    """The topics a test made, deleted after it."""
    return []


@pytest.fixture
async def admin(infra, created):
    if infra.broker_kind == "tansu":
        pytest.skip("Tansu does not implement DescribeConfigs/AlterConfigs")
    client = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await client.start()
    try:
        yield client
    finally:
        if created:
            await client.delete_topics(created)
        await client.close()


_DYNAMIC_TOPIC_CONFIG = 1


async def describe(admin: AIOKafkaAdminClient, topic: str) -> tuple[dict[str, str], dict[str, str], int]:
    """(every config, the topic's own overrides, partitions)."""
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    overrides = {entry[0]: entry[1] for entry in resource[4] if entry[3] == _DYNAMIC_TOPIC_CONFIG}
    (described,) = await admin.describe_topics([topic])
    return configs, overrides, len(described["partitions"])


async def retentions(admin: AIOKafkaAdminClient, topics, expected: list[str | None]) -> list[str | None]:
    """Each topic's own retention.ms, once it reads `expected` or after 15 s: a broker applies an
    AlterConfigs asynchronously (KRaft), so a DescribeConfigs right after it may still show the old value."""
    deadline = time.monotonic() + 15
    while True:
        found = [(await describe(admin, t))[1].get("retention.ms") for t in topics]
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


def name(suffix: str) -> str:
    return f"test.retention.{uuid.uuid4().hex[:10]}{suffix}"


async def create(admin: AIOKafkaAdminClient, created: list[str], topics: dict[str, dict[str, str]]) -> None:
    """Topics made by hand (or by other tools) before `reintegra topics` runs."""
    created.extend(topics)
    await admin.create_topics([NewTopic(t, num_partitions=2, replication_factor=1, topic_configs=c)
                               for t, c in topics.items()])


async def test_the_stack_topics_holding_original_bytes_keep_them_a_week(admin, infra, monkeypatch):
    """The session's broker got its topics from ensure_topics, as `reintegra topics` does."""
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    await ensure_topics(infra.bootstrap_servers)  # a no-op here, unless the broker is an external one
    for topic in ALL_TOPICS:
        _, overrides, _ = await describe(admin, topic)
        if topic.endswith((".dlq", ".invalid")):
            assert overrides.get("retention.ms") == str(WEEK_MS), topic
        else:
            assert "retention.ms" not in overrides, topic  # the broker's default, as before


async def test_new_topics_are_created_bounded(admin, created, infra, monkeypatch):
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    dead_letters, invalid, ordinary = name(".dlq"), name(".invalid"), name("")
    created.extend([dead_letters, invalid, ordinary])
    await ensure_topics(infra.bootstrap_servers, partitions=3, topics=(dead_letters, invalid, ordinary))
    for topic in (dead_letters, invalid):
        configs, overrides, partitions = await describe(admin, topic)
        assert overrides["retention.ms"] == str(WEEK_MS)
        assert configs["max.message.bytes"] == str(DEAD_LETTER_MAX_MESSAGE_BYTES)
        assert partitions == 3
    _, overrides, _ = await describe(admin, ordinary)
    assert "retention.ms" not in overrides


async def test_existing_topics_keeping_records_too_long_are_brought_down_to_the_ceiling(
    admin, created, infra, monkeypatch
):
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    broker_default, for_ever, a_month, a_day = name(".dlq"), name(".invalid"), name(".dlq"), name(".dlq")
    ordinary = name("")
    await create(admin, created, {
        broker_default: {"segment.ms": "3600000"},  # no retention of its own, another override
        for_ever: {"retention.ms": "-1", "cleanup.policy": "delete"},
        a_month: {"retention.ms": str(30 * DAY_MS)},
        a_day: {"retention.ms": str(DAY_MS)},  # an operator's shorter choice
        ordinary: {"retention.ms": "-1"},
    })

    await ensure_topics(infra.bootstrap_servers, partitions=6,
                        topics=(broker_default, for_ever, a_month, a_day, ordinary))

    topics = (broker_default, for_ever, a_month, a_day, ordinary)
    assert await retentions(admin, topics, [str(WEEK_MS), str(WEEK_MS), str(WEEK_MS), str(DAY_MS), "-1"]) == [
        str(WEEK_MS), str(WEEK_MS), str(WEEK_MS), str(DAY_MS), "-1"]
    for topic in topics:
        configs, _, partitions = await describe(admin, topic)
        assert partitions == 2  # never resized
        if topic != ordinary:
            assert configs["max.message.bytes"] == str(DEAD_LETTER_MAX_MESSAGE_BYTES)
    # the other overrides survive
    assert (await describe(admin, broker_default))[1]["segment.ms"] == "3600000"
    assert (await describe(admin, for_ever))[1]["cleanup.policy"] == "delete"
    # aligned: nothing more to change
    assert await align_topic_configs(admin, topics) == {}


async def test_a_configured_retention_is_applied_exactly_to_existing_topics(admin, created, infra, monkeypatch):
    longer, shorter, unset, ordinary = name(".dlq"), name(".invalid"), name(".dlq"), name("")
    await create(admin, created, {
        longer: {"retention.ms": str(WEEK_MS)},
        shorter: {"retention.ms": str(3600 * 1000)},
        unset: {},
        ordinary: {"retention.ms": str(DAY_MS)},
    })
    topics = (longer, shorter, unset, ordinary)

    monkeypatch.setenv(RETENTION_ENV, "2")
    await ensure_topics(infra.bootstrap_servers, topics=topics)
    two_days = [str(2 * DAY_MS)] * 3 + [str(DAY_MS)]
    assert await retentions(admin, topics, two_days) == two_days

    # raised later: existing topics follow (the bound is the setting, not a ceiling, once it is set)
    monkeypatch.setenv(RETENTION_ENV, "14")
    changed = await align_topic_configs(admin, topics)
    assert changed == {t: {"retention.ms": str(14 * DAY_MS)} for t in (longer, shorter, unset)}
    two_weeks = [str(14 * DAY_MS)] * 3 + [str(DAY_MS)]
    assert await retentions(admin, topics, two_weeks) == two_weeks
    assert await align_topic_configs(admin, topics) == {}

    # and back to the default: 14 days is longer than the ceiling of 7
    monkeypatch.delenv(RETENTION_ENV)
    await ensure_topics(infra.bootstrap_servers, topics=topics)
    a_week = [str(WEEK_MS)] * 3 + [str(DAY_MS)]
    assert await retentions(admin, topics, a_week) == a_week


async def test_a_bad_retention_changes_nothing(admin, created, infra, monkeypatch):
    topic = name(".dlq")
    await create(admin, created, {topic: {"retention.ms": "-1"}})
    monkeypatch.setenv(RETENTION_ENV, "0")
    with pytest.raises(ValueError, match=RETENTION_ENV):
        await ensure_topics(infra.bootstrap_servers, topics=(topic,))
    assert (await describe(admin, topic))[1]["retention.ms"] == "-1"
