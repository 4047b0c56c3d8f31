"""What a username, display name, upstream id and token name may be (pure checks)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InvalidUserDataError

# No ':' so that "<role>:<username>" upstream actors can be matched unambiguously
# (Principal.is_same_person), no spaces so that a name is one word in logs and on the command line.
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MAX_TEXT = 200


def check_username(username: str) -> str:
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise InvalidUserDataError(
            f"invalid username {username!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return username


def clean_display_name(display_name: str | None, username: str) -> str:
    name = (display_name or "").strip() or username
    if len(name) > _MAX_TEXT:
        raise InvalidUserDataError(f"display name too long: at most {_MAX_TEXT} characters")
    return name


def clean_upstream_ids(upstream_ids: Iterable[str]) -> list[str]:
    """Stripped, duplicates (ignoring case) dropped, order kept."""
    if isinstance(upstream_ids, str):  # a lone id, not its characters
        upstream_ids = (upstream_ids,)
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in upstream_ids:
        upstream_id = raw.strip()
        if not upstream_id or len(upstream_id) > _MAX_TEXT or any(c.isspace() for c in upstream_id):
            raise InvalidUserDataError(f"invalid upstream id {raw!r}: one word of at most {_MAX_TEXT} characters")
        if upstream_id.casefold() not in seen:
            seen.add(upstream_id.casefold())
            cleaned.append(upstream_id)
    return cleaned


def check_token_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > _MAX_TEXT:
        raise InvalidUserDataError(f"a token needs a name of 1 to {_MAX_TEXT} characters (what it is for)")
    return name
