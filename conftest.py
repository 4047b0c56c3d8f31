"""Session fixtures shared by every test folder: real Postgres, a real broker, the whole stack.

The broker is Apache Kafka where java and mvn exist, else Tansu; REINTEGRA_TEST_BROKER=kafka|tansu
forces one. KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL, when set, are used instead of embedded ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FAST_GROUP_SETTINGS = {
    # Quick rebalances after a service is killed and restarted.
    "REINTEGRA_SESSION_TIMEOUT_MS": "6000",
    "REINTEGRA_HEARTBEAT_INTERVAL_MS": "500",
    # Spans reach the trace files within a fraction of a second.
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    # Payments: short leases, polls and deadline, so that recovery paths run within a test; the
    # sandbox forgets idempotency keys after 5 s, so any resend without a lookup first would pay twice.
    "DISBURSEMENT_PAYMENT_LEASE_S": "8",
    "DISBURSEMENT_PAYMENT_POLL_AFTER_S": "3",
    "DISBURSEMENT_PAYMENT_DEADLINE_S": "20",
    "SANDBOX_IDEMPOTENCY_TTL_S": "5",
    # A notice claimed by a killed notifications instance is retried after 5 s (the gateway dedupes it).
    "NOTIFICATIONS_SMS_LEASE_S": "5",
}


@dataclass
class Infra:
    database_url: str
    bootstrap_servers: str
    broker_kind: str
    state_dir: Path


BROWSER_TESTS = Path(__file__).resolve().parent / "tests" / "browser"


def _asks_for_browser_tests_only(config: pytest.Config) -> bool:
    paths = [Path(str(a).split("::", 1)[0]).resolve() for a in config.args]
    return bool(paths) and all(p == BROWSER_TESTS or BROWSER_TESTS in p.parents for p in paths)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The browser tests run in a pytest run of their own (`make test` runs both): Playwright's sync
    API keeps an event loop running in the main thread for the rest of the session, and the asyncio
    tests after it could not run theirs."""
    path = collection_path.resolve()
    if (path == BROWSER_TESTS or BROWSER_TESTS in path.parents) and not _asks_for_browser_tests_only(config):
        return True
    return None


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    from reintegra_stack._proc import run_coro_blocking
    from reintegra_stack.embedded import start_broker, start_postgres
    from reintegra_stack.topics import ensure_topics

    state_dir = tmp_path_factory.mktemp("reintegra-state")
    postgres = start_postgres(state_dir)
    broker = start_broker(state_dir, prefer=os.environ.get("REINTEGRA_TEST_BROKER", "auto"))
    run_coro_blocking(lambda: ensure_topics(broker.bootstrap_servers), timeout=120)
    try:
        yield Infra(postgres.url, broker.bootstrap_servers, broker.kind, state_dir)
    finally:
        broker.stop()
        postgres.stop()


def programmes_with_test_budget(state_dir: Path) -> Path:
    """The shipped programme file plus a programme of its own for the budget tests (tests/support.py),
    so that exhausting its budget on purpose leaves the real programmes' budgets to every other test."""
    import yaml
    from support import BUDGET_TEST_BUDGET, BUDGET_TEST_PROGRAMME

    shipped = Path(__file__).parent / "services" / "eligibility" / "eligibility" / "programmes.yaml"
    document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    test_programme = dict(document["programmes"]["MA-AVRR-2026"])
    test_programme.update(name="Budget test programme", budget=BUDGET_TEST_BUDGET)
    document["programmes"][BUDGET_TEST_PROGRAMME] = test_programme
    path = state_dir / "programmes-with-test-budget.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def stack(infra: Infra):
    """The four services and the provider sandbox, as OS processes, on the session's infra."""
    from reintegra_stack.supervisor import Stack, StackConfig

    saved = {k: os.environ.get(k) for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = infra.bootstrap_servers
    os.environ["DATABASE_URL"] = infra.database_url
    env = {**FAST_GROUP_SETTINGS, "REINTEGRA_PROGRAMME_CONFIG": str(programmes_with_test_budget(infra.state_dir))}
    stack = Stack(StackConfig(state_dir=infra.state_dir, extra_env=env, ready_timeout_s=120))
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def run_id() -> str:
    """A prefix that keeps each test's cases apart from every other test's."""
    return uuid.uuid4().hex[:8].upper()
