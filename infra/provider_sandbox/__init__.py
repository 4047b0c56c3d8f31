"""Stand-in for a mobile-money payment provider: idempotent transfers, async settlement, fault injection.

All state is in memory and lost when the process exits.
"""

from .app import create_app
from .config import SandboxConfig
from .schemas import FaultSettings

__all__ = ["FaultSettings", "SandboxConfig", "create_app"]
