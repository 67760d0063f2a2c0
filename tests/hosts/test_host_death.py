"""A host whose connection dies mid-transfer (its sshd killed): the report says the connection
was lost during the stage and how much input was on its way, and the next deploy removes the
partial release directory (issue 15 item 3)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.release_spec import ReleaseSpec
from quayside.errors import CommandFailed, ConnectError, ConnectionLost
from quayside.executors import SSHExecutor
from quayside.executors.control import close_masters
from quayside.manifest import build_manifest
from quayside.release.host_report import HostReport
from testbed.sshd import SshdFleet, SshdHost

pytestmark = pytest.mark.ssh

V1 = "20240501T120000Z-aaaaaaaaaaaa"
V2 = "20240502T120000Z-bbbbbbbbbbbb"
V3 = "20240503T120000Z-cccccccccccc"


def _spec(host: SshdHost, payload: Path, rid: str, **kw: object) -> ReleaseSpec:
    return ReleaseSpec(
        app="web",
        env="prod",
        release_id=rid,
        commit_sha=rid[-12:] * 3,
        ref=rid,
        payload_dir=payload,
        manifest=build_manifest(payload),
        deploy_root=str(host.root),
        **kw,  # type: ignore[arg-type]
    )


def _executor(host: SshdHost, **kw: object) -> SSHExecutor:
    return SSHExecutor(
        name=host.name,
        address=host.address,
        port=host.port,
        user=host.user,
        key_file=host.key_file,
        known_hosts=host.known_hosts,
        **kw,  # type: ignore[arg-type]
    )


def _deploy(host: SshdHost, spec: ReleaseSpec) -> HostReport:
    with _executor(host) as ex:
        return deploy_host(ex, host.name, spec)


def test_a_connection_lost_mid_transfer_is_reported_and_cleaned_up_later(
    clean_ssh_fleet: SshdFleet, tmp_path: Path
) -> None:
    host = clean_ssh_fleet[0]
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "index.php").write_text("v1")
    assert _deploy(host, _spec(host, v1, V1)).status == "succeeded"

    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "index.php").write_text("v2")
    with open(v2 / "big.bin", "wb") as out:
        for _ in range(96):
            out.write(os.urandom(1024 * 1024))
    spec = _spec(host, v2, V2, scratch_dir=tmp_path / "scratch", inline_max_bytes=1024 * 1024)
    reports: list[HostReport] = []
    worker = threading.Thread(target=lambda: reports.append(_deploy(host, spec)))
    worker.start()
    staging = host.root / "releases" / V2
    deadline = time.monotonic() + 120
    while not staging.exists():
        assert worker.is_alive() and time.monotonic() < deadline, reports
        time.sleep(0.005)
    host.stop()  # sshd and every connection it serves: the host is gone mid-transfer
    worker.join(120)
    (report,) = reports
    assert report.status == "failed" and report.step == "stage", report
    # what happened first: the connection broke under the stage, not "cannot connect"
    where = f"{host.address}:{host.port}"
    assert report.message.startswith(f"connection to {where} lost during the command"), report
    assert re.search(r"\(\d+ bytes of input were sent or in flight\)$", report.message)
    assert "cannot connect" not in report.message
    assert os.readlink(host.root / "current") == f"releases/{V1}"

    # back up: the next deploy serves and removes what the broken one left
    host.start()
    v3 = tmp_path / "v3"
    v3.mkdir()
    (v3 / "index.php").write_text("v3")
    third = _deploy(host, _spec(host, v3, V3))
    assert third.status == "succeeded", third
    assert os.readlink(host.root / "current") == f"releases/{V3}"
    assert sorted(p.name for p in (host.root / "releases").iterdir()) == [V1, V3]


@pytest.mark.parametrize("shared", [False, True], ids=["own-connection", "control-master"])
def test_openssh_tells_a_lost_connection_from_one_never_made(
    clean_ssh_fleet: SshdFleet, tmp_path: Path, shared: bool
) -> None:
    """Through the OpenSSH client (a file as stdin), on its own connection or a shared
    ControlMaster one: sshd killed while the command runs is a lost connection after the
    output it had sent; the host down before the command is a connection never made."""
    host = clean_ssh_fleet[1]
    sockets = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))  # short: a socket path
    kw = {"control_dir": sockets, "persist_s": 60} if shared else {}
    stdin = tmp_path / "stdin"
    stdin.write_bytes(b"x")
    marker = host.root / "started"
    try:
        with _executor(host, **kw) as ex:
            argv = ["sh", "-c", 'echo started; touch "$1"; sleep 30', "sh", str(marker)]
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    ex.run(argv, stdin=stdin, timeout=60)
                except BaseException as e:  # noqa: BLE001 - handed to the test thread
                    errors.append(e)

            worker = threading.Thread(target=run)
            worker.start()
            deadline = time.monotonic() + 30
            while not marker.exists():
                assert worker.is_alive() and time.monotonic() < deadline, errors
                time.sleep(0.01)
            time.sleep(0.2)  # the output line reaches the client
            host.stop()
            worker.join(60)
            (lost,) = errors
            assert isinstance(lost, ConnectionLost), lost
            where = f"{host.address}:{host.port}"
            text = f"{host.name}: connection to {where} lost during the command (after 8 bytes"
            assert str(lost).startswith(text), lost
            assert "cannot connect" not in str(lost)

            with pytest.raises(ConnectError, match=f"cannot connect to {where}") as down:
                ex.run(["true"], stdin=stdin, timeout=60)
            assert not isinstance(down.value, ConnectionLost)
    finally:
        host.start()
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.mark.parametrize("shared", [False, True], ids=["own-connection", "control-master"])
def test_openssh_passes_a_command_s_own_exit_255_through(
    clean_ssh_fleet: SshdFleet, tmp_path: Path, shared: bool
) -> None:
    """A command (a hook ending ``exit 255``) on a healthy connection: OpenSSH exits 255 as
    it does for a broken connection, but this is a command that failed - CommandFailed with
    exit 255 and its stderr, and the connection carries the next command."""
    host = clean_ssh_fleet[1]
    sockets = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))  # short: a socket path
    kw = {"control_dir": sockets, "persist_s": 60} if shared else {}
    stdin = tmp_path / "stdin"
    stdin.write_bytes(b"x")
    try:
        with _executor(host, **kw) as ex:
            argv = ["sh", "-c", 'echo started; echo "hook: giving up" >&2; exit 255']
            with pytest.raises(CommandFailed) as failed:
                ex.run(argv, stdin=stdin, timeout=60)
            assert type(failed.value) is CommandFailed, failed.value
            assert failed.value.exit_code == 255
            assert failed.value.stderr_tail == "hook: giving up"

            quiet = ex.run(["sh", "-c", "exit 255"], stdin=stdin, timeout=60, check=False)
            assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (255, "", "")
            assert ex.run(["echo", "still here"], stdin=stdin, timeout=60).stdout == "still here\n"
    finally:
        close_masters(sockets)
        shutil.rmtree(sockets, ignore_errors=True)
