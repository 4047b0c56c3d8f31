import copy
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reintegra.contract import (
    EVENT_TYPES,
    MAX_RECORD_BYTES,
    REASON_CODES,
    RejectedEvent,
    UpstreamEvent,
    parse_upstream_record,
)
from reintegra.contract.samples import (
    SAMPLES_BY_TYPE,
    binary_record,
    cloudevent,
    sample_beneficiary_updated,
    sample_case_registered,
    sample_case_withdrawn,
    sample_delivery_confirmed,
    sample_milestone_verified,
    sample_plan_approved,
    sample_return_completed,
    structured_record,
)
from reintegra.contract.schemas import export_json_schemas
from reintegra.contract.upstream import (
    BENEFICIARY_UPDATED,
    CASE_REGISTERED,
    CASE_WITHDRAWN,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
    CaseRegistered,
    MobileMoneyPayout,
    PlanApproved,
)
from reintegra.money import Money

CASE = "MA-2026-000123"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

# The examples of /work/shared/contract/upstream-events.md, verbatim.
CONTRACT_EXAMPLES = {
    CASE_REGISTERED: """
{"case_id": "MA-2026-000123", "program_code": "MA-AVRR-2026",
 "beneficiary": {"person_id": "P-88412", "full_name": "Awa Traoré", "date_of_birth": "1994-03-02",
   "sex": "F", "nationality": "CI", "document_number": "CI-A1234567",
   "phone": "+2250701020304", "email": null, "preferred_language": "fr"},
 "household_size": 3, "host_country": "MA", "origin_country": "CI",
 "vulnerabilities": ["single_parent"],
 "consent": {"data_processing": true, "signed_at": "2026-09-01T10:00:00Z"}}""",
    RETURN_COMPLETED: """
{"case_id": "MA-2026-000123", "departure_date": "2026-10-02", "arrival_date": "2026-10-03",
 "arrival_country": "CI"}""",
    PLAN_APPROVED: """
{"case_id": "MA-2026-000123", "plan_id": "PL-5531", "approved_by": "caseworker:k.benali",
 "approved_at": "2026-10-20T09:30:00Z",
 "payout": {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"},
 "components": [
   {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
    "amount": {"amount": "300.00", "currency": "EUR"},
    "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]},
   {"component_id": "c2", "modality": "in_kind", "category": "business_startup",
    "amount": {"amount": "1200.00", "currency": "EUR"}, "vendor_id": "V-ABJ-017",
    "description": "Tailoring kit: sewing machine, fabric, tools",
    "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                 {"seq": 2, "share_percent": 40, "release": "milestone:business_established"}]}]}""",
    MILESTONE_VERIFIED: """
{"case_id": "MA-2026-000123", "plan_id": "PL-5531", "milestone": "business_established",
 "verified_at": "2027-01-15T14:00:00Z", "verified_by": "monitor:a.kone"}""",
    DELIVERY_CONFIRMED: """
{"case_id": "MA-2026-000123", "plan_id": "PL-5531", "component_id": "c2", "tranche_seq": 1,
 "vendor_id": "V-ABJ-017", "delivered_at": "2026-11-02T11:00:00Z",
 "invoice": {"number": "INV-2026-4410", "amount": {"amount": "720.00", "currency": "EUR"}}}""",
    BENEFICIARY_UPDATED: """
{"case_id": "MA-2026-000123", "phone": "+2250709998877", "preferred_language": "fr",
 "payout": {"method": "mobile_money", "provider": "mtn_momo_ci", "msisdn": "+2250709998877"}}""",
    CASE_WITHDRAWN: """
{"case_id": "MA-2026-000123", "reason": "beneficiary_request", "withdrawn_at": "2026-11-10T08:00:00Z"}""",
}
CONTRACT_DOC = Path("/work/shared/contract/upstream-events.md")


def event(event_type=CASE_REGISTERED, data=None, **attributes):
    data = SAMPLES_BY_TYPE[event_type]() if data is None else data
    ce = cloudevent(event_type, CASE, data, id="evt-1", time="2026-10-20T09:30:01Z")
    ce.update(attributes)
    return ce


def parse(ce, mode="structured"):
    key, value, headers = (structured_record if mode == "structured" else binary_record)(ce)
    return parse_upstream_record(value, headers, key)


def rejected(result) -> dict[str, str | None]:
    """code -> field of every reason (asserting the record was rejected)."""
    assert isinstance(result, RejectedEvent), result
    assert result.reasons
    return {(r.code, r.field) for r in result.reasons}


# --- the contract's examples --------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(CONTRACT_EXAMPLES))
@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_every_contract_example_parses(event_type, mode):
    data = json.loads(CONTRACT_EXAMPLES[event_type])
    result = parse(event(event_type, data), mode)
    assert isinstance(result, UpstreamEvent), getattr(result, "reasons", None)
    assert result.type == event_type
    assert result.case_id == result.subject == CASE
    assert result.raw_data == data
    assert isinstance(result.data, EVENT_TYPES[event_type])
    assert result.event_id == "evt-1" and result.source == "urn:casesys:ma-rabat"
    assert result.time == datetime(2026, 10, 20, 9, 30, 1, tzinfo=UTC)


@pytest.mark.parametrize("event_type", list(CONTRACT_EXAMPLES))
def test_samples_default_to_the_contract_examples(event_type):
    assert SAMPLES_BY_TYPE[event_type]() == json.loads(CONTRACT_EXAMPLES[event_type])


def test_examples_in_the_contract_doc_are_the_ones_tested():
    if not CONTRACT_DOC.exists():
        pytest.skip("contract doc not available")
    blocks = re.findall(r"### `([a-z.0-9]+)`.*?```json\n(.*?)```", CONTRACT_DOC.read_text(), re.S)
    assert {t: json.loads(body) for t, body in blocks} == {
        t: json.loads(body) for t, body in CONTRACT_EXAMPLES.items()
    }


def test_models_expose_typed_values():
    plan = parse(event(PLAN_APPROVED)).data
    assert isinstance(plan, PlanApproved)
    assert plan.currency == "EUR"
    assert isinstance(plan.payout, MobileMoneyPayout)
    assert plan.components[1].amount.money == Money(120000, "EUR")
    assert [t.share_percent for t in plan.components[1].tranches] == [Decimal(60), Decimal(40)]
    assert [t.milestone for t in plan.components[1].tranches] == [None, "business_established"]
    case = parse(event(CASE_REGISTERED)).data
    assert isinstance(case, CaseRegistered)
    assert case.beneficiary.date_of_birth.isoformat() == "1994-03-02"
    assert case.consent.signed_at.tzinfo is not None


def test_other_valid_variants():
    ok = [
        event(PLAN_APPROVED, sample_plan_approved(currency="XOF")),
        event(PLAN_APPROVED, sample_plan_approved(cash_amount=None, payout=None)),  # in-kind only
        event(PLAN_APPROVED, sample_plan_approved(
            inkind=False, payout={"method": "bank_transfer", "bank_code": "CI131", "account_number": "0123"})),
        event(PLAN_APPROVED, sample_plan_approved(inkind=False, payout={"method": "cash_pickup", "provider": "wu"})),
        event(CASE_REGISTERED, sample_case_registered(vulnerabilities=[], phone=None)),
        event(BENEFICIARY_UPDATED, sample_beneficiary_updated(phone=None, payout=None)),
        event(CASE_REGISTERED, dict(sample_case_registered(), future_field={"any": ["thing"]})),
        event(CASE_REGISTERED, time="2026-10-20T11:30:01.123456789+02:00"),
        event(CASE_REGISTERED, datacontenttype="application/json; charset=utf-8"),
    ]
    shares = sample_plan_approved(inkind=False)
    shares["components"][0]["tranches"] = [
        {"seq": 2, "share_percent": "33.34", "release": "milestone:x"},
        {"seq": 1, "share_percent": 33.33, "release": "on_approval"},
        {"seq": 3, "share_percent": "33.33", "release": "milestone:y"},
    ]
    ok.append(event(PLAN_APPROVED, shares))
    for ce in ok:
        for mode in ("structured", "binary"):
            result = parse(ce, mode)
            assert isinstance(result, UpstreamEvent), (ce, getattr(result, "reasons", None))


# --- rejections: the right code at the right field ----------------------------------------


def plan_with(mutate, **kwargs):
    data = sample_plan_approved(**kwargs)
    mutate(data)
    return event(PLAN_APPROVED, data)


def case_with(mutate):
    data = sample_case_registered()
    mutate(data)
    return event(CASE_REGISTERED, data)


def _set(path, value):
    def mutate(data):
        node = data
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return mutate


_DELETE = object()

BAD_PAYLOADS = [
    ("json number amount", plan_with(_set(["components", 1, "amount", "amount"], 1200)),
     "amount_not_string", "data.components[1].amount.amount"),
    ("float amount", plan_with(_set(["components", 0, "amount", "amount"], 300.0)),
     "amount_not_string", "data.components[0].amount.amount"),
    ("XOF with decimals", event(PLAN_APPROVED, sample_plan_approved(currency="XOF", cash_amount="100.5")),
     "too_many_fraction_digits", "data.components[0].amount.amount"),
    ("EUR with 3 decimals", plan_with(_set(["components", 0, "amount", "amount"], "1.234")),
     "too_many_fraction_digits", "data.components[0].amount.amount"),
    ("zero amount", plan_with(_set(["components", 0, "amount", "amount"], "0.00")),
     "amount_not_positive", "data.components[0].amount.amount"),
    ("not a decimal", plan_with(_set(["components", 0, "amount", "amount"], "12,50")),
     "amount_not_decimal", "data.components[0].amount.amount"),
    ("unknown currency", plan_with(_set(["components", 0, "amount", "currency"], "XXQ")),
     "unknown_currency", "data.components[0].amount.currency"),
    ("invoice currency", event(DELIVERY_CONFIRMED, sample_delivery_confirmed(currency="XXQ")),
     "unknown_currency", "data.invoice.amount.currency"),
    ("country ZZ", case_with(_set(["host_country"], "ZZ")), "unknown_country", "data.host_country"),
    ("lowercase country", case_with(_set(["beneficiary", "nationality"], "ci")),
     "unknown_country", "data.beneficiary.nationality"),
    ("language zz", case_with(_set(["beneficiary", "preferred_language"], "zz")),
     "unknown_language", "data.beneficiary.preferred_language"),
    ("phone 0701", case_with(_set(["beneficiary", "phone"], "0701")), "invalid_phone", "data.beneficiary.phone"),
    ("phone not E.164 canonical", case_with(_set(["beneficiary", "phone"], "+4407911123456")),
     "invalid_phone", "data.beneficiary.phone"),
    ("payout msisdn", plan_with(_set(["payout", "msisdn"], "+22507")), "invalid_phone", "data.payout.msisdn"),
    ("shares 60+30", plan_with(_set(["components", 1, "tranches", 1, "share_percent"], 30)),
     "shares_not_100", "data.components[1].tranches"),
    ("share above 100", plan_with(_set(["components", 0, "tranches", 0, "share_percent"], 101)),
     "invalid_value", "data.components[0].tranches[0].share_percent"),
    ("duplicate seq", plan_with(_set(["components", 1, "tranches", 1, "seq"], 1)),
     "invalid_tranche_seq", "data.components[1].tranches"),
    ("bad release", plan_with(_set(["components", 1, "tranches", 1, "release"], "later")),
     "invalid_release", "data.components[1].tranches[1].release"),
    ("no consent", case_with(_set(["consent"], _DELETE)), "consent_missing", "data.consent"),
    ("consent false", case_with(_set(["consent", "data_processing"], False)),
     "consent_missing", "data.consent.data_processing"),
    ("consent as string", case_with(_set(["consent", "data_processing"], "true")),
     "wrong_type", "data.consent.data_processing"),
    ("missing beneficiary", case_with(_set(["beneficiary"], _DELETE)), "missing_field", "data.beneficiary"),
    ("missing nested", case_with(_set(["beneficiary", "full_name"], _DELETE)),
     "missing_field", "data.beneficiary.full_name"),
    ("household as string", case_with(_set(["household_size"], "3")), "wrong_type", "data.household_size"),
    ("household as bool", case_with(_set(["household_size"], True)), "wrong_type", "data.household_size"),
    ("unknown vulnerability", case_with(_set(["vulnerabilities"], ["single_parent", "tall"])),
     "invalid_value", "data.vulnerabilities[1]"),
    ("bad date", case_with(_set(["beneficiary", "date_of_birth"], "1994-02-30")),
     "invalid_date", "data.beneficiary.date_of_birth"),
    ("date as number", case_with(_set(["beneficiary", "date_of_birth"], 19940302)),
     "wrong_type", "data.beneficiary.date_of_birth"),
    ("timestamp without offset", case_with(_set(["consent", "signed_at"], "2026-09-01T10:00:00")),
     "invalid_timestamp", "data.consent.signed_at"),
    ("bad case id", event(CASE_WITHDRAWN, sample_case_withdrawn("bad id!"), subject="bad id!"),
     "invalid_case_id", "data.case_id"),
    ("in kind without vendor", plan_with(_set(["components", 1, "vendor_id"], _DELETE)),
     "vendor_required", "data.components[1].vendor_id"),
    ("cash without payout", event(PLAN_APPROVED, sample_plan_approved(payout=None)),
     "payout_required", "data.payout"),
    ("mixed currencies", plan_with(_set(["components", 1, "amount"], {"amount": "800000", "currency": "XOF"})),
     "mixed_currencies", "data.components[1].amount.currency"),
    ("duplicate component", plan_with(_set(["components", 1, "component_id"], "c1")),
     "duplicate_component_id", "data.components[1].component_id"),
    ("unknown payout method", plan_with(_set(["payout", "method"], "pigeon")), "invalid_value", "data.payout.method"),
    ("payout without method", plan_with(_set(["payout", "method"], _DELETE)), "missing_field", "data.payout.method"),
    ("bank payout incomplete", plan_with(_set(["payout"], {"method": "bank_transfer", "bank_code": "X"})),
     "missing_field", "data.payout.account_number"),
    ("unknown modality", plan_with(_set(["components", 0, "modality"], "voucher")),
     "invalid_value", "data.components[0].modality"),
    ("unknown category", plan_with(_set(["components", 0, "category"], "travel")),
     "invalid_value", "data.components[0].category"),
    ("no components", plan_with(_set(["components"], [])), "invalid_value", "data.components"),
    ("components not a list", plan_with(_set(["components"], {"c1": 1})), "wrong_type", "data.components"),
    ("tranche seq float", event(DELIVERY_CONFIRMED, sample_delivery_confirmed(tranche_seq=1.0)),
     "wrong_type", "data.tranche_seq"),
    ("blank milestone", event(MILESTONE_VERIFIED, sample_milestone_verified(milestone="")),
     "invalid_value", "data.milestone"),
    ("return date", event(RETURN_COMPLETED, sample_return_completed(arrival_date="03/10/2026")),
     "invalid_date", "data.arrival_date"),
    ("withdrawn at", event(CASE_WITHDRAWN, sample_case_withdrawn(withdrawn_at="yesterday")),
     "invalid_timestamp", "data.withdrawn_at"),
    ("update language", event(BENEFICIARY_UPDATED, sample_beneficiary_updated(preferred_language="xx")),
     "unknown_language", "data.preferred_language"),
    ("NUL in a name", case_with(_set(["beneficiary", "full_name"], "Awa\x00")),
     "invalid_string", "data.beneficiary.full_name"),
    ("lone surrogate", case_with(_set(["program_code"], "MA\ud800")), "invalid_string", "data.program_code"),
]


@pytest.mark.parametrize(("name", "ce", "code", "field"), BAD_PAYLOADS, ids=[b[0] for b in BAD_PAYLOADS])
@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_bad_payloads_are_rejected_with_code_and_field(name, ce, code, field, mode):
    result = parse(ce, mode)
    assert (code, field) in rejected(result)
    assert result.type == ce["type"] and result.event_id == "evt-1"


BAD_ENVELOPES = [
    ("unknown type", event(type="reintegration.case.exploded.v1"), "unknown_event_type", "type"),
    ("specversion 0.3", event(specversion="0.3"), "unsupported_specversion", "specversion"),
    ("specversion number", event(specversion=1.0), "wrong_type", "specversion"),
    ("subject mismatch", event(subject="MA-2026-999999"), "subject_mismatch", "subject"),
    ("subject not a case id", event(subject="a/b"), "invalid_case_id", "subject"),
    ("no id", event(id=None), "missing_field", "id"),
    ("empty id", event(id=""), "invalid_value", "id"),
    ("no subject", event(subject=None), "missing_field", "subject"),
    ("bad time", event(time="20261020T093001Z"), "invalid_timestamp", "time"),
    ("bad source", event(source="not a uri"), "invalid_value", "source"),
    ("xml data", event(datacontenttype="application/xml"), "invalid_datacontenttype", "datacontenttype"),
]


@pytest.mark.parametrize(("name", "ce", "code", "field"), BAD_ENVELOPES, ids=[b[0] for b in BAD_ENVELOPES])
def test_bad_envelopes_are_rejected(name, ce, code, field):
    ce = {k: v for k, v in ce.items() if v is not None}
    assert (code, field) in rejected(parse(ce))


def test_missing_envelope_fields_are_all_reported():
    result = parse_upstream_record(b'{"specversion": "1.0"}', [("content-type", b"application/cloudevents+json")])
    assert rejected(result) == {("missing_field", f) for f in ("id", "source", "type", "subject", "time", "data")}


def test_binary_mode_missing_headers():
    key, value, headers = binary_record(event())
    headers = [(name, v) for name, v in headers if name not in ("ce_type", "ce_time")]
    assert rejected(parse_upstream_record(value, headers, key)) == {("missing_field", "type"), ("missing_field", "time")}


def test_binary_mode_data_must_be_an_object():
    key, _, headers = binary_record(event())
    assert ("not_an_object", "data") in rejected(parse_upstream_record(b"[1, 2]", headers, key))


def test_binary_header_not_utf8():
    key, value, headers = binary_record(event())
    headers = [(n, b"\xff\xfe" if n == "ce_id" else v) for n, v in headers]
    assert ("not_utf8", "id") in rejected(parse_upstream_record(value, headers, key))


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "empty_record"),
        (b"", "empty_record"),
        (b"\xff\xfe\x00{", "not_utf8"),
        (b'{"specversion": "1.0", "id": "\xc3\x28"}', "not_utf8"),
        (b"{not json", "not_json"),
        (b'{"a": NaN}', "not_json"),
        (b'{"a": 1e400}', "not_json"),
        (b"[" * 100_000, "not_json"),
        (b"[1, 2, 3]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (b" " * (MAX_RECORD_BYTES + 1), "record_too_large"),
    ],
)
def test_unusable_records(value, code):
    result = parse_upstream_record(value, [("content-type", b"application/cloudevents+json")], CASE.encode())
    assert rejected(result) == {(code, None)}
    assert result.case_id == CASE  # from the record key


def test_batch_mode_is_refused():
    key, value, _ = structured_record(event())
    result = parse_upstream_record(value, [("content-type", b"application/cloudevents-batch+json")], key)
    assert ("invalid_value", "content-type") in rejected(result)


def test_structured_mode_without_content_type_header():
    _, value, _ = structured_record(event())
    assert isinstance(parse_upstream_record(value, []), UpstreamEvent)


def test_all_errors_are_collected_not_just_the_first():
    data = sample_plan_approved()
    data["payout"]["msisdn"] = "0701"
    data["components"][0]["amount"]["amount"] = 300
    data["components"][1]["amount"]["currency"] = "XXQ"
    data["components"][1]["tranches"][0]["release"] = "soon"
    result = parse(event(PLAN_APPROVED, data, specversion="0.3"))
    assert rejected(result) == {
        ("unsupported_specversion", "specversion"),
        ("invalid_phone", "data.payout.msisdn"),
        ("amount_not_string", "data.components[0].amount.amount"),
        ("unknown_currency", "data.components[1].amount.currency"),
        ("invalid_release", "data.components[1].tranches[0].release"),
    }


def test_case_id_of_a_rejection_comes_from_data_then_subject_then_key():
    bad = sample_case_registered()
    bad["host_country"] = "ZZ"
    assert parse(event(CASE_REGISTERED, bad, subject="OTHER-1")).case_id == CASE
    bad["case_id"] = "not valid!"
    assert parse(event(CASE_REGISTERED, bad, subject="SUBJ-1")).case_id == "SUBJ-1"
    result = parse_upstream_record(b"{}", [], b"KEY-1")
    assert result.case_id == "KEY-1"
    assert parse_upstream_record(b"{}", [], b"not a case id").case_id is None


def test_reason_messages_never_echo_personal_data():
    data = sample_case_registered(phone="+2250799999")
    data["beneficiary"]["document_number"] = "SECRET-" + "9" * 80
    data["beneficiary"]["email"] = 12345
    payout = {"method": "bank_transfer", "bank_code": "CI131", "account_number": 987654321}
    plan = sample_plan_approved(payout=payout)
    for result in (parse(event(CASE_REGISTERED, data)), parse(event(PLAN_APPROVED, plan))):
        text = json.dumps([r.model_dump() for r in rejected(result) and result.reasons])
        for secret in ("2250799999", "SECRET", "12345", "987654321"):
            assert secret not in text


def test_content_hash_is_canonical():
    ce = event(PLAN_APPROVED)
    structured, binary = parse(ce), parse(ce, "binary")
    assert structured.content_hash == binary.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", structured.content_hash)
    reordered = dict(reversed(list(ce.items())))
    reordered["data"] = dict(reversed(list(ce["data"].items())))
    reordered["time"], reordered["id"] = "2030-01-01T00:00:00Z", "evt-other"  # not part of the content
    assert parse(reordered).content_hash == structured.content_hash
    changed = copy.deepcopy(ce)
    changed["data"]["components"][0]["amount"]["amount"] = "301.00"
    assert parse(changed).content_hash != structured.content_hash


def test_trace_context():
    key, value, headers = structured_record(event(), traceparent=TRACEPARENT)
    result = parse_upstream_record(value, [*headers, ("tracestate", b"vendor=1")], key)
    assert (result.traceparent, result.tracestate) == (TRACEPARENT, "vendor=1")
    assert parse(event(traceparent=TRACEPARENT)).traceparent == TRACEPARENT  # CloudEvents extension
    key, value, headers = structured_record(event(), traceparent="garbage")
    result = parse_upstream_record(value, headers, key)
    assert isinstance(result, UpstreamEvent) and result.traceparent is None


def test_every_produced_code_is_documented():
    for _, _ce, code, _ in BAD_PAYLOADS + BAD_ENVELOPES:
        assert code in REASON_CODES


def test_json_schemas_are_exported(tmp_path):
    paths = export_json_schemas(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{t}.schema.json" for t in EVENT_TYPES)
    plan = json.loads((tmp_path / f"{PLAN_APPROVED}.schema.json").read_text())
    money = plan["$defs"]["MoneyField"]["properties"]
    assert money["amount"]["type"] == "string"
    assert "discriminator" in json.dumps(plan)


def test_too_many_errors_are_bounded():
    data = sample_plan_approved(inkind=False)
    data["components"] = [
        dict(data["components"][0], component_id=f"c{i}", amount={"amount": i, "currency": "XXQ"}) for i in range(99)
    ]
    result = parse(event(PLAN_APPROVED, data))
    assert len(result.reasons) == 50
    assert result.reasons[-1].code == "too_many_errors"


# --- never raises -------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["", "1.0", "0.3", CASE, "EUR", "100.5", "+2250701020304", "ZZ"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def assert_well_formed(result):
    assert isinstance(result, (UpstreamEvent, RejectedEvent))
    if isinstance(result, RejectedEvent):
        assert result.reasons
        for reason in result.reasons:
            assert reason.code in REASON_CODES and reason.code != "internal_error", reason
            reason.model_dump_json()  # encodable: it goes into headers and status events
    return result


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=300), headers=st.lists(
    st.tuples(st.sampled_from(["content-type", "ce_specversion", "ce_id", "ce_type", "traceparent", "x"]),
              st.binary(max_size=40)), max_size=4), key=st.none() | st.binary(max_size=20))
def test_random_bytes_never_raise(value, headers, key):
    assert_well_formed(parse_upstream_record(value, headers, key))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), event_type=st.sampled_from(sorted(SAMPLES_BY_TYPE)), mode=st.sampled_from(["structured", "binary"]))
def test_mutated_events_never_raise(data, event_type, mode):
    ce = event(event_type)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(ce) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = ce
        for part in path[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace" or isinstance(parent, list):
            parent[path[-1]] = data.draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[data.draw(st.text(max_size=8))] = data.draw(json_values)
    try:
        key, value, headers = (structured_record if mode == "structured" else binary_record)(ce)
    except (KeyError, TypeError, AttributeError, UnicodeEncodeError):
        key, value, headers = None, json.dumps(ce, ensure_ascii=False).encode("utf-8", "surrogatepass"), []
    assert_well_formed(parse_upstream_record(value, headers, key))


@settings(max_examples=200)
@given(data=st.data())
def test_byte_flips_never_raise(data):
    key, value, headers = structured_record(event(PLAN_APPROVED))
    mutable = bytearray(value)
    for _ in range(data.draw(st.integers(1, 5))):
        mutable[data.draw(st.integers(0, len(mutable) - 1))] = data.draw(st.integers(0, 255))
    assert_well_formed(parse_upstream_record(bytes(mutable), headers, key))


_json_values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=25)
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400)
@given(document=_json_values)
def test_the_fast_json_path_reads_exactly_what_the_standard_library_reads(document):
    from reintegra.contract.envelope import _fast_json

    encoded = json.dumps(document).encode()
    try:
        fast = _fast_json(encoded)
    except ValueError:
        return  # the caller falls back to the standard library
    assert fast == json.loads(encoded)
    assert repr(fast) == repr(json.loads(encoded))  # ints stay ints, never floats of the same value
