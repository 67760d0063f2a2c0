"""Host tasks: run one command on one host, with retries on transient failures and the
command's output streamed into the Prefect run log."""

from __future__ import annotations

from prefect import get_run_logger, task

from quayside.executors.factory import executor_for
from quayside.inventory.models import Host
from quayside.tasks.retry import transient_only


@task(
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
    task_run_name="{host_name}: {argv[0]}",
)
def run_command(host_name: str, host: Host, argv: list[str], timeout_s: float = 60) -> str:
    """Run ``argv`` on ``host`` and return its stdout.

    Args:
        host_name: inventory name of the host (used in logs and errors).
        host: the inventory entry.
        argv: the command; each element is one argument, never parsed by a shell.
        timeout_s: stop the command after this many seconds.

    Returns:
        The command's standard output.

    Raises:
        quayside.errors.HostError: (subclasses) unreachable host, refused credentials,
            unknown host key, timeout or non-zero exit, with host, command and stderr tail.

    Example:
        >>> run_command("web-1", inventory.hosts["web-1"], ["uname", "-a"])
    """
    logger = get_run_logger()
    executor = executor_for(host_name, host)
    try:
        result = executor.run(
            argv,
            timeout=timeout_s,
            on_output=lambda stream, line: logger.info("%s %s: %s", host_name, stream, line),
        )
    finally:
        executor.close()
    return result.stdout
