"""What an OpenSSH client exit 255 stands for (quayside.executors.openssh_transport
.openssh_failure): a connection that could not be made, refused credentials or host key, or a
connection lost under a command that had started. The stderr samples are what ``ssh`` (OpenSSH
9.2, Debian 12) printed here against the testbed's sshd hosts."""

from __future__ import annotations

import pytest

from quayside.errors import AuthError, ConnectError, ConnectionLost, HostKeyError
from quayside.executors.openssh_transport import openssh_failure
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
        # the command ran (it printed): whatever its stderr said, the connection broke after
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
