"""The CSV layout of each provider's statements (``statement_formats.yaml``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from finance.domain.statements import StatementFormatError

FORMATS_FILE = Path(__file__).resolve().parents[2] / "statement_formats.yaml"
FIELDS = ("booking_date", "value_date", "provider_ref", "reference", "counterparty", "amount", "debit", "credit",
          "currency", "direction", "status")
REQUIRED = ("booking_date", "currency")


@dataclass(frozen=True)
class CsvColumnMap:
    name: str
    columns: dict[str, str]
    delimiter: str = ","
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    debit_words: frozenset[str] = field(default_factory=lambda: frozenset({"DBIT", "D", "DEBIT", "DR"}))
    credit_words: frozenset[str] = field(default_factory=lambda: frozenset({"CRDT", "C", "CREDIT", "CR"}))
    reversal_words: frozenset[str] = field(default_factory=lambda: frozenset({"RVSL", "REVERSAL", "RD", "RC"}))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise StatementFormatError(f"format {self.name}", f"unknown field(s) {', '.join(unknown)}; the fields "
                                       f"are {', '.join(FIELDS)}")
        missing = [f for f in REQUIRED if f not in self.columns]
        has_amount = "amount" in self.columns or {"debit", "credit"} <= set(self.columns)
        if missing or not has_amount:
            raise StatementFormatError(f"format {self.name}", "a layout names booking_date, currency and amount "
                                       "(or debit and credit)")


def _map(name: str, spec: dict) -> CsvColumnMap:
    options = {k: v for k, v in spec.items() if k != "columns"}
    return CsvColumnMap(name=name, columns=dict(spec.get("columns") or {}), **options)


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, CsvColumnMap], dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    formats = {name: _map(name, spec) for name, spec in (config.get("formats") or {}).items()}
    if "default" not in formats:
        raise StatementFormatError(path, "no `default` format")
    providers = dict(config.get("providers") or {})
    for provider, name in providers.items():
        if name not in formats:
            raise StatementFormatError(path, f"provider {provider} uses format {name!r}, which is not defined")
    return formats, providers


def column_map_for(provider: str, path: str | None = None) -> CsvColumnMap:
    formats, providers = _load(path or os.environ.get("REINTEGRA_STATEMENT_FORMATS") or str(FORMATS_FILE))
    return formats[providers.get(provider, "default")]


def named_map(name: str, path: str | None = None) -> CsvColumnMap:
    formats, _ = _load(path or os.environ.get("REINTEGRA_STATEMENT_FORMATS") or str(FORMATS_FILE))
    if name not in formats:
        raise StatementFormatError("format", f"no statement format {name!r}")
    return formats[name]
