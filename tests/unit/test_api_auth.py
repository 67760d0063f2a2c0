"""The Prefect API's auth string without a server: generated once into the data directory
(0600) and kept, an operator's own string copied there, sent by a client only to the
platform's own API; ``quayside api-auth rotate``; and the data directory check of ``up``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from quayside.api_auth import (
    CLIENT_SETTING,
    SERVER_SETTING,
    APIAuthError,
    auth_env,
    client_auth_string,
    new_auth_string,
    operator_auth_string,
    read_auth_file,
    server_auth_string,
)
from quayside.errors import InputError
from quayside.settings import Settings
from quayside.stack.data_dir import prepare_data_dir
from quayside.stack.supervisor import StackError
from testbed.platform import PROJECT_DIR


def settings_at(home: Path, port: int = 4200) -> Settings:
    return Settings(home, "sqlite://", home / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", port)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_generates_the_string_once_into_a_private_file(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    first = server_auth_string(settings, None)
    assert first.startswith("admin:") and len(first) > 40
    assert mode(settings.api_auth_path) == 0o600
    assert settings.api_auth_path.read_text() == first + "\n"
    assert server_auth_string(settings, None) == first  # kept across restarts
    assert new_auth_string() != new_auth_string()
    assert auth_env(first) == {SERVER_SETTING: first, CLIENT_SETTING: first}


def test_an_operators_string_is_used_and_copied_for_the_cli(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    server_auth_string(settings, None)
    own = operator_auth_string({SERVER_SETTING: " ops:their-secret \n"})
    assert own == "ops:their-secret"
    assert server_auth_string(settings, own) == "ops:their-secret"
    assert read_auth_file(settings.api_auth_path) == "ops:their-secret"
    assert mode(settings.api_auth_path) == 0o600
    assert operator_auth_string({}) is None
    with pytest.raises(InputError, match=f"{SERVER_SETTING} is set but empty"):
        operator_auth_string({SERVER_SETTING: "  "})


def test_a_client_sends_the_file_only_to_the_platforms_own_api(tmp_path: Path) -> None:
    settings = settings_at(tmp_path, port=4321)
    own = settings.prefect_api_url
    assert client_auth_string(own, settings, {}) is None  # no platform started here yet
    secret = server_auth_string(settings, None)
    assert client_auth_string(own, settings, {}) == secret
    assert client_auth_string(own + "/", settings, {}) == secret
    # PREFECT_API_URL elsewhere: this platform's secret is never sent there
    assert client_auth_string("http://prefect.example:4200/api", settings, {}) is None
    assert client_auth_string("http://localhost:4321/api", settings, {}) is None
    # the environment (and Prefect's own setting) win, wherever the API is
    assert client_auth_string(own, settings, {CLIENT_SETTING: "a:b"}) == "a:b"
    assert client_auth_string("http://elsewhere/api", settings, {}, "c:d") == "c:d"


def test_an_unreadable_or_empty_file_is_an_error_with_a_next_step(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    settings.api_auth_path.write_text("\n")
    with pytest.raises(APIAuthError, match="is empty") as empty:
        read_auth_file(settings.api_auth_path)
    assert "quayside api-auth rotate" in (empty.value.hint or "")
    settings.api_auth_path.unlink()
    settings.api_auth_path.mkdir()  # unreadable as a file, even for root
    with pytest.raises(APIAuthError, match="cannot read the Prefect API auth string") as bad:
        read_auth_file(settings.api_auth_path)
    assert CLIENT_SETTING in (bad.value.hint or "")


def test_the_data_directory_is_created_private(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    old = os.umask(0o077)
    try:
        prepare_data_dir(home)
    finally:
        os.umask(old)
    assert mode(home) == 0o700 and mode(home.parent) == 0o700
    prepare_data_dir(home)  # an existing private directory is fine


@pytest.mark.parametrize("bits", [0o755, 0o750, 0o705, 0o711, 0o720, 0o777])
def test_a_data_directory_others_can_reach_is_refused(tmp_path: Path, bits: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(bits)
    with pytest.raises(StackError) as refused:
        prepare_data_dir(home)
    message = str(refused.value)
    assert "\n" not in message
    assert f"data directory {home} has mode {bits:04o}" in message
    assert f"chmod 700 {home}" in message
    assert mode(home) == bits  # nothing changed behind the operator's back


def test_a_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("")
    with pytest.raises(StackError, match="is not a directory"):
        prepare_data_dir(home)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        env=env,
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rotate_writes_a_new_private_string(tmp_path: Path) -> None:
    env = dict(os.environ) | {"QUAYSIDE_HOME": str(tmp_path)}
    env.pop(SERVER_SETTING, None)
    settings = settings_at(tmp_path)
    old = server_auth_string(settings, None)
    done = cli(env, "api-auth", "rotate")
    assert done.returncode == 0, done.stderr
    new = read_auth_file(settings.api_auth_path)
    assert new is not None and new != old and new.startswith("admin:")
    assert mode(settings.api_auth_path) == 0o600
    assert str(settings.api_auth_path) in done.stdout and new not in done.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".api-auth")]

    refused = cli(env | {SERVER_SETTING: "ops:x"}, "api-auth", "rotate")
    assert refused.returncode == 1
    assert f"{SERVER_SETTING} is set here" in refused.stderr
    missing = cli(env | {"QUAYSIDE_HOME": str(tmp_path / "nope")}, "api-auth", "rotate")
    assert missing.returncode == 1 and "no data directory at" in missing.stderr


def test_a_ledger_command_before_up_creates_the_data_directory_private(tmp_path: Path) -> None:
    """`quayside db upgrade` (or `users add`) on a fresh host creates the data directory as
    `up` wants it, so `up` does not refuse it afterwards."""
    from quayside.ledger.db import make_engine

    home = tmp_path / "fresh"
    make_engine(f"sqlite:///{home / 'ledger.db'}").dispose()
    assert mode(home) == 0o700
    prepare_data_dir(home)
