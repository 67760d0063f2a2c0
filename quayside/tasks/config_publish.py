"""Config publish host work for the flow: read every host's live files (one task run for the
fan-out), publish on one host, restore one host; each opens the host's executor and closes it.

The steps themselves are :mod:`quayside.config.host_publish`.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger

from quayside.config.host_publish import HostJob, publish_host, read_host, restore_host
from quayside.config.publish_plan import HostFacts
from quayside.errors import QuaysideError
from quayside.executors.factory import executor_for
from quayside.fanout import GroupResult
from quayside.inventory.config_services import ConfigService
from quayside.inventory.models import Host
from quayside.release.host_report import HostReport
from quayside.tasks.fanout import fan_out


class RestoreFailed(QuaysideError):
    """A host could not be put back on its previous config files."""


def read_hosts(
    hosts: dict[str, Host], service: ConfigService, files: Sequence[str], max_parallel: int
) -> GroupResult[HostFacts]:
    """Every host's live files of ``service`` (one task run, hosts in parallel)."""

    def read(name: str) -> HostFacts:
        executor = executor_for(name, hosts[name])
        try:
            return read_host(executor, service, files)
        finally:
            executor.close()

    return fan_out("read config", read, list(hosts), max_parallel)


def publish_on_host(name: str, host: Host, job: HostJob) -> HostReport:
    """Publish ``job`` on one host (see :func:`quayside.config.host_publish.publish_host`)."""
    executor = executor_for(name, host)
    try:
        report = publish_host(executor, job)
    finally:
        executor.close()
    log = get_run_logger()
    if report.ok:
        log.info("%s: %s (%.2fs)", name, report.message, report.duration_s)
    else:
        log.error("%s [%s]: %s", name, report.step, report.message)
    return report


def restore_on_host(name: str, host: Host, job: HostJob, previous: str | None) -> str:
    """Put one host back on ``previous`` and check its old answers are back.

    Raises:
        RestoreFailed: the switch back or its reload failed.
    """
    executor = executor_for(name, host)
    try:
        note = restore_host(executor, job, previous)
    finally:
        executor.close()
    if note.startswith("RESTORE FAILED") or previous is None:
        raise RestoreFailed(f"{name}: {note}")
    return note
