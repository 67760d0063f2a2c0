"""A controller SIGKILLed mid-transfer leaves no host switching on its own (issue 15 item 1).

A real controller process deploys a large release to three sshd hosts through the deploy
engine; it is killed with SIGKILL while the payload travels. Every host keeps serving the
release it had, and removes what it had staged: a host switches only on the go line the live
controller writes after the payload.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.release_spec import ReleaseSpec
from quayside.executors import SSHExecutor
from quayside.manifest import build_manifest
from testbed.sshd import SshdFleet, SshdHost

pytestmark = pytest.mark.ssh

V1 = "20240501T120000Z-aaaaaaaaaaaa"
V2 = "20240502T120000Z-bbbbbbbbbbbb"
#: large enough that the transfer to three hosts outlasts the kill by far
PAYLOAD_MB = 96

CONTROLLER = """
import json, sys, threading
from dataclasses import replace
from pathlib import Path
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.release_spec import ReleaseSpec
from quayside.executors import SSHExecutor
from quayside.manifest import build_manifest

job = json.loads(sys.argv[1])
payload = Path(job["payload"])
spec = ReleaseSpec(
    app="web", env="prod", release_id=job["release"], commit_sha="b" * 40, ref="v2",
    payload_dir=payload, manifest=build_manifest(payload), deploy_root="/srv/unused",
    inline_max_bytes=job["inline_max"],
    scratch_dir=Path(job["scratch"]) if job["scratch"] else None,
)

def deploy(h):
    ex = SSHExecutor(name=h["name"], address=h["address"], port=h["port"], user=h["user"],
                     key_file=Path(h["key"]), known_hosts=Path(h["known_hosts"]))
    report = deploy_host(ex, h["name"], replace(spec, deploy_root=h["root"]))
    print(h["name"], report.status, report.message, flush=True)

threads = [threading.Thread(target=deploy, args=(h,)) for h in job["hosts"]]
for t in threads: t.start()
for t in threads: t.join()
"""


def _executor(host: SshdHost) -> SSHExecutor:
    return SSHExecutor(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        key_file=host.key_file,
        known_hosts=host.known_hosts,
    )


def _current(host: SshdHost) -> str | None:
    try:
        return os.readlink(host.root / "current")
    except OSError:
        return None


def _payload(path: Path, big: bool) -> Path:
    path.mkdir(parents=True)
    (path / "index.php").write_text("<?php echo 'v2';" if big else "<?php echo 'v1';")
    if big:
        with open(path / "big.bin", "wb") as out:
            for _ in range(PAYLOAD_MB):
                out.write(os.urandom(1024 * 1024))
    return path


@pytest.mark.parametrize("transport", ["inline", "stream"])
def test_a_controller_killed_mid_transfer_switches_no_host(
    clean_ssh_fleet: SshdFleet, tmp_path: Path, transport: str
) -> None:
    hosts = list(clean_ssh_fleet)
    v1 = _payload(tmp_path / "v1", big=False)
    for host in hosts:
        spec = ReleaseSpec(
            app="web",
            env="prod",
            release_id=V1,
            commit_sha="a" * 40,
            ref="v1",
            payload_dir=v1,
            manifest=build_manifest(v1),
            deploy_root=str(host.root),
        )
        with _executor(host) as ex:
            assert deploy_host(ex, host.name, spec).status == "succeeded"
        assert _current(host) == f"releases/{V1}"

    job = {
        "payload": str(_payload(tmp_path / "v2", big=True)),
        "release": V2,
        "inline_max": 10**9 if transport == "inline" else 1024 * 1024,
        "scratch": str(tmp_path / "scratch") if transport == "stream" else "",
        "hosts": [
            {
                "name": h.name,
                "address": h.address,
                "port": h.port,
                "user": h.user,
                "key": str(h.key_file),
                "known_hosts": str(h.known_hosts),
                "root": str(h.root),
            }
            for h in hosts
        ],
    }
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, json.dumps(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    staging = [h.root / "releases" / V2 for h in hosts]
    try:
        deadline = time.monotonic() + 120
        while not any(d.exists() for d in staging):  # a stage has started on a host
            assert controller.poll() is None, controller.communicate()
            assert time.monotonic() < deadline, "no host started staging within 120 s"
            time.sleep(0.005)
        # mid-transfer: no host has its go yet
        assert [_current(h) for h in hosts] == [f"releases/{V1}"] * len(hosts)
        controller.send_signal(signal.SIGKILL)
    finally:
        controller.kill()
        out, _ = controller.communicate()
    assert controller.returncode == -signal.SIGKILL
    assert b"succeeded" not in out

    # the hosts neither switch nor keep what they staged (polled: the stage scripts end on
    # their own once their input ends)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert [_current(h) for h in hosts] == [f"releases/{V1}"] * len(hosts)
        time.sleep(0.1)
    deadline = time.monotonic() + 30
    while any(d.exists() for d in staging) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [d for d in staging if d.exists()], "a partial release directory stayed"
    for host in hosts:
        assert _current(host) == f"releases/{V1}"
        assert not list(host.root.glob(".current.tmp-*"))
        assert (host.root / "current" / "index.php").read_text() == "<?php echo 'v1';"
