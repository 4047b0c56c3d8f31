"""SMS gateways. The local default writes each SMS as one readable line to a file.

Like a real gateway's client reference, the notice id makes sending idempotent: a notice sent
again after a crash (sent, but not yet marked sent) is not written twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from reintegra.privacy import mask_phone


@dataclass(frozen=True)
class Sms:
    message_id: str
    to: str
    language: str
    case_id: str
    text: str


class SmsGateway(Protocol):
    async def send(self, messages: list[Sms]) -> None: ...


class FileSmsGateway:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sent = self._ids_already_written()

    def _ids_already_written(self) -> set[str]:
        if not self.path.exists():
            return set()
        ids = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            for part in line.split("  "):
                if part.startswith("id="):
                    ids.add(part[3:])
        return ids

    async def send(self, messages: list[Sms]) -> None:
        fresh = list({m.message_id: m for m in messages if m.message_id not in self._sent}.values())
        if not fresh:
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = "".join(
            f"{now}  id={m.message_id}  to={mask_phone(m.to)}  lang={m.language}  case={m.case_id}  {m.text}\n"
            for m in fresh
        )
        await asyncio.to_thread(self._append, lines)
        self._sent.update(m.message_id for m in fresh)

    def _append(self, lines: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
