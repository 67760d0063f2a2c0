"""Shared helpers for the git deploy / rollback tests: small git repos, an inventory for the
sshd fleet, an in-process flow call against the session platform, and checks that a host's
``current`` points at a complete release."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from quayside.ledger.db import make_engine
from quayside.manifest import MANIFEST_FILENAME, Manifest, build_manifest
from quayside.settings import load_settings
from testbed.platform import Platform
from testbed.sshd import SshdFleet, SshdHost

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


class Repo:
    """A real git repository in a temp dir; ``commit`` writes files and tags the commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        return subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        ).stdout

    def commit(
        self, files: dict[str, str | bytes | None], tag: str | None = None, message: str = "c"
    ) -> str:
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        if tag:
            self.git("tag", tag)
        return self.git("rev-parse", "HEAD").strip()


def host_entries(fleet: SshdFleet) -> dict[str, dict[str, Any]]:
    return {
        h.name: {
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "key_file": str(h.key_file),
            "known_hosts": str(h.known_hosts),
            "connect_timeout": 3,
        }
        for h in fleet
    }


def write_inventory(
    path: Path,
    fleet: SshdFleet,
    repo: Repo,
    *,
    app: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    extra_hosts: dict[str, dict[str, Any]] | None = None,
) -> None:
    """One app ``shop`` with environment ``test`` on every fleet host; the deploy root is each
    host's own root (``{host}`` in deploy_root)."""
    hosts = host_entries(fleet)
    hosts.update(extra_hosts or {})
    environment: dict[str, Any] = {"hosts": [h.name for h in fleet]}
    environment.update(env or {})
    application: dict[str, Any] = {
        "repo": str(repo.path),
        "deploy_root": str(fleet.base_dir / "{host}" / "root"),
        "environments": {"test": environment},
    }
    application.update(app or {})
    path.write_text(yaml.safe_dump({"hosts": hosts, "apps": {"shop": application}}))


def current_id(host: SshdHost) -> str | None:
    link = host.root / "current"
    if not link.is_symlink():
        return None
    return os.readlink(link).rpartition("/")[2]


def release_ids(host: SshdHost) -> list[str]:
    d = host.root / "releases"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def assert_complete(host: SshdHost) -> Manifest:
    """``current`` on ``host`` points at a release whose files match its manifest."""
    rid = current_id(host)
    assert rid is not None, f"{host.name} has no current release"
    release = host.root / "releases" / rid
    recorded = Manifest.from_json((release / MANIFEST_FILENAME).read_text())
    actual = build_manifest(release)
    shared = set(recorded.shared)

    def keep(p: str) -> bool:
        return not any(p == s or p.startswith(s + "/") for s in shared)

    want = {p: e for p, e in recorded.items() if keep(p)}
    got = {p: e for p, e in actual.items() if keep(p)}
    assert got == want, f"{host.name}: release {rid} does not match its manifest"
    for s in shared:
        assert (release / s).is_symlink(), f"{host.name}: shared path {s} is not a link"
    return recorded


def ledger() -> Any:
    return make_engine(load_settings().database_url)


@pytest.fixture(name="run_flow")
def run_flow_fixture(platform: Platform) -> Iterator[Callable[..., Any]]:
    """Call a flow function in-process against the session platform's Prefect API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with temporary_settings(updates={PREFECT_API_URL: platform.api_url}):
            result = fn(*args, **kwargs)
            # the release flows are async flows (see tasks.sync_body): run them to the end
            return asyncio.run(result) if inspect.iscoroutine(result) else result

    yield call


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "shop")
    r.commit(
        {
            "index.php": "<?php echo 'v1';\n",
            "lib/util.php": "<?php // util\n",
            "static/app.css": "body{}\n" * 50,
            "storage/logs/.keep": "",
            "we'ird $(touch pwned) name.txt": "quoted\n",
        },
        tag="v1",
    )
    r.commit({"index.php": "<?php echo 'v2';\n"}, tag="v2")
    r.commit({"index.php": "<?php echo 'v3';\n", "new.txt": "3\n"}, tag="v3")
    return r


# make the fixtures importable by name from test modules
__all__ = ["Repo", "repo_fixture", "run_flow_fixture", "write_inventory", "assert_complete"]
