"""`reintegra topics` on a broker where some topics already exist (created by hand or by other tools)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from reintegra_stack.topics import DEAD_LETTER_MAX_MESSAGE_BYTES, align_topic_configs, ensure_topics


async def _configs_and_partitions(admin: AIOKafkaAdminClient, topic: str) -> tuple[dict[str, str], int]:
    (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    (described,) = await admin.describe_topics([topic])
    return configs, len(described["partitions"])


async def test_existing_dead_letter_topics_get_the_size_limit_and_keep_other_overrides(infra):
    if infra.broker_kind == "tansu":
        pytest.skip("Tansu does not implement DescribeConfigs/AlterConfigs")
    dead_letters = f"test.hand-made.{uuid.uuid4().hex[:8]}.dlq"
    ordinary = f"test.hand-made.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(dead_letters, num_partitions=2, replication_factor=1, topic_configs={"retention.ms": "1234567"}),
            NewTopic(ordinary, num_partitions=2, replication_factor=1, topic_configs={"retention.ms": "7654321"}),
        ])
        await ensure_topics(infra.bootstrap_servers, partitions=6, topics=(dead_letters, ordinary))

        configs, partitions = await _configs_and_partitions(admin, dead_letters)
        assert configs["max.message.bytes"] == str(DEAD_LETTER_MAX_MESSAGE_BYTES)
        assert configs["retention.ms"] == "1234567"  # the operator's override survives
        assert partitions == 2  # never resized: keys would move and per-case order break

        configs, partitions = await _configs_and_partitions(admin, ordinary)
        assert configs["retention.ms"] == "7654321" and configs["max.message.bytes"] != str(DEAD_LETTER_MAX_MESSAGE_BYTES)
        assert partitions == 2

        assert await align_topic_configs(admin, (dead_letters, ordinary)) == {}  # already aligned: no change
    finally:
        await admin.delete_topics([dead_letters, ordinary])
        await admin.close()
