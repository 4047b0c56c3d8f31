"""Eligibility service: `faststream run eligibility.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

import yaml
from faststream import FastStream
from reintegra.service import ServiceBuilder
from reintegra.topics import INTAKE_CASE_EVENTS

from eligibility.domain.programmes import Programme, programmes_from_config
from eligibility.handlers import make_handler

DEFAULT_PROGRAMMES = Path(__file__).parent / "programmes.yaml"


def load_programmes(path: Path | None) -> dict[str, Programme]:
    with (path or DEFAULT_PROGRAMMES).open(encoding="utf-8") as f:
        return programmes_from_config(yaml.safe_load(f))


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
