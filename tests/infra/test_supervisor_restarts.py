"""The supervisor restarts a process that dies on its own (``StackConfig.restart_crashed``, what
``reintegra up`` runs with), with a backoff, and never one it stopped itself; Ctrl-C stops for good.

Real processes: the notifications service (it stores each notice request it reads in
notifications.notices, which shows it processes again after a restart), an embedded Postgres and
Tansu, under one state directory that the tests of this module share (Postgres' initdb runs once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest
from reintegra_stack import supervisor
from reintegra_stack.supervisor import READY_MARKER, ServiceProcess, Stack, StackConfig
from support import send_notice

FAST_GROUP = {"REINTEGRA_SESSION_TIMEOUT_MS": "6000", "REINTEGRA_HEARTBEAT_INTERVAL_MS": "500"}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("restarts") / "state"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "PROVIDER_BASE_URL", "REINTEGRA_BROKER"):
        monkeypatch.delenv(var, raising=False)


def _config(state_dir: Path, events: list[str]) -> StackConfig:
    return StackConfig(state_dir=state_dir, broker="tansu", services=("notifications",), sandbox=False,
                       restart_crashed=True, on_event=events.append, extra_env=dict(FAST_GROUP),
                       ready_timeout_s=90)


def _notices_for(database_url: str, case_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM notifications.notices WHERE case_id = %s", (case_id,)).fetchone()[0]


def _wait(predicate, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _processes(stack: Stack, case_id: str) -> None:
    asyncio.run(send_notice("test-supervisor-restarts", stack.bootstrap_servers, case_id))
    _wait(lambda: _notices_for(stack.database_url, case_id) == 1, 60, f"the notice of {case_id}")


def _ready_again(svc: ServiceProcess, old_pid: int) -> bool:
    if not svc.alive() or svc.pid == old_pid:
        return False
    with open(svc.log_file, "rb") as f:
        f.seek(svc.log_offset)
        return READY_MARKER in f.read().decode(errors="replace")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_sigkilled_service_comes_back_and_processes_again(state_dir: Path, clean_env: None) -> None:
    events: list[str] = []
    with Stack(_config(state_dir, events)) as stack:
        svc = stack.processes["notifications"]
        _processes(stack, "RST-BEFORE")
        assert stack.restart_counts == {"notifications": 0}

        # A crash from outside (not through the supervisor's API): restarted after 0.5 s.
        first_pid = svc.pid
        os.kill(first_pid, signal.SIGKILL)
        _wait(lambda: _ready_again(svc, first_pid), 90, "notifications to be restarted and ready")
        assert stack.restart_counts == {"notifications": 1}
        assert "notifications exited with signal SIGKILL; restarting in 0.5 s (restart #1)" in events
        _processes(stack, "RST-AFTER-1")

        # Again soon after: it stayed up less than 60 s, so the wait doubles.
        second_pid = svc.pid
        os.kill(second_pid, signal.SIGKILL)
        _wait(lambda: _ready_again(svc, second_pid), 90, "notifications to be restarted a second time")
        assert stack.restart_counts == {"notifications": 2}
        assert "notifications exited with signal SIGKILL; restarting in 1 s (restart #2)" in events
        _wait(lambda: any(e.startswith("notifications is running again") for e in events), 10, "the ready report")
        _processes(stack, "RST-AFTER-2")
        supervisor_log = (stack.logs_dir / "supervisor.log").read_text()
        assert "restarting in 1 s (restart #2)" in supervisor_log
        assert "restarting in 1 s (restart #2)" in svc.log_file.read_text()

        # Killed on purpose through the supervisor: it stays down until restart_service, which counts
        # as no crash restart and does not race with the watcher.
        stack.kill_service("notifications", signal.SIGKILL)
        time.sleep(2.5)
        assert not svc.alive() and stack.restart_counts == {"notifications": 2}
        stack.restart_service("notifications")
        assert svc.alive() and stack.restart_counts == {"notifications": 2}
        _processes(stack, "RST-AFTER-RESTART-SERVICE")

        # Stopping while a restart is pending: nothing comes back.
        with contextlib.suppress(ProcessLookupError):
            os.kill(svc.pid, signal.SIGKILL)
        _wait(lambda: any("restart #3" in e for e in events), 10, "the third restart to be scheduled")
    last_pid = svc.pid
    time.sleep(1.5)
    assert svc.pid == last_pid and not svc.alive()
    assert not (stack._run_dir / "notifications.pid").exists()


UP_DRIVER = textwrap.dedent(
    """
    # `reintegra up` exactly as shipped, on a smaller stack (notifications alone, no sandbox) so
    # that this test fits on a small machine.
    import sys
    from reintegra_stack import supervisor
    from reintegra_stack.cli import app

    _config = supervisor.StackConfig
    supervisor.StackConfig = lambda **kwargs: _config(**kwargs, services=("notifications",), sandbox=False)
    app(["up", "--state-dir", sys.argv[1], "--broker", "tansu"])
    """
)


class _Output:
    """What a child prints, read by a thread; ``expect`` waits for text printed after the last match."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.text = ""
        self._pos = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.text += line

    def expect(self, needle: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                found = self.text.find(needle, self._pos)
                if found >= 0:
                    self._pos = found + len(needle)
                    return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                time.sleep(0.5)  # the reader thread may still hold the last lines
                raise AssertionError(f"no {needle!r} from reintegra up; its output:\n{self.text}")
            time.sleep(0.1)


def test_reintegra_up_restarts_a_crashed_service_and_ctrl_c_stops_everything(
        state_dir: Path, clean_env: None, tmp_path: Path) -> None:
    driver = tmp_path / "up_driver.py"
    driver.write_text(UP_DRIVER)
    env = {**os.environ, **FAST_GROUP, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(driver), str(state_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=supervisor.PROJECT_ROOT,
                            start_new_session=True)
    out = _Output(proc)
    try:
        out.expect("Reintegra is up.", 120)
        pid_file = state_dir / "run" / "notifications.pid"
        first_pid = int(pid_file.read_text())
        os.kill(first_pid, signal.SIGKILL)
        out.expect("notifications exited with signal SIGKILL; restarting in 0.5 s (restart #1)", 30)
        out.expect("notifications is running again", 90)
        second_pid = int(pid_file.read_text())
        assert second_pid != first_pid and not _gone(second_pid)

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out.expect("stopped.", 60)
        assert proc.wait(30) == 0, out.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert _gone(second_pid)
    time.sleep(1.5)  # nothing restarts it behind the stopped supervisor's back
    assert not pid_file.exists()
    assert out.text.count("restarting in") == 1, out.text


# --------------------------------------------------------------------------- backoff, without processes
class _FakeProc:
    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


class _FakeManaged:
    _pids = iter(range(10_000, 20_000))

    def __init__(self) -> None:
        self.proc = _FakeProc()
        self.pid = next(self._pids)

    def alive(self) -> bool:
        return self.proc.returncode is None

    def stop(self, timeout: float = 30.0) -> None:
        pass


def test_backoff_doubles_to_30_s_and_resets_after_60_s_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    stack = Stack(StackConfig(state_dir=tmp_path, services=("intake",), restart_crashed=True, on_event=events.append))
    svc = stack.processes["intake"]
    clock = [1000.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: clock[0])

    def respawn(s: ServiceProcess) -> None:
        s.process = _FakeManaged()
        s.started_at = clock[0]

    monkeypatch.setattr(stack, "_respawn", respawn)
    respawn(svc)

    def crash_and_restart(up_s: float, code: int = -signal.SIGKILL) -> float:
        """The process dies after up_s; returns the wait before its restart."""
        clock[0] += up_s
        svc.process.proc.returncode = code
        stack._watch_one(svc)
        delay = svc.restart_at - clock[0]
        clock[0] += delay - 0.25  # binary fractions: exact sums
        stack._watch_one(svc)
        assert not svc.alive(), "restarted before its backoff was over"
        clock[0] += 0.25
        stack._watch_one(svc)
        assert svc.alive()
        return delay

    delays = [crash_and_restart(1.0) for _ in range(9)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert crash_and_restart(61.0, code=3) == 0.5  # stayed up over 60 s: the sequence starts again
    assert crash_and_restart(1.0) == 1
    assert svc.restarts == 11 and stack.restart_counts == {"intake": 11}
    assert events[0] == "intake exited with signal SIGKILL; restarting in 0.5 s (restart #1)"
    assert events[9] == "intake exited with code 3; restarting in 0.5 s (restart #10)"

    # Held (killed or being restarted on purpose): never restarted, even with a restart due.
    clock[0] += 5
    svc.process.proc.returncode = 1
    stack._watch_one(svc)
    assert svc.restart_at is not None
    with stack._lock:
        svc.held = True
        svc.restart_at = None
    clock[0] += 100
    stack._watch_one(svc)
    assert not svc.alive() and svc.restarts == 11
