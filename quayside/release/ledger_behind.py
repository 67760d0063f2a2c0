"""The error of a release whose hosts changed while the ledger could not record it.

The ledger stayed busy past its retry budget (another writer held it) after hosts had
switched: writing anything now - "failed" above all - could say the opposite of what the
hosts serve, so the release stays ``running`` and the next reconcile (the next release of
the app/environment under its lock, a crash hook, the sweep at ``quayside up``) records what
each host serves. The user is told in one line which hosts serve the release and which do
not.
"""

from __future__ import annotations

from collections.abc import Sequence

from quayside.errors import LedgerError
from quayside.release.host_report import HostReport

NAMED = 10
"""Hosts named in the line before ``...``."""


def _names(hosts: Sequence[str]) -> str:
    return ", ".join(hosts[:NAMED]) + (f", ... ({len(hosts)} hosts)" if len(hosts) > NAMED else "")


def _serves(report: HostReport) -> bool:
    return report.switched or report.status == "no_change"


class LedgerBehindHosts(LedgerError):
    """Hosts switched (or not) while the ledger could not record it; the release is left
    ``running`` for a reconcile.

    Attributes:
        serving: the hosts that serve the release (switched and not switched back, or had it
            already).
        not_serving: the hosts worked on that do not (never switched, or switched back).
    """

    def __init__(
        self,
        reports: Sequence[HostReport],
        *,
        version: str,
        app: str,
        env: str,
        cause: BaseException,
    ) -> None:
        # a host that had the release already ("no change") serves it without switching
        self.serving = tuple(r.host for r in reports if _serves(r))
        self.not_serving = tuple(r.host for r in reports if not _serves(r))
        why = ((str(cause) or type(cause).__name__).splitlines() or [""])[0]
        if self.serving:
            verb = "serves" if len(self.serving) == 1 else "serve"
            told = f"{_names(self.serving)} {verb} {version} of {app}/{env}"
            if self.not_serving:
                told += f" ({_names(self.not_serving)} not)"
        elif self.not_serving:  # never switched, or switched back
            told = f"none of {_names(self.not_serving)} serves {version} of {app}/{env}"
        else:
            told = f"no host serves {version} of {app}/{env}"
        super().__init__(
            f"{told}, but the ledger could not record it: {why}",
            hint=f"the release stays running in the ledger until what each host serves is "
            f"recorded by the next release of {app}/{env} or by `quayside up`, once the ledger "
            f"can be written again (a busy one: end the other writer); `quayside releases "
            f"{app} {env}` shows it then",
        )
