"""SSHExecutor with persisted OpenSSH connections (``persist_s``) against real sshd hosts:
the same behaviour as the paramiko transport, one master connection reused across executors
(runs), and never reused with other credentials."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from quayside.errors import AuthError, CommandFailed, CommandTimeout, ConnectError, HostKeyError
from quayside.executors.control import (
    MAX_DIR_LENGTH,
    close_argv,
    close_masters,
    control_dir,
    control_name,
    control_sockets,
)
from quayside.executors.ssh import SSHExecutor
from testbed.sshd import SshdFleet, SshdHost
from tests.hosts.test_executor_ssh import PAYLOAD, executor_for, known_hosts_with_wrong_key

pytestmark = pytest.mark.ssh


@pytest.fixture
def sockets(tmp_path: Path) -> Iterator[Path]:
    directory = control_dir(tmp_path / "h")
    yield directory
    close_masters(directory)


def persisted(host: SshdHost, sockets: Path, **overrides: object) -> SSHExecutor:
    return executor_for(host, control_dir=sockets, persist_s=30, **overrides)


def master_alive(executor: SSHExecutor) -> bool:
    argv = [*executor.ssh_argv(), "-O", "check", executor.destination()]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_commands_behave_as_over_paramiko(clean_ssh_fleet: SshdFleet, sockets: Path) -> None:
    host = clean_ssh_fleet[0]
    ex = persisted(host, sockets)
    result = ex.run(["sh", "-c", 'echo out; echo err >&2; printf %s "$1"', "x", PAYLOAD])
    assert result.stdout == "out\n" + PAYLOAD and result.stderr == "err\n"
    assert ex.run(["cat"], stdin=b"through stdin").stdout == "through stdin"
    assert ex.run(["sh", "-c", 'echo "$Q"'], env={"Q": "v a l"}).stdout == "v a l\n"
    assert ex.run(["pwd"], cwd=str(host.root)).stdout.strip() == str(host.root)
    with pytest.raises(CommandFailed) as failed:
        ex.run(["sh", "-c", "echo nope >&2; exit 4"])
    assert failed.value.exit_code == 4 and "nope" in failed.value.stderr_tail
    lines: list[tuple[str, str]] = []
    ex.run(["sh", "-c", "echo a; echo b >&2"], on_output=lambda k, line: lines.append((k, line)))
    assert ("stdout", "a") in lines and ("stderr", "b") in lines
    with pytest.raises(CommandTimeout):
        ex.run(["sleep", "30"], timeout=1)
    assert ex.run(["echo", "still usable"]).stdout == "still usable\n"
    assert not (Path("/tmp/quayside-pwned")).exists()


def test_one_master_serves_later_executors_and_closes_on_request(
    clean_ssh_fleet: SshdFleet, sockets: Path
) -> None:
    host = clean_ssh_fleet[0]
    first = persisted(host, sockets)
    first.run(["true"])
    first.close()  # a persisted connection outlives its executor (the next run uses it)
    assert first.control_path is not None and first.control_path.is_socket()
    assert master_alive(first)
    second = persisted(host, sockets)
    assert second.control_path == first.control_path
    assert second.run(["echo", "again"]).stdout == "again\n"
    assert control_sockets(sockets) == [first.control_path]
    assert close_masters(sockets) == 1
    assert not master_alive(first)


def test_other_credentials_never_reuse_a_master(
    clean_ssh_fleet: SshdFleet, sockets: Path, tmp_path: Path
) -> None:
    """A changed key or known_hosts content is another connection: a key the host refuses
    fails with AuthError even while a master made with the good key is up; a wrong host key
    fails with HostKeyError and nothing runs."""
    from testbed.require import need_binary
    from testbed.sshd import KEYGEN_PACKAGE, generate_key

    host = clean_ssh_fleet[0]
    good = persisted(host, sockets)
    good.run(["true"])
    stranger = tmp_path / "stranger_ed25519"
    generate_key(need_binary("ssh-keygen", KEYGEN_PACKAGE), stranger, "stranger")
    bad = persisted(host, sockets, key_file=stranger)
    assert bad.control_path != good.control_path
    with pytest.raises(AuthError) as auth:
        bad.run(["true"])
    assert f"{host.address}:{host.port}" in str(auth.value) and "\n" not in str(auth.value)
    marker = host.root / "marker"
    wrong = persisted(host, sockets, known_hosts=known_hosts_with_wrong_key(host, tmp_path))
    with pytest.raises(HostKeyError):
        wrong.run(["touch", str(marker)])
    assert not marker.exists()
    # same path, new content: not the old connection either
    copy = tmp_path / "key_copy"
    assert host.key_file is not None
    copy.write_bytes(Path(host.key_file).read_bytes())
    copy.chmod(0o600)
    before = persisted(host, sockets, key_file=copy).control_path
    copy.write_bytes(stranger.read_bytes())
    assert persisted(host, sockets, key_file=copy).control_path != before


def test_unreadable_key_and_known_hosts_files_are_named(
    clean_ssh_fleet: SshdFleet, sockets: Path
) -> None:
    """Refused before OpenSSH runs, with the file named (OpenSSH itself would only say
    "Permission denied" or "Host key verification failed")."""
    ex = persisted(clean_ssh_fleet[0], sockets, key_file=Path("/nonexistent/key"))
    with pytest.raises(AuthError, match="cannot read key file /nonexistent/key"):
        ex.run(["true"])
    ex = persisted(clean_ssh_fleet[0], sockets, known_hosts=Path("/nonexistent/known_hosts"))
    with pytest.raises(HostKeyError, match="cannot read known_hosts file /nonexistent/known"):
        ex.run(["true"])


def test_a_stopped_host_ends_its_master_and_fails_to_connect(
    clean_ssh_fleet: SshdFleet, sockets: Path
) -> None:
    host = clean_ssh_fleet[1]
    ex = persisted(host, sockets)
    ex.run(["true"])
    host.stop()
    try:
        with pytest.raises(ConnectError, match=f"cannot connect to {host.address}:{host.port}"):
            ex.run(["true"])
    finally:
        host.start()
    assert ex.run(["echo", "back"]).stdout == "back\n"  # a new master after the restart


def test_control_dir_is_private_and_short(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))
    try:
        short = control_dir(home)
        assert short == home / "ssh"
        assert stat.S_IMODE(short.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(home)
    deep = tmp_path / ("d" * (MAX_DIR_LENGTH + 10))
    fallback = control_dir(deep)
    assert fallback != deep / "ssh" and len(str(fallback)) <= MAX_DIR_LENGTH
    assert fallback == control_dir(deep)  # stable for the same data directory
    assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    (loose / "ssh").mkdir(parents=True)
    os.chmod(loose / "ssh", 0o777)
    assert stat.S_IMODE(control_dir(loose).stat().st_mode) == 0o700


def test_control_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    from quayside.errors import InputError

    theirs = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))
    try:
        (theirs / "ssh").mkdir()
        os.chown(theirs / "ssh", 65534, 65534)
        with pytest.raises(InputError, match="not a directory of this user"):
            control_dir(theirs)
    finally:
        shutil.rmtree(theirs)


def test_control_name_covers_identity_and_file_contents(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("one")
    a = control_name(("u", "10.0.0.1", 22, True), (key, None))
    assert a == control_name(("u", "10.0.0.1", 22, True), (key, None))
    assert a != control_name(("u", "10.0.0.1", 2222, True), (key, None))
    assert a != control_name(("u", "10.0.0.1", 22, False), (key, None))
    key.write_text("two")
    assert a != control_name(("u", "10.0.0.1", 22, True), (key, None))
    assert a.startswith("cm-") and len(a) == 23
    exit_argv = ["ssh", "-o", "ControlPath=/s/cm-x", "-O", "exit", "quayside-control"]
    assert close_argv(Path("/s/cm-x")) == exit_argv


def test_persist_zero_keeps_the_paramiko_transport(
    clean_ssh_fleet: SshdFleet, sockets: Path
) -> None:
    ex = executor_for(clean_ssh_fleet[0], control_dir=sockets, persist_s=0)
    assert ex.control_path is None
    ex.run(["true"])
    assert ex.connections_opened == 1 and control_sockets(sockets) == []
    ex.close()
