"""Which config version each host of an environment serves for a service: the directory its
live symlink points at, named as a config release records it (``details.version_dir``). For
reconciling a config release whose run died (the deploy code's facts do not apply: a config
release switches ``<dir>``, not ``<deploy_root>/current``)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from quayside.config.host_publish import read_host
from quayside.executors.factory import executor_for
from quayside.fanout import run_on_hosts
from quayside.inventory.config_services import ConfigService
from quayside.inventory.models import Host


def served_versions(
    hosts: Mapping[str, Host], service: ConfigService, max_parallel: int = 10
) -> list[tuple[str, str | None, str | None]]:
    """``(host, version_dir or None, error or None)`` per host, in the order of ``hosts``:
    the version directory the live symlink points at (None: a plain directory or nothing,
    i.e. never published), or why the host could not be read (one round trip per host)."""

    def serving(name: str) -> str | None:
        executor = executor_for(name, hosts[name])
        try:
            facts = read_host(executor, service, [])
        finally:
            executor.close()
        return posixpath.basename(facts.target) if facts.target else None

    result = run_on_hosts(list(hosts), serving, max_parallel=max_parallel)
    return [
        (o.host, o.value, None) if o.ok else (o.host, None, (o.message or "")[:300])
        for o in result.outcomes
    ]
