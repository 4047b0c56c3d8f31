"""What a running sandbox holds, reachable from every handler as `request.app[SANDBOX]`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .catalogue import Provider
from .config import SandboxConfig
from .faults import Faults
from .store import Store
from .transfers import Transfers

if TYPE_CHECKING:  # the worker imports the dialects, which import this module
    from .settler import Worker


@dataclass
class Sandbox:
    config: SandboxConfig
    providers: dict[str, Provider]
    store: Store
    faults: Faults
    transfers: Transfers
    worker: Worker
    statements_dir: Path


SANDBOX = web.AppKey("sandbox", Sandbox)
