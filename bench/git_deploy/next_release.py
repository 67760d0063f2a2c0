"""``git_deploy_incremental`` and ``git_deploy_rollback``: the next tag (one file changed) on
hosts that hold the first, then back to the first, by Quayside's flows and by parallel
``rsync --link-dest`` / a parallel ssh switch loop; Quayside again without persisted SSH
connections; and, as context, the host-work floor and Prefect's empty-flow floor.

Incremental and rollback share their setup: per repetition the hosts get the first release
(untimed), then the next release (timed: incremental), then the rollback to the first (timed:
rollback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.git_deploy.app import TAG_V1, TAG_V2
from bench.git_deploy.host_floor import parallel_one_trip_v2
from bench.git_deploy.prefect_floor import empty_flow_runs
from bench.git_deploy.quayside_runs import AppNames, Quayside, flow_missing
from bench.git_deploy.recorder import Spec
from bench.git_deploy.roots import Roots
from bench.git_deploy.session import Session
from bench.harness import ToolResult, log


@dataclass
class NextRelease:
    """The tools' results and the figures measured alongside them."""

    incremental: list[ToolResult] = field(default_factory=list)
    rollback: list[ToolResult] = field(default_factory=list)
    floor: ToolResult | None = None
    #: seconds each host took to prepare the next release after an untimed first release
    prepare_waits: list[float] = field(default_factory=list)
    empty_runs: dict[str, list[float]] = field(
        default_factory=lambda: {"async": [], "sync": [], "tasks": []}
    )


def warm_mirror(quayside: Quayside, roots: Roots) -> None:
    """One untimed release and the next to another app of the same repository, so the timed
    runs find the repository's checked-out tree settled (see ``MIRROR_NOTE``)."""
    log("  (untimed: one release and the next to another app - see MIRROR_NOTE)")
    roots.use("warmup-0")
    quayside.deploy("warmup-0", TAG_V1)
    quayside.deploy("warmup-0", TAG_V2)
    roots.purge()


def measure_next_release(session: Session) -> NextRelease:
    """The one-file release and the rollback, ``repeat`` times per tool."""
    log("git_deploy_incremental + git_deploy_rollback: next release, then back")
    quayside, quayside_reason = session.quayside, session.quayside_reason
    app, roots, base, rec = session.app, session.roots, session.rsync, session.recorder
    hosts = session.fleet.hosts
    result = NextRelease()
    incr_app = AppNames("incr")
    if quayside is not None:
        warm_mirror(quayside, roots)

    def quayside_setup() -> None:
        assert quayside is not None
        quayside.deploy(roots.use(incr_app.next()).rsplit("/", 1)[1], TAG_V1)
        result.prepare_waits.append(round(roots.wait_prepared(), 3))

    def quayside_incr() -> list[int]:
        assert quayside is not None
        outcome = quayside.deploy(roots.label, TAG_V2)
        sent = quayside.bytes_sent(roots.label)
        if not sent and isinstance(outcome, dict):
            reported = outcome.get("bytes_sent")  # the flow's own per-host report
            if isinstance(reported, dict):
                sent = [int(b) for b in reported.values()]
        return sent

    def quayside_rollback() -> Any:
        assert quayside is not None
        return quayside.rollback(roots.label)

    def rsync_setup() -> None:
        roots.new("linkdest")
        base.parallel_v1()

    rollback_reason = quayside_reason or flow_missing("rollback")
    q_specs = [
        Spec(
            "quayside",
            "Quayside `git_deploy` flow",
            "as in the first deploy, for the next tag with one file changed; the hosts "
            "hold the previous release (deployed by Quayside, not timed)",
        ),
        Spec(
            "quayside",
            "Quayside `rollback` flow",
            "the flow called in-process: ledger lookup of the previous release, switch "
            "`current` on every host in parallel, hooks/health (none configured), a "
            "ledger release of kind rollback",
        ),
    ]
    if quayside is not None and rollback_reason is None:
        q_incr, q_rb = rec.steps(
            q_specs,
            [quayside_incr, quayside_rollback],
            setup=quayside_setup,
            checks=[session.check(app.v2_tree), session.check(app.v1_tree)],
        )
    else:
        (q_incr,) = rec.steps(
            q_specs[:1],
            [quayside_incr],
            setup=quayside_setup,
            checks=[session.check(app.v2_tree)],
            unavailable=None if quayside else quayside_reason,
        )
        rb = q_specs[1]
        q_rb = ToolResult(
            rb.key,
            rb.label,
            rb.includes,
            not_measured=rollback_reason or "skipped in this run (--skip)",
        )
    r_incr, r_rb = rec.steps(
        [
            Spec(
                "parallel_rsync_link_dest",
                f"{len(hosts)} × `rsync --link-dest` in parallel",
                "every host at once: `rsync -a --link-dest=<previous release>` of the "
                "new tree into a new releases/<id> (unchanged files become hard links), "
                "then the ssh symlink switch",
            ),
            Spec(
                "ssh_loop_parallel",
                f"{len(hosts)} × ssh symlink switch in parallel",
                "one ssh per host, all at once, running the atomic switch back to the "
                "previous release directory",
            ),
        ],
        [base.parallel_v2_link_dest, base.parallel_switch_to_v1],
        setup=rsync_setup,
        checks=[session.check(app.v2_tree), session.check(app.v1_tree)],
    )
    cold_app = AppNames("cold")

    def cold_setup() -> None:
        assert quayside is not None
        quayside.deploy(roots.use(cold_app.next()).rsplit("/", 1)[1], TAG_V1)
        roots.wait_prepared()

    q_cold = rec.tool(
        Spec(
            "quayside_cold",
            "Quayside `git_deploy` flow, no persisted SSH connections",
            "the same release to the same hosts listed with `persist_s: 0`: one new "
            "SSH connection (paramiko) per host, as for a release more than 60 s "
            "after the last command to those hosts",
        ),
        quayside_incr,
        setup=cold_setup,
        check=session.check(app.v2_tree),
        unavailable=None if quayside else quayside_reason,
    )
    result.incremental = [q_incr, q_cold, r_incr]
    result.rollback = [q_rb, r_rb]
    result.floor = rec.tool(
        Spec(
            "one_trip_floor",
            f"{len(hosts)} × one ssh round trip in parallel",
            "context, not a ratio: see FLOOR_NOTE",
        ),
        lambda: parallel_one_trip_v2(base),
        setup=lambda: (roots.new("floor"), base.parallel_v1()),
        check=session.check(app.v2_tree),
    )
    if quayside is not None:
        result.empty_runs = empty_flow_runs(session.options.repeat, len(hosts))
        log(f"  an empty Prefect flow: {result.empty_runs} s")
    return result
