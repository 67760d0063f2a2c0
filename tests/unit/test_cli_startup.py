"""The CLI starts fast and talks only to its own platform: importing it imports neither Prefect
nor the heavy libraries, and no command can start an ephemeral Prefect server (no server
here: a closed port is what the commands meet)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from quayside.cli.prefect_target import (
    API_URL,
    EPHEMERAL,
    PlatformUnreachable,
    point_at_platform,
    require_platform,
)
from testbed.platform import PROJECT_DIR

#: libraries a command imports when it needs them, never at start-up
HEAVY = ("prefect", "sqlalchemy", "alembic", "httpx", "pydantic", "rich", "yaml", "fastapi")
#: what typer itself loads to parse a command's options (its coercion uses pydantic)
PARSING = {"pydantic"}


def loaded_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """Top-level packages of HEAVY loaded after running ``code`` in a fresh interpreter (a
    ``None`` in sys.modules marks a module kept from loading: quayside.cli.main does that to
    httpx's command line)."""
    probe = (  # printed at exit: the CLI ends with os._exit after running exit handlers
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted("
        f"{{m.split('.')[0] for m, v in sys.modules.items() if v is not None}}"
        f" & set({HEAVY!r})))))\n"
        f"{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_imports_no_prefect_nor_heavy_libraries() -> None:
    assert loaded_after("import quayside.cli.main") == []


def run_main(*args: str) -> str:
    return (
        "import sys\n"
        f"sys.argv = ['quayside', *{list(args)!r}]\n"
        "from quayside.cli.main import main\n"
        "main()"
    )


def test_help_imports_nothing_heavy() -> None:
    assert loaded_after(run_main("--help")) == []


@pytest.mark.parametrize("command", ["deploy", "rollback", "approve", "releases", "check"])
def test_command_help_imports_no_prefect_nor_database(command: str) -> None:
    assert set(loaded_after(run_main(command, "--help"))) <= PARSING


def test_check_needs_pydantic_and_yaml_only(tmp_path: Path) -> None:
    inventory = tmp_path / "quayside.yaml"
    inventory.write_text("hosts:\n  h1: {address: 127.0.0.1}\n")
    loaded = loaded_after(run_main("check", str(inventory)))
    assert "prefect" not in loaded and "sqlalchemy" not in loaded, loaded


def test_releases_reads_a_sqlite_ledger_without_sqlalchemy(tmp_path: Path) -> None:
    """`quayside releases` on the default (SQLite) ledger reads it with the standard library:
    importing SQLAlchemy and the mapped models would cost most of the command."""
    from quayside.ledger.db import migrate

    migrate(f"sqlite:///{tmp_path / 'ledger.db'}")
    env = {**os.environ, "QUAYSIDE_HOME": str(tmp_path)}
    env.pop("QUAYSIDE_DATABASE_URL", None)
    loaded = loaded_after(run_main("releases", "shop", "prod"), env)
    assert set(loaded) <= PARSING | {"rich"}, loaded


def test_releases_without_a_ledger_says_so_and_creates_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
    env["QUAYSIDE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", "releases", "shop", "prod"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: the ledger database is not set up (no database file at {home / 'ledger.db'})",
        "hint: run `quayside db upgrade` (or start the platform with `make up`)",
    ]
    assert not home.exists()  # a listing writes nothing, not even an empty database


def test_point_at_platform_uses_the_settings_of_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_URL, raising=False)
    monkeypatch.setenv("QUAYSIDE_PREFECT_PORT", "4711")
    environ: dict[str, str] = {}
    assert point_at_platform(environ) == "http://127.0.0.1:4711/api"
    assert environ == {API_URL: "http://127.0.0.1:4711/api", EPHEMERAL: "false"}


def test_point_at_platform_keeps_an_explicit_api_url() -> None:
    environ = {API_URL: "https://prefect.example.com/api", EPHEMERAL: "true"}
    assert point_at_platform(environ) == "https://prefect.example.com/api"
    assert environ[EPHEMERAL] == "false"  # never an ephemeral server, whatever was set


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_require_platform_names_the_url_and_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}/api"
    with pytest.raises(PlatformUnreachable) as caught:
        require_platform(url)
    assert url in caught.value.message and "refused" in caught.value.message
    assert "make up" in str(caught.value.hint) and "quayside up" in str(caught.value.hint)


@pytest.mark.parametrize(
    "args",
    [
        ["rollback", "shop", "prod"],
        ["deploy", "shop", "prod", "v1"],
        ["approve", "00000000-0000-0000-0000-000000000000"],
    ],
)
def test_commands_without_a_platform_fail_in_one_line_and_start_no_server(
    tmp_path: Path, args: list[str]
) -> None:
    """QUAYSIDE_HOME / QUAYSIDE_PREFECT_PORT as for `quayside up`, nothing listening: one
    error line naming the platform's URL, the hint, exit 1, and no Prefect database anywhere
    (an ephemeral server would have created one under PREFECT_HOME)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    prefect_home = tmp_path / "prefect-home"
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "QUAYSIDE_"))}
    env.update(
        {
            "QUAYSIDE_HOME": str(home),
            "QUAYSIDE_PREFECT_PORT": str(port),
            "PREFECT_HOME": str(prefect_home),
            "QUAYSIDE_TOKEN": "qs_notarealtoken_secret",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    url = f"http://127.0.0.1:{port}/api"
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the Prefect API at {url} is not reachable (Connection refused)"]
    assert "hint: start the platform: `make up` (or `quayside up`)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("*.db")), list(tmp_path.rglob("*"))


@pytest.mark.parametrize(
    ("code", "status"), [("exit_now(0)", 0), ("exit_now(3)", 3), ("exit_now(None)", 0)]
)
def test_exit_now_runs_exit_handlers_flushes_and_keeps_the_status(code: str, status: int) -> None:
    program = (
        "import atexit, sys\n"
        "from quayside.cli.process_exit import exit_now\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.stdout.write('unflushed output')\n"
        f"{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert done.returncode == status
    assert done.stdout == "unflushed outputhandler ran\n"


def test_exit_now_waits_for_a_working_thread() -> None:
    program = (
        "import threading, time\n"
        "from quayside.cli.process_exit import exit_now\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "exit_now('a message')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr == "a message\n"
    assert done.stdout == "thread done\n"


def test_the_cli_keeps_httpx_s_command_line_from_loading() -> None:
    """httpx imports its own command line client (click, pygments, rich's progress and
    syntax) whenever they are installed; the CLI marks it absent, and httpx still works."""
    probe = (
        "import sys\n"
        "import quayside.cli.main\n"
        "import httpx\n"
        "assert httpx.Client and httpx.Response(204).status_code == 204\n"
        "print(sorted({'click', 'pygments'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
