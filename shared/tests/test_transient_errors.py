"""`is_transient`: every SQLSTATE asyncpg knows, the client-side failures, and wrapped errors."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from asyncpg.exceptions._base import PostgresMessageMeta
from reintegra.errors import PermanentError, TransientError, is_transient

# Written out from the Postgres manual (Appendix A), not derived from errors.py: a retry may cure these.
TRANSIENT_CODES = {
    # 08: connection exception
    "08000", "08001", "08003", "08004", "08006", "08007", "08P01",
    # 25: a session or transaction ended by a timeout, a standby during a failover
    "25006", "25P03", "25P04",
    # 40: serialization failure, completion unknown, deadlock
    "40001", "40003", "40P01",
    # 53: insufficient resources (disk full, out of memory, too many connections, limits)
    "53000", "53100", "53200", "53300", "53400",
    # 55P03: lock not available
    "55P03",
    # 57: operator intervention (query canceled / statement timeout, shutdowns, recovery, ...)
    "57000", "57014", "57P01", "57P02", "57P03", "57P04", "57P05",
    # 58: system error, I/O error
    "58000", "58030",
}
ALL_CODES = sorted(PostgresMessageMeta._message_map)


def postgres_error(sqlstate: str, message: str = "boom") -> asyncpg.PostgresError:
    """What asyncpg builds from a server's ErrorResponse (the class it picks for the code)."""
    return asyncpg.PostgresError.new({"C": sqlstate, "M": message, "S": "ERROR"})


def with_sqlstate(exc: asyncpg.PostgresError, sqlstate: str) -> asyncpg.PostgresError:
    exc.sqlstate = sqlstate  # what the server sent; asyncpg sets it on the instance the same way
    return exc


def test_the_table_covers_the_codes_it_names():
    assert TRANSIENT_CODES <= set(ALL_CODES)
    assert len(ALL_CODES) > 200  # asyncpg's whole table, not a handful


@pytest.mark.parametrize("sqlstate", ALL_CODES)
def test_every_sqlstate_as_the_server_sends_it(sqlstate):
    assert is_transient(postgres_error(sqlstate)) is (sqlstate in TRANSIENT_CODES)


@pytest.mark.parametrize("sqlstate", ALL_CODES)
def test_every_sqlstate_by_its_asyncpg_class(sqlstate):
    cls = PostgresMessageMeta._message_map[sqlstate]
    assert is_transient(cls("boom")) is (sqlstate in TRANSIENT_CODES)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        # the codes of the reports, by name
        (asyncpg.exceptions.CannotConnectNowError("the database system is in recovery mode"), True),
        (asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"), True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"), True),
        (asyncpg.exceptions.CrashShutdownError("terminating connection because of crash of another server process"), True),
        (asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"), True),
        (asyncpg.exceptions.SerializationError("could not serialize access"), True),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), True),
        (asyncpg.exceptions.LockNotAvailableError("could not obtain lock"), True),
        (asyncpg.exceptions.PostgresIOError("could not read block"), True),
        (asyncpg.exceptions.InternalServerError("internal error"), False),
        (asyncpg.exceptions.DataCorruptedError("invalid page"), False),
        (asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"), False),
        (asyncpg.exceptions.CheckViolationError("new row violates check constraint"), False),
        (asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax for type uuid"), False),
        (asyncpg.exceptions.UndefinedTableError('relation "x" does not exist'), False),
        # a code asyncpg has no class for yet: judged by its class of codes
        (postgres_error("57P99"), True),
        (postgres_error("08Q00"), True),
        (postgres_error("53999"), True),
        (postgres_error("22Q99"), False),
        # a transient code re-raised under another class (a wrapper keeps the sqlstate)
        (with_sqlstate(asyncpg.exceptions.InternalServerError("in recovery mode"), "57P03"), True),
        (with_sqlstate(asyncpg.exceptions.CannotConnectNowError("odd"), "23505"), False),
        # client side
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (BrokenPipeError(32, "Broken pipe"), True),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
        (asyncpg.exceptions.ProtocolError("unexpected message"), True),
        (asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"), True),
        (socket.gaierror(-3, "Temporary failure in name resolution"), True),
        (OSError(113, "No route to host"), True),
        (TimeoutError("timed out"), True),
        (TransientError("the gateway is busy"), True),
        # the record's fault
        (asyncpg_base.DataError("invalid input for query argument $1: 'x' (expected int, got str)"), False),
        (PermanentError("bad_shape", "never"), False),
        (ValueError("cannot digest"), False),
        (KeyError("amount"), False),
        (RuntimeError("bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_single_errors(exc, transient):
    assert is_transient(exc) is transient


def raised(exc: BaseException, *, cause: BaseException | None = None, context: BaseException | None = None):
    """`exc` as Python chains it: `raise exc from cause`, or raised while `context` was handled."""
    try:
        if context is not None:
            try:
                raise context
            except BaseException:
                if cause is not None:
                    raise exc from cause
                raise exc  # noqa: B904 - the implicit chain is the point
        if cause is not None:
            raise exc from cause
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        # a handler or a library wraps the database error in its own
        (raised(RuntimeError("repository failed"), cause=asyncpg.exceptions.CannotConnectNowError("recovery")), True),
        (raised(ValueError("could not load"), cause=postgres_error("57014")), True),
        (raised(RuntimeError("x"), cause=raised(RuntimeError("y"), cause=ConnectionResetError())), True),
        (raised(KeyError("k"), context=asyncpg.exceptions.DeadlockDetectedError("deadlock")), True),
        (raised(RuntimeError("x"), cause=asyncpg.exceptions.UniqueViolationError("dup")), False),
        (raised(RuntimeError("x"), cause=ValueError("y")), False),
        # an explicit verdict wins over what it wraps
        (raised(PermanentError("bad", "never"), cause=ConnectionResetError()), False),
        (raised(TransientError("retry"), cause=ValueError("y")), True),
        # a definite database code wins over its context
        (raised(asyncpg.exceptions.UniqueViolationError("dup"), context=ConnectionResetError()), False),
        (raised(asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
                context=asyncpg.exceptions.UniqueViolationError("dup")), True),  # the rollback lost the connection
        # "current transaction is aborted" says nothing alone: what aborted it decides
        (raised(postgres_error("25P02"), context=asyncpg.exceptions.SerializationError("serialize")), True),
        (raised(postgres_error("25P02"), context=asyncpg.exceptions.CheckViolationError("check")), False),
        (postgres_error("25P02"), False),
    ],
)
def test_wrapped_errors(exc, transient):
    assert is_transient(exc) is transient


def test_from_none_suppresses_the_context():
    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError:
            raise ValueError("bad record") from None
    except ValueError as exc:
        assert is_transient(exc) is False


def test_a_cycle_in_the_chain_ends():
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__context__, second.__context__ = second, first
    assert is_transient(first) is False


def test_an_error_of_another_driver_is_judged_by_its_sqlstate():
    class DriverError(Exception):
        def __init__(self, sqlstate: str | None) -> None:
            super().__init__("driver")
            self.sqlstate = sqlstate

    assert is_transient(DriverError("40001")) is True
    assert is_transient(DriverError("23505")) is False
    assert is_transient(DriverError(None)) is False


async def test_a_real_asyncpg_data_error_is_permanent(infra):
    """asyncpg refuses an argument of the wrong type before sending it: the record's fault."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.fetchval("SELECT $1::int", "not a number")
    finally:
        await conn.close()
    assert "invalid input for query argument $1" in str(caught.value)
    assert is_transient(caught.value) is False


async def test_a_real_statement_timeout_is_transient(infra):
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute("SET statement_timeout = '50ms'")
        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.execute("SELECT pg_sleep(5)")
    finally:
        await conn.close()
    assert caught.value.sqlstate == "57014"
    assert is_transient(caught.value) is True
