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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a rule file that hides a mistake."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_programmes(path: Path | None) -> dict[str, Programme]:
    """Read and validate the programme file; any problem names the file and the key."""
    path = Path(path or DEFAULT_PROGRAMMES)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgrammeConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
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
