"""Named crash points for fault tests: `REINTEGRA_CRASH_AT=<point>[:<subject prefix>]` makes the
process SIGKILL itself when it reaches that point (for a subject starting with the prefix). Unset,
a crash point costs one comparison."""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("REINTEGRA_CRASH_AT") or ""
_POINT, _, _PREFIX = _SPEC.partition(":")


def crash_point(name: str, subject: str = "") -> None:
    if _POINT and _POINT == name and subject.startswith(_PREFIX):
        os.kill(os.getpid(), signal.SIGKILL)
