"""Which failures are worth retrying (transient) and which go to a dead-letter topic (permanent).

A Postgres error is judged by its SQLSTATE (the `sqlstate` the server sent, not the Python class
asyncpg picked for it: an unknown or re-raised code still counts), and an error that wraps another
(`raise ... from exc`, or raised while handling it) by the first error in its chain that says
something definite. Transient means "no fault of the record": the batch is retried and, past the
retry budget, rewound, never dead-lettered; anything else sends the failing record to `<topic>.dlq`.
"""

from __future__ import annotations

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base


class TransientError(Exception):
    """Raise for a failure that a retry may cure (a dependency briefly unavailable)."""


class PermanentError(Exception):
    """Raise for an input that can never be applied; the record goes to the dead-letter topic."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# SQLSTATE classes (first two characters) where every code is transient.
TRANSIENT_SQLSTATE_CLASSES = frozenset({
    "08",  # connection exception (08000, 08001, 08003, 08004, 08006, 08P01, ...)
    "53",  # insufficient resources: 53000, 53100 disk full, 53200 out of memory, 53300 too many connections, 53400
    "57",  # operator intervention: 57014 query canceled (statement timeout), 57P01 admin shutdown,
           # 57P02 crash shutdown, 57P03 cannot connect now (starting up, recovery mode), 57P04, 57P05
})
# Single transient codes in classes that are otherwise permanent.
TRANSIENT_SQLSTATES = frozenset({
    "25006",  # read_only_sql_transaction: connected to a standby during a failover
    "25P03",  # idle_in_transaction_session_timeout: the session was ended under us
    "25P04",  # transaction_timeout (Postgres 17): likewise
    "40001",  # serialization_failure
    "40003",  # statement_completion_unknown (the connection broke during the commit)
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout, NOWAIT)
    "58000",  # system_error
    "58030",  # io_error
})
# Codes that tell nothing by themselves: the cause (if any) decides.
UNDECIDED_SQLSTATES = frozenset({
    "25P02",  # in_failed_sql_transaction: an earlier statement of the transaction failed
})

# Failures outside Postgres's own codes that a retry may cure.
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    asyncpg.InterfaceError,  # the connection or pool in a bad state ("connection is closed", ...)
    asyncpg_base.InternalClientError,  # ProtocolError, OutdatedSchemaCacheError
    ConnectionError,  # ConnectionResetError, ConnectionRefusedError, BrokenPipeError, ...
    OSError,  # no route to host, name resolution, socket timeouts
    TimeoutError,  # asyncio.TimeoutError too
)
# Exceptions of a transient type that are the record's fault.
PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    PermanentError,
    asyncpg_base.DataError,  # asyncpg's client-side "invalid query input" (its server-side twin is SQLSTATE 22000)
)

_MAX_CHAIN = 16


def sqlstate_is_transient(sqlstate: str) -> bool:
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def _verdict(exc: BaseException) -> bool | None:
    """True (transient), False (permanent) or None (this exception alone does not say)."""
    if isinstance(exc, PERMANENT_TYPES):
        return False
    if isinstance(exc, TransientError):
        return True
    code = _sqlstate(exc)
    if code is not None:
        if code in UNDECIDED_SQLSTATES:
            return None
        return sqlstate_is_transient(code)
    if isinstance(exc, TRANSIENT_TYPES):
        return True
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may cure `exc`: the verdict of the first exception of its chain (itself, then
    its `__cause__`, or else its `__context__` unless `from None` hid it) that has one; no verdict at
    all means permanent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        verdict = _verdict(current)
        if verdict is not None:
            return verdict
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__suppress_context__:  # `raise ... from None`: its author hid the context
            current = None
        else:
            current = current.__context__
    return False
