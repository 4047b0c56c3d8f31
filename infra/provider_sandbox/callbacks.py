"""Callbacks: which copies a final status produces (faults included), how they are signed and sent.

The body is rendered once, when the transfer settles, and stored; every attempt and copy sends
those exact bytes, so the signature and the content never change between retries.
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import orjson

from .catalogue import Provider
from .dialects import callback_renderer
from .faults import Faults
from .store import PendingCallback, Store, Transfer


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def plan(store: Store, faults: Faults, provider: Provider, transfer: Transfer, now: float) -> list[tuple[float, int]]:
    """Store the callbacks of a transfer that just reached its final status; (due, id) of each."""
    url = transfer.callback_url
    if url is None:
        return []
    settings = faults.get(provider.name)
    render = callback_renderer(provider.dialect)
    final = orjson.dumps(render(transfer))
    stale = orjson.dumps(render(transfer, stale=True)) if settings.callback_reorder else None
    due = now + settings.callback_delay_ms / 1000
    copies = 1 + settings.callback_duplicates
    if settings.callback_duplicates:
        store.bump(provider.name, "callbacks_duplicated", settings.callback_duplicates)
    scheduled: list[tuple[float, int]] = []
    for index, lost in enumerate(faults.callback_copies_lost(provider.name, copies)):
        kind = "final" if index == 0 else "duplicate"
        if lost:
            store.log_callback(None, provider.name, transfer.transfer_id, url, kind, 0, "lost", None,
                               "callback_loss_rate", final, now)
            store.bump(provider.name, "callbacks_lost")
            continue
        # The stale copy follows the first copy that is really sent, once that one is done.
        followup, stale = stale, None
        scheduled.append((due, store.add_callback(provider.name, transfer.transfer_id, url, final, kind, due,
                                                  followup)))
    if stale is not None:  # every copy was lost: the stale one still arrives
        scheduled.append((due, store.add_callback(provider.name, transfer.transfer_id, url, stale, "stale", due)))
        store.bump(provider.name, "callbacks_stale")
    return scheduled


class Sender:
    """Posts stored callbacks; one ClientSession for the sandbox's lifetime."""

    def __init__(self, timeout_s: float, concurrency: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._concurrency, force_close=False)
        self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, provider: Provider, callback: PendingCallback) -> tuple[int | None, str | None]:
        """(HTTP status, None) when an answer came back, else (None, what went wrong)."""
        assert self._session is not None, "Sender.start() first"
        headers = {
            "Content-Type": "application/json",
            "X-Provider": provider.name,
            "X-Signature": signature(provider.credentials.callback_secret, callback.body),
        }
        try:
            async with self._session.post(callback.url, data=callback.body, headers=headers) as response:
                await response.read()
                return response.status, None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
