"""Stand-in for the payment providers (docs/providers.md): eight providers in three wire dialects.

State (transfers, idempotency keys, pending settlements and callbacks) lives in SQLite and
survives a restart when a state directory is given; faults are switched on per provider.
"""

from .app import create_app
from .catalogue import Provider, load_catalogue
from .config import SandboxConfig
from .faults import FaultSettings

__all__ = ["FaultSettings", "Provider", "SandboxConfig", "create_app", "load_catalogue"]
