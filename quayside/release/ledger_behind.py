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


class LedgerBehindHosts(LedgerError):
    """Hosts switched (or not) while the ledger could not record it; the release is left
    ``running`` for a reconcile.

    Attributes:
        serving: the hosts that serve the release (switched, not switched back).
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
        self.serving = tuple(r.host for r in reports if r.switched)
        self.not_serving = tuple(r.host for r in reports if not r.switched)
        why = ((str(cause) or type(cause).__name__).splitlines() or [""])[0]
        if self.serving:
            verb = "serves" if len(self.serving) == 1 else "serve"
            told = f"{_names(self.serving)} {verb} {version} of {app}/{env}"
            if self.not_serving:
                told += f" ({_names(self.not_serving)} not)"
        else:
            told = f"no host serves {version} of {app}/{env}"
            if self.not_serving:
                told += f" ({_names(self.not_serving)} did not switch)"
        super().__init__(
            f"{told}, but the ledger could not record it: {why}",
            hint=f"the release stays running in the ledger until what each host serves is "
            f"recorded by the next release of {app}/{env} or by `quayside up`, once the ledger "
            f"can be written again (a busy one: end the other writer); `quayside releases "
            f"{app} {env}` shows it then",
        )
