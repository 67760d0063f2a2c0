"""What an OpenSSH client exit 255 stands for (quayside.executors.openssh_transport): the
remote command's own exit status, which ssh passes through (client_failed), or the client's
failure (openssh_failure): a connection that could not be made, refused credentials or host
key, or a connection lost under a command that had started. The stderr samples are what ``ssh``
(OpenSSH 9.2, Debian 12) printed here against the testbed's sshd hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from quayside.errors import AuthError, ConnectError, ConnectionLost, HostKeyError
from quayside.executors.openssh_transport import OpenSSHTransport, client_failed, openssh_failure
from quayside.executors.ssh_target import SSHTarget
from quayside.tasks.retry import transient_only

#: sshd killed while the command printed or read slowly (seen with and without output)
CLOSED = "Connection to 127.0.0.93 closed by remote host.\r\n"
#: sshd killed while ssh sent bulk standard input
SEND_DISCONNECT = "client_loop: send disconnect: Broken pipe\r\n"
#: sshd not running
REFUSED = "ssh: connect to host 127.0.0.93 port 54661: Connection refused\r\n"


@pytest.mark.parametrize(
    ("stderr", "output_bytes", "kind"),
    [
        (CLOSED, 6, ConnectionLost),
        (CLOSED, 0, ConnectionLost),
        (SEND_DISCONNECT, 0, ConnectionLost),
        ("client_loop: send disconnect: Connection reset by peer\r\n", 0, ConnectionLost),
        (
            "Read from remote host 10.0.0.5: Connection reset by peer\r\n" + CLOSED,
            0,
            ConnectionLost,
        ),
        ("packet_write_wait: Connection to 10.0.0.5 port 22: Broken pipe\r\n", 0, ConnectionLost),
        ("Timeout, server 10.0.0.5 not responding.\r\n", 0, ConnectionLost),
        # a shared (ControlMaster) connection whose master died: the client prints nothing
        ("", 0, ConnectionLost),
        ("", 12, ConnectionLost),
        # the client failed (client_failed) after the command printed: the connection broke
        ("mkdir: Permission denied\r\n", 3, ConnectionLost),
        (REFUSED, 0, ConnectError),
        ("ssh: connect to host 10.0.0.5 port 22: Connection timed out\r\n", 0, ConnectError),
        ("ssh: Could not resolve hostname nowhere: Name or service not known\r\n", 0, ConnectError),
        ("kex_exchange_identification: read: Connection reset by peer\r\n", 0, ConnectError),
        (
            "kex_exchange_identification: Connection closed by remote host\r\n"
            "Connection closed by 127.0.0.93 port 2222\r\n",
            0,
            ConnectError,
        ),
        ("Connection closed by 127.0.0.93 port 2222\r\n", 0, ConnectError),
        ("root@127.0.0.93: Permission denied (publickey).\r\n", 0, AuthError),
        ("Host key verification failed.\r\n", 0, HostKeyError),
        ("Bad owner or permissions on /root/.ssh/config\r\n", 0, ConnectError),
    ],
)
def test_exit_255_is_classified_from_what_ssh_printed(
    stderr: str, output_bytes: int, kind: type[Exception]
) -> None:
    assert openssh_failure(stderr, output_bytes) is kind


@pytest.mark.parametrize(
    "stderr",
    [
        CLOSED,
        SEND_DISCONNECT,
        REFUSED,
        "hook output\n" + CLOSED,  # the command's stderr first, ssh's reason last
        "packet_write_wait: Connection to 10.0.0.5 port 22: Broken pipe\r\n",
        "Read from remote host 10.0.0.5: Connection reset by peer\r\n",
        "kex_exchange_identification: read: Connection reset by peer\r\n",
        "Connection closed by 127.0.0.93 port 2222\r\n",
        "root@127.0.0.93: Permission denied (publickey).\r\n",
        "Received disconnect from 10.0.0.5 port 22:2: Too many authentication failures\r\n",
        "Host key verification failed.\r\n",
        "Bad owner or permissions on /root/.ssh/config\r\n",
    ],
)
def test_on_its_own_connection_the_client_failed_when_its_reason_comes_last(stderr: str) -> None:
    assert client_failed(stderr, None) is True


@pytest.mark.parametrize(
    "stderr",
    [
        "",  # a command that exits 255 quietly: ssh says nothing on a clean exit
        "hook: giving up\n",
        "mkdir: cannot create directory '/srv/x': Permission denied\n",
        "write error: Broken pipe\n",
        # an ssh-like line from the command, then more of its own output: not ssh's reason
        CLOSED + "retrying later\n",
    ],
)
def test_on_its_own_connection_the_command_exited_255_itself(stderr: str) -> None:
    assert client_failed(stderr, None) is False


@pytest.mark.parametrize(
    ("stderr", "alive", "failed"),
    [
        ("", False, True),  # the master died under the command: ssh prints nothing
        ("hook: giving up\n", False, True),
        ("", True, False),  # the master runs: the command exited 255 itself
        (CLOSED, True, False),  # the command printed that line; the connection is fine
        (
            "mux_client_request_session: session request failed: Session open refused by peer\r\n",
            True,
            True,
        ),
    ],
)
def test_on_a_shared_connection_the_master_decides(stderr: str, alive: bool, failed: bool) -> None:
    assert client_failed(stderr, alive) is failed


def test_a_master_is_asked_only_where_there_is_one(tmp_path: Path) -> None:
    target = SSHTarget(
        name="web-1",
        address="127.0.0.1",
        port=22,
        user="deploy",
        key_file=None,
        known_hosts=None,
        verify_host_key=True,
        connect_timeout=5,
    )
    assert OpenSSHTransport(target).master_alive() is None
    gone = OpenSSHTransport(target, control_path=tmp_path / "no-master", persist_s=60)
    assert gone.master_alive() is False  # ``ssh -O check``: no socket, no master


def test_a_lost_connection_is_still_a_connect_error() -> None:
    """Whatever handles an unreachable host (retries, reports) handles a lost one too."""
    assert issubclass(ConnectionLost, ConnectError)
    assert "run in part" in ConnectionLost.hint


class Failed:
    """A failed task state as Prefect's ``retry_condition_fn`` receives it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self) -> None:
        raise self.error


def test_a_lost_connection_is_not_retried_so_its_message_is_what_is_reported() -> None:
    lost = ConnectionLost("web-1", "connection to 10.0.0.5:22 lost during the command")
    assert transient_only(None, None, Failed(lost)) is False
    assert transient_only(None, None, Failed(ConnectError("web-1", "cannot connect"))) is True
