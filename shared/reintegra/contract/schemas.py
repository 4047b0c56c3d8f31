"""JSON Schemas of the upstream payloads, generated from the models that validate them.

    python -m reintegra.contract.schemas <dir>

The schemas document the contract for upstream teams and the AsyncAPI spec. The models stay
the authority: a few rules (phone validity, shares summing to 100, one currency per plan)
have no JSON Schema form and are described only in the contract page.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reintegra.contract.upstream import EVENT_TYPES


def json_schemas() -> dict[str, dict]:
    """Event type -> JSON Schema of its `data`."""
    schemas = {}
    for event_type, model in EVENT_TYPES.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:reintegra:schema:{event_type}"
        schema["title"] = f"{event_type} data"
        schemas[event_type] = schema
    return schemas


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write `<event type>.schema.json` per event type into out_dir; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in json_schemas().items():
        path = out_dir / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m reintegra.contract.schemas <dir>", file=sys.stderr)
        return 2
    for path in export_json_schemas(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
