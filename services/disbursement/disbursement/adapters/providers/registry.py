"""The providers of a deployment: `providers.yaml` (or REINTEGRA_PROVIDERS_CONFIG) plus the
environment, one adapter each.

Any field of a provider can be set by `PROVIDER_{NAME}_{FIELD}` (e.g. PROVIDER_WAVE_SN_API_KEY) or
read from the file `PROVIDER_{NAME}_{FIELD}_FILE` names (a mounted secret); `{sandbox}` in a base
URL is the provider sandbox's root (PROVIDER_BASE_URL).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from disbursement.adapters.providers.bank import BankAdapter
from disbursement.adapters.providers.base import ProviderAdapter, ProviderConfig
from disbursement.adapters.providers.momo import MomoAdapter
from disbursement.adapters.providers.pickup import PickupAdapter
from disbursement.domain.providers import KINDS, ProviderDirectory

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "providers.yaml"
DEFAULT_SANDBOX = "http://127.0.0.1:8085"
DIALECTS: dict[str, type[ProviderAdapter]] = {"momo": MomoAdapter, "bank": BankAdapter, "pickup": PickupAdapter}
_NUMBERS = {"concurrency": int, "timeout_s": float, "connect_timeout_s": float}
_FIELDS = [f.name for f in fields(ProviderConfig) if f.name != "name"]


class ProviderConfigError(ValueError):
    """The providers file or environment says something that cannot be used."""


class ProviderRegistry:
    def __init__(self, configs: Mapping[str, ProviderConfig]) -> None:
        self.configs = dict(configs)
        self._adapters: dict[str, ProviderAdapter] = {}

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None,
             sandbox_url: str | None = None) -> ProviderRegistry:
        env = os.environ if env is None else env
        path = path or Path(env.get("REINTEGRA_PROVIDERS_CONFIG") or DEFAULT_PATH)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ProviderConfigError(f"{path}: cannot read the providers file: {exc}") from exc
        sandbox = (sandbox_url or env.get("PROVIDER_BASE_URL") or DEFAULT_SANDBOX).rstrip("/")
        entries = document.get("providers")
        if not isinstance(entries, dict) or not entries:
            raise ProviderConfigError(f"{path}: `providers` must map each provider's name to its settings")
        configs = {name: _config(path, name, raw, env, sandbox) for name, raw in entries.items()}
        return cls(configs)

    def directory(self) -> ProviderDirectory:
        return ProviderDirectory(c.info() for c in self.configs.values())

    def adapter(self, name: str) -> ProviderAdapter:
        if name not in self.configs:
            raise KeyError(f"no provider {name!r} is configured (known: {', '.join(sorted(self.configs))})")
        if name not in self._adapters:
            config = self.configs[name]
            self._adapters[name] = DIALECTS[config.dialect](config)
        return self._adapters[name]

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.close()
        self._adapters.clear()


def _config(path: Path, name: str, raw: Any, env: Mapping[str, str], sandbox: str) -> ProviderConfig:
    where = f"{path}: provider {name}"
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{where}: its settings must be a mapping")
    values: dict[str, Any] = {k: v for k, v in raw.items() if k != "credentials"}
    values.update(raw.get("credentials") or {})
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ProviderConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    prefix = f"PROVIDER_{name.upper()}_"
    for field_name in _FIELDS:
        key = prefix + field_name.upper()
        if env.get(key):
            values[field_name] = env[key]
        elif env.get(key + "_FILE"):
            try:
                values[field_name] = Path(env[key + "_FILE"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ProviderConfigError(f"{where}: {key}_FILE cannot be read: {exc}") from exc
    for field_name, kind in _NUMBERS.items():
        if field_name in values:
            try:
                values[field_name] = kind(values[field_name])
            except (TypeError, ValueError) as exc:
                raise ProviderConfigError(f"{where}: {field_name} must be a number, not {values[field_name]!r}") from exc
            if values[field_name] <= 0:
                raise ProviderConfigError(f"{where}: {field_name} must be greater than 0")
    if values.get("dialect") not in DIALECTS:
        raise ProviderConfigError(f"{where}: dialect must be one of {', '.join(DIALECTS)}, not {values.get('dialect')!r}")
    if values.get("kind") not in KINDS:
        raise ProviderConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {values.get('kind')!r}")
    for required in ("country", "currency", "base_url"):
        if not values.get(required):
            raise ProviderConfigError(f"{where}: {required} is missing")
    values["base_url"] = str(values["base_url"]).replace("{sandbox}", sandbox)
    for secret in ("api_user", "api_key", "subscription_key", "callback_secret"):
        if values.get(secret) is not None:
            values[secret] = str(values[secret])
    return ProviderConfig(name=name, **values)
