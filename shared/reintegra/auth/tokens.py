"""API tokens for scripts: random, recognisable by their prefix, stored only as a SHA-256.

A token carries 256 bits of randomness, so a plain SHA-256 (not a slow password hash) is enough to
make the stored value useless to whoever reads the table, and lets a request find its token with
one indexed lookup."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "rgt_"  # lets secret scanners and humans recognise a leaked Reintegra token


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    """Cheap pre-check: anything else is refused without a database round trip."""
    return token.startswith(TOKEN_PREFIX) and 16 < len(token) <= 200
