"""The secret that signs the console's cookies.

REINTEGRA_CONSOLE_SECRET, or the file REINTEGRA_CONSOLE_SECRET_FILE names. Neither: a secret
generated once under ``<state dir>/secrets/console.secret`` (0600 in a 0700 folder) and reused, so
sessions survive a restart. Every instance behind one address must share the secret.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from .settings import ConsoleSettings

SECRET_ENV = "REINTEGRA_CONSOLE_SECRET"
SECRET_FILE_ENV = "REINTEGRA_CONSOLE_SECRET_FILE"
LOCAL_SECRET_PATH = Path("secrets") / "console.secret"
MIN_SECRET_LENGTH = 32

log = logging.getLogger("finance.web")


class ConsoleSecretError(RuntimeError):
    """The configured secret cannot be used; the message names the setting to fix."""


def load_console_secret(settings: ConsoleSettings) -> bytes:
    if settings.secret is not None and settings.secret_file is not None:
        raise ConsoleSecretError(f"both {SECRET_ENV} and {SECRET_FILE_ENV} are set: set only one")
    if settings.secret is not None:
        return _checked(settings.secret.get_secret_value().strip().encode(), SECRET_ENV)
    if settings.secret_file is not None:
        return _read(settings.secret_file, f"the file named by {SECRET_FILE_ENV}")
    path = settings.state_dir / LOCAL_SECRET_PATH
    if not path.exists():
        _create(path)
    return _read(path, f"the local secret file (or set {SECRET_ENV} or {SECRET_FILE_ENV})")


def _checked(value: bytes, what: str) -> bytes:
    if len(value) < MIN_SECRET_LENGTH:
        raise ConsoleSecretError(f"{what} is too short: at least {MIN_SECRET_LENGTH} characters")
    return value


def _read(path: Path, what: str) -> bytes:
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise ConsoleSecretError(f"{what} ({path}) cannot be read: {exc.strerror or exc}") from exc
    return _checked(value, f"{what} ({path})")


def _create(path: Path) -> None:
    """Written whole to a draft, then linked: two instances starting at once keep one secret."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
            log.warning("no %s or %s set: generated the console secret %s", SECRET_ENV, SECRET_FILE_ENV, path)
    except OSError as exc:
        raise ConsoleSecretError(f"the local secret file {path} cannot be created ({exc.strerror or exc}); "
                                 f"set {SECRET_ENV} or {SECRET_FILE_ENV}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(draft)
