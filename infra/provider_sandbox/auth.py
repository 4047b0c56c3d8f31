"""Credential checks of the three dialects.

momo access tokens are stateless (provider, expiry and an HMAC keyed by the provider's api_key),
so they survive a restart and cost no write.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from aiohttp import web

from .catalogue import Provider


def _same(given: str, expected: str) -> bool:
    # bytes: compare_digest refuses non-ASCII str, and a header may hold anything
    return hmac.compare_digest(given.encode(), expected.encode())


def basic_ok(request: web.Request, provider: Provider) -> bool:
    """momo token endpoint: Basic base64(api_user:api_key) and the subscription key."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, key = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    creds = provider.credentials
    return (
        _same(user, creds.api_user)
        and _same(key, creds.api_key)
        and subscription_ok(request, provider)
    )


def subscription_ok(request: web.Request, provider: Provider) -> bool:
    return _same(request.headers.get("Ocp-Apim-Subscription-Key", ""), provider.credentials.subscription_key)


def _token_mac(provider: Provider, payload: str) -> str:
    key = ("momo-token:" + provider.credentials.api_key).encode()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


def issue_token(provider: Provider, ttl_s: int) -> str:
    payload = f"{provider.name}.{int(time.time()) + ttl_s}"
    return f"{payload}.{_token_mac(provider, payload)}"


def bearer_token_ok(request: web.Request, provider: Provider) -> bool:
    """momo transfer calls: a token issued for this provider that has not expired."""
    token = _bearer(request)
    payload, _, mac = token.rpartition(".")
    name, _, expiry = payload.rpartition(".")
    if name != provider.name or not expiry.isdigit() or int(expiry) < time.time():
        return False
    return _same(mac, _token_mac(provider, payload))


def bearer_key_ok(request: web.Request, provider: Provider) -> bool:
    """bank: Authorization: Bearer <api_key>."""
    return _same(_bearer(request), provider.credentials.api_key)


def api_key_ok(request: web.Request, provider: Provider) -> bool:
    """pickup: X-Api-Key: <api_key>."""
    return _same(request.headers.get("X-Api-Key", ""), provider.credentials.api_key)


def _bearer(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
