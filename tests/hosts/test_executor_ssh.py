"""SSHExecutor against real sshd hosts on loopback (testbed/sshd.py)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quayside.commands.rsync import remote_dest, rsync_push
from quayside.errors import (
    AuthError,
    CommandFailed,
    CommandTimeout,
    ConnectError,
    ConnectionLost,
    HostError,
    HostKeyError,
    InputError,
)
from quayside.executors import Executor, SSHExecutor
from quayside.executors.ssh import remote_command
from testbed.require import need_binary
from testbed.sshd import KEYGEN_PACKAGE, SshdFleet, SshdHost, generate_key

pytestmark = pytest.mark.ssh

# Every character a shell would act on, in one argument.
PAYLOAD = (
    "a b  $(touch /tmp/quayside-pwned) ; `id` | & > < * ? ~ #x 'single' \"double\" \\ "
    "\n\tend $HOME ${PATH} !! %s"
)


def executor_for(host: SshdHost, **overrides: object) -> SSHExecutor:
    settings: dict[str, object] = {
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "key_file": host.key_file,
        "known_hosts": host.known_hosts,
        "connect_timeout": 5,
    }
    settings.update(overrides)
    return SSHExecutor(**settings)  # type: ignore[arg-type]


@pytest.fixture
def host(clean_ssh_fleet: SshdFleet) -> SshdHost:
    return clean_ssh_fleet[0]


@pytest.fixture
def ssh(host: SshdHost) -> Iterator[SSHExecutor]:
    executor = executor_for(host)
    yield executor
    executor.close()


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    """A client key that no host authorizes."""
    path = tmp_path / "other_ed25519"
    generate_key(need_binary("ssh-keygen", KEYGEN_PACKAGE), path, "stranger")
    return path


def known_hosts_with_wrong_key(host: SshdHost, tmp_path: Path) -> Path:
    """A known_hosts file that lists ``host`` with some other host's key."""
    keygen = need_binary("ssh-keygen", KEYGEN_PACKAGE)
    public = generate_key(keygen, tmp_path / "impostor_key", "impostor")
    path = tmp_path / "known_hosts_wrong"
    path.write_text(f"[{host.address}]:{host.port} {' '.join(public.split()[:2])}\n")
    return path


# -- commands ------------------------------------------------------------------------------


def test_implements_the_executor_protocol(ssh: SSHExecutor) -> None:
    assert isinstance(ssh, Executor)


def test_runs_a_command_and_returns_output_and_exit_code(ssh: SSHExecutor, host: SshdHost) -> None:
    result = ssh.run(["sh", "-c", "echo out; echo err >&2; hostname >/dev/null"])
    assert result.host == host.name
    assert result.exit_code == 0 and result.ok
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    # The command ran on the sshd host: its SSH_CONNECTION names the host's address and port.
    conn = ssh.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).stdout.split()
    assert conn[2:] == [host.address, str(host.port)]


def test_argument_with_shell_metacharacters_arrives_verbatim(ssh: SSHExecutor) -> None:
    result = ssh.run(["printf", "%s", PAYLOAD])
    assert result.stdout == PAYLOAD
    # Several such arguments stay separate, in order, each exactly one argument.
    args = [PAYLOAD, "", " ", "--x", "-e", "'", '"']
    script = 'for a in "$@"; do printf "%s\\0" "$a"; done'
    echoed = ssh.run(["sh", "-c", script, "sh", *args]).stdout
    assert echoed.split("\0")[:-1] == args
    assert not Path("/tmp/quayside-pwned").exists()


def test_remote_command_is_built_by_shlex_only() -> None:
    line = remote_command(["echo", "a b", "$(x)"], env={"A": "1 2"}, cwd="/srv/my app")
    assert line == "cd '/srv/my app' && exec env 'A=1 2' echo 'a b' '$(x)'"


def test_env_and_cwd(ssh: SSHExecutor, host: SshdHost) -> None:
    workdir = host.root / "dir with space"
    workdir.mkdir()
    result = ssh.run(
        ["sh", "-c", 'printf "%s|%s|%s" "$QS_ONE" "$QS_TWO" "$(pwd)"'],
        env={"QS_ONE": "x y $(id) `id`", "QS_TWO": "line1\nline2"},
        cwd=str(workdir),
    )
    assert result.stdout == f"x y $(id) `id`|line1\nline2|{workdir}"


def test_invalid_env_name_is_rejected_before_anything_runs(
    ssh: SSHExecutor, host: SshdHost
) -> None:
    marker = host.root / "marker"
    for bad in ["A;touch " + str(marker), "1X", "A-B", "", "A B"]:
        with pytest.raises(InputError, match="invalid environment variable name"):
            ssh.run(["touch", str(marker)], env={bad: "x"})
    assert not marker.exists()
    assert ssh.connections_opened == 0


def test_missing_cwd_fails_without_running(ssh: SSHExecutor, host: SshdHost) -> None:
    marker = host.root / "marker"
    with pytest.raises(CommandFailed):
        ssh.run(["touch", str(marker)], cwd=str(host.root / "missing"))
    assert not marker.exists()


def test_stdin_is_sent(ssh: SSHExecutor) -> None:
    data = b"hello\n" * 50_000
    assert ssh.run(["cat"], stdin=data).stdout.encode() == data
    assert ssh.run(["cat"]).stdout == ""  # no stdin: EOF at once, nothing hangs


def test_file_stdin_travels_through_openssh(ssh: SSHExecutor, tmp_path: Path) -> None:
    """A file as stdin (bulk data) goes through the OpenSSH client with the same credentials;
    the argv still arrives verbatim, exit codes and output are the command's."""
    import hashlib

    data = os.urandom(3 * 1024 * 1024 + 17)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(data)
    evil = "x; touch /tmp/quayside-pwned $(id)"
    result = ssh.run(["sh", "-c", 'sha256sum; printf "%s" "$1"', "sh", evil], stdin=payload)
    assert result.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    assert result.stdout.endswith(evil) and result.argv[-1] == evil
    assert not Path("/tmp/quayside-pwned").exists()
    failed = ssh.run(
        ["sh", "-c", "cat >/dev/null; echo nope >&2; exit 3"], stdin=payload, check=False
    )
    assert (failed.exit_code, failed.stderr) == (3, "nope\n")
    with pytest.raises(CommandFailed) as info:
        ssh.run(["sh", "-c", "cat >/dev/null; exit 4"], stdin=payload)
    assert info.value.exit_code == 4 and "OpenSSH" not in str(info.value)
    with pytest.raises(CommandTimeout):
        ssh.run(["sleep", "30"], stdin=payload, timeout=1)
    bulk = ssh.ssh_argv(bulk=True)
    assert "Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com" in bulk
    assert "KexAlgorithms=^curve25519-sha256,curve25519-sha256@libssh.org" in bulk
    assert not any(a.startswith(("Ciphers", "KexAlgorithms")) for a in ssh.ssh_argv())


def test_file_stdin_failures_name_the_cause(
    host: SshdHost, other_key: Path, tmp_path: Path, clean_ssh_fleet: SshdFleet
) -> None:
    """Through OpenSSH too: a refused key is an AuthError, a changed host key a HostKeyError
    (and nothing runs), a stopped host a ConnectError; each one line naming the host."""
    payload = tmp_path / "p"
    payload.write_bytes(b"x")
    marker = host.root / "marker"
    with executor_for(host, key_file=other_key) as executor:
        with pytest.raises(AuthError) as auth:
            executor.run(["touch", str(marker)], stdin=payload)
    assert f"{host.address}:{host.port}" in str(auth.value) and "\n" not in str(auth.value)
    wrong = known_hosts_with_wrong_key(host, tmp_path)
    with executor_for(host, known_hosts=wrong) as executor:
        with pytest.raises(HostKeyError):
            executor.run(["touch", str(marker)], stdin=payload)
    assert not marker.exists()
    stopped = clean_ssh_fleet[2]
    stopped.stop()
    try:
        with executor_for(stopped) as executor:
            with pytest.raises(ConnectError) as down:
                executor.run(["true"], stdin=payload)
        where = f"{stopped.address}:{stopped.port}"
        assert str(down.value).startswith(f"{stopped.name}: cannot connect to {where}")
        assert "refused" in str(down.value)
    finally:
        stopped.start()


def test_large_output_on_both_streams(ssh: SSHExecutor) -> None:
    script = "seq 1 200000; seq 1 200000 >&2"
    result = ssh.run(["sh", "-c", script])
    expected = "".join(f"{i}\n" for i in range(1, 200001))
    assert result.stdout == expected and result.stderr == expected


def test_output_is_streamed_line_by_line_as_it_arrives(ssh: SSHExecutor, host: SshdHost) -> None:
    # The remote command waits for a file that only the callback creates after it sees
    # "ready" (the host's root is on this machine): without streaming it would time out.
    gate = host.root / "gate"
    script = (
        'echo ready; echo "to stderr" >&2; '
        f"while [ ! -e {gate} ]; do sleep 0.02; done; seq 1 1000; printf 'no newline'"
    )
    seen: list[tuple[str, str]] = []

    def on_output(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "ready":
            gate.touch()

    result = ssh.run(["sh", "-c", script], on_output=on_output, timeout=20)
    stdout_lines = [line for stream, line in seen if stream == "stdout"]
    assert stdout_lines == ["ready", *(str(i) for i in range(1, 1001)), "no newline"]
    assert ("stderr", "to stderr") in seen
    assert result.stdout.endswith("1000\nno newline")


def test_timeout_raises_command_timeout_and_the_executor_stays_usable(
    ssh: SSHExecutor,
) -> None:
    with pytest.raises(CommandTimeout) as info:
        ssh.run(["sh", "-c", "echo partial >&2; sleep 5"], timeout=0.5)
    error = info.value
    assert error.host == "web-1"
    assert "timed out after 0.5s" in str(error)
    assert error.command == ["sh", "-c", "echo partial >&2; sleep 5"]
    assert ssh.run(["echo", "still here"]).stdout == "still here\n"
    assert ssh.connections_opened == 1


def test_nonzero_exit_raises_command_failed_with_exit_code_and_stderr_tail(
    ssh: SSHExecutor,
) -> None:
    argv = ["sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3"]
    with pytest.raises(CommandFailed) as info:
        ssh.run(argv)
    error = info.value
    assert error.host == "web-1"
    assert error.exit_code == 3
    assert error.command == argv
    assert error.stderr_tail == "line3\nline4\nline5\nline6\nline7"
    message = str(error)
    assert message.startswith("web-1: command failed: sh -c ")
    assert "(exit 3)" in message and "line7" in message and "line1" not in message


def test_check_false_returns_the_failed_result(ssh: SSHExecutor) -> None:
    result = ssh.run(["sh", "-c", "echo nope >&2; exit 7"], check=False)
    assert result.exit_code == 7 and not result.ok and result.stderr == "nope\n"


def test_missing_program_is_exit_127(ssh: SSHExecutor) -> None:
    with pytest.raises(CommandFailed) as info:
        ssh.run(["quayside-no-such-program"])
    assert info.value.exit_code == 127


# -- connection ----------------------------------------------------------------------------


def test_connects_lazily_and_reuses_one_connection(ssh: SSHExecutor) -> None:
    assert ssh.connections_opened == 0
    transports = set()
    for i in range(10):
        assert ssh.run(["echo", str(i)]).stdout == f"{i}\n"
        transports.add(id(ssh.transport()))
    assert ssh.connections_opened == 1
    assert len(transports) == 1


def test_concurrent_commands_share_the_connection(ssh: SSHExecutor) -> None:
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = ssh.run(["sh", "-c", f"sleep 0.1; echo {i}"]).stdout
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == {i: f"{i}\n" for i in range(16)}
    assert ssh.connections_opened == 1


def test_close_then_run_reconnects(ssh: SSHExecutor) -> None:
    ssh.run(["true"])
    ssh.close()
    ssh.close()  # twice is fine
    ssh.run(["true"])
    assert ssh.connections_opened == 2


def test_wrong_key_raises_auth_error(host: SshdHost, other_key: Path) -> None:
    with executor_for(host, key_file=other_key) as executor:
        with pytest.raises(AuthError) as info:
            executor.run(["true"])
    message = str(info.value)
    assert message.startswith(f"web-1: authentication as '{host.user}' at ")
    assert f"{host.address}:{host.port}" in message
    assert "\n" not in message
    assert isinstance(info.value.__cause__, Exception)
    assert info.value.hint and "authorized_keys" in info.value.hint


def test_missing_key_file_raises_auth_error(host: SshdHost, tmp_path: Path) -> None:
    with executor_for(host, key_file=tmp_path / "nope") as executor:
        with pytest.raises(AuthError, match="cannot read key file"):
            executor.run(["true"])


def test_host_key_mismatch_raises_host_key_error_and_nothing_runs(
    host: SshdHost, tmp_path: Path
) -> None:
    wrong = known_hosts_with_wrong_key(host, tmp_path)
    marker = host.root / "marker"
    with executor_for(host, known_hosts=wrong) as executor:
        with pytest.raises(HostKeyError) as info:
            executor.run(["touch", str(marker)])
    assert not marker.exists()
    message = str(info.value)
    assert f"{host.address}:{host.port}" in message
    assert "does not match" in message and str(wrong) in message
    assert "\n" not in message


def test_unknown_host_key_raises_host_key_error(host: SshdHost, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    marker = host.root / "marker"
    with executor_for(host, known_hosts=empty) as executor:
        with pytest.raises(HostKeyError, match="is not in") as info:
            executor.run(["touch", str(marker)])
    assert f"{host.address}:{host.port}" in str(info.value)
    assert not marker.exists()


def test_missing_known_hosts_file_raises_host_key_error(host: SshdHost, tmp_path: Path) -> None:
    with executor_for(host, known_hosts=tmp_path / "absent") as executor:
        with pytest.raises(HostKeyError, match="cannot read known_hosts"):
            executor.run(["true"])


def test_verify_host_key_false_connects_and_warns(
    host: SshdHost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = known_hosts_with_wrong_key(host, tmp_path)
    with caplog.at_level(logging.WARNING, logger="quayside.executors.ssh"):
        with executor_for(host, known_hosts=wrong, verify_host_key=False) as executor:
            assert executor.run(["echo", "in"]).stdout == "in\n"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("host key verification is off" in w and "web-1" in w for w in warnings)


def test_stopped_host_raises_connect_error_naming_the_address(
    clean_ssh_fleet: SshdFleet,
) -> None:
    host = clean_ssh_fleet[2]
    executor = executor_for(host)
    try:
        executor.run(["true"])
        host.stop()
        # The open connection died with the host; the executor notices and reconnects.
        with pytest.raises(ConnectError) as info:
            executor.run(["true"])
        assert str(info.value) == (
            f"{host.name}: cannot connect to {host.address}:{host.port}: connection refused"
        )
        assert info.value.hint and "host is up" in info.value.hint
        host.start()
        assert executor.run(["echo", "back"]).stdout == "back\n"
        assert executor.connections_opened == 2
    finally:
        host.start()
        executor.close()


def test_host_dying_mid_command_raises_connection_lost(clean_ssh_fleet: SshdFleet) -> None:
    host = clean_ssh_fleet[2]
    executor = executor_for(host)
    marker = host.root / "started"

    def kill_once_started() -> None:
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the output line reaches this side
        host.stop()

    killer = threading.Thread(target=kill_once_started)
    try:
        executor.run(["true"])
        killer.start()
        lost = f"connection to {host.address}:{host.port} lost during the command "
        with pytest.raises(ConnectionLost, match=lost + r"\(after 6 bytes of output\)"):
            script = 'echo hello; touch "$1"; sleep 20'
            executor.run(["sh", "-c", script, "sh", str(marker)], timeout=60)
    finally:
        killer.join()
        host.start()
        executor.close()


def test_unresolvable_name_raises_connect_error(host: SshdHost) -> None:
    with executor_for(host, address="no-such-host.invalid") as executor:
        with pytest.raises(ConnectError, match="cannot resolve 'no-such-host.invalid'"):
            executor.run(["true"])


def test_non_ssh_port_raises_connect_error(host: SshdHost) -> None:
    import socket

    with socket.socket() as server:
        server.bind((host.address, 0))
        server.listen()
        port = server.getsockname()[1]

        def accept_and_close() -> None:
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            conn.close()

        thread = threading.Thread(target=accept_and_close)
        thread.start()
        with executor_for(host, port=port, connect_timeout=2) as executor:
            with pytest.raises(ConnectError, match=f"{host.address}:{port}"):
                executor.run(["true"])
        thread.join()


# -- files ---------------------------------------------------------------------------------


def test_put_bytes_writes_atomically_with_mode(ssh: SSHExecutor, host: SshdHost) -> None:
    target = host.root / "app.conf"
    ssh.put_bytes(b"one\n", str(target), mode=0o600)
    assert target.read_bytes() == b"one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    inode = target.stat().st_ino
    ssh.put_bytes(b"two\n", str(target))
    assert target.read_bytes() == b"two\n"
    assert target.stat().st_ino != inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # existing mode kept
    ssh.put_bytes(b"three\n", str(target), mode=0o640)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in host.root.iterdir()] == ["app.conf"]  # no temp file left
    assert ssh.connections_opened == 1


def test_put_bytes_new_file_defaults_to_0644(ssh: SSHExecutor, host: SshdHost) -> None:
    target = host.root / "new"
    ssh.put_bytes(b"x", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_put_file_copies_content_and_mode(ssh: SSHExecutor, host: SshdHost, tmp_path: Path) -> None:
    source = tmp_path / "hook.sh"
    source.write_bytes(b"#!/bin/sh\necho hook\n" + bytes(range(256)) * 4000)
    target = host.root / "hook.sh"
    ssh.put_file(source, str(target), mode=0o755)
    assert target.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_put_bytes_into_missing_directory_raises_host_error(
    ssh: SSHExecutor, host: SshdHost
) -> None:
    remote = str(host.root / "missing" / "file")
    with pytest.raises(HostError, match="cannot write .*missing/file over SFTP"):
        ssh.put_bytes(b"x", remote)
    assert list(host.root.iterdir()) == []


def test_put_file_from_many_threads(ssh: SSHExecutor, host: SshdHost) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            ssh.put_bytes(f"file {i}".encode(), str(host.root / f"f{i}"))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {p.name: p.read_text() for p in host.root.iterdir()} == {
        f"f{i}": f"file {i}" for i in range(12)
    }


# -- OpenSSH client argv (for rsync -e) ----------------------------------------------------


def test_ssh_argv_works_with_the_real_ssh_client(ssh: SSHExecutor, host: SshdHost) -> None:
    ssh_binary = need_binary("ssh", "openssh-client")
    argv = ssh.ssh_argv()
    assert argv[0] == "ssh"
    assert ["-i", str(host.key_file)] == argv[1:3]
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv
    completed = subprocess.run(
        [ssh_binary, *argv[1:], ssh.destination(), "echo", "via-openssh"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "via-openssh\n"
    assert ssh.destination() == f"{host.user}@{host.address}"


def test_remote_shell_carries_rsync_to_the_host(
    ssh: SSHExecutor, host: SshdHost, tmp_path: Path
) -> None:
    need_binary("rsync", "rsync")
    shell = ssh.remote_shell()
    assert shell is not None
    assert list(shell.argv) == ssh.ssh_argv(bulk=True)
    assert (shell.user, shell.address) == (host.user, host.address)
    source = tmp_path / "payload"
    source.mkdir()
    (source / "a file").write_text("through rsync -e")
    dest = host.root / "copied"
    argv = rsync_push(source, remote_dest(shell.user, shell.address, str(dest)), shell.argv)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (dest / "a file").read_text() == "through rsync -e"


def test_ssh_argv_rejects_a_mismatched_host_key(host: SshdHost, tmp_path: Path) -> None:
    need_binary("ssh", "openssh-client")
    wrong = known_hosts_with_wrong_key(host, tmp_path)
    marker = host.root / "marker"
    executor = executor_for(host, known_hosts=wrong)
    completed = subprocess.run(
        [*executor.ssh_argv(), executor.destination(), "touch", str(marker)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in completed.stderr
    assert not marker.exists()


def test_ssh_argv_opt_out_connects_despite_a_mismatched_key(host: SshdHost, tmp_path: Path) -> None:
    need_binary("ssh", "openssh-client")
    wrong = known_hosts_with_wrong_key(host, tmp_path)
    executor = executor_for(host, known_hosts=wrong, verify_host_key=False)
    argv = executor.ssh_argv()
    assert "StrictHostKeyChecking=no" in argv
    completed = subprocess.run(
        [*argv, executor.destination(), "true"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr


def test_every_fleet_host_is_reachable(clean_ssh_fleet: SshdFleet) -> None:
    seen = set()
    for host in clean_ssh_fleet:
        with executor_for(host) as executor:
            line = executor.run(["sh", "-c", 'echo "$SSH_CONNECTION"']).stdout.split()
            seen.add((line[2], int(line[3])))
    assert seen == {(h.address, h.port) for h in clean_ssh_fleet}
    assert len({h.address for h in clean_ssh_fleet}) == 3
