"""SMS gateways. The local default writes each SMS as one readable line to a file.

A gateway answers for each message of a call (`SendResult`): taken (`SENT`), refused for good
(`REJECTED`, with the reason: an invalid number is never going to become valid), or not taken this
time (`RETRY`). A call that fails as a whole (the gateway is down, a timeout) raises: every message
of the call is then tried again later.

Like a real gateway's client reference, the notice id makes sending idempotent, across processes:
a notice sent again (by a sender that took over an expired lease, by a second instance of the
service) is answered `SENT` and not sent twice.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from reintegra.privacy import mask_phone

# The file gateway refuses, for good, numbers starting with this (no country code starts with 0):
# how tests and demos get a notice rejected as a real gateway rejects an invalid number.
INVALID_NUMBER_PREFIX = "+000"
INVALID_NUMBER = "invalid_number"
NO_NUMBER = "no_number"


@dataclass(frozen=True)
class Sms:
    message_id: str
    to: str
    language: str
    case_id: str
    text: str


class Outcome(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str | None = None  # why it was rejected or not taken; never the number itself

    @classmethod
    def sent(cls) -> SendResult:
        return cls(Outcome.SENT)

    @classmethod
    def rejected(cls, reason: str) -> SendResult:
        return cls(Outcome.REJECTED, reason)

    @classmethod
    def retry(cls, reason: str) -> SendResult:
        return cls(Outcome.RETRY, reason)


class SmsGatewayUnavailable(Exception):
    """The whole call failed: nothing can be said about any of its messages."""


class SmsGateway(Protocol):
    async def send(self, messages: list[Sms]) -> Mapping[str, SendResult]:
        """Results by message id; a message without one is tried again later. Raises when the call
        as a whole failed."""
        ...


def ids_in(lines: bytes) -> set[str]:
    ids = set()
    for line in lines.decode("utf-8", errors="replace").splitlines():
        for part in line.split("  "):
            if part.startswith("id="):
                ids.add(part[3:])
    return ids


class FileSmsGateway:
    """Appends `<time>  id=<notice id>  to=<masked number>  lang=<language>  case=<case id>  <text>`.

    Several processes may write the same file: each write holds an exclusive `flock` on
    `<file>.lock` beside it, reads the lines written since its own last read (by anyone), appends
    only the ids not in the file yet, and is flushed and fsynced before the lock is let go. So an
    id is in the file at most once, and a message answered `SENT` is on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._written: set[str] = set()  # ids in the file up to self._offset
        self._offset = 0
        self._inode: int | None = None

    async def send(self, messages: list[Sms]) -> dict[str, SendResult]:
        results: dict[str, SendResult] = {}
        to_write: dict[str, Sms] = {}
        for m in messages:
            if not m.to:
                results[m.message_id] = SendResult.rejected(NO_NUMBER)
            elif m.to.startswith(INVALID_NUMBER_PREFIX):
                results[m.message_id] = SendResult.rejected(INVALID_NUMBER)
            else:
                to_write.setdefault(m.message_id, m)
        if to_write:
            await asyncio.to_thread(self._write_once, list(to_write.values()))
            results.update({message_id: SendResult.sent() for message_id in to_write})
        return results

    def _write_once(self, messages: list[Sms]) -> None:
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                with self.path.open("a+b") as f:
                    self._catch_up(f)
                    fresh = [m for m in messages if m.message_id not in self._written]
                    if not fresh:
                        return
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    data = "".join(
                        f"{now}  id={m.message_id}  to={mask_phone(m.to)}  lang={m.language}  "
                        f"case={m.case_id}  {m.text}\n"
                        for m in fresh
                    ).encode("utf-8")
                    size = f.seek(0, os.SEEK_END)
                    torn = size > self._offset  # a writer died mid-line: ours start on a line of their own
                    f.write(b"\n" + data if torn else data)
                    f.flush()
                    os.fsync(f.fileno())
                    self._written.update(m.message_id for m in fresh)
                    self._offset = f.tell()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _catch_up(self, f) -> None:
        """Read the whole lines written since our last read (under the lock)."""
        stat = os.fstat(f.fileno())
        if stat.st_ino != self._inode or stat.st_size < self._offset:  # a new or truncated file
            self._inode, self._offset, self._written = stat.st_ino, 0, set()
        f.seek(self._offset)
        chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._written |= ids_in(chunk)  # a torn last line still names an id that went out
        self._offset += len(complete)
