"""The sandbox's memory: one SQLite database (WAL, synchronous=NORMAL).

Every executed transfer, idempotency key, pending settlement, pending callback, callback attempt,
counter and fault setting is a row, so a process killed with SIGKILL resumes where it was. All
calls are synchronous and made from the event loop's thread, so a `with store.tx():` block is
never interleaved with another request.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    seq INTEGER PRIMARY KEY,
    transfer_id TEXT NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    reference TEXT NOT NULL,
    provider_reference TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    counterparty TEXT NOT NULL,
    counterparty_name TEXT,
    request TEXT NOT NULL,
    callback_url TEXT,
    status TEXT NOT NULL,
    failure_reason TEXT,
    settled_amount_minor INTEGER,
    planned_failure TEXT,
    planned_delta_minor INTEGER NOT NULL,
    pickup_code TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    settled_at REAL
);
CREATE INDEX IF NOT EXISTS transfers_by_reference ON transfers (provider, reference, seq);
CREATE INDEX IF NOT EXISTS transfers_by_provider_reference ON transfers (provider, provider_reference, seq);
CREATE INDEX IF NOT EXISTS transfers_by_settlement ON transfers (provider, status, settled_at);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    provider TEXT NOT NULL,
    key TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (provider, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending_settlements (
    transfer_id TEXT PRIMARY KEY,
    due_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_callbacks (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    kind TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    followup BLOB
);
CREATE TABLE IF NOT EXISTS callback_log (
    id INTEGER PRIMARY KEY,
    callback_id INTEGER,
    provider TEXT NOT NULL,
    transfer_id TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    body BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS callback_log_by_provider ON callback_log (provider, id);
CREATE TABLE IF NOT EXISTS stats (
    provider TEXT NOT NULL,
    counter TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (provider, counter)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS faults (
    provider TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
"""


@dataclass
class Transfer:
    """One executed transfer. `request` is the create body as the client sent it."""

    transfer_id: str
    provider: str
    reference: str  # ours: externalId / end_to_end_id / reference
    provider_reference: str  # X-Reference-Id / Idempotency-Key
    amount_minor: int
    currency: str
    counterparty: str  # msisdn digits, IBAN or account number
    counterparty_name: str | None
    request: dict[str, Any]
    callback_url: str | None
    status: str  # pending | settled | failed
    failure_reason: str | None
    settled_amount_minor: int | None
    planned_failure: str | None  # decided when accepted, revealed at settlement
    planned_delta_minor: int
    pickup_code: str | None
    created_at: float
    updated_at: float
    settled_at: float | None


_TRANSFER_COLUMNS = ", ".join(f.name for f in fields(Transfer))
_TRANSFER_INSERT = (
    f"INSERT INTO transfers ({_TRANSFER_COLUMNS}) VALUES ({', '.join('?' for _ in fields(Transfer))})"
)


@dataclass(frozen=True)
class IdempotencyKey:
    transfer_id: str
    body_hash: str
    expires_at: float


@dataclass(frozen=True)
class PendingCallback:
    id: int
    provider: str
    transfer_id: str
    url: str
    body: bytes
    kind: str  # final | duplicate | stale
    attempts: int
    next_attempt_at: float
    followup: bytes | None  # a stale body to send once this one is done (callback_reorder)


class Store:
    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._depth = 0

    @classmethod
    def open(cls, state_dir: Path | None) -> Store:
        if state_dir is None:
            return cls(":memory:")
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(state_dir / "sandbox.sqlite3")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def tx(self) -> Iterator[None]:
        """One transaction; nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # ---------------------------------------------------------------- transfers
    def insert_transfer(self, transfer: Transfer) -> None:
        row = list(astuple(transfer))
        row[8] = json.dumps(transfer.request, separators=(",", ":"), ensure_ascii=False)
        self._db.execute(_TRANSFER_INSERT, row)

    def transfer(self, transfer_id: str) -> Transfer | None:
        rows = self._transfers("transfer_id = ?", (transfer_id,))
        return rows[0] if rows else None

    def transfers_by_reference(self, provider: str, reference: str) -> list[Transfer]:
        """Oldest first: the same reference may carry several transfers once its key expired."""
        return self._transfers("provider = ? AND reference = ?", (provider, reference))

    def transfers_by_provider_reference(self, provider: str, provider_reference: str) -> list[Transfer]:
        return self._transfers("provider = ? AND provider_reference = ?", (provider, provider_reference))

    def list_transfers(self, provider: str | None = None, reference: str | None = None) -> list[Transfer]:
        clauses, params = [], []
        if provider is not None:
            clauses.append("provider = ?")
            params.append(provider)
        if reference is not None:
            clauses.append("reference = ?")
            params.append(reference)
        return self._transfers(" AND ".join(clauses) or "1", tuple(params))

    def settled_between(self, provider: str, start: float, end: float) -> list[Transfer]:
        return self._transfers(
            "provider = ? AND status = 'settled' AND settled_at >= ? AND settled_at < ?", (provider, start, end),
            order="settled_at, seq",
        )

    def settled_total_before(self, provider: str, before: float) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(settled_amount_minor), 0) FROM transfers"
            " WHERE provider = ? AND status = 'settled' AND settled_at < ?",
            (provider, before),
        ).fetchone()
        return int(row[0])

    def record_settlement(self, transfer: Transfer) -> None:
        self._db.execute(
            "UPDATE transfers SET status = ?, failure_reason = ?, settled_amount_minor = ?, updated_at = ?,"
            " settled_at = ? WHERE transfer_id = ?",
            (transfer.status, transfer.failure_reason, transfer.settled_amount_minor, transfer.updated_at,
             transfer.settled_at, transfer.transfer_id),
        )

    def _transfers(self, where: str, params: tuple, order: str = "seq") -> list[Transfer]:
        cursor = self._db.execute(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE {where} ORDER BY {order}", params)
        result = []
        for row in cursor:
            values = list(row)
            values[8] = json.loads(values[8])
            result.append(Transfer(*values))
        return result

    # ---------------------------------------------------------------- idempotency keys
    def idempotency_key(self, provider: str, key: str) -> IdempotencyKey | None:
        row = self._db.execute(
            "SELECT transfer_id, body_hash, expires_at FROM idempotency_keys WHERE provider = ? AND key = ?",
            (provider, key),
        ).fetchone()
        return IdempotencyKey(*row) if row else None

    def put_idempotency_key(self, provider: str, key: str, entry: IdempotencyKey) -> None:
        # REPLACE: an expired key is taken over by the new transfer.
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?, ?)",
            (provider, key, entry.transfer_id, entry.body_hash, entry.expires_at),
        )

    def purge_idempotency_keys(self, now: float) -> int:
        return self._db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,)).rowcount

    # ---------------------------------------------------------------- settlements
    def add_settlement(self, transfer_id: str, due_at: float) -> None:
        self._db.execute("INSERT INTO pending_settlements VALUES (?, ?)", (transfer_id, due_at))

    def delete_settlement(self, transfer_id: str) -> None:
        self._db.execute("DELETE FROM pending_settlements WHERE transfer_id = ?", (transfer_id,))

    def pending_settlements(self) -> list[tuple[float, str]]:
        return [(due, tid) for tid, due in self._db.execute("SELECT transfer_id, due_at FROM pending_settlements")]

    # ---------------------------------------------------------------- callbacks
    def add_callback(self, provider: str, transfer_id: str, url: str, body: bytes, kind: str,
                     next_attempt_at: float, followup: bytes | None = None) -> int:
        cursor = self._db.execute(
            "INSERT INTO pending_callbacks (provider, transfer_id, url, body, kind, attempts, next_attempt_at,"
            " followup) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (provider, transfer_id, url, body, kind, next_attempt_at, followup),
        )
        return int(cursor.lastrowid or 0)

    def callback(self, callback_id: int) -> PendingCallback | None:
        row = self._db.execute("SELECT * FROM pending_callbacks WHERE id = ?", (callback_id,)).fetchone()
        return PendingCallback(*row) if row else None

    def pending_callbacks(self) -> list[tuple[float, int]]:
        return list(self._db.execute("SELECT next_attempt_at, id FROM pending_callbacks"))

    def reschedule_callback(self, callback_id: int, attempts: int, next_attempt_at: float) -> None:
        self._db.execute(
            "UPDATE pending_callbacks SET attempts = ?, next_attempt_at = ? WHERE id = ?",
            (attempts, next_attempt_at, callback_id),
        )

    def delete_callback(self, callback_id: int) -> None:
        self._db.execute("DELETE FROM pending_callbacks WHERE id = ?", (callback_id,))

    def log_callback(self, callback_id: int | None, provider: str, transfer_id: str, url: str, kind: str,
                     attempt: int, outcome: str, http_status: int | None, error: str | None, body: bytes,
                     at: float) -> None:
        self._db.execute(
            "INSERT INTO callback_log (callback_id, provider, transfer_id, url, kind, attempt, outcome,"
            " http_status, error, body, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (callback_id, provider, transfer_id, url, kind, attempt, outcome, http_status, error, body, at),
        )

    def callback_log(self, provider: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT id, callback_id, provider, transfer_id, url, kind, attempt, outcome, http_status, error,"
                 " body, at FROM callback_log")
        cursor = (self._db.execute(query + " WHERE provider = ? ORDER BY id", (provider,)) if provider
                  else self._db.execute(query + " ORDER BY id"))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    # ---------------------------------------------------------------- counters
    def bump(self, provider: str, counter: str, by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO stats VALUES (?, ?, ?) ON CONFLICT (provider, counter) DO UPDATE SET value = value + ?",
            (provider, counter, by, by),
        )

    def stats(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for provider, counter, value in self._db.execute("SELECT provider, counter, value FROM stats"):
            result.setdefault(provider, {})[counter] = value
        return result

    # ---------------------------------------------------------------- faults
    def save_faults(self, provider: str, settings: str | None) -> None:
        if settings is None:
            self._db.execute("DELETE FROM faults WHERE provider = ?", (provider,))
        else:
            self._db.execute("INSERT OR REPLACE INTO faults VALUES (?, ?)", (provider, settings))

    def load_faults(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT provider, settings FROM faults"))
