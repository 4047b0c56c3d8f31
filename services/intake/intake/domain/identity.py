"""Keyed hashes of who a beneficiary is: what eligibility compares to find people already assisted.

Intake never forwards a document number or a person id, only HMAC-SHA256 of them under a secret
key, so that equal identities match without the identities themselves leaving intake. Without the
key the hashes cannot be recomputed from a guessed document number (plain SHA-256 could be, as
document numbers are short). Each kind has its own domain-separation prefix: a document number
that happens to equal some `source␟person_id` never hashes alike.
"""

from __future__ import annotations

import hmac
import unicodedata
from typing import Any

DOCUMENT_PREFIX = b"document\x1f"
PERSON_PREFIX = b"person\x1f"
_SEPARATOR = "\x1f"  # unit separator: cannot occur in a source (URI-reference) or a person_id


class UnusableDocumentNumber(ValueError):
    """The document number has no letter or digit: hashing it would match every such number."""


def normalise_document_number(number: str) -> str:
    """One spelling per document: NFKC, upper case, letters and digits only, digits as ASCII.

    "ci-a 123.4567", "CI-A1234567" and the full-width "ＣＩ－Ａ１２３４５６７" all give
    "CIA1234567". Decimal digits of any script count as the same digit ("١٢٣" is "123"), as forms
    in Morocco or Guinea may be typed with either.
    """
    if number.isascii():  # the usual case; ASCII is its own NFKC form
        return "".join(ch for ch in number.upper() if ch.isalnum())
    text = unicodedata.normalize("NFKC", number).upper()
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch
                   for ch in text if ch.isalpha() or ch.isdecimal())


def document_hash(key: bytes, document_number: str) -> str:
    normalised = normalise_document_number(document_number)
    if not normalised:
        raise UnusableDocumentNumber("the document number has no letter or digit")
    return hmac.digest(key, DOCUMENT_PREFIX + normalised.encode(), "sha256").hex()


def person_hash(key: bytes, source: str, person_id: str) -> str:
    """A person id means something only within the system that issued it: the source is part of it."""
    return hmac.digest(key, PERSON_PREFIX + (source + _SEPARATOR + person_id).encode(), "sha256").hex()


def case_identity(key: bytes, source: str, beneficiary: dict[str, Any]) -> dict[str, str]:
    """`{"document": <64 hex>, "person": <64 hex>}` of a case.registered's beneficiary.

    Raises UnusableDocumentNumber when the document number cannot identify anyone."""
    return {
        "document": document_hash(key, beneficiary["document_number"]),
        "person": person_hash(key, source, beneficiary["person_id"]),
    }
