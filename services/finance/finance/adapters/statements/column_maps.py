"""The CSV layout of each provider's statements, read from ``statement_formats.yaml``."""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from finance.domain.statements import StatementFormatError

FORMATS_FILE = Path(__file__).resolve().parents[2] / "statement_formats.yaml"
FIELDS = ("booking_date", "value_date", "provider_ref", "reference", "counterparty", "amount", "debit", "credit",
          "currency", "direction", "status", "reversal")
DECIMAL_SEPARATORS = (".", ",")
THOUSANDS_SEPARATORS = ("", " ", ".", ",", "'", "\u202f", "\xa0")


def _words(*words: str) -> frozenset[str]:
    return frozenset(words)


@dataclass(frozen=True)
class CsvColumnMap:
    """Which column holds which field, and how the provider writes dates, amounts and directions.

    The amount is one unsigned `amount` column with a `direction` column (debit_words /
    credit_words), or two columns `debit` and `credit`, one of them filled on each line. A line is a
    reversal when its status or direction is one of reversal_words, or its `reversal` column is one
    of true_words."""

    name: str
    columns: dict[str, str]
    delimiter: str = ","
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    debit_words: frozenset[str] = field(default_factory=lambda: _words("DBIT", "D", "DEBIT", "DR"))
    credit_words: frozenset[str] = field(default_factory=lambda: _words("CRDT", "C", "CREDIT", "CR"))
    reversal_words: frozenset[str] = field(default_factory=lambda: _words("RVSL", "REVERSAL", "RD", "RC"))
    true_words: frozenset[str] = field(default_factory=lambda: _words("TRUE", "YES", "Y", "1", "X"))

    def __post_init__(self) -> None:
        where = f"format {self.name}"
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise StatementFormatError(where, f"unknown field(s) {', '.join(unknown)}; the fields are "
                                       f"{', '.join(FIELDS)}")
        if not all(isinstance(c, str) and c.strip() for c in self.columns.values()):
            raise StatementFormatError(where, "every field names a column (a non-empty header)")
        has_amount = "amount" in self.columns or {"debit", "credit"} <= set(self.columns)
        if not {"booking_date", "currency"} <= set(self.columns) or not has_amount:
            raise StatementFormatError(where, "a layout names booking_date, currency and amount (or debit and credit)")
        if "amount" in self.columns and {"debit", "credit"} & set(self.columns):
            raise StatementFormatError(where, "amount, or debit and credit: not both")
        if len(self.delimiter) != 1 or self.delimiter in ('"', "\n", "\r"):
            raise StatementFormatError(where, f"the delimiter is one character, not {self.delimiter!r}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise StatementFormatError(where, f"unknown encoding {self.encoding!r}") from None
        if "%" not in self.date_format:
            raise StatementFormatError(where, f"{self.date_format!r} is not a strptime date format (%d/%m/%Y)")
        if self.decimal_separator not in DECIMAL_SEPARATORS:
            raise StatementFormatError(where, f"the decimal separator is . or , not {self.decimal_separator!r}")
        if self.thousands_separator not in THOUSANDS_SEPARATORS or self.thousands_separator == self.decimal_separator:
            raise StatementFormatError(where, f"{self.thousands_separator!r} cannot separate thousands here")
        words = (self.debit_words, self.credit_words, self.reversal_words)
        if self.debit_words & self.credit_words:
            raise StatementFormatError(where, "a word cannot mean both debit and credit")
        if not all(isinstance(w, frozenset) and all(isinstance(x, str) and x == x.upper() for x in w) for w in words):
            raise StatementFormatError(where, "direction and reversal words are upper-case strings")


_OPTIONS = {f.name for f in fields(CsvColumnMap)} - {"name", "columns"}
_WORD_OPTIONS = {"debit_words", "credit_words", "reversal_words", "true_words"}


def _map(source: str, name: str, spec: Any) -> CsvColumnMap:
    where = f"{source}, format {name}"
    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict):
        raise StatementFormatError(where, "a format is a mapping with `columns`")
    options = {k: v for k, v in spec.items() if k != "columns"}
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise StatementFormatError(where, f"unknown option(s) {', '.join(unknown)}; the options are "
                                   f"columns, {', '.join(sorted(_OPTIONS))}")
    for key in _WORD_OPTIONS & set(options):
        # YAML gives lists; compared upper-case, as cells are.
        if not isinstance(options[key], list):
            raise StatementFormatError(where, f"{key} is a list of words")
        options[key] = frozenset(str(w).strip().upper() for w in options[key])
    if not all(isinstance(v, str) for k, v in options.items() if k not in _WORD_OPTIONS):
        raise StatementFormatError(where, "delimiter, encoding, date_format and separators are strings (quote them)")
    try:
        return CsvColumnMap(name=name, columns={str(k): str(v) for k, v in spec["columns"].items()}, **options)
    except StatementFormatError as exc:
        raise StatementFormatError(where, exc.message) from None  # named with the file it is in


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, CsvColumnMap], dict[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StatementFormatError(path, f"unreadable statement formats: {exc}") from None
    formats = {str(name): _map(path, str(name), spec) for name, spec in (config.get("formats") or {}).items()}
    if "default" not in formats:
        raise StatementFormatError(path, "no `default` format")
    providers = {str(k): str(v) for k, v in (config.get("providers") or {}).items()}
    for provider, name in providers.items():
        if name not in formats:
            raise StatementFormatError(path, f"provider {provider} uses format {name!r}, which is not defined")
    return formats, providers


def _formats_file(path: str | None) -> str:
    return path or os.environ.get("REINTEGRA_STATEMENT_FORMATS") or str(FORMATS_FILE)


def column_map_for(provider: str, path: str | None = None) -> CsvColumnMap:
    """The provider's layout, or `default` (the sandbox's) for a provider the file does not name."""
    formats, providers = _load(_formats_file(path))
    return formats[providers.get(provider, "default")]


def named_map(name: str, path: str | None = None) -> CsvColumnMap:
    formats, _ = _load(_formats_file(path))
    if name not in formats:
        raise StatementFormatError("format", f"no statement format {name!r}; there are {', '.join(sorted(formats))}")
    return formats[name]
