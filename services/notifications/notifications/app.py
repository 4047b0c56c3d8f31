"""Notifications service: `faststream run notifications.app:create_app --factory`."""

from __future__ import annotations

from pathlib import Path

import yaml
from faststream import FastStream
from reintegra.service import ServiceBuilder
from reintegra.settings import Settings
from reintegra.topics import NOTICE_REQUESTS

from notifications.adapters.sms_gateway import FileSmsGateway, SmsGateway
from notifications.domain.messages import Templates
from notifications.handlers import make_handler
from notifications.sender import SenderSettings, run_sender

TEMPLATES = Path(__file__).parent / "templates.yaml"


def load_templates(path: Path = TEMPLATES) -> Templates:
    with path.open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    return Templates(config["fallback_language"], config["templates"])


def build_gateway(settings: Settings) -> SmsGateway:
    if settings.sms_gateway != "file":
        raise ValueError(f"unknown SMS gateway {settings.sms_gateway!r} (available: file)")
    return FileSmsGateway(settings.sms_outbox_file or settings.state_dir / "sms" / "outbox.log")


def create_app() -> FastStream:
    builder = ServiceBuilder("notifications", schema="notifications", migrations=Path(__file__).parent / "migrations")
    builder.consume(
        NOTICE_REQUESTS,
        make_handler(load_templates()),
        title="notice-requests",
        description="Requests to tell a beneficiary something (eligibility approved, payment settled); "
        "rendered in their language and sent as SMS.",
    )
    gateway = build_gateway(builder.settings)
    sender_settings = SenderSettings()  # NOTIFICATIONS_SMS_* (lease, attempts, backoff)

    async def sms_sender(runtime):
        await run_sender(runtime, gateway, sender_settings)

    builder.background(sms_sender)
    return builder.build()
