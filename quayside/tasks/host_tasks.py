"""The per-host steps of a release run (deploy, switch back, roll back), one connection each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_run_logger

from quayside.deploy.errors import DeployError
from quayside.deploy.host_deploy import deploy_host
from quayside.deploy.host_rollback import rollback_host
from quayside.deploy.release_spec import ReleaseSpec, RollbackSpec
from quayside.deploy.switch_back import switch_back
from quayside.executors.factory import executor_for
from quayside.inventory.models import Host
from quayside.release.host_report import HostReport
from quayside.tasks.payload_store import PayloadCache
from quayside.tasks.release_progress import Progress


class HostDeployFailed(DeployError):
    """One host failed; ``report`` says at which step and why."""

    def __init__(self, report: HostReport) -> None:
        self.report = report
        super().__init__(f"{report.host} [{report.step}]: {report.message}")


def _logger_line() -> Callable[[str], None]:
    logger = get_run_logger()
    return lambda line: logger.info("%s", line)


def deploy_to_host(
    host_name: str,
    host: Host,
    spec: ReleaseSpec,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> HostReport:
    """Deploy one release to one host over one SSH connection: read facts, plan, stage the
    release from the previous one with only the changed files, link shared paths, hooks,
    atomic switch, health check. A host failing after the switch is switched back.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        spec: the release (payload, manifest, hooks, health check).
        dry_run: plan only; the report's ``plan_text`` says what would change.
        progress: advanced when the host is done.

    Returns:
        The host's report (succeeded, no_change or planned).

    Raises:
        HostDeployFailed: the host failed; ``.report`` has the step and the reason.

    Example:
        >>> fan_out("deploy", lambda h: deploy_to_host(h, inventory.hosts[h], spec), names, 20)
    """
    executor = executor_for(host_name, host)
    try:
        report = deploy_host(executor, host_name, spec, dry_run=dry_run, on_line=_logger_line())
    finally:
        executor.close()
        if progress is not None:
            progress.advance()
    logger = get_run_logger()
    if not report.ok:
        raise HostDeployFailed(report)
    logger.info(
        "%s: %s (%d bytes, %d round trips, %.2fs)",
        host_name,
        report.status if not report.message else report.message,
        report.bytes_sent,
        report.round_trips,
        report.duration_s,
    )
    return report


def switch_back_host(
    host_name: str,
    host: Host,
    deploy_root: str,
    previous: str | None,
    post_switch: list[Any],
    env: dict[str, str],
) -> str:
    """Switch a host back to its previous release (automatic rollback) in one round trip and
    re-run the post-switch hooks there.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        deploy_root: the host's deploy root.
        previous: the release to switch back to; None removes ``current``.
        post_switch: the post-switch hooks to re-run.
        env: their environment variables.

    Returns:
        The release now current (or ``none``).

    Raises:
        quayside.errors.HostError: the switch failed.

    Example:
        >>> switch_back_host("web-1", host, "/srv/app", "20240501T120001Z-0123456789ab", [], {})
    """
    executor = executor_for(host_name, host)
    try:
        switch_back(executor, deploy_root, previous, hooks=post_switch, env=env)
    finally:
        executor.close()
    return previous or "none"


def rollback_on_host(
    host_name: str,
    host: Host,
    spec: RollbackSpec,
    fetch_payload: PayloadCache,
    progress: Progress | None = None,
) -> HostReport:
    """Switch one host to an earlier release (one round trip when it is still on the host;
    restored from the artifact store first when it was pruned), then post-switch hooks and
    the health check.

    Args:
        host_name: inventory name of the host.
        host: its inventory entry.
        spec: the release to switch to.
        fetch_payload: gives the stored payload when the release must be restored.
        progress: advanced when the host is done.

    Returns:
        The host's report.

    Raises:
        HostDeployFailed: the host failed; ``.report`` has the step and the reason.

    Example:
        >>> rollback_on_host("web-1", host, spec, PayloadCache(key, Path("/tmp/p")))
    """
    executor = executor_for(host_name, host)
    try:
        report = rollback_host(
            executor, host_name, spec, fetch_payload=fetch_payload, on_line=_logger_line()
        )
    finally:
        executor.close()
        if progress is not None:
            progress.advance()
    if not report.ok:
        raise HostDeployFailed(report)
    return report
