"""Identity hashes: one normalisation per document, one key, one kind per prefix."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from intake.domain.identity import (
    DOCUMENT_PREFIX,
    PERSON_PREFIX,
    UnusableDocumentNumber,
    case_identity,
    document_hash,
    normalise_document_number,
    person_hash,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SOURCE = "urn:casesys:ma-rabat"


@pytest.mark.parametrize(("written", "normalised"), [
    ("CIA1234567", "CIA1234567"),
    ("CI-A1234567", "CIA1234567"),
    ("ci-a 123.4567", "CIA1234567"),
    (" ci/a_123-45 67\t", "CIA1234567"),
    ("ＣＩ－Ａ１２３４５６７", "CIA1234567"),  # full-width, as some keyboards type it
    ("ci-a١٢٣٤٥٦٧", "CIA1234567"),  # Arabic-Indic digits
    ("ci-a۱۲۳۴۵۶۷", "CIA1234567"),  # Extended Arabic-Indic (Persian) digits
    ("AB²3", "AB23"),  # compatibility characters fold (NFKC)
    ("ﬁ-9", "FI9"),  # a ligature
    ("straße 1", "STRASSE1"),
    ("é-1", "É1"),
    ("e\u0301-1", "É1"),  # decomposed: NFKC composes it
    ("Ⅻ 7", "XII7"),
    ("---", ""),
    ("", ""),
])
def test_normalisation(written, normalised):
    assert normalise_document_number(written) == normalised


@pytest.mark.parametrize(("a", "b"), [
    ("ci-a 123.4567", "CIA1234567"),
    ("CI-A1234567", "ＣＩ－Ａ１２３４５６７"),
    ("é 12", "E\u0301-12"),
])
def test_spellings_of_one_document_hash_alike(a, b):
    assert document_hash(KEY, a) == document_hash(KEY, b)


@pytest.mark.parametrize(("a", "b"), [
    ("CIA1234567", "CIA1234568"),
    ("CIA1234567", "CIB1234567"),
    ("É1", "E1"),  # an accent is part of the letter
    ("12", "123"),
])
def test_different_documents_hash_apart(a, b):
    assert document_hash(KEY, a) != document_hash(KEY, b)


def test_the_hashes_are_hmac_sha256_with_a_prefix_per_kind():
    assert document_hash(KEY, "ci-a 123.4567") == hmac.new(
        KEY, b"document\x1fCIA1234567", hashlib.sha256).hexdigest()
    assert person_hash(KEY, SOURCE, "P-88412") == hmac.new(
        KEY, b"person\x1furn:casesys:ma-rabat\x1fP-88412", hashlib.sha256).hexdigest()
    assert (DOCUMENT_PREFIX, PERSON_PREFIX) == (b"document\x1f", b"person\x1f")


@pytest.mark.parametrize("digest", [
    document_hash(KEY, "CIA1234567"), person_hash(KEY, SOURCE, "P-88412"),
])
def test_64_lowercase_hex(digest):
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def test_kinds_never_collide_for_equal_strings():
    # A document number that reads like `source␟person_id` after normalisation, and the same bytes.
    person = person_hash(KEY, "A", "B")
    assert document_hash(KEY, "AB") != person
    assert hmac.new(KEY, b"A\x1fB", hashlib.sha256).hexdigest() != person
    assert document_hash(KEY, "PERSON1") != person_hash(KEY, "", "1")


@pytest.mark.parametrize("fn", [
    lambda key: document_hash(key, "CIA1234567"),
    lambda key: person_hash(key, SOURCE, "P-88412"),
])
def test_another_key_gives_other_hashes(fn):
    assert fn(KEY) == fn(KEY)
    assert fn(KEY) != fn(OTHER_KEY)
    assert fn(KEY) != fn(KEY[:-1] + bytes([KEY[-1] ^ 1]))  # one bit


@pytest.mark.parametrize(("source_a", "person_a", "source_b", "person_b"), [
    (SOURCE, "P-1", "urn:casesys:sn-dakar", "P-1"),  # one id in two systems: two people
    (SOURCE, "P-1", SOURCE, "p-1"),  # person ids are exact
    (SOURCE, "P-1", SOURCE, "P-1 "),
    ("urn:a", "b-c", "urn:a-b", "c"),  # the separator keeps source and id apart
])
def test_person_hash_is_per_source_and_exact(source_a, person_a, source_b, person_b):
    assert person_hash(KEY, source_a, person_a) != person_hash(KEY, source_b, person_b)


@pytest.mark.parametrize("number", ["", "---", " . ", "\u0301"])
def test_a_document_number_without_letter_or_digit_is_refused(number):
    with pytest.raises(UnusableDocumentNumber):
        document_hash(KEY, number)


def test_case_identity():
    beneficiary = {"document_number": "CI-A1234567", "person_id": "P-88412", "full_name": "Awa Traoré"}
    assert case_identity(KEY, SOURCE, beneficiary) == {
        "document": document_hash(KEY, "CIA1234567"), "person": person_hash(KEY, SOURCE, "P-88412")}
