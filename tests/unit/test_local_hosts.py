"""The local host kind (``transport: local``) through the deploy engine, without a server: the
demo's inventory and git repository, each host a directory under a temp data directory; v1,
v2 (only the changed files sent), a no-change re-run, a rollback switch and a rollback that
restores a pruned release (rsync, locally); the health check from the inventory; commands on
a local host never see the platform's own variables. And the inventory rules for local
hosts, with their key paths."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from quayside.demo.inventory import TEST_HOSTS, demo_inventory, deploy_root, repo_path
from quayside.demo.site_repo import create_site_repo
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.release_spec import ReleaseSpec, RollbackSpec
from quayside.errors import ConfigError
from quayside.executors.factory import executor_for
from quayside.executors.local import LocalExecutor
from quayside.inventory import parse_inventory, resolve_target
from quayside.inventory.models import Hooks
from quayside.manifest import MANIFEST_FILENAME, build_manifest

RIDS = {"v1": "20240501T120001Z-aaaaaaaaaaaa", "v2": "20240501T120002Z-bbbbbbbbbbbb"}


def export(repo: Path, tag: str, dest: Path) -> Path:
    """The files of ``tag`` in ``repo`` (what a build directory holds)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(repo), "archive", tag], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def current(root: Path) -> str:
    return os.readlink(root / "current").rpartition("/")[2]


def test_demo_hosts_deploy_v1_v2_no_change_and_roll_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    create_site_repo(repo_path(home))
    inventory = parse_inventory(demo_inventory(home))
    target = resolve_target(inventory, "demo", "test")
    assert target.host_names == list(TEST_HOSTS)
    # a platform variable in the worker's environment (the flow run's) ...
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:platform-secret")
    # ... is not in a hook's on a local host (a release's own code must not read it)
    hooks = Hooks(post_switch=['env > "$QUAYSIDE_DEPLOY_ROOT/hook-env"'])

    payloads = {v: export(repo_path(home), v, tmp_path / "payload" / v) for v in RIDS}

    def spec(version: str) -> ReleaseSpec:
        payload = payloads[version]
        return ReleaseSpec(
            app="demo",
            env="test",
            release_id=RIDS[version],
            commit_sha=RIDS[version][-12:],
            ref=version,
            payload_dir=payload,
            manifest=build_manifest(payload),
            deploy_root=target.deploy_root,
            keep_releases=target.app.keep_releases,
            hooks=hooks,
            health=target.app.health_check,
        )

    def deploy(version: str) -> list[str]:
        release = spec(version)
        out = []
        for name, host in target.hosts:
            executor = executor_for(name, host)
            assert isinstance(executor, LocalExecutor) and executor.address == "127.0.0.1"
            try:
                report = deploy_host(executor, name, release)
            finally:
                executor.close()
            assert report.status != "failed", report
            out.append(report.status)
            if report.status == "succeeded":
                assert report.files_sent == (3 if version == "v1" else 2)  # v2: index, about
        return out

    roots = {name: deploy_root(home, name) for name in TEST_HOSTS}
    assert deploy("v1") == ["succeeded", "succeeded"]
    for root in roots.values():
        assert current(root) == RIDS["v1"]
        assert "v1" in (root / "current" / "index.html").read_text()
        hook_env = (root / "hook-env").read_text()
        assert "PREFECT_API_AUTH_STRING" not in hook_env and "QUAYSIDE_HOME" not in hook_env
        assert f"QUAYSIDE_RELEASE={RIDS['v1']}" in hook_env and "PATH=" in hook_env

    assert deploy("v2") == ["succeeded", "succeeded"]
    for root in roots.values():
        assert current(root) == RIDS["v2"]
        page = (root / "current" / "index.html").read_text()
        assert "v2" in page and (root / "current" / "about.html").is_file()
        # the unchanged stylesheet is the v1 file, hard-linked
        v1_css = root / "releases" / RIDS["v1"] / "style.css"
        assert (root / "current" / "style.css").stat().st_ino == v1_css.stat().st_ino

    assert deploy("v2") == ["no_change", "no_change"]

    # roll back to v1: on test-1 it is still there (one switch); on test-2 it was pruned, so
    # its payload is restored from "the store" by rsync on this machine
    pruned = roots["test-2"] / "releases" / RIDS["v1"]
    subprocess.run(["rm", "-rf", str(pruned)], check=True)
    stored = export(repo_path(home), "v1", tmp_path / "stored-v1")  # as the store gives it:
    (stored / MANIFEST_FILENAME).write_text(build_manifest(stored).to_json())  # + manifest
    back = RollbackSpec(
        "demo",
        "test",
        RIDS["v1"],
        RIDS["v1"][-12:],
        "v1",
        target.deploy_root,
        health=target.app.health_check,
    )
    for name, host in target.hosts:
        executor = executor_for(name, host)
        report = rollback_host(executor, name, back, fetch_payload=lambda: stored)
        assert report.status == "succeeded", report
        assert report.previous == f"releases/{RIDS['v2']}"
        # test-1: the switch and the health check; test-2: restored first
        assert report.message == ("restored from store" if name == "test-2" else "")
        assert report.round_trips == 2 if name == "test-1" else report.round_trips > 2
    for root in roots.values():
        assert current(root) == RIDS["v1"]
        assert "v1" in (root / "current" / "index.html").read_text()
        assert not (root / "current" / "about.html").exists()


def test_a_failing_health_check_on_a_local_host_switches_it_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    create_site_repo(repo_path(home))
    inventory = parse_inventory(demo_inventory(home))
    target = resolve_target(inventory, "demo", "test", ["test-1"])
    name, host = target.hosts[0]
    payloads = {v: export(repo_path(home), v, tmp_path / v) for v in ("v1", "v2")}
    (payloads["v2"] / "index.html").write_text("broken\n")  # no "Quayside demo" in it

    def release(version: str) -> ReleaseSpec:
        return ReleaseSpec(
            app="demo",
            env="test",
            release_id=RIDS[version],
            commit_sha=RIDS[version][-12:],
            ref=version,
            payload_dir=payloads[version],
            manifest=build_manifest(payloads[version]),
            deploy_root=target.deploy_root,
            health=target.app.health_check.model_copy(update={"retries": 0})
            if target.app.health_check
            else None,
        )

    assert deploy_host(executor_for(name, host), name, release("v1")).status == "succeeded"
    report = deploy_host(executor_for(name, host), name, release("v2"))
    assert report.status == "failed" and report.step == "health"
    assert "switched back" in report.message
    assert current(deploy_root(home, name)) == RIDS["v1"]


@pytest.mark.parametrize(
    ("hosts", "app", "message"),
    [
        (
            "  here: {transport: local, key_file: /k, port: 2222}\n",
            "",
            "quayside.yaml: hosts.here: key_file, port: SSH settings, unused by a transport: "
            "local host",
        ),
        (
            "  a: {transport: local}\n  b: {transport: local}\n",
            "apps:\n  web:\n    deploy_root: /srv/web\n    environments:\n"
            "      test: {hosts: [a, b]}\n",
            "quayside.yaml: apps.web.environments.test: local hosts 'a' and 'b' would both "
            "deploy into /srv/web; put {host} in deploy_root",
        ),
    ],
)
def test_inventory_rules_for_local_hosts(hosts: str, app: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_inventory(f"hosts:\n{hosts}{app}")
    assert message in str(caught.value)


def test_a_local_host_is_this_machine_unless_its_address_says_otherwise() -> None:
    inventory = parse_inventory(
        "hosts:\n  a: {transport: local}\n  b: {transport: local, address: 127.0.0.5}\n"
        "  c: {address: web.example}\n"
    )
    assert inventory.hosts["a"].address == "127.0.0.1"
    assert inventory.hosts["b"].address == "127.0.0.5"
    assert inventory.hosts["c"].transport == "ssh"
    with pytest.raises(ConfigError, match="hosts.d.address: required key is missing"):
        parse_inventory("hosts:\n  d: {port: 22}\n")
