"""The catalogue and the administration API."""

from __future__ import annotations

import pytest
from provider_sandbox import load_catalogue
from sandbox_kit import BANK, PICKUP, admin_json, bank_body, bank_create, pickup_body, pickup_create, transfers

DOC_TABLE = {
    "orange_money_ci": ("mobile_money", "momo", "CI", "XOF"),
    "mtn_momo_ci": ("mobile_money", "momo", "CI", "XOF"),
    "wave_sn": ("mobile_money", "momo", "SN", "XOF"),
    "orange_money_sn": ("mobile_money", "momo", "SN", "XOF"),
    "orange_money_gn": ("mobile_money", "momo", "GN", "GNF"),
    "mtn_momo_cm": ("mobile_money", "momo", "CM", "XAF"),
    "sgbci_ci": ("bank_transfer", "bank", "CI", "XOF"),
    "cbao_sn": ("bank_transfer", "bank", "SN", "XOF"),
    "express_union_cm": ("cash_pickup", "pickup", "CM", "XAF"),
}
COUNTERS = {"transfers", "replays", "conflicts", "rejected", "errors_before", "errors_after", "responses_lost",
            "lookups", "callbacks_sent", "callbacks_failed", "callbacks_duplicated"}


def test_shipped_catalogue_is_the_documented_table():
    catalogue = load_catalogue()
    assert {p.name: (p.kind, p.dialect, p.country, p.currency) for p in catalogue.values()} == DOC_TABLE
    wave = catalogue["wave_sn"].credentials
    assert (wave.api_user, wave.api_key, wave.subscription_key, wave.callback_secret) == (
        "sandbox-user-wave_sn", "sandbox-key-wave_sn", "sandbox-subscription-wave_sn", "sandbox-callback-wave_sn")


def test_catalogue_errors_are_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - {name: x1, kind: mobile_money, dialect: momo, country: SN, currency: ZZZ}\n")
    with pytest.raises(ValueError, match="ZZZ"):
        load_catalogue(bad)


async def test_healthz_and_providers(client):
    assert await admin_json(client, "/healthz") == {"status": "ok"}
    listed = (await admin_json(client, "/admin/providers"))["providers"]
    assert {p["name"]: (p["kind"], p["dialect"], p["country"], p["currency"]) for p in listed} == DOC_TABLE
    assert {p["name"]: p["base_path"] for p in listed}["wave_sn"] == "/providers/wave_sn"


async def test_stats_has_every_documented_counter_per_provider(client):
    counted = await admin_json(client, "/admin/stats")
    assert set(counted) == set(DOC_TABLE)
    assert all(COUNTERS <= set(c) and not any(c.values()) for c in counted.values())


async def test_transfers_filter_by_provider_and_reference(client):
    await bank_create(client, bank_body("RG-f1"))
    await bank_create(client, bank_body("RG-f2"))
    await pickup_create(client, pickup_body("RG-f1"))
    assert len(await transfers(client)) == 3
    assert [t["reference"] for t in await transfers(client, BANK)] == ["RG-f1", "RG-f2"]
    assert [t["provider"] for t in await transfers(client, reference="RG-f1")] == [BANK, PICKUP]
    [one] = await transfers(client, PICKUP, "RG-f1")
    assert set(one) == {"provider", "transfer_id", "reference", "provider_reference", "amount_minor", "currency",
                        "settled_amount_minor", "status", "failure_reason", "created_at", "settled_at",
                        "counterparty", "counterparty_name"}
    assert (one["amount_minor"], one["currency"], one["status"]) == (50_000, "XAF", "pending")


async def test_unknown_provider_and_route_answer_json(client):
    for path in ("/providers/nobody/v1/payments", "/providers/nobody/disbursement/token/"):
        response = await client.post(path, json={})
        assert response.status == 404
        assert (await response.json())["error"] == "unknown_provider"
    wrong_dialect = await client.post("/providers/wave_sn/v1/payments", json={})
    assert (wrong_dialect.status, (await wrong_dialect.json())["error"]) == (404, "not_found")
    nowhere = await client.get("/v1/transfers")  # the old API is gone
    assert (nowhere.status, (await nowhere.json())["error"]) == (404, "not_found")
    wrong_method = await client.delete(f"/providers/{BANK}/v1/payments")
    assert (wrong_method.status, (await wrong_method.json())["error"]) == (405, "method_not_allowed")
