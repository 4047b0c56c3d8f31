"""The upstream event contract: payload models, the record parser, and rejection reasons."""

from reintegra.contract.envelope import (
    MAX_RECORD_BYTES,
    RejectedEvent,
    UpstreamEvent,
    content_hash,
    parse_upstream_record,
)
from reintegra.contract.reasons import REASON_CODES, Reason
from reintegra.contract.upstream import EVENT_TYPES

__all__ = [
    "EVENT_TYPES",
    "MAX_RECORD_BYTES",
    "REASON_CODES",
    "Reason",
    "RejectedEvent",
    "UpstreamEvent",
    "content_hash",
    "parse_upstream_record",
]
