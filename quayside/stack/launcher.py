"""The process work pool's flow-run command: ``python -m quayside.stack.launcher``.

Asks the fork server (:mod:`quayside.stack.forkserver`) to run this flow run in a child of a
process that has already imported Prefect and the flows, passing this process's stdin, stdout
and stderr, environment, working directory and arguments; exits with the child's exit status.
SIGTERM/SIGINT/SIGHUP received here are forwarded to the child; if this process is killed
outright, the fork server kills the child.

If the fork server is not there (not started, crashed, reloading) or answers ``fallback``
(its imported code is older than the files), it becomes ``python -m prefect.engine`` itself
(``exec``), so flow runs never depend on it.

Imports only the standard library: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType


def _socket_path() -> Path:
    # the same rule as quayside.stack.forkserver.socket_path, without importing it
    home = os.environ.get("QUAYSIDE_HOME") or str(Path.home() / ".quayside")
    return Path(home) / "run" / "launcher.sock"


def fallback(argv: list[str]) -> None:
    """Become ``python -m prefect.engine ARGS`` (never returns)."""
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *argv])


def connect(path: Path) -> socket.socket | None:
    if os.environ.get("QUAYSIDE_FORKSERVER", "1") == "0":
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    sock = connect(_socket_path())
    if sock is None:
        fallback(args)
        return 1  # not reached
    request = {"env": dict(os.environ), "cwd": os.getcwd(), "argv": ["prefect.engine", *args]}
    try:
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
    except OSError:
        sock.close()
        fallback(args)

    def forward(signum: int, frame: FrameType | None) -> None:
        try:
            sock.sendall(json.dumps({"kill": signum}).encode() + b"\n")
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)

    reader = sock.makefile("rb")
    while True:
        try:
            line = reader.readline()
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue
        if not line:
            print("quayside launcher: the fork server went away", file=sys.stderr)
            return 1
        message = json.loads(line)
        if "fallback" in message:  # the server's code is stale: run the new code here
            sock.close()
            fallback(args)
        if "exit" in message:
            return int(message["exit"])
        if "signal" in message:
            return die_like_the_child(int(message["signal"]))


def die_like_the_child(signum: int) -> int:
    """End this process by the signal that ended the flow run, so the worker reports the
    signal (an OOM kill shows as SIGKILL, not as "status code 1"); returns the shell-style
    status if the signal does not end it."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    print(f"quayside launcher: the flow run was killed by {name}", file=sys.stderr, flush=True)
    if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be caught or reset
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
