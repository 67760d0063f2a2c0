"""Executors: the only code that touches a host (this machine, or one over SSH)."""

from quayside.executors.base import CommandResult, Executor, OutputCallback, RemoteShell
from quayside.executors.local import LocalExecutor
from quayside.executors.ssh import SSHExecutor

__all__ = [
    "CommandResult",
    "Executor",
    "LocalExecutor",
    "OutputCallback",
    "SSHExecutor",
    "RemoteShell",
]
