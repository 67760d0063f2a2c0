"""Entry point: registers the command modules and turns errors into messages + exit codes."""

from __future__ import annotations

import sys

import click

from quayside.cli import commands_auth  # noqa: F401  (registers commands)
from quayside.cli import commands_platform  # noqa: F401  (registers commands)
from quayside.cli.app import app, fail


def main() -> None:
    try:
        app(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SystemExit:
        raise
    except BaseException as e:  # the error boundary: a message, never a traceback
        if isinstance(e, KeyboardInterrupt):
            sys.exit(130)
        sys.exit(fail(e))


if __name__ == "__main__":
    main()
