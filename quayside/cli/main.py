"""Entry point: registers the command modules and turns errors into messages + exit codes.

Usage errors are click's (exit 2, its own message); a ``QuaysideError`` prints one line per
problem plus a hint (exit 1); anything else prints its type and message (exit 70). Tracebacks
only with ``--verbose``.
"""

from __future__ import annotations

import sys

from quayside.cli import (
    commands_api_auth,  # noqa: F401  (registers commands)
    commands_audit,  # noqa: F401  (registers commands)
    commands_auth,  # noqa: F401  (registers commands)
    commands_demo,  # noqa: F401  (registers commands)
    commands_platform,  # noqa: F401  (registers commands)
    commands_release,  # noqa: F401  (registers commands)
)
from quayside.cli.app import app, fail


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except BaseException as e:  # the error boundary: a message, never a traceback
        sys.exit(fail(e))


if __name__ == "__main__":
    main()
