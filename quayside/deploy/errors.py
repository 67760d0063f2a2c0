"""Errors of the git deploy and rollback flows (all ``QuaysideError``: one line + a hint)."""

from __future__ import annotations

from collections.abc import Sequence

from quayside.errors import HostError, QuaysideError


class DeployError(QuaysideError):
    """A deploy or rollback could not be done as asked."""


class BuildError(DeployError):
    """A build command failed or ran past its timeout; carries the output tail."""

    hint = "fix the build (run it locally in a clean checkout of the same commit) and deploy again"


class HealthCheckFailed(HostError):
    """The health check of a host did not pass before its retries or deadline ran out."""

    hint = "look at the host's service logs; the previous release is serving again"


class HostsFailed(DeployError):
    """Some hosts failed; the message has one line per host: host, step and why."""

    def __init__(
        self, message: str, rows: Sequence[tuple[str, str, str]], *, hint: str | None = None
    ) -> None:
        self.rows = list(rows)
        lines = [message] + [f"  {host} [{step}]: {why}" for host, step, why in self.rows]
        super().__init__("\n".join(lines), hint=hint)


class ThresholdExceeded(HostsFailed):
    """More hosts failed than the environment tolerates; switched hosts were rolled back."""

    hint = "fix the failures above and deploy again; every host serves its previous release"
