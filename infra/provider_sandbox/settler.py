"""One background loop that settles pending transfers once their delay has elapsed.

The delay is the same for every transfer, so a FIFO deque is already ordered by due time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from .ledger import Ledger


class Settler:
    def __init__(self, ledger: Ledger, delay_ms: int) -> None:
        self._ledger = ledger
        self._delay_s = delay_ms / 1000
        self._due: deque[tuple[float, str]] = deque()
        self._wakeup = asyncio.Event()

    def schedule(self, reference: str) -> None:
        self._due.append((time.monotonic() + self._delay_s, reference))
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            if not self._due:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            wait_s = self._due[0][0] - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
                continue
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                self._ledger.settle(self._due.popleft()[1])
