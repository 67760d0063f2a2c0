"""``quayside approve`` never takes the token on the command line: no ``--token`` option; it
reads ``--token-file`` (refused when others can read it), ``QUAYSIDE_TOKEN``, or a hidden
prompt in a terminal, and says what to do when there is none."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quayside.cli.token_input import TOKEN_ENV, read_token
from quayside.errors import InputError
from testbed.platform import PROJECT_DIR, free_port

RUN_ID = "00000000-0000-0000-0000-000000000000"


def no_token_env(tmp_path: Path) -> dict[str, str]:
    """A client environment with no token and a Prefect API nobody listens on."""
    env = dict(os.environ) | {
        "QUAYSIDE_HOME": str(tmp_path),
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
    }
    env.pop(TOKEN_ENV, None)
    return env


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


def test_the_token_option_is_gone(tmp_path: Path) -> None:
    result = cli(no_token_env(tmp_path), "approve", RUN_ID, "--token", "qs_secret")
    assert result.returncode == 2
    assert "No such option: --token" in result.stderr
    assert "--token-file" in cli(no_token_env(tmp_path), "approve", "--help").stdout


def test_without_a_token_and_a_terminal_it_says_where_to_put_one(tmp_path: Path) -> None:
    result = cli(no_token_env(tmp_path), "approve", RUN_ID)
    assert result.returncode == 1
    assert "no token: set QUAYSIDE_TOKEN, pass --token-file PATH" in result.stderr
    assert "quayside tokens create USER" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("qs_abc_secret\n")
    token.chmod(0o644)
    result = cli(no_token_env(tmp_path), "approve", RUN_ID, "--token-file", str(token))
    assert result.returncode == 1
    assert f"--token-file {token} has mode 0644" in result.stderr
    assert f"chmod 600 {token}" in result.stderr
    assert "qs_abc_secret" not in result.stderr + result.stdout


def test_token_sources_in_order(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("  qs_from_file\n")
    token.chmod(0o600)
    env = {TOKEN_ENV: "qs_from_env"}
    assert read_token(token, env, interactive=False) == "qs_from_file"
    assert read_token(None, env, interactive=True, prompt=lambda: "x") == "qs_from_env"
    assert read_token(None, {}, interactive=True, prompt=lambda: " qs_typed ") == "qs_typed"
    with pytest.raises(InputError, match="no token"):
        read_token(None, {TOKEN_ENV: " "}, interactive=False)
    with pytest.raises(InputError, match="no token"):
        read_token(None, {}, interactive=True, prompt=lambda: "")
    token.write_text("\n")
    with pytest.raises(InputError, match="is empty"):
        read_token(token, {}, interactive=False)
    with pytest.raises(InputError, match="No such file"):
        read_token(tmp_path / "missing", {}, interactive=False)


def test_in_a_terminal_it_asks_without_echoing(tmp_path: Path) -> None:
    """The real prompt on a pseudo-terminal: the typed token is not echoed; the command goes
    on with it (to the Prefect API, which is not running here)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "quayside.cli.main", "approve", RUN_ID],
        env=no_token_env(tmp_path),
        cwd=PROJECT_DIR,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen = b""

    def read_until(done: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while done not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    return
                if not chunk:
                    return
                seen += chunk

    try:
        # click writes "Quayside token:", then getpass turns echo off, discarding what was
        # typed so far, and writes the " ": type only after that
        read_until(b"Quayside token: ")
        assert b"Quayside token: " in seen, seen
        os.write(leader, b"qs_typed_secret\n")
        read_until(b"hint:")
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert "qs_typed_secret" not in text
    assert "not reachable" in text  # it went on to ask Prefect
