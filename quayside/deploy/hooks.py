"""Pre- and post-switch hooks: the app's own commands, run in order on the host."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from quayside.deploy.round_trips import RoundTrips
from quayside.deploy.source import command_argv
from quayside.errors import CommandFailed, CommandTimeout, HookError
from quayside.release.host_report import failure_message

HOOK_TIMEOUT_S = 600.0


def run_hooks(
    trips: RoundTrips,
    commands: Sequence[Sequence[str] | str],
    env: Mapping[str, str],
    cwd: str,
    kind: str,
) -> None:
    """Run hooks in order, their output streamed to the log; the first failure stops with a
    ``HookError`` naming it."""
    for i, command in enumerate(commands):
        try:
            trips.run(command_argv(command), env=env, cwd=cwd, timeout=HOOK_TIMEOUT_S, stream=True)
        except (CommandFailed, CommandTimeout) as e:
            shown = command if isinstance(command, str) else " ".join(command)
            raise HookError(
                f"{kind} hook {i + 1} ({shown[:80]}) failed: {failure_message(e)}"
            ) from e
