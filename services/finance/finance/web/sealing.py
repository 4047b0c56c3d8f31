"""Seal a short secret (a reviewer's API token) under a session's id, which only the cookie holds.

The session row keeps the sealed token, so whoever reads ``finance.console_sessions`` (a backup,
a read-only role) gets neither a session nor a usable token. Construction: HMAC-SHA256 as a
keystream in counter mode and an HMAC tag (encrypt-then-MAC), with keys derived from the 32 random
bytes of the session id. Each session id seals exactly one value, so a keystream is never reused.
"""

from __future__ import annotations

import hashlib
import hmac

TAG_LENGTH = 16


def _key(session_id: bytes, purpose: bytes) -> bytes:
    return hmac.new(session_id, b"reintegra console seal: " + purpose, hashlib.sha256).digest()


def _keystream(key: bytes, length: int) -> bytes:
    blocks = (hmac.new(key, n.to_bytes(4, "big"), hashlib.sha256).digest() for n in range(length // 32 + 1))
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))


def seal(session_id: bytes, secret: str) -> bytes:
    data = secret.encode("utf-8")
    ciphertext = _xor(data, _keystream(_key(session_id, b"encrypt"), len(data)))
    tag = hmac.new(_key(session_id, b"authenticate"), ciphertext, hashlib.sha256).digest()[:TAG_LENGTH]
    return ciphertext + tag


def unseal(session_id: bytes, sealed: bytes | None) -> str | None:
    """The secret, or None when ``sealed`` is missing or was not sealed under this session id."""
    if not sealed or len(sealed) <= TAG_LENGTH:
        return None
    ciphertext, tag = bytes(sealed[:-TAG_LENGTH]), bytes(sealed[-TAG_LENGTH:])
    expected = hmac.new(_key(session_id, b"authenticate"), ciphertext, hashlib.sha256).digest()[:TAG_LENGTH]
    if not hmac.compare_digest(tag, expected):
        return None
    return _xor(ciphertext, _keystream(_key(session_id, b"encrypt"), len(ciphertext))).decode("utf-8")
