"""Eligibility service: `faststream run eligibility.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

import yaml
from faststream import FastStream
from reintegra.service import ServiceBuilder
from reintegra.topics import INTAKE_CASE_EVENTS

from eligibility.domain.programmes import Programme, ProgrammeConfigError, programmes_from_config
from eligibility.handlers import make_handler

DEFAULT_PROGRAMMES = Path(__file__).parent / "programmes.yaml"


def _duplicate_key(node: yaml.Node, path: tuple[str, ...] = ()) -> tuple[str, int] | None:
    """The path and line of the first key written twice in one mapping. PyYAML silently keeps the
    last of two equal keys; in a rule file that hides a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                return ".".join((*path, key)), key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicate_key(value_node, (*path, key))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, str(index)))
            if found:
                return found
    return None


def load_programmes(path: Path | None) -> dict[str, Programme]:
    """Read and validate the programme file; any problem names the file and the key."""
    path = Path(path or DEFAULT_PROGRAMMES)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgrammeConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
        if duplicate:
            raise ProgrammeConfigError(f"{path}: {duplicate[0]}: the key is written twice (line {duplicate[1]})")
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProgrammeConfigError(f"{path}: not valid YAML: {exc}") from None
    return programmes_from_config(document, source=str(path))


def create_app() -> FastStream:
    builder = ServiceBuilder("eligibility", schema="eligibility", migrations=Path(__file__).parent / "migrations")
    programmes = load_programmes(builder.settings.programme_config)
    builder.consume(
        INTAKE_CASE_EVENTS,
        make_handler(programmes),
        title="intake-case-events",
        description="Accepted cases and their follow-up events from intake; decides eligibility "
        "from the programme config and hands approved grants to disbursement.",
    )
    return builder.build()
