"""Keeping personal data out of logs, traces and files people read.

`mask_phone` shortens a phone number we print on purpose; `scrub` cleans free text we do not control
(an exception's message, which may quote a row: `Key (phone)=(+2250701020304) already exists`)
before it goes into a log line or a dead letter's headers. `describe_exception` is the one line to
log or store for an exception, and `ScrubExceptionText` a logging filter that does the same for the
tracebacks `log.exception` / `exc_info=True` print.
"""

from __future__ import annotations

import logging
import re
import traceback

MASK = "•"

# Text that `scrub` puts in place of what it removes.
REDACTED = "[redacted]"
PHONE = "[phone]"
EMAIL = "[email]"
IBAN = "[iban]"
NUMBER = "[number]"


def mask_phone(phone: str | None) -> str | None:
    """Enough to tell numbers apart, not to call: an international number of 10 digits or more keeps
    its country prefix and its last 3 digits (`+225•••••••304`), any other number of 6 digits or
    more its last 2 or 3 digits only (`••••••04`); a shorter one is masked whole."""
    if not phone:
        return phone
    digits = "".join(c for c in phone if c.isdigit())
    n = len(digits)
    if n >= 10 and phone.lstrip().startswith("+"):
        return "+" + digits[:3] + MASK * (n - 6) + digits[-3:]
    if n >= 10:
        return MASK * (n - 3) + digits[-3:]
    if n >= 6:
        return MASK * (n - 2) + digits[-2:]
    return MASK * max(n, 3)


# --- scrub ---------------------------------------------------------------------------------------

# Postgres DETAIL lines quoting a row's values: every value goes, the column names stay.
#   Key (phone)=(+225…) already exists.                    unique / exclusion
#   Key (case_id)=(X) is not present in table "cases".      foreign key
#   Key (a, b)=(1, 2) conflicts with existing key (a, b)=(1, 3).
#   Failing row contains (1, +225…, null).                  check / not-null
_KEY_VALUES = re.compile(
    r"(?P<head>\bkey \((?:[^()\n]|\([^()\n]*\))*\)=\()"  # `Key (cols)=(`, cols may hold `lower(x)`
    r"(?P<values>.*?)"
    r"(?P<tail>\)(?= already exists| is not present| is still referenced| conflicts with|\.?\s*$))",
    re.IGNORECASE | re.MULTILINE,
)
_FAILING_ROW = re.compile(r"(?P<head>\bFailing row contains \().*?(?P<tail>\)\.?\s*$)", re.MULTILINE)
# A value a message quotes after a colon (Postgres: `invalid input syntax for type uuid: "x"`,
# `invalid input value for enum status: "x"`; asyncpg: `invalid input for query argument $1: 'x' (…)`).
_QUOTED_AFTER_COLON = re.compile(r"""(?P<head>: )(?P<q>["'])(?:(?!(?P=q)).)*(?P=q)""")
_ASYNCPG_ARGUMENT = re.compile(
    r"(?P<head>\binvalid input for query argument \$\d+: )"
    r"""(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|[^\n]*?)"""  # the value's repr
    r"(?P<tail> \([^\n]*\)$|$)",  # asyncpg's reason, in parentheses
    re.MULTILINE,
)
_OTHER_QUOTED_VALUES = re.compile(r"""(?P<head>\b(?:value|Token) )"[^"\n]*"(?P<tail> is (?:out of range|invalid))""")
# pydantic: `input_value='+225…', input_type=str`
_PYDANTIC_INPUT = re.compile(r"(?P<head>\binput_value=).*?(?P<tail>, input_type=|$)", re.MULTILINE)

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Two letters, two check digits, 11 to 30 letters and digits, maybe in groups of four.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# What to leave as it is where a phone pattern could also match: ISO dates and times, IPv4
# addresses, UUIDs and version numbers are not personal data and help whoever reads the log.
_KEEP = (
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# A phone number: international (`+225 07 01 02 03 04`, `+225-0701020304`, `00225…`) or local in
# groups (`07 01 02 03 04`, `0701-020-304`, `(07) 01 02 03`, `07.01.02.03.04`); and any other run of
# 6 digits or more.
_PHONE_OR_NUMBER = re.compile(
    rf"(?<![\w+.])(?P<keep>{_KEEP})(?![\w]|\.\d)"
    r"|(?<![\w+])(?P<intl>(?:\+|00)\d{1,4}(?:[ .-]?\(?\d{1,5}\)?){1,6})(?!\w)"
    r"|(?<![\w.+-])(?P<local>\(?\d{2,4}\)?(?:[ -]\(?\d{2,4}\)?){2,}|\d{2,4}(?:\.\d{2,4}){4,})(?![\w-])"
    r"|(?<![A-Za-z0-9])(?P<digits>\d{6,})(?![A-Za-z0-9])"
)


def _phone_or_number(match: re.Match[str]) -> str:
    if match["keep"]:
        return match["keep"]
    if match["digits"]:
        return NUMBER
    found = match["intl"] or match["local"]
    if sum(c.isdigit() for c in found) < 6:
        return found
    return PHONE


def _redact_between(match: re.Match[str]) -> str:
    return match["head"] + REDACTED + (match.groupdict().get("tail") or "")


def scrub(text: str | None) -> str:
    """`text` without the personal data it may quote: the values in Postgres `Key (…)=(…)` and
    `Failing row contains (…)` details and in quoted input values go whole, then email addresses,
    IBANs, phone numbers (international or local, with spaces or dashes) and any run of 6 digits or
    more. ISO dates, times, IP addresses and UUIDs stay; so do names of columns and constraints."""
    if not text:
        return text or ""
    text = _KEY_VALUES.sub(_redact_between, text)
    text = _FAILING_ROW.sub(_redact_between, text)
    text = _ASYNCPG_ARGUMENT.sub(_redact_between, text)
    text = _PYDANTIC_INPUT.sub(_redact_between, text)
    text = _OTHER_QUOTED_VALUES.sub(lambda m: m["head"] + f'"{REDACTED}"' + m["tail"], text)
    text = _QUOTED_AFTER_COLON.sub(lambda m: m["head"] + m["q"] + REDACTED + m["q"], text)
    text = _EMAIL.sub(EMAIL, text)
    text = _IBAN.sub(IBAN, text)
    return _PHONE_OR_NUMBER.sub(_phone_or_number, text)


def describe_exception(exc: BaseException) -> str:
    """`Type: message`, the message scrubbed: what to log or store about a failure."""
    message = scrub(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback `logging` would print for `exc` (its chain included), every line scrubbed."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return scrub(text.rstrip("\n"))


class ScrubExceptionText(logging.Filter):
    """On a logger: the traceback of `log.exception(...)` / `exc_info=True` is printed scrubbed.

    The record keeps the scrubbed text only (`exc_text`; `exc_info` is dropped), so no handler,
    whatever its formatter, can print the original messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrubbed_traceback(record.exc_info[1])
            record.exc_info = None
        return True
