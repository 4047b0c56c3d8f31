"""Process helpers shared by the embedded Kafka / Tansu / Postgres launchers.

Children are started
  * in their own session / process group (``start_new_session=True``) so ``stop()`` can
    signal the whole group and a Ctrl-C in the terminal does not hit them directly,
  * with ``PR_SET_PDEATHSIG`` on Linux so a SIGKILLed parent still takes them down,
  * from one long-lived daemon "spawner" thread: PDEATHSIG fires when the *thread* that
    forked the child exits, so spawning from a short-lived worker thread (e.g.
    ``asyncio.to_thread``) would kill the child as soon as that thread finishes,
  * with an ``atexit`` hook; ``ManagedProcess.stop()`` is idempotent.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import errno
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_IS_LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1


def _make_preexec(death_signal: int) -> Callable[[], None] | None:
    if not _IS_LINUX:
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    ppid = os.getpid()

    def _preexec() -> None:  # runs in the child between fork and exec
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        # parent died between fork and prctl: nobody would signal us any more
        if os.getppid() != ppid:
            os._exit(1)

    return _preexec


# --------------------------------------------------------------------------- spawner thread
class _Spawner:
    """A daemon thread that lives as long as the process and does every Popen."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[Callable[[], Any], queue.Queue]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while True:
            fn, out = self._q.get()
            try:
                out.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                out.put((False, exc))

    def call(self, fn: Callable[[], T]) -> T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reintegra-spawner", daemon=True)
                self._thread.start()
        out: queue.Queue = queue.Queue(maxsize=1)
        self._q.put((fn, out))
        ok, value = out.get()
        if ok:
            return value
        raise value


_spawner = _Spawner()


def as_user_kwargs(user: str | None) -> dict[str, Any]:
    """Popen kwargs to run as ``user`` with its primary group and no supplementary groups."""
    if user is None:
        return {}
    import pwd

    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen:
    """Start ``argv`` detached into its own session, stdout+stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)

    def _do() -> subprocess.Popen:
        with open(log_file, "ab", buffering=0) as log:
            kwargs: dict[str, Any] = {}
            kwargs.update(as_user_kwargs(user))
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
                preexec_fn=_make_preexec(death_signal),
                close_fds=True,
                **kwargs,
            )

    return _spawner.call(_do)


class ManagedProcess:
    """A spawned child we own. ``stop()`` is idempotent and registered with atexit."""

    def __init__(
        self,
        proc: subprocess.Popen,
        name: str,
        *,
        stop_signal: int = signal.SIGTERM,
        signal_group: bool = True,
        pid_file: Path | None = None,
    ) -> None:
        self.proc = proc
        self.name = name
        self.stop_signal = stop_signal
        self.signal_group = signal_group
        self.pid_file = pid_file
        self._stopped = False
        self._lock = threading.Lock()
        if pid_file is not None:
            pid_file.write_text(str(proc.pid))
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal(self, sig: int, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.proc.pid, sig)  # pgid == pid (start_new_session)
            else:
                os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self.proc.poll() is None:
                self._signal(self.stop_signal, self.signal_group)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL, True)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(10)
            # reap any stragglers left in the group (e.g. postgres backends)
            self._signal(signal.SIGKILL, True)
        finally:
            if self.pid_file is not None:
                with contextlib.suppress(OSError):
                    if self.pid_file.read_text().strip() == str(self.proc.pid):
                        self.pid_file.unlink()
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)


def kill_stale(pid_file: Path, must_contain: str, first_signal: int = signal.SIGTERM, group: bool = True) -> None:
    """Kill a leftover child recorded in ``pid_file`` if it still runs and looks like ours."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = None
    if cmdline is None or must_contain not in cmdline:
        with contextlib.suppress(OSError):
            pid_file.unlink()
        return
    def _gone() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return True
        return state == "Z"

    for sig, wait in ((first_signal, 30.0), (signal.SIGKILL, 10.0)):
        for kill in ((os.killpg, os.kill) if group or sig == signal.SIGKILL else (os.kill,)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, sig)
        deadline = time.monotonic() + wait
        while not _gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        if _gone():
            break
    with contextlib.suppress(OSError):
        pid_file.unlink()


# --------------------------------------------------------------------------- ports
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def wait_port_free(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if port_is_free(port, host):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def load_or_pick_ports(path: Path, names: Sequence[str]) -> dict[str, int]:
    """Ports saved in ``path`` (json); missing ones are picked free and saved."""
    ports: dict[str, int] = {}
    if path.exists():
        with contextlib.suppress(ValueError, OSError):
            ports = {k: int(v) for k, v in json.loads(path.read_text()).items()}
    changed = False
    taken = set(ports.values())
    for name in names:
        if name not in ports:
            p = free_port()
            while p in taken:
                p = free_port()
            ports[name] = p
            taken.add(p)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports, indent=2) + "\n")
    return ports


def save_ports(path: Path, ports: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ports, indent=2) + "\n")


def tcp_connectable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- misc
def tail(path: Path, lines: int = 60) -> str:
    try:
        data = path.read_bytes()[-20000:].decode(errors="replace")
    except OSError:
        return f"<no log at {path}>"
    return "\n".join(data.splitlines()[-lines:])


def run_coro_blocking(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
    """Run a coroutine to completion from sync code, even if an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(asyncio.wait_for(factory(), timeout))
    box: dict[str, Any] = {}

    def _runner() -> None:
        try:
            box["v"] = asyncio.run(asyncio.wait_for(factory(), timeout))
        except BaseException as exc:  # noqa: BLE001
            box["e"] = exc

    t = threading.Thread(target=_runner, daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]
