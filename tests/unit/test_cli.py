"""The CLI's error boundary: a wrong input gives one line naming the problem, a hint, and a
non-zero exit code; never a traceback (unless --verbose)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed.platform import PROJECT_DIR


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quayside.cli.main", *args],
        cwd=PROJECT_DIR, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_check_good_file(tmp_path: Path) -> None:
    path = tmp_path / "quayside.yaml"
    path.write_text(
        "hosts:\n  web-1: {address: 127.0.0.11}\ngroups:\n  web: [web-1]\n"
        "apps:\n  shop:\n    environments:\n      prod: {groups: [web]}\n"
    )
    result = cli("check", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok (1 hosts, 1 groups, 1 apps, 1 environments)" in result.stdout


def test_check_bad_file_names_key_path(tmp_path: Path) -> None:
    path = tmp_path / "quayside.yaml"
    path.write_text(
        "hosts:\n  web-1: {address: 127.0.0.11}\n"
        "apps:\n  shop:\n    environments:\n      prod: {hosts: [web-1, web-1, web-9]}\n"
    )
    result = cli("check", str(path))
    assert result.returncode == 1
    assert f"{path}: apps.shop.environments.prod.hosts[2]: unknown host 'web-9'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_uses_environment_variable_and_reports_missing(tmp_path: Path) -> None:
    result = cli("check", env={"QUAYSIDE_INVENTORY": str(tmp_path / "missing.yaml")})
    assert result.returncode == 1
    assert "missing.yaml: no such file" in result.stderr
    assert "hint:" in result.stderr


def test_verbose_shows_traceback(tmp_path: Path) -> None:
    result = cli("--verbose", "check", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_db_upgrade_creates_ledger(tmp_path: Path) -> None:
    result = cli("db", "upgrade", env={"QUAYSIDE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ledger.db").is_file()


def test_unknown_command_is_a_usage_error() -> None:
    result = cli("deploy-everything")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_deployments_render_matches_prefect_yaml() -> None:
    result = cli("deployments", "render")
    assert result.returncode == 0
    assert result.stdout == (PROJECT_DIR / "prefect.yaml").read_text()


def test_releases_on_a_ledger_that_was_never_set_up(tmp_path: Path) -> None:
    result = cli("releases", "shop", "prod", env={"QUAYSIDE_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "the ledger database is not set up" in result.stderr
    assert "quayside db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
