"""The provider registry: providers.yaml plus the environment (values and secret files), its errors,
and one cached adapter per provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from disbursement.adapters.providers.bank import BankAdapter
from disbursement.adapters.providers.momo import MomoAdapter
from disbursement.adapters.providers.pickup import PickupAdapter
from disbursement.adapters.providers.registry import DEFAULT_PATH, ProviderConfigError, ProviderRegistry
from disbursement.domain.providers import ProviderInfo

# docs/providers.md's table, plus mtn_momo_cm which the sandbox serves as well.
SHIPPED = {
    "orange_money_ci": ("mobile_money", "momo", "CI", "XOF"),
    "mtn_momo_ci": ("mobile_money", "momo", "CI", "XOF"),
    "wave_sn": ("mobile_money", "momo", "SN", "XOF"),
    "orange_money_sn": ("mobile_money", "momo", "SN", "XOF"),
    "mtn_momo_cm": ("mobile_money", "momo", "CM", "XAF"),
    "orange_money_gn": ("mobile_money", "momo", "GN", "GNF"),
    "sgbci_ci": ("bank_transfer", "bank", "CI", "XOF"),
    "cbao_sn": ("bank_transfer", "bank", "SN", "XOF"),
    "express_union_cm": ("cash_pickup", "pickup", "CM", "XAF"),
}

MINIMAL = """providers:
  x:
    kind: mobile_money
    dialect: momo
    country: CI
    currency: XOF
    base_url: http://x
"""


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(content, encoding="utf-8")
    return path


def test_the_shipped_file_is_the_one_next_to_the_package_with_every_provider_of_the_docs():
    assert DEFAULT_PATH == Path(__file__).resolve().parents[1] / "disbursement" / "providers.yaml"
    registry = ProviderRegistry.load(env={}, sandbox_url="http://sandbox:8085/")
    assert {n: (c.kind, c.dialect, c.country, c.currency) for n, c in registry.configs.items()} == SHIPPED
    for name, config in registry.configs.items():
        assert config.base_url == f"http://sandbox:8085/providers/{name}"
        assert (config.api_user, config.api_key, config.subscription_key, config.callback_secret) == (
            f"sandbox-user-{name}", f"sandbox-key-{name}", f"sandbox-subscription-{name}", f"sandbox-callback-{name}")
        assert config.concurrency > 0 and config.timeout_s > 0 and config.connect_timeout_s > 0


def test_the_sandbox_root_comes_from_the_argument_else_the_environment_else_the_default():
    assert ProviderRegistry.load(env={}).configs["wave_sn"].base_url == "http://127.0.0.1:8085/providers/wave_sn"
    env = {"PROVIDER_BASE_URL": "http://sb:1"}
    assert ProviderRegistry.load(env=env).configs["wave_sn"].base_url == "http://sb:1/providers/wave_sn"
    assert ProviderRegistry.load(env=env, sandbox_url="http://arg:2").configs["wave_sn"].base_url == (
        "http://arg:2/providers/wave_sn")


def test_each_provider_gets_its_dialects_adapter_made_once():
    registry = ProviderRegistry.load(env={})
    assert isinstance(registry.adapter("wave_sn"), MomoAdapter)
    assert isinstance(registry.adapter("cbao_sn"), BankAdapter)
    assert isinstance(registry.adapter("express_union_cm"), PickupAdapter)
    assert registry.adapter("wave_sn") is registry.adapter("wave_sn")  # one session, one limit per provider
    assert registry.adapter("wave_sn").config is registry.configs["wave_sn"]
    with pytest.raises(KeyError, match="flooz_ci.*known: cbao_sn"):
        registry.adapter("flooz_ci")


def test_the_directory_is_what_routing_sees():
    registry = ProviderRegistry.load(env={})
    directory = registry.directory()
    assert directory.get("cbao_sn") == ProviderInfo("cbao_sn", "bank_transfer", "SN", "XOF")
    assert directory.names() == sorted(SHIPPED)
    assert directory.route({"method": "bank_transfer", "account_number": "SN08SN0100152000048500003035"},
                           "CI").provider.name == "cbao_sn"


async def test_close_closes_every_adapter_made():
    registry = ProviderRegistry.load(env={})
    bank = registry.adapter("cbao_sn")
    session = bank._open()
    await registry.close()
    assert session.closed
    assert registry.adapter("cbao_sn") is not bank  # a registry can be used again after close
    await registry.close()


def test_credentials_and_settings_come_from_the_environment_or_secret_files(tmp_path):
    secret = tmp_path / "wave-key"
    secret.write_text("  s3cret\n", encoding="utf-8")
    env = {"PROVIDER_WAVE_SN_API_KEY_FILE": str(secret), "PROVIDER_WAVE_SN_CONCURRENCY": "4",
           "PROVIDER_WAVE_SN_TIMEOUT_S": "2.5", "PROVIDER_WAVE_SN_CALLBACK_SECRET": "cb",
           "PROVIDER_CBAO_SN_BASE_URL": "https://api.cbao.example/payments/",
           "PROVIDER_SGBCI_CI_BASE_URL": "{sandbox}/elsewhere", "PROVIDER_BASE_URL": "http://sb:1"}
    registry = ProviderRegistry.load(env=env)
    wave = registry.configs["wave_sn"]
    assert (wave.api_key, wave.concurrency, wave.timeout_s, wave.callback_secret) == ("s3cret", 4, 2.5, "cb")
    assert wave.api_user == "sandbox-user-wave_sn" and wave.base_url == "http://sb:1/providers/wave_sn"
    assert registry.configs["cbao_sn"].base_url == "https://api.cbao.example/payments"
    assert registry.configs["sgbci_ci"].base_url == "http://sb:1/elsewhere"
    assert registry.configs["orange_money_ci"].api_key == "sandbox-key-orange_money_ci"  # others untouched
    assert "s3cret" not in repr(wave) and "cb'" not in repr(wave)  # secrets stay out of logs


def test_a_value_in_the_environment_wins_over_a_secret_file_and_empty_values_are_ignored(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("from-file", encoding="utf-8")
    env = {"PROVIDER_WAVE_SN_API_KEY": "from-env", "PROVIDER_WAVE_SN_API_KEY_FILE": str(secret),
           "PROVIDER_CBAO_SN_API_KEY": "", "PROVIDER_CBAO_SN_API_KEY_FILE": str(secret),
           "PROVIDER_SGBCI_CI_API_KEY": ""}
    configs = ProviderRegistry.load(env=env).configs
    assert configs["wave_sn"].api_key == "from-env"
    assert configs["cbao_sn"].api_key == "from-file"
    assert configs["sgbci_ci"].api_key == "sandbox-key-sgbci_ci"


def test_the_file_can_be_chosen_by_argument_or_environment(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert set(ProviderRegistry.load(env={"REINTEGRA_PROVIDERS_CONFIG": str(path)}).configs) == {"x"}
    assert set(ProviderRegistry.load(path, env={"REINTEGRA_PROVIDERS_CONFIG": "/nowhere.yaml"}).configs) == {"x"}
    config = ProviderRegistry.load(path, env={}).configs["x"]
    assert (config.concurrency, config.timeout_s, config.connect_timeout_s, config.api_key) == (16, 5.0, 2.0, None)


def test_numbers_in_the_file_are_read_as_numbers(tmp_path):
    path = write(tmp_path, MINIMAL + "    concurrency: 3\n    timeout_s: 1\n    connect_timeout_s: 0.5\n")
    config = ProviderRegistry.load(path, env={}).configs["x"]
    assert (config.concurrency, config.timeout_s, config.connect_timeout_s) == (3, 1.0, 0.5)
    assert isinstance(config.timeout_s, float)


@pytest.mark.parametrize(("content", "message"), [
    ("providers: {}", "must map each provider"),
    ("- a\n- b\n", "must map each provider"),
    ("", "must map each provider"),
    ("providers: [", "cannot read"),
    ("providers:\n  x: 3\n", "provider x: its settings must be a mapping"),
    (MINIMAL.replace("dialect: momo", "dialect: telepathy"), "provider x: dialect must be one of momo, bank, pickup"),
    (MINIMAL.replace("kind: mobile_money", "kind: barter"), "provider x: kind must be one of"),
    (MINIMAL.replace("    base_url: http://x\n", ""), "provider x: base_url is missing"),
    (MINIMAL.replace("    dialect: momo\n", ""), "provider x: dialect is missing"),
    (MINIMAL.replace("    currency: XOF\n", ""), "provider x: currency is missing"),
    (MINIMAL.replace("country: CI", "country: NO"), "provider x: country must be text"),
    (MINIMAL + "    concurrency: many\n", "provider x: concurrency must be a number"),
    (MINIMAL + "    concurrency: 0\n", "provider x: concurrency must be greater than 0"),
    (MINIMAL + "    timeout_s: -1\n", "provider x: timeout_s must be greater than 0"),
    (MINIMAL + "    timeout_s: true\n", "provider x: timeout_s must be a number"),
    (MINIMAL + "    colour: blue\n", "provider x: unknown setting"),
    (MINIMAL + "    credentials: [a]\n", "provider x: credentials must be a mapping"),
    (MINIMAL + "    credentials:\n      password: x\n", "provider x: unknown setting"),
])
def test_a_bad_providers_file_is_refused_naming_the_provider_and_field(tmp_path, content, message):
    with pytest.raises(ProviderConfigError, match=message):
        ProviderRegistry.load(write(tmp_path, content), env={})


@pytest.mark.parametrize(("env", "message"), [
    ({"PROVIDER_X_CONCURRENCY": "lots"}, "provider x: concurrency must be a number, not 'lots'"),
    ({"PROVIDER_X_TIMEOUT_S": "0"}, "provider x: timeout_s must be greater than 0"),
    ({"PROVIDER_X_DIALECT": "fax"}, "provider x: dialect must be one of"),
    ({"PROVIDER_X_API_KEY_FILE": "/no/such/secret"}, "provider x: PROVIDER_X_API_KEY_FILE cannot be read"),
])
def test_a_bad_environment_is_refused_naming_the_provider_and_field(tmp_path, env, message):
    with pytest.raises(ProviderConfigError, match=message):
        ProviderRegistry.load(write(tmp_path, MINIMAL), env=env)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ProviderConfigError, match="cannot read the providers file"):
        ProviderRegistry.load(tmp_path / "absent.yaml", env={})
