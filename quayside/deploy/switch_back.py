"""Switching a host back to the release it served before (a failed verification, or the
fleet past its failure threshold)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from quayside.commands.release import current_link, switch_current_script
from quayside.deploy import scripts
from quayside.deploy.hooks import HOOK_TIMEOUT_S
from quayside.deploy.source import command_argv
from quayside.errors import QuaysideError
from quayside.executors.base import Executor
from quayside.release import stopping

log = logging.getLogger(__name__)


def switch_back(
    executor: Executor,
    deploy_root: str,
    previous: str | None,
    *,
    hooks: Sequence[Sequence[str] | str] = (),
    env: Mapping[str, str] | None = None,
) -> None:
    """Point ``current`` back at ``previous`` (or remove it when the host had no release),
    then re-run the post-switch hooks there (best effort).

    Raises:
        HostError: the switch itself failed, or was not sent because the run is stopping
            (:class:`~quayside.release.stopping.RunStopping`).
    """
    with stopping.switching(executor.name, "the switch back"):
        if previous is None:
            executor.run(scripts.unswitch(deploy_root), timeout=120)
            return
        executor.run(switch_current_script(deploy_root, previous), timeout=120)
    for command in hooks:
        try:
            executor.run(
                command_argv(command),
                env={**(env or {}), "QUAYSIDE_RELEASE": previous},
                cwd=current_link(deploy_root),
                timeout=HOOK_TIMEOUT_S,
            )
        except QuaysideError as e:
            log.warning("%s: post-switch hook after switching back failed: %s", executor.name, e)
