"""The one background task: settles transfers when due and delivers callbacks.

Due work sits in two in-memory heaps mirroring the pending rows of the store, rebuilt from the
store at start, so a restart resumes both. Callback attempts run as child tasks, at most
`callback_concurrency` at once; a callback is deleted from the store only once it was answered
2xx or gave up, so a kill in the middle of an attempt sends it again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time

from . import callbacks
from .catalogue import Provider
from .config import SandboxConfig
from .faults import Faults
from .store import Store, Transfer

log = logging.getLogger(__name__)

SETTLE_BATCH = 2000
PURGE_EVERY_S = 60.0
MAX_SLEEP_S = 1.0


class Worker:
    def __init__(self, store: Store, faults: Faults, providers: dict[str, Provider], config: SandboxConfig) -> None:
        self._store = store
        self._faults = faults
        self._providers = providers
        self._config = config
        self._sender = callbacks.Sender(config.callback_timeout_s, config.callback_concurrency)
        self._settlements: list[tuple[float, str]] = []
        self._callbacks: list[tuple[float, int]] = []
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._sleep_until = math.inf
        self._next_purge = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._sender.start()
        self._settlements = self._store.pending_settlements()
        heapq.heapify(self._settlements)
        self._callbacks = self._store.pending_callbacks()
        heapq.heapify(self._callbacks)
        self._task = asyncio.create_task(self._run(), name="provider-sandbox-worker")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        await self._sender.close()

    def schedule_settlement(self, due: float, transfer_id: str) -> None:
        heapq.heappush(self._settlements, (due, transfer_id))
        if due < self._sleep_until:
            self._wakeup.set()

    def _schedule_callbacks(self, items: list[tuple[float, int]]) -> None:
        for item in items:
            heapq.heappush(self._callbacks, item)
            if item[0] < self._sleep_until:
                self._wakeup.set()

    @property
    def idle(self) -> bool:
        """Nothing left to settle or deliver (tests wait on this)."""
        return not self._settlements and not self._callbacks and not self._in_flight

    async def _run(self) -> None:
        while True:
            try:
                now = time.time()
                self._settle_due(now)
                self._start_due_callbacks(now)
                if now >= self._next_purge:
                    with self._store.tx():
                        self._store.purge_idempotency_keys(now)
                    self._next_purge = now + PURGE_EVERY_S
            except Exception:  # a sandbox bug must not stop settlement for good
                log.exception("provider sandbox worker step failed")
            await self._sleep()

    async def _sleep(self) -> None:
        now = time.time()
        next_due = now + MAX_SLEEP_S
        if self._settlements:
            next_due = min(next_due, self._settlements[0][0])
        if self._callbacks and len(self._in_flight) < self._config.callback_concurrency:
            next_due = min(next_due, self._callbacks[0][0])
        if next_due <= now:
            await asyncio.sleep(0)  # let requests in between two batches
            return
        self._sleep_until = next_due
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(next_due - now):
                await self._wakeup.wait()
        self._sleep_until = math.inf

    # ---------------------------------------------------------------- settlement
    def _settle_due(self, now: float) -> None:
        if not self._settlements or self._settlements[0][0] > now:
            return
        scheduled: list[tuple[float, int]] = []
        with self._store.tx():
            for _ in range(SETTLE_BATCH):
                if not self._settlements or self._settlements[0][0] > now:
                    break
                _, transfer_id = heapq.heappop(self._settlements)
                transfer = self._store.transfer(transfer_id)
                self._store.delete_settlement(transfer_id)
                if transfer is not None and transfer.status == "pending":
                    scheduled += self._settle(transfer, now)
        self._schedule_callbacks(scheduled)

    def _settle(self, transfer: Transfer, now: float) -> list[tuple[float, int]]:
        if transfer.planned_failure:
            transfer.status, transfer.failure_reason = "failed", transfer.planned_failure
        else:
            transfer.status = "settled"
            transfer.settled_amount_minor = max(0, transfer.amount_minor + transfer.planned_delta_minor)
        transfer.updated_at = transfer.settled_at = now
        self._store.record_settlement(transfer)
        self._store.bump(transfer.provider, transfer.status)
        provider = self._providers.get(transfer.provider)
        if provider is None:  # removed from the catalogue since: settle, but nobody to call back for
            return []
        return callbacks.plan(self._store, self._faults, provider, transfer, now)

    # ---------------------------------------------------------------- callbacks
    def _start_due_callbacks(self, now: float) -> None:
        while (self._callbacks and self._callbacks[0][0] <= now
               and len(self._in_flight) < self._config.callback_concurrency):
            _, callback_id = heapq.heappop(self._callbacks)
            if callback_id not in self._in_flight:
                self._in_flight[callback_id] = asyncio.create_task(self._deliver(callback_id))

    async def _deliver(self, callback_id: int) -> None:
        try:
            callback = self._store.callback(callback_id)
            provider = self._providers.get(callback.provider) if callback else None
            if callback is None or provider is None:
                return
            status, error = await self._sender.send(provider, callback)
            self._record_attempt(provider, callback, status, error)
        finally:
            self._in_flight.pop(callback_id, None)
            self._wakeup.set()

    def _record_attempt(self, provider: Provider, callback: callbacks.PendingCallback, status: int | None,
                        error: str | None) -> None:
        now = time.time()
        attempt = callback.attempts + 1
        delivered = status is not None and 200 <= status < 300
        done = delivered or attempt >= self._config.callback_max_attempts
        name = provider.name
        scheduled: list[tuple[float, int]] = []
        with self._store.tx():
            if delivered:
                outcome = "delivered"
                self._store.bump(name, "callbacks_sent")
            else:
                outcome = "abandoned" if done else "failed"
                self._store.bump(name, "callbacks_failed")
                if done:
                    self._store.bump(name, "callbacks_abandoned")
            self._store.log_callback(callback.id, name, callback.transfer_id, callback.url, callback.kind, attempt,
                                     outcome, status, error, callback.body, now)
            if done:
                self._store.delete_callback(callback.id)
                if callback.followup is not None:
                    stale_id = self._store.add_callback(name, callback.transfer_id, callback.url, callback.followup,
                                                        "stale", now)
                    self._store.bump(name, "callbacks_stale")
                    scheduled.append((now, stale_id))
            else:
                backoff_ms = min(self._config.callback_backoff_ms * 2 ** (attempt - 1),
                                 self._config.callback_backoff_max_ms)
                due = now + backoff_ms / 1000
                self._store.reschedule_callback(callback.id, attempt, due)
                scheduled.append((due, callback.id))
        self._schedule_callbacks(scheduled)
