"""What happened on one host, and the one line that says why a step failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from quayside.errors import CommandFailed, CommandTimeout, QuaysideError

Status = Literal["succeeded", "failed", "no_change", "planned", "rolled_back"]


@dataclass(frozen=True)
class HostReport:
    """What happened on one host: the last step reached, and why it failed if it did."""

    host: str
    status: Status
    step: str
    message: str = ""
    previous: str | None = None
    switched: bool = False
    bytes_sent: int = 0
    files_sent: int = 0
    duration_s: float = 0.0
    plan_text: str | None = None
    round_trips: int = 0
    #: the host's facts after the switch (what the next deploy may stage against)
    facts_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def failure_message(error: BaseException, host: str | None = None) -> str:
    """One line: for a failed command its exit code and the last lines of its stderr (the
    command itself is often a multi-line script and says little); without a leading
    ``<host>: `` when ``host`` is given (the report names the host already)."""
    if isinstance(error, CommandFailed | CommandTimeout) and error.command:
        lines = [
            line.strip()
            for line in (error.stderr_tail or "").splitlines()
            if line.strip() and "Exiting with failure status" not in line
        ]
        what = "timed out" if isinstance(error, CommandTimeout) else f"exit {error.exit_code}"
        return (f"{what}: " + "; ".join(lines[-2:]))[:300] if lines else what
    if isinstance(error, QuaysideError):
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
    else:
        text = f"{type(error).__name__}: {error}"
    if host is not None and text.startswith(f"{host}: "):
        text = text[len(host) + 2 :]
    return text
