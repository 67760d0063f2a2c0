"""End to end: the hello-release deployment, started through the Prefect API of a real
platform (`quayside up`), runs a command on real sshd hosts and records a release."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quayside.ledger.db import make_engine
from quayside.ledger.models import HostStatus, ReleaseStatus
from quayside.ledger.release_queries import list_releases
from quayside.runs import follow_run, prefect_client, read_run, start_run
from quayside.settings import load_settings
from testbed.platform import Platform
from testbed.sshd import SshdFleet

pytestmark = [pytest.mark.xdist_group("platform"), pytest.mark.prefect, pytest.mark.ssh]


def write_inventory(path: Path, fleet: SshdFleet, extra_hosts: dict[str, dict] | None = None):
    hosts = {
        h.name: {
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "key_file": str(h.key_file),
            "known_hosts": str(h.known_hosts),
        }
        for h in fleet
    }
    hosts.update(extra_hosts or {})
    doc = {
        "hosts": hosts,
        "groups": {"demo": [h.name for h in fleet], **{k: [k] for k in extra_hosts or {}}},
    }
    path.write_text(yaml.safe_dump(doc))


def run_to_end(run_id: str, timeout: float = 120) -> str:
    for _ in follow_run(run_id, poll_s=0.5, timeout_s=timeout):
        pass
    return read_run(run_id).state_type


def test_hello_release_runs_on_every_host(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, tmp_path: Path
) -> None:
    write_inventory(platform_inventory, clean_ssh_fleet)
    out = tmp_path / "connections"
    command = ["sh", "-c", 'echo "$SSH_CONNECTION" >> "$0"', str(out)]
    handle = start_run(
        "hello-release", {"group": "demo", "command": command, "requested_by": "alice"}
    )
    assert handle.ui_url.endswith(handle.id)
    assert run_to_end(handle.id) == "COMPLETED"

    # each host ran it over its own SSH connection: the server address differs per host
    servers = sorted(line.split()[2] for line in out.read_text().splitlines())
    assert servers == sorted(h.address for h in clean_ssh_fleet)

    engine = make_engine(load_settings().database_url)
    release = list_releases(engine, "hello", "demo", limit=1)[0]
    assert release.flow_run_id == handle.id
    assert release.status == ReleaseStatus.succeeded
    assert release.requested_by == "alice"
    assert sorted((h.host, h.status) for h in release.hosts) == [
        (h.name, HostStatus.succeeded) for h in clean_ssh_fleet
    ]


async def _artifact_keys(api_url: str, run_id: str) -> list[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with prefect_client(api_url) as client:
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        return [a.key or "" for a in arts]


def test_hello_release_failed_host_is_recorded(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet
) -> None:
    write_inventory(platform_inventory, clean_ssh_fleet)
    dead = clean_ssh_fleet[1]
    dead.stop()
    try:
        handle = start_run("hello-release", {"group": "demo", "command": ["true"]})
        assert run_to_end(handle.id) == "FAILED"
    finally:
        dead.start()
    status = read_run(handle.id)
    assert dead.name in (status.message or "")
    engine = make_engine(load_settings().database_url)
    release = next(
        r for r in list_releases(engine, "hello", "demo", limit=5) if r.flow_run_id == handle.id
    )
    assert release.status == ReleaseStatus.failed
    outcomes = {h.host: h for h in release.hosts}
    assert outcomes[dead.name].status == HostStatus.failed
    assert f"{dead.address}:{dead.port}" in (outcomes[dead.name].message or "")
    assert {h for h, o in outcomes.items() if o.status == HostStatus.succeeded} == {
        h.name for h in clean_ssh_fleet if h is not dead
    }
    import asyncio

    assert any(
        k.startswith("hello-release-demo")
        for k in asyncio.run(_artifact_keys(platform.api_url, handle.id))
    )


def test_unknown_group_fails_without_writing_a_release(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet
) -> None:
    write_inventory(platform_inventory, clean_ssh_fleet)
    engine = make_engine(load_settings().database_url)
    before = len(list_releases(engine, "hello", "nope", limit=100))
    handle = start_run("hello-release", {"group": "nope"})
    assert run_to_end(handle.id) == "FAILED"
    assert "unknown host group 'nope'" in (read_run(handle.id).message or "")
    assert len(list_releases(engine, "hello", "nope", limit=100)) == before


def test_host_key_mismatch_and_wrong_key(
    platform: Platform, platform_inventory: Path, clean_ssh_fleet: SshdFleet, tmp_path: Path
) -> None:
    host = clean_ssh_fleet[0]
    other = clean_ssh_fleet[1]
    bad_known = tmp_path / "known_hosts"
    # the right address with another host's key
    bad_known.write_text(f"[{host.address}]:{host.port} {other.host_public_key}\n")
    wrong_key = tmp_path / "wrong_key"
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True
    )
    base = {"address": host.address, "port": host.port, "user": host.user}
    write_inventory(
        platform_inventory,
        clean_ssh_fleet,
        {
            "mismatch": {**base, "key_file": str(host.key_file), "known_hosts": str(bad_known)},
            "wrongkey": {**base, "key_file": str(wrong_key), "known_hosts": str(host.known_hosts)},
        },
    )
    marker = tmp_path / "ran"
    for group, expected in (("mismatch", "host key"), ("wrongkey", "auth")):
        handle = start_run("hello-release", {"group": group, "command": ["touch", str(marker)]})
        assert run_to_end(handle.id) == "FAILED"
        assert expected in (read_run(handle.id).message or "").lower(), read_run(handle.id).message
    assert not marker.exists()
