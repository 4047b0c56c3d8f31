"""The secret key of the identity hashes (domain.identity), read once at start-up.

REINTEGRA_IDENTITY_HASH_KEY holds the key, or REINTEGRA_IDENTITY_HASH_KEY_FILE names a file
holding it (a mounted secret); whitespace around it is ignored. With neither, a key is made once
under <REINTEGRA_STATE_DIR>/secrets and reused: fine on one machine, wrong for production, where
every intake instance must use the same key or people already assisted are not recognised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from reintegra.settings import Settings

KEY_ENV = "REINTEGRA_IDENTITY_HASH_KEY"
KEY_FILE_ENV = "REINTEGRA_IDENTITY_HASH_KEY_FILE"
LOCAL_KEY_PATH = Path("secrets") / "identity-hash.key"  # under the state directory

log = logging.getLogger("intake")


class IdentityKeyError(RuntimeError):
    """The configured key cannot be used; the message names the setting to fix."""


def load_identity_key(settings: Settings) -> bytes:
    key, key_file = settings.identity_hash_key, settings.identity_hash_key_file
    if key is not None and key_file is not None:
        raise IdentityKeyError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set: set only one, so that every "
                               "instance surely hashes with the same key")
    if key is not None:
        value = key.get_secret_value().strip()
        if not value:
            raise IdentityKeyError(f"{KEY_ENV} is set but empty")
        return value.encode()
    if key_file is not None:
        return _read_key_file(key_file, f"the file named by {KEY_FILE_ENV}")
    return _local_key(settings.state_dir / LOCAL_KEY_PATH)


def _read_key_file(path: Path, what: str) -> bytes:
    if path.is_dir():  # also an empty variable, which reads as "."
        raise IdentityKeyError(f"{what} ({path}) is a directory, not a key file")
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise IdentityKeyError(f"{what} ({path}) cannot be read: {exc.strerror or exc}") from exc
    if not value:
        raise IdentityKeyError(f"{what} ({path}) is empty")
    return value


def _local_key(path: Path) -> bytes:
    created = not path.exists() and _create_key_file(path)
    key = _read_key_file(path, f"the local key file (set {KEY_ENV} or {KEY_FILE_ENV} instead)")
    log.warning("no %s or %s set: identity hashes use the local key %s (%s); production must set one "
                "shared key, as instances with different keys do not recognise each other's beneficiaries",
                KEY_ENV, KEY_FILE_ENV, path, "created now" if created else "created earlier")
    return key


def _create_key_file(path: Path) -> bool:
    """32 random bytes as hex, mode 0600 in a 0700 folder; False if another process made it first."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
        key = secrets.token_hex(32) + "\n"
        _write_new(draft, key)
        try:
            # A link never replaces an existing file, and the key is whole before it appears:
            # two instances starting at once keep one key.
            os.link(draft, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            _write_new(path, key)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise IdentityKeyError(f"the local key file {path} cannot be created ({exc.strerror or exc}); "
                               f"set {KEY_ENV} or {KEY_FILE_ENV}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(draft)


def _write_new(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(text)
