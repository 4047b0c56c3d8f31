"""Where the identity-hash key comes from, and when intake refuses to start without one."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from intake.adapters.identity_key import IdentityKeyError, load_identity_key
from reintegra.settings import Settings

LOCAL = Path("secrets") / "identity-hash.key"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings(REINTEGRA_STATE_DIR=tmp_path / "state", **env)


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv("REINTEGRA_IDENTITY_HASH_KEY", raising=False)
    monkeypatch.delenv("REINTEGRA_IDENTITY_HASH_KEY_FILE", raising=False)


def test_the_key_itself(tmp_path):
    assert load_identity_key(settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY="s3cret-shared-key")) == b"s3cret-shared-key"
    assert not (tmp_path / "state" / LOCAL).exists()


def test_a_key_file_and_the_same_key_in_the_environment_agree(tmp_path):
    path = tmp_path / "mounted.key"
    path.write_text("s3cret-shared-key\n")
    from_file = load_identity_key(settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY_FILE=str(path)))
    assert from_file == load_identity_key(settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY=" s3cret-shared-key "))


def test_the_settings_never_show_the_key(tmp_path):
    s = settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY="s3cret-shared-key")
    assert "s3cret" not in repr(s) and "s3cret" not in str(s)


@pytest.mark.parametrize(("env", "named"), [
    ({"REINTEGRA_IDENTITY_HASH_KEY": ""}, "REINTEGRA_IDENTITY_HASH_KEY"),
    ({"REINTEGRA_IDENTITY_HASH_KEY": " \n"}, "REINTEGRA_IDENTITY_HASH_KEY"),
    ({"REINTEGRA_IDENTITY_HASH_KEY_FILE": "/nonexistent/identity.key"}, "REINTEGRA_IDENTITY_HASH_KEY_FILE"),
    ({"REINTEGRA_IDENTITY_HASH_KEY_FILE": ""}, "REINTEGRA_IDENTITY_HASH_KEY_FILE"),
    ({"REINTEGRA_IDENTITY_HASH_KEY": "k", "REINTEGRA_IDENTITY_HASH_KEY_FILE": "/etc/hostname"},
     "REINTEGRA_IDENTITY_HASH_KEY_FILE"),
])
def test_an_unusable_key_is_refused_naming_the_variable(tmp_path, env, named):
    with pytest.raises(IdentityKeyError, match=named):
        load_identity_key(settings(tmp_path, **env))


@pytest.mark.parametrize("content", [b"", b"  \n"])
def test_an_empty_key_file_is_refused(tmp_path, content):
    path = tmp_path / "empty.key"
    path.write_bytes(content)
    with pytest.raises(IdentityKeyError, match="REINTEGRA_IDENTITY_HASH_KEY_FILE.*is empty"):
        load_identity_key(settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY_FILE=str(path)))


def test_a_directory_as_key_file_is_refused(tmp_path):
    with pytest.raises(IdentityKeyError, match="directory"):
        load_identity_key(settings(tmp_path, REINTEGRA_IDENTITY_HASH_KEY_FILE=str(tmp_path)))


def test_without_a_key_a_local_one_is_made_once_and_reused(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="intake")
    first = load_identity_key(settings(tmp_path))
    path = tmp_path / "state" / LOCAL
    assert len(first) == 64 and bytes.fromhex(first.decode())  # 32 random bytes, hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_identity_key(settings(tmp_path)) == first
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one line per start
    assert all("production must set" in r.getMessage() and "REINTEGRA_IDENTITY_HASH_KEY" in r.getMessage()
               for r in warnings)
    assert first.decode() not in caplog.text
    assert [p.name for p in path.parent.iterdir()] == ["identity-hash.key"]  # no drafts left behind


def test_another_state_directory_has_another_local_key(tmp_path):
    assert load_identity_key(settings(tmp_path / "a")) != load_identity_key(settings(tmp_path / "b"))


def test_an_empty_local_key_file_is_refused(tmp_path):
    path = tmp_path / "state" / LOCAL
    path.parent.mkdir(parents=True)
    path.write_text("")
    with pytest.raises(IdentityKeyError, match="REINTEGRA_IDENTITY_HASH_KEY"):
        load_identity_key(settings(tmp_path))


def test_a_state_directory_that_cannot_hold_the_key_is_refused(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(IdentityKeyError, match="cannot be created.*REINTEGRA_IDENTITY_HASH_KEY"):
        load_identity_key(settings(tmp_path))


def test_intake_refuses_to_start_with_a_clear_message(tmp_path):
    env = {**os.environ, "REINTEGRA_STATE_DIR": str(tmp_path), "REINTEGRA_IDENTITY_HASH_KEY": ""}
    env.pop("REINTEGRA_IDENTITY_HASH_KEY_FILE", None)
    result = subprocess.run([sys.executable, "-c", "from intake.app import create_app; create_app()"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0
    assert "intake cannot start: REINTEGRA_IDENTITY_HASH_KEY is set but empty" in result.stderr
    assert "Traceback" not in result.stderr
