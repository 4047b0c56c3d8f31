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
CONFIG_ENV = "REINTEGRA_PROVIDERS_CONFIG"
SANDBOX_ENV = "PROVIDER_BASE_URL"
DEFAULT_SANDBOX = "http://127.0.0.1:8085"
DIALECTS: dict[str, type[ProviderAdapter]] = {"momo": MomoAdapter, "bank": BankAdapter, "pickup": PickupAdapter}
_NUMBERS = {"concurrency": int, "timeout_s": float, "connect_timeout_s": float}
_FIELDS = [f.name for f in fields(ProviderConfig) if f.name != "name"]
_TEXTS = [name for name in _FIELDS if name not in _NUMBERS]
_REQUIRED = ("kind", "dialect", "country", "currency", "base_url")


class ProviderConfigError(ValueError):
    """The providers file or environment says something that cannot be used."""


class UnknownProvider(KeyError):
    """No provider of that name is configured."""

    def __str__(self) -> str:  # KeyError quotes its argument; this one is a sentence
        return str(self.args[0])


class ProviderRegistry:
    def __init__(self, configs: Mapping[str, ProviderConfig]) -> None:
        self.configs = dict(configs)
        self._adapters: dict[str, ProviderAdapter] = {}

    @classmethod
    def load(cls, path: Path | None = None, env: Mapping[str, str] | None = None,
             sandbox_url: str | None = None) -> ProviderRegistry:
        env = os.environ if env is None else env
        path = Path(path or env.get(CONFIG_ENV) or DEFAULT_PATH)
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ProviderConfigError(f"{path}: cannot read the providers file: {exc}") from exc
        entries = document.get("providers") if isinstance(document, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise ProviderConfigError(f"{path}: `providers` must map each provider's name to its settings")
        sandbox = (sandbox_url or env.get(SANDBOX_ENV) or DEFAULT_SANDBOX).rstrip("/")
        return cls({str(name): _config(path, str(name), raw, env, sandbox) for name, raw in entries.items()})

    def directory(self) -> ProviderDirectory:
        return ProviderDirectory(c.info() for c in self.configs.values())

    def adapter(self, name: str) -> ProviderAdapter:
        """The provider's adapter, made once: its session and concurrency limit are shared by every caller."""
        if name not in self._adapters:
            config = self.configs.get(name)
            if config is None:
                raise UnknownProvider(f"no provider {name!r} is configured (known: {', '.join(sorted(self.configs))})")
            self._adapters[name] = DIALECTS[config.dialect](config)
        return self._adapters[name]

    async def close(self) -> None:
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            await adapter.close()


def _config(path: Path, name: str, raw: Any, env: Mapping[str, str], sandbox: str) -> ProviderConfig:
    where = f"{path}: provider {name}"
    if not isinstance(raw, dict):
        raise ProviderConfigError(f"{where}: its settings must be a mapping")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict):
        raise ProviderConfigError(f"{where}: credentials must be a mapping")
    values: dict[str, Any] = {k: v for k, v in raw.items() if k != "credentials"}
    values.update(credentials)
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ProviderConfigError(f"{where}: unknown setting(s) {', '.join(sorted(map(str, unknown)))}")
    values.update(_from_environment(where, name, env))
    for field_name, kind in _NUMBERS.items():
        if values.get(field_name) is None:
            values.pop(field_name, None)
            continue
        value = values[field_name]
        try:
            if isinstance(value, bool):
                raise ValueError("a boolean")
            values[field_name] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ProviderConfigError(f"{where}: {field_name} must be a number, not {value!r}") from exc
        if values[field_name] <= 0:
            raise ProviderConfigError(f"{where}: {field_name} must be greater than 0, not {value!r}")
    for field_name in _TEXTS:
        value = values.get(field_name)
        if value is not None and not isinstance(value, str):
            if isinstance(value, bool):  # YAML reads `NO` (Norway) as false
                raise ProviderConfigError(f"{where}: {field_name} must be text, not {value!r} (quote it)")
            values[field_name] = str(value)
    for required in _REQUIRED:
        if not values.get(required):
            raise ProviderConfigError(f"{where}: {required} is missing")
    if values["dialect"] not in DIALECTS:
        raise ProviderConfigError(f"{where}: dialect must be one of {', '.join(DIALECTS)}, not {values['dialect']!r}")
    if values["kind"] not in KINDS:
        raise ProviderConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {values['kind']!r}")
    values["base_url"] = values["base_url"].replace("{sandbox}", sandbox).rstrip("/")
    return ProviderConfig(name=name, **values)


def _from_environment(where: str, name: str, env: Mapping[str, str]) -> dict[str, str]:
    """PROVIDER_{NAME}_{FIELD}, else the file PROVIDER_{NAME}_{FIELD}_FILE names (stripped)."""
    prefix = f"PROVIDER_{name.upper()}_"
    found: dict[str, str] = {}
    for field_name in _FIELDS:
        key = prefix + field_name.upper()
        if env.get(key):
            found[field_name] = env[key]
        elif env.get(key + "_FILE"):
            try:
                found[field_name] = Path(env[key + "_FILE"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ProviderConfigError(f"{where}: {key}_FILE cannot be read: {exc}") from exc
    return found
