"""Everything a fleet benchmark measures on, set up once: the generated app, the sshd hosts,
deploy roots per timed run, the rsync baselines, the recorder and (unless skipped) a running
``quayside up`` whose inventory lists one app per timed Quayside run.

``git_deploy`` and ``cli_deploy_e2e`` both open one, so every tool in either sees the same
payload on the same kind of hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.git_deploy.app import FILES, TOTAL_BYTES, App, make_app
from bench.git_deploy.fleet import Fleet, start_fleet, work_directory
from bench.git_deploy.quayside_runs import Quayside, start_quayside
from bench.git_deploy.recorder import Recorder
from bench.git_deploy.roots import Roots, verify
from bench.git_deploy.rsync_runs import RsyncRuns
from bench.harness import Options, log


@dataclass
class Session:
    """One benchmark's app, hosts and tools.

    Attributes:
        quayside: the running platform's flows, or None (then ``quayside_reason`` says why).
    """

    options: Options
    work: Path
    app: App
    fleet: Fleet
    roots: Roots
    rsync: RsyncRuns
    recorder: Recorder
    quayside: Quayside | None
    quayside_reason: str | None

    def check(self, tree: Path) -> Callable[[], None]:
        """An untimed check that every host's ``current`` now holds ``tree``."""
        return lambda: verify(self.fleet.hosts, self.roots, tree)


def open_session(stack: ExitStack, options: Options, name: str, apps: Sequence[str]) -> Session:
    """Generate the app, start ``options.hosts`` hosts and (unless ``--skip quayside``) the
    platform with inventory apps ``apps``; everything stops when ``stack`` closes."""
    work = stack.enter_context(work_directory(options, prefix=f"{name}-"))
    log(f"work directory {work}")
    log(f"generating the app: {FILES} files, {TOTAL_BYTES / 1e6:.0f} MB of random data")
    app = make_app(work)
    fleet = start_fleet(stack, work, options.hosts)
    roots = Roots(fleet.mount, fleet.hosts)
    quayside: Quayside | None = None
    reason: str | None = "skipped in this run (--skip)"
    if "quayside" not in options.skip:
        quayside, reason = start_quayside(stack, work, fleet, app.repo, apps)
    return Session(
        options=options,
        work=work,
        app=app,
        fleet=fleet,
        roots=roots,
        rsync=RsyncRuns(fleet.hosts, roots, app),
        recorder=Recorder(options, after=roots.purge),
        quayside=quayside,
        quayside_reason=reason,
    )
