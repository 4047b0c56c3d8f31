"""What the browser tests share besides fixtures: the console launcher, users, sign-in.
(A module of its own: `from conftest import ...` would find another folder's conftest.)"""


from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ".reintegra" / "test-artifacts" / "screenshots"
PASSWORD = "browser test password 1"
BROWSERS = ("chromium-headless-shell", "chromium")
CONSOLE_START_TIMEOUT_S = 90


# --------------------------------------------------------------------------- the browser
def system_chromium() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if found:
            return found
    return None


@dataclass
class RunningConsole:
    url: str
    database_url: str
    log_file: Path
    process: object

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def start_console(database_url: str, state_dir: Path, review_api_url: str) -> RunningConsole:
    from reintegra_stack import _proc

    port = _proc.free_port()
    log_file = state_dir / "finance-console.log"
    env = {**os.environ, "DATABASE_URL": database_url, "REINTEGRA_STATE_DIR": str(state_dir),
           "REINTEGRA_REVIEW_API_URL": review_api_url, "PYTHONUNBUFFERED": "1"}
    popen = _proc.spawn([sys.executable, "-m", "finance.web", "--host", "127.0.0.1", "--port", str(port)],
                        log_file=log_file, env=env, cwd=ROOT)
    running = RunningConsole(f"http://127.0.0.1:{port}", database_url, log_file,
                             _proc.ManagedProcess(popen, "finance-console"))
    deadline = time.monotonic() + CONSOLE_START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(running.url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return running
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if popen.poll() is not None or time.monotonic() > deadline:
            running.process.stop()
            raise RuntimeError("the console did not start:\n" + running.log()[-4000:])
        time.sleep(0.2)


def fresh_database(server_url: str) -> str:
    """A database of its own on the session's Postgres, finance and auth migrated."""
    import psycopg
    from finance.schema import bring_up_to_date
    from reintegra_stack._proc import run_coro_blocking

    name = f"browser_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    run_coro_blocking(lambda: bring_up_to_date(url), timeout=120)
    return url


# --------------------------------------------------------------------------- people
def make_user(database_url: str, username: str, roles: list[str], upstream_ids: tuple[str, ...] = ()) -> str:
    """A user with the test password, through reintegra.auth (as `reintegra users add` does)."""
    import asyncpg
    from reintegra.auth import create_user
    from reintegra_stack._proc import run_coro_blocking

    async def create() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await create_user(conn, username, roles, password=PASSWORD, upstream_ids=upstream_ids)
        finally:
            await conn.close()

    run_coro_blocking(create, timeout=60)
    return username


def query(database_url: str, sql: str, *args) -> list[dict]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(sql, args or None)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def sign_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
