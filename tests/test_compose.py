"""docker-compose.yml / Dockerfile consistency (no Docker needed) and ensure_topics on a real broker."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("intake", "eligibility", "disbursement", "notifications", "finance")
REQUIRED_ENV = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT")


def _command(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # ["KEY=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return env


def test_every_service_has_an_image_or_build() -> None:
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned_by_tag(name: str) -> None:
    image = SERVICES[name].get("image")
    if image is None:
        return
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
    assert tag != "latest", f"{name}: image {image!r} is not pinned"


@pytest.mark.parametrize("name", [*APP_SERVICES, "provider-sandbox", "review-api"])
def test_services_have_required_env(name: str) -> None:
    env = _environment(SERVICES[name])
    for var in REQUIRED_ENV:
        assert env.get(var), f"{name} misses {var}"
    assert env.get("OTEL_SERVICE_NAME") == name


def test_disbursement_knows_the_provider() -> None:
    url = _environment(SERVICES["disbursement"])["PROVIDER_BASE_URL"]
    host, port = re.fullmatch(r"http://([\w.-]+):(\d+)", url).groups()
    assert host in SERVICES
    assert f"--port {port}" in _command(SERVICES[host])


def test_providers_can_reach_disbursements_callback_endpoint() -> None:
    env = _environment(SERVICES["disbursement"])
    host, port = re.fullmatch(r"http://([\w.-]+):(\d+)", env["DISBURSEMENT_CALLBACK_PUBLIC_URL"]).groups()
    assert host == "disbursement" and env["DISBURSEMENT_CALLBACK_PORT"] == port
    assert env["DISBURSEMENT_CALLBACK_HOST"] == "0.0.0.0"


def test_the_sandbox_keeps_its_state_on_a_volume() -> None:
    sandbox = SERVICES["provider-sandbox"]
    state_dir = _command(sandbox).split("--state-dir ", 1)[1].split()[0]
    assert any(v.split(":")[1] == state_dir for v in sandbox["volumes"])


def test_depends_on_targets_exist_with_valid_conditions() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, list) else list(depends)
        for target in targets:
            assert target in SERVICES, f"{name} depends on unknown {target}"
            if isinstance(depends, dict):
                condition = depends[target].get("condition", "service_started")
                assert condition in conditions, f"{name} -> {target}: {condition}"
                if condition == "service_healthy":
                    assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"


def test_app_services_wait_for_infra_and_topics() -> None:
    for name in APP_SERVICES:
        depends = SERVICES[name]["depends_on"]
        assert depends["topics"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_faststream_apps_exist() -> None:
    apps = {}
    for name, service in SERVICES.items():
        match = re.search(r"faststream run (\w+)\.app:create_app --factory", _command(service))
        if match:
            apps[name] = match.group(1)
    assert set(apps) == set(APP_SERVICES)
    for name, module in apps.items():
        assert module == name
        app_file = ROOT / "services" / module / module / "app.py"
        assert app_file.is_file(), app_file
        assert "def create_app" in app_file.read_text()


def test_mounted_infra_files_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_otel_collector_pipelines_reference_defined_components() -> None:
    collector = SERVICES["otel-collector"]
    mount = next(v for v in collector["volumes"] if v.startswith("./infra/otel-collector.yaml:"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    assert config["service"]["pipelines"]
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} not defined under {kind}"
    assert "otlp" in config["receivers"]
    assert {"grpc", "http"} <= set(config["receivers"]["otlp"]["protocols"])
    jaeger = [e for n, e in config["exporters"].items() if n.split("/")[0] == "otlp"]
    assert jaeger and jaeger[0]["endpoint"] == "jaeger:4317" and jaeger[0]["tls"]["insecure"] is True
    # the services' OTLP endpoint is the collector's http receiver
    assert _environment(SERVICES["intake"])["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_dockerfile_installs_requirements_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"pip install .*-r requirements\.txt", dockerfile)
    assert "pip install --no-deps ." in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    for name in [*APP_SERVICES, "provider-sandbox", "topics", "review-api"]:
        assert SERVICES[name].get("build") in (".", {"context": "."}), name


def test_review_api_serves_on_its_port_beside_eligibility() -> None:
    review = SERVICES["review-api"]
    assert _command(review) == "python -m eligibility.review_api --host 0.0.0.0 --port 8091"
    assert (ROOT / "services" / "eligibility" / "eligibility" / "review_api" / "__main__.py").is_file()
    assert "8091:8091" in [str(p) for p in review["ports"]]
    # the same database and settings as the eligibility service, whose schema it reads
    eligibility_env = _environment(SERVICES["eligibility"])
    review_env = _environment(review)
    for var in ("DATABASE_URL", "REINTEGRA_STATE_DIR"):
        assert review_env.get(var) == eligibility_env.get(var), var
    assert review["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "eligibility" in review["depends_on"]
    assert "8091/healthz" in " ".join(review["healthcheck"]["test"])


def test_the_finance_console_serves_on_its_port_beside_finance_with_a_shared_secret() -> None:
    console = SERVICES["finance-console"]
    assert _command(console) == "python -m finance.web --host 0.0.0.0 --port 8093"
    assert (ROOT / "services" / "finance" / "finance" / "web" / "__main__.py").is_file()
    assert "8093:8093" in [str(p) for p in console["ports"]]
    env = _environment(console)
    assert env["REINTEGRA_REVIEW_API_URL"] == "http://review-api:8091"
    # every instance signs cookies with one secret, which compose refuses to start without
    assert env["REINTEGRA_CONSOLE_SECRET"].startswith("${REINTEGRA_CONSOLE_SECRET:?")
    assert "finance" in console["depends_on"]
    assert "8093/healthz" in " ".join(console["healthcheck"]["test"])


# --------------------------------------------------------------------------- ensure_topics
@pytest.fixture
async def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from reintegra_stack.embedded import start_broker

    for var in ("KAFKA_BOOTSTRAP_SERVERS", "REINTEGRA_BROKER", "REINTEGRA_TOPIC_REPLICATION"):
        monkeypatch.delenv(var, raising=False)
    prefer = "kafka" if shutil.which("java") and shutil.which("mvn") else "tansu"
    running = await asyncio.to_thread(start_broker, tmp_path / "state", prefer)
    yield running
    running.stop()


async def _describe(bootstrap: str, topics: tuple[str, ...]) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(topics)) if t["error_code"] == 0}
    finally:
        await admin.close()


async def test_ensure_topics_creates_all_and_is_idempotent(broker) -> None:
    from reintegra.topics import ALL_TOPICS
    from reintegra_stack.topics import ensure_topics

    await ensure_topics(broker.bootstrap_servers)
    assert await _describe(broker.bootstrap_servers, ALL_TOPICS) == {t: 6 for t in ALL_TOPICS}

    await ensure_topics(broker.bootstrap_servers, partitions=3)  # existing topics are left alone
    assert await _describe(broker.bootstrap_servers, ALL_TOPICS) == {t: 6 for t in ALL_TOPICS}


async def test_ensure_topics_tolerates_concurrent_creators(broker) -> None:
    from reintegra_stack.topics import ensure_topics

    topics = ("reintegra.test.race-a", "reintegra.test.race-b")
    await asyncio.gather(*(ensure_topics(broker.bootstrap_servers, 2, topics) for _ in range(3)))
    assert await _describe(broker.bootstrap_servers, topics) == {t: 2 for t in topics}


def test_intake_cannot_start_without_a_shared_identity_hash_key() -> None:
    """A key generated inside a container would change with the container and every earlier
    beneficiary would stop being recognised: compose must require one shared secret."""
    key = _environment(SERVICES["intake"])["REINTEGRA_IDENTITY_HASH_KEY"]
    assert key.startswith("${REINTEGRA_IDENTITY_HASH_KEY:?") and key.endswith("}"), key
