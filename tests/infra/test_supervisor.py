"""Real-process tests for reintegra_stack.supervisor.Stack with a stand-in FastStream app.

The stand-in runs under a real service name through ``StackConfig.apps`` so that these tests
do not depend on the services' own code; the sandbox, broker and Postgres are the real ones.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest
from reintegra_stack.supervisor import READY_MARKER, Stack, StackConfig, StackError

STAND_IN = textwrap.dedent(
    """
    import os
    from pathlib import Path
    from faststream import FastStream
    from faststream.kafka import KafkaBroker

    def create_app():
        # proves the supervisor's env reached the service
        Path(os.environ["REINTEGRA_STATE_DIR"], "stand-in.env").write_text(
            os.environ["DATABASE_URL"] + "\\n" + os.environ["PROVIDER_BASE_URL"]
        )
        broker = KafkaBroker(os.environ["KAFKA_BOOTSTRAP_SERVERS"])

        @broker.subscriber("reintegra.notifications.requests.v1")  # no group: no rebalance waits
        async def handle(body: str) -> None:
            pass

        return FastStream(broker)

    def create_broken_app():
        raise RuntimeError("stand-in refuses to start")
    """
)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackConfig:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "PROVIDER_BASE_URL", "REINTEGRA_BROKER"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "stand_in.py").write_text(STAND_IN)
    return StackConfig(
        state_dir=tmp_path / "state",
        broker="tansu",  # fastest to start; Apache Kafka is covered by test_embedded
        services=("notifications",),
        apps={"notifications": "stand_in:create_app"},
        extra_env={"PYTHONPATH": str(tmp_path / "apps")},
    )


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_start_kill_restart_stop(config: StackConfig) -> None:
    with Stack(config) as stack:
        svc = stack.processes["notifications"]
        assert svc.alive() and READY_MARKER in svc.log_file.read_text()
        seen = (stack.state_dir / "stand-in.env").read_text().splitlines()
        assert seen == [stack.database_url, stack.provider_base_url]
        assert stack.env["KAFKA_BOOTSTRAP_SERVERS"] == stack.bootstrap_servers
        assert stack.logs_dir == stack.state_dir / "logs"

        first_pid = svc.pid
        stack.kill_service("notifications", signal.SIGKILL)
        assert not svc.alive()
        stack.restart_service("notifications")
        assert svc.alive() and svc.pid != first_pid
        pids = [svc.pid, stack.sandbox.pid, stack.broker.pid, stack.postgres.pid]
    assert all(_gone(pid) for pid in pids)
    stack.stop()  # idempotent


def test_failed_service_raises_with_log_tail_and_cleans_up(config: StackConfig) -> None:
    config.apps["notifications"] = "stand_in:create_broken_app"
    config.ready_timeout_s = 30
    stack = Stack(config)
    with pytest.raises(StackError, match="stand-in refuses to start"):
        stack.start()
    assert not stack.sandbox.alive()
    assert stack.broker.pid is None or _gone(stack.broker.pid)
    assert _gone(stack.postgres.pid)
    assert os.path.exists(stack.logs_dir / "notifications.log")
