"""Which failures are worth retrying (transient) and which go to a dead-letter topic (permanent)."""

from __future__ import annotations

import asyncio

import asyncpg


class TransientError(Exception):
    """Raise for a failure that a retry may cure (a dependency briefly unavailable)."""


class PermanentError(Exception):
    """Raise for an input that can never be applied; the record goes to the dead-letter topic."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.LockNotAvailableError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_TYPES)
