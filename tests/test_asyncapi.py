"""The committed AsyncAPI document and JSON Schemas are what the code generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reintegra.contract.schemas import export_json_schemas
from reintegra.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parents[1]
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
SCHEMAS = ROOT / "docs" / "schemas"


def test_committed_asyncapi_is_what_the_code_generates() -> None:
    # A subprocess: creating the service apps installs a global tracer provider, which must
    # not leak into this test session.
    result = subprocess.run(
        [sys.executable, "-m", "reintegra_stack.cli", "asyncapi", "--check"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_asyncapi_lists_every_topic_with_a_payload_schema() -> None:
    doc = json.loads(ASYNCAPI.read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert set(ALL_TOPICS) <= addresses

    messages, schemas = doc["components"]["messages"], doc["components"]["schemas"]
    for name, channel in doc["channels"].items():
        for reference in channel["messages"].values():
            payload = messages[reference["$ref"].rsplit("/", 1)[1]]["payload"]
            target = schemas[payload["$ref"].rsplit("/", 1)[1]]
            assert set(target) - {"title"}, f"channel {name} has no payload schema"

    payload_names = json.dumps(doc["components"]["schemas"])
    for event_type in ("reintegration.plan.approved.v1", "reintegration.grant.completed.v1",
                       "reintegration.case.rejected.v1"):
        assert f'"const": "{event_type}"' in payload_names


def test_committed_json_schemas_match_the_export(tmp_path: Path) -> None:
    exported = {p.name: p.read_text(encoding="utf-8") for p in export_json_schemas(tmp_path)}
    committed = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.schema.json")}
    assert committed == exported, "run: python -m reintegra.contract.schemas docs/schemas"
