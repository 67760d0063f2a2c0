"""Protecting the console without a server: ``quayside up --listen`` off loopback refuses to
start without an auth string the operator chose (one line, before anything is created); the
string comes from ``--auth-string-file`` / ``QUAYSIDE_PREFECT_AUTH_STRING_FILE`` or
``PREFECT_SERVER_API_AUTH_STRING``; the server binds the listen address while the platform's
own clients reach it on loopback; every child gets ``PREFECT_API_AUTH_STRING`` in its
environment, never in an argv; clients and workers read the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quayside.api_auth import (
    CLIENT_SETTING,
    FILE_SETTING,
    SERVER_SETTING,
    APIAuthError,
    auth_env,
    client_auth_string,
    export_client_auth,
    operator_auth_string,
    refused_hint,
)
from quayside.errors import InputError
from quayside.settings import Settings
from quayside.stack.listen import refuse_unprotected, with_listen
from quayside.stack.processes import (
    gateway_process,
    platform_env,
    server_process,
    worker_process,
)
from testbed.platform import PROJECT_DIR

SECRET = "ops:s3cret-not-in-argv-7f1d"


def settings_at(home: Path) -> Settings:
    return Settings(home, "sqlite://", home / "quayside.yaml", "127.0.0.1", 8400, "127.0.0.1", 4200)


def secret_file(tmp_path: Path, text: str = SECRET + "\n") -> Path:
    path = tmp_path / "prefect-auth"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.10.5", "10.0.0.1"])
def test_off_loopback_without_an_operators_string_is_refused(tmp_path: Path, address: str) -> None:
    settings = with_listen(settings_at(tmp_path), address)
    with pytest.raises(InputError) as refused:
        refuse_unprotected(settings, None)
    message = str(refused.value)
    assert "\n" not in message and refused.value.hint is None  # one line
    assert address in message
    assert "--auth-string-file" in message and FILE_SETTING in message
    refuse_unprotected(settings, SECRET)  # with one: served


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_loopback_needs_no_operators_string(tmp_path: Path, address: str) -> None:
    refuse_unprotected(with_listen(settings_at(tmp_path), address), None)
    refuse_unprotected(settings_at(tmp_path), None)  # the default


@pytest.mark.parametrize("address", ["example.com", "300.1.1.1", "::", ""])
def test_listen_takes_an_ipv4_address(tmp_path: Path, address: str) -> None:
    with pytest.raises(InputError, match="is not an IPv4 address"):
        with_listen(settings_at(tmp_path), address)


def test_the_server_binds_the_listen_address_and_clients_use_loopback(tmp_path: Path) -> None:
    everywhere = with_listen(settings_at(tmp_path), "0.0.0.0")
    assert everywhere.prefect_bind == "0.0.0.0"
    assert everywhere.prefect_api_url == "http://127.0.0.1:4200/api"
    server = server_process(everywhere)
    assert server.argv[server.argv.index("--host") + 1] == "0.0.0.0"
    assert server.health_url == "http://127.0.0.1:4200/api/health"
    env = platform_env(everywhere, PROJECT_DIR, {})
    assert env["PREFECT_SERVER_API_HOST"] == "0.0.0.0"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    # the UI calls its own origin's /api: reachable however the browser got there
    assert env["PREFECT_UI_API_URL"] == "/api"

    one = with_listen(settings_at(tmp_path), "10.1.2.3")
    assert one.prefect_api_url == "http://10.1.2.3:4200/api"
    assert platform_env(one, PROJECT_DIR, {})["PREFECT_SERVER_API_HOST"] == "10.1.2.3"

    behind_proxy = {
        "PREFECT_UI_API_URL": "https://console.example/api",
        "PREFECT_UI_URL": "https://console.example",
    }
    env = platform_env(everywhere, PROJECT_DIR, behind_proxy)
    assert env["PREFECT_UI_API_URL"] == "https://console.example/api"
    assert env["PREFECT_UI_URL"] == "https://console.example"


def test_the_operators_string_comes_from_a_file_or_the_server_setting(tmp_path: Path) -> None:
    path = secret_file(tmp_path)
    assert operator_auth_string({}, path) == SECRET  # --auth-string-file
    assert operator_auth_string({FILE_SETTING: str(path)}) == SECRET
    assert operator_auth_string({SERVER_SETTING: SECRET}) == SECRET
    assert operator_auth_string({SERVER_SETTING: SECRET, FILE_SETTING: str(path)}) == SECRET
    assert operator_auth_string({}) is None
    with pytest.raises(InputError, match="differ") as differ:
        operator_auth_string({SERVER_SETTING: "ops:other", FILE_SETTING: str(path)})
    assert SECRET not in str(differ.value) + str(differ.value.hint)


def test_an_unusable_file_is_named_by_its_path_never_its_content(tmp_path: Path) -> None:
    with pytest.raises(APIAuthError, match="no file") as missing:
        operator_auth_string({FILE_SETTING: str(tmp_path / "absent")})
    assert str(tmp_path / "absent") in str(missing.value)
    with pytest.raises(APIAuthError, match="is empty"):
        operator_auth_string({}, secret_file(tmp_path, " \n"))
    # a path that exists and cannot be read as a file (a mode-0000 file is readable to root,
    # who runs the tests here): a directory where the file should be
    unreadable = tmp_path / "api-auth.d"
    unreadable.mkdir()
    with pytest.raises(APIAuthError, match="cannot read") as refused:
        operator_auth_string({}, unreadable)
    assert str(unreadable) in str(refused.value) and SECRET not in str(refused.value)


def test_children_get_the_string_in_their_environment_not_their_argv(tmp_path: Path) -> None:
    settings = with_listen(settings_at(tmp_path), "0.0.0.0")
    env = platform_env(settings, PROJECT_DIR, {FILE_SETTING: str(secret_file(tmp_path))})
    env.update(auth_env(SECRET))  # what `up` adds once it holds the data directory
    assert env[SERVER_SETTING] == SECRET and env[CLIENT_SETTING] == SECRET
    for spec in (server_process(settings), worker_process(settings), gateway_process(settings)):
        assert not any(SECRET in arg for arg in spec.argv), spec.name


def test_clients_send_the_files_string_to_the_api_they_were_pointed_at(tmp_path: Path) -> None:
    settings = settings_at(tmp_path)
    path = secret_file(tmp_path)
    elsewhere = "http://prefect.example:4200/api"
    assert client_auth_string(elsewhere, settings, {FILE_SETTING: str(path)}) == SECRET
    # the variable, when set, wins over the file
    both = {FILE_SETTING: str(path), CLIENT_SETTING: "a:b"}
    assert client_auth_string(elsewhere, settings, both) == "a:b"
    # a 401 names where the string came from
    assert FILE_SETTING in refused_hint(elsewhere, settings, {FILE_SETTING: str(path)})
    assert str(path) in refused_hint(elsewhere, settings, {FILE_SETTING: str(path)})
    assert CLIENT_SETTING in refused_hint(elsewhere, settings, {CLIENT_SETTING: "a:b"})
    assert SECRET not in refused_hint(elsewhere, settings, {FILE_SETTING: str(path)})


def test_a_worker_given_the_file_exports_the_string_for_prefect(tmp_path: Path) -> None:
    environ = {FILE_SETTING: str(secret_file(tmp_path))}
    export_client_auth(environ)
    assert environ[CLIENT_SETTING] == SECRET
    kept = {FILE_SETTING: str(secret_file(tmp_path)), CLIENT_SETTING: "a:b"}
    export_client_auth(kept)
    assert kept[CLIENT_SETTING] == "a:b"
    nothing: dict[str, str] = {}
    export_client_auth(nothing)
    assert nothing == {}


def up(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in (SERVER_SETTING, CLIENT_SETTING, FILE_SETTING, "QUAYSIDE_PREFECT_LISTEN")
    }
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "up", *args],
        env={**base, "QUAYSIDE_HOME": str(home), **(env or {})},
        cwd=PROJECT_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_listen_everywhere_refuses_in_one_line_before_creating_anything(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = up(home, "--listen", "0.0.0.0")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: refusing to serve the Prefect UI and API on 0.0.0.0")
    assert "--auth-string-file" in lines[0]
    assert not home.exists()  # nothing created, nothing started

    # the same through the setting, and a file that is not there: named, nothing created
    done = up(
        home,
        "--listen",
        "0.0.0.0",
        env={FILE_SETTING: str(tmp_path / "absent")},
    )
    assert done.returncode == 1 and "no file" in done.stderr, done.stderr
    assert not home.exists()


def test_the_cli_reaches_a_server_on_one_address_with_the_same_settings_as_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from quayside.settings import load_settings

    monkeypatch.delenv("QUAYSIDE_PREFECT_HOST", raising=False)
    monkeypatch.setenv("QUAYSIDE_PREFECT_PORT", "4999")
    for listen, host in (("10.0.0.5", "10.0.0.5"), ("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1")):
        monkeypatch.setenv("QUAYSIDE_PREFECT_LISTEN", listen)
        assert load_settings().prefect_api_url == f"http://{host}:4999/api", listen
    monkeypatch.setenv("QUAYSIDE_PREFECT_HOST", "127.0.0.9")  # said outright, it wins
    assert load_settings().prefect_api_url == "http://127.0.0.9:4999/api"
