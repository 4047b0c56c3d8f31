"""Reading the local trace files (one JSON line per span, one file per service) back as trees."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from rich.tree import Tree


def load_trace(trace_dir: Path, trace_id: str) -> list[dict]:
    spans = []
    needle = f'"trace_id":"{trace_id}"'
    for path in sorted(trace_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            spans += [json.loads(line) for line in f if needle in line]
    return sorted(spans, key=lambda s: s["start_ns"])


def services_in(spans: list[dict]) -> list[str]:
    return sorted({s["service"] for s in spans if s.get("service")})


def render_trace(trace_id: str, spans: list[dict]) -> Tree:
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict]] = defaultdict(list)
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None  # an unexported parent: show as a root
        children[parent].append(span)
    start = spans[0]["start_ns"] if spans else 0
    tree = Tree(f"trace [bold]{trace_id}[/] — {len(spans)} spans across {', '.join(services_in(spans))}")

    def add(node: Tree, parent_id: str | None) -> None:
        for span in children.get(parent_id, []):
            offset_ms = (span["start_ns"] - start) / 1e6
            took_ms = (span["end_ns"] - span["start_ns"]) / 1e6
            case = span["attributes"].get("reintegra.case_id", "")
            kind = span["attributes"].get("cloudevents.type", "")
            label = (f"[cyan]{span['service']}[/] {span['name']}  "
                     f"[dim]+{offset_ms:.1f} ms, {took_ms:.1f} ms {kind} {case}[/]")
            add(node.add(label), span["span_id"])

    add(tree, None)
    return tree
