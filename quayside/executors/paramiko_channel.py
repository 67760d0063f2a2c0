"""What a command needs from one paramiko channel: its output read to the end, its standard
input sent and closed, a signal delivered to it."""

from __future__ import annotations

import time
from collections.abc import Callable

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST

from quayside.executors.local import LineCollector


def drain(receive: Callable[[int], bytes], collector: LineCollector) -> None:
    """Read one channel stream until EOF (or the channel closes) into ``collector``."""
    try:
        while chunk := receive(32768):
            collector.feed(chunk)
    except (OSError, EOFError, paramiko.SSHException):
        pass
    collector.finish()


def send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Send ``data`` as the command's stdin, then EOF; a command that exits early is fine."""
    try:
        channel.sendall(data)
        channel.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def send_signal(channel: paramiko.Channel, name: str) -> None:
    """Ask sshd to deliver signal ``name`` (e.g. ``"KILL"``) to the channel's command.

    RFC 4254 6.9 "signal" request, honoured by OpenSSH >= 7.9; paramiko has no public call
    for it. Best effort: closing the channel follows regardless.
    """
    transport = channel.get_transport()
    if transport is None or channel.closed:
        return
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    try:
        transport._send_user_message(message)  # type: ignore[attr-defined]
    except (OSError, EOFError, paramiko.SSHException):
        pass


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (never negative), or None for no deadline."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())
