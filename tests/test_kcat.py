"""docs/publish-your-first-event.md, run as written: kcat, Python and curl against the running stack.

Each runnable block of the guide follows a `<!-- step: NAME -->` comment; these tests run the
blocks with bash (BROKER, CASE_ID, TRACEPARENT, DOOR set) and check what the guide promises.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from reintegra.contract.status import STATUS_TYPES
from reintegra_stack._proc import free_port
from support import watch

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "publish-your-first-event.md"
_STEP = re.compile(r"<!-- step: (\S+) -->\s*```\w+\n(.*?)```", re.S)

needs_kcat = pytest.mark.skipif(
    shutil.which("kcat") is None, reason="kcat is not on PATH (install it: apt-get install -y kcat)"
)
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not on PATH")


def guide_steps() -> dict[str, str]:
    return dict(_STEP.findall(GUIDE.read_text(encoding="utf-8")))


async def run_step(name: str, cwd: Path, env: dict[str, str], *, check: bool = True,
                   timeout: float = 60) -> subprocess.CompletedProcess:
    script = guide_steps()[name]
    # PATH: `python` in the guide is this interpreter (aiokafka installed).
    env = {**os.environ, **env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = await asyncio.to_thread(
        subprocess.run, ["bash", "-eu", "-o", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check:
        assert result.returncode == 0, f"step {name} failed:\n{result.stderr}\n{result.stdout}"
    return result


async def run_until_output(name: str, cwd: Path, env: dict[str, str], done, timeout_s: float = 60) -> str:
    """Re-run a read step (kcat -e exits at the end of the topic) until its output is complete."""
    deadline = time.monotonic() + timeout_s
    while True:
        output = (await run_step(name, cwd, env, check=False)).stdout
        if done(output) or time.monotonic() > deadline:
            return output
        await asyncio.sleep(1)


async def new_traceparent(tmp_path: Path) -> str:
    traceparent = (await run_step("traceparent", tmp_path, {})).stdout.strip()
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", traceparent), traceparent
    return traceparent


def test_every_guide_step_is_run_here() -> None:
    assert set(guide_steps()) == {
        "traceparent", "write-events", "publish-first", "publish-more", "read-statuses",
        "publish-invalid", "read-invalid", "publish.py", "run-python", "curl-structured", "curl-binary",
    }


@needs_kcat
async def test_kcat_case_reaches_grant_completed_and_invalid_lands_on_invalid_topic(
    stack, infra, run_id, tmp_path
) -> None:
    case_id = f"KC-{run_id}"
    traceparent = await new_traceparent(tmp_path)
    env = {"BROKER": infra.bootstrap_servers, "CASE_ID": case_id, "TRACEPARENT": traceparent}
    watcher = await watch(infra.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await run_step("write-events", tmp_path, env)
        await run_step("publish-first", tmp_path, env)
        await run_step("publish-more", tmp_path, env)
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 90), watcher.observed.last_status
        assert watcher.observed.trace_ids[case_id] == traceparent.split("-")[1]

        output = await run_until_output("read-statuses", tmp_path, env, lambda out: "grant.completed" in out)
        types = []
        for line in output.splitlines():
            key, headers, value = line.split(" ", 2)
            assert key == case_id
            assert "content-type=application/cloudevents+json" in headers.split(",")
            event = json.loads(value)
            STATUS_TYPES[event["type"]].model_validate(event["data"])  # the documented shape
            types.append(event["type"])
        assert types == [
            "reintegration.case.accepted.v1", "reintegration.eligibility.approved.v1",
            "reintegration.tranche.released.v1", "reintegration.payment.sent.v1",
            "reintegration.payment.settled.v1", "reintegration.grant.completed.v1",
        ]

        await run_step("publish-invalid", tmp_path, env)
        output = await run_until_output("read-invalid", tmp_path, env, lambda out: case_id in out)
        (line,) = output.splitlines()
        assert "reintegra-reason-codes=amount_not_string" in line
        assert '"field": "data.components[0].amount.amount"' in line
        assert await watcher.wait_until(lambda: watcher.observed.last_status[case_id] == "case.rejected", 60)
    finally:
        await watcher.stop()


@needs_kcat
async def test_python_snippet_publishes_and_reads_statuses(stack, infra, run_id, tmp_path) -> None:
    env = {"BROKER": infra.bootstrap_servers, "CASE_ID": f"KP-{run_id}", "TRACEPARENT": ""}
    await run_step("write-events", tmp_path, env)
    (tmp_path / "publish.py").write_text(guide_steps()["publish.py"], encoding="utf-8")
    result = await run_step("run-python", tmp_path, env, timeout=120)
    assert "reintegration.case.accepted.v1" in result.stdout, result.stdout + result.stderr


@needs_curl
async def test_http_door_with_curl(stack, infra, run_id, tmp_path) -> None:
    case_id = f"KH-{run_id}"
    port = free_port()
    door = subprocess.Popen(
        [sys.executable, "-m", "intake.http_door", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    watcher = await watch(infra.bootstrap_servers, case_id, {case_id: "case.accepted"})
    try:
        await _wait_healthy(f"http://127.0.0.1:{port}/healthz")
        env = {"BROKER": infra.bootstrap_servers, "CASE_ID": case_id, "DOOR": f"http://127.0.0.1:{port}",
               "TRACEPARENT": await new_traceparent(tmp_path)}
        await run_step("write-events", tmp_path, env)
        for step in ("curl-structured", "curl-binary"):
            output = (await run_step(step, tmp_path, env)).stdout
            assert output.startswith("HTTP/1.1 202"), output
            assert json.loads(output.split("\n\n", 1)[1])["case_id"] == case_id
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 60), watcher.observed.last_status
    finally:
        await watcher.stop()
        door.terminate()
        door.wait(10)


async def _wait_healthy(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with await asyncio.to_thread(urllib.request.urlopen, url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.3)
