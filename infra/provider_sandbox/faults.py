"""Per-process fault injection: latency, transient 503s, and transfers that fail at settlement."""

from __future__ import annotations

import asyncio
import random

from .schemas import FaultSettings, TransferRequest

REJECTION_REASON = "recipient_account_blocked"


class FaultInjector:
    def __init__(self, settings: FaultSettings) -> None:
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)

    async def delay(self) -> None:
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def transient_error(self) -> bool:
        return self._rng.random() < self.settings.transient_error_rate

    def planned_failure(self, request: TransferRequest) -> str | None:
        if request.msisdn is not None and request.msisdn in self.settings.reject_msisdns:
            return REJECTION_REASON
        if self._rng.random() < self.settings.reject_rate:
            return REJECTION_REASON
        return None
