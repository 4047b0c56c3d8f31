"""Named crash points for fault tests: the process SIGKILLs itself when it reaches one.

`REINTEGRA_CRASH_AT=<point>[:<subject prefix>][,<point>[:<prefix>]...]` arms points (for subjects
starting with the prefix, when one is given). With `REINTEGRA_CRASH_ONCE_DIR=<dir>` each point fires
once for all the processes sharing that directory: the first to reach it writes `<dir>/<point>`
(atomically, before dying), which is how a fault harness confirms it fired, and the restarted process
goes on. Unset, a crash point costs one comparison.

Points (where they sit):
    consumer.in_transaction      a batch applied, its transaction not yet committed
    consumer.after_db_commit     the batch's transaction committed, its offsets not yet committed
    consumer.mid_batch           between two records of a batch (after the first one was handled)
    relay.after_publish          the relay's batch acknowledged by the broker, not yet marked sent
    payment.after_provider_call  a provider answered, its answer not yet recorded
    sms.after_send               the SMS gateway took a notice, not yet recorded as sent
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

_SPEC = os.environ.get("REINTEGRA_CRASH_AT") or ""
_ARMED: dict[str, str] = {}
for _item in filter(None, (part.strip() for part in _SPEC.split(","))):
    _point, _, _prefix = _item.partition(":")
    _ARMED[_point] = _prefix
_ONCE_DIR = os.environ.get("REINTEGRA_CRASH_ONCE_DIR") or ""


def crash_point(name: str, subject: str = "") -> None:
    if not _ARMED:
        return
    prefix = _ARMED.get(name)
    if prefix is None or not subject.startswith(prefix):
        return
    if _ONCE_DIR and not _claim_once(name):
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _claim_once(name: str) -> bool:
    """True for the first process of the directory to reach `name` (O_EXCL: one winner)."""
    directory = Path(_ONCE_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(directory / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as marker:
        marker.write(f"{os.getpid()} {subject_safe(name)}\n")
        marker.flush()
        os.fsync(marker.fileno())
    return True


def subject_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:100]


def armed(name: str) -> bool:
    return name in _ARMED
