"""The process worker's job configuration with its settings' environment computed once.

For every flow run, Prefect's worker builds the run's environment from its own settings
(``BaseJobConfiguration._base_environment``: every set Prefect setting serialized to
``PREFECT_*`` variables, secrets rendered) - the worker's slowest CPU step between taking a
run and starting its process (a py-spy profile of a git deploy through ``quayside up``: more
than the rest of the worker's work for the run together). The worker's settings do not change
while it runs, so :class:`SettledEnvironmentConfiguration` keeps that result per settings
object and hands each run a copy; everything else is Prefect's ``ProcessJobConfiguration``.
"""

from __future__ import annotations

import threading

from prefect.settings import get_current_settings
from prefect.workers.process import ProcessJobConfiguration

_lock = threading.Lock()
#: (the settings object it was computed from, the environment)
_settled: tuple[object, dict[str, str]] | None = None


def settled_environment() -> dict[str, str]:
    """The ``PREFECT_*`` variables the worker gives every flow run (Prefect's own base
    environment), computed once per settings object: the fork server is started with them
    too, so that a run's settings are the ones it built at import."""
    global _settled
    settings = get_current_settings()
    with _lock:
        if _settled is None or _settled[0] is not settings:
            _settled = (settings, ProcessJobConfiguration._base_environment())
        return dict(_settled[1])


class SettledEnvironmentConfiguration(ProcessJobConfiguration):
    """Prefect's process job configuration; the base environment computed once per
    settings object (a new settings context computes it again)."""

    @classmethod
    def _base_environment(cls) -> dict[str, str]:
        return settled_environment()
