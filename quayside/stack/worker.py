"""``python -m quayside.stack.worker ARGS``: start the fork server
(:mod:`quayside.stack.forkserver`) next to the worker, then become ``prefect worker start ARGS``.

The fork server stays a child of the worker, in its process group, so stopping the worker's
group (what ``quayside up`` does) stops it too; and it gets SIGTERM when the worker dies
(:mod:`quayside.stack.parent_death`). ``QUAYSIDE_FORKSERVER=0`` starts no fork
server (flow runs then start with Prefect's own ``python -m prefect.engine``).

A worker given the Prefect API's auth string as a file (``QUAYSIDE_PREFECT_AUTH_STRING_FILE``,
a compose secret on another machine) sends it: Prefect's worker and the flow runs it starts
read only ``PREFECT_API_AUTH_STRING``, which is set from the file before they start.
"""

from __future__ import annotations

import os
import subprocess
import sys

from quayside.api_auth import export_client_auth
from quayside.stack.parent_death import preexec


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    export_client_auth(os.environ)  # before the fork server and the worker read it
    if os.environ.get("QUAYSIDE_FORKSERVER", "1") != "0":
        subprocess.Popen(
            [sys.executable, "-m", "quayside.stack.forkserver"],
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec(),  # the parent stays this process: execv keeps the pid
        )
    os.execv(sys.executable, [sys.executable, "-m", "prefect", "worker", "start", *args])


if __name__ == "__main__":
    main()
