"""The results.json entries of the git deploy benchmarks (``git_deploy_fanout``,
``git_deploy_incremental``, ``git_deploy_rollback``) from what was measured: the tools'
timings, the figures beside them and the notes that say how to read them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.git_deploy.app import CHANGED_FILE, TAG_V1, TAG_V2
from bench.git_deploy.first_deploy import FirstDeploy
from bench.git_deploy.next_release import NextRelease
from bench.git_deploy.notes import (
    BACK_TO_BACK_NOTE,
    EMPTY_FLOW_NOTE,
    FLOOR_NOTE,
    HOST_DISK_FALLBACK_NOTE,
    HOST_DISK_NOTE,
    LOG_LEVEL_NOTE,
    LOGIN_NOTE,
    LOOPBACK_NOTE,
    MIRROR_NOTE,
    PREPARED_NOTE,
    TRANSFER_NOTE,
    WARM_NOTE,
)
from bench.git_deploy.prefect_floor import empty_flow_figures
from bench.harness import Timing, ToolResult, machine_info, make_entry, reproduce_command

NAME = "git_deploy"
COMMAND = reproduce_command(NAME)
#: The results this benchmark produces (``python -m bench <one of these>`` runs only that one).
RESULTS = ("git_deploy_fanout", "git_deploy_incremental", "git_deploy_rollback")


@dataclass(frozen=True)
class Payload:
    """What was deployed, for the descriptions."""

    hosts: int
    files: int
    total_bytes: int
    changed_size: int
    tmpfs_problem: str | None
    load_start: float


def disk_note(tmpfs_problem: str | None) -> str:
    """Where the hosts' deploy roots were, and what that does to the figures."""
    if tmpfs_problem is None:
        return HOST_DISK_NOTE
    return HOST_DISK_FALLBACK_NOTE.format(reason=tmpfs_problem)


def common_notes(cores: Any, tmpfs_problem: str | None) -> list[str]:
    """Notes every git deploy result carries: logins, log level, loopback, disks, roots."""
    return [
        LOGIN_NOTE,
        LOG_LEVEL_NOTE,
        LOOPBACK_NOTE.format(cores=cores),
        disk_note(tmpfs_problem),
        "Each sshd runs in its own mount namespace with its own directory bind-mounted on one "
        "common deploy root path, so every tool (Quayside included) sees one `deploy_root` "
        "and independent hosts, as in production.",
        "Every timed run deploys into a new, empty deploy root on every host (a new app "
        "name in the inventory for Quayside, with a clean ledger history); old roots are "
        "deleted between tools, untimed.",
    ]


def build_entries(
    payload: Payload,
    first: FirstDeploy,
    following: NextRelease,
    parts: Sequence[str],
    repeat: int,
) -> dict[str, dict[str, Any]]:
    """The entries named in ``parts``, by name."""
    machine = machine_info()
    notes = common_notes(machine.get("cores"), payload.tmpfs_problem)
    incremental, floor = following.incremental, following.floor
    quayside_bytes = [
        b for t in incremental if t.key == "quayside" and t.timing for b in per_host_bytes(t.timing)
    ]
    rsync_bytes = [
        b
        for t in incremental
        if t.key == "parallel_rsync_link_dest" and t.timing
        for b in per_host_bytes(t.timing)
    ]
    app_text = (
        f"{payload.files:,} files, {payload.total_bytes / 1e6:.0f} MB of incompressible data "
        f"(os.urandom, deterministic layout) in a git repository with tags {TAG_V1} and "
        f"{TAG_V2}, deployed to {payload.hosts} sshd hosts on loopback"
    )
    extra_fanout: dict[str, Any] = {
        "hosts": payload.hosts,
        "files": payload.files,
        "bytes": payload.total_bytes,
        "quayside_worker_path_s": first.worker_s,
        "load_avg_1m": {"start": payload.load_start, "end": machine.get("load_avg_1m")},
    }
    fanout_notes = [
        "`quayside_worker_path_s` (context, one run, not in the ratios): the same first deploy "
        "started as a run of the `git-deploy` deployment through the Prefect API and executed "
        "by `quayside up`'s process worker, timed until the run is final: it adds the worker's "
        "poll interval (1 s here) and a new Python process for the flow run."
        + ("" if first.worker_s is not None else f" Not measured: {first.worker_reason}."),
        TRANSFER_NOTE,
        *notes,
    ]
    bytes_text = {
        "quayside": _mean(quayside_bytes),
        "parallel_rsync_link_dest": _mean(rsync_bytes),
    }
    entries = {
        "git_deploy_fanout": make_entry(
            first.tools,
            title="Git deploy: first release to every host",
            description=f"First deploy of {app_text}. Baselines: a serial per-host loop, "
            "parallel rsync and Ansible.",
            command=COMMAND,
            repeat=repeat,
            extra=extra_fanout,
            notes=fanout_notes,
            machine=machine,
        ),
        "git_deploy_incremental": make_entry(
            incremental,
            title="Git deploy: a release with one changed file",
            description=f"The next tag of the same app ({CHANGED_FILE} rewritten, "
            f"{payload.changed_size:,} bytes) on hosts that hold the "
            "previous release.",
            command=COMMAND,
            repeat=repeat,
            extra={
                "hosts": payload.hosts,
                "changed_files": 1,
                "bytes_sent_per_host": bytes_text,
                "bytes_sent_per_host_max": {
                    "quayside": max(quayside_bytes) if quayside_bytes else None,
                    "parallel_rsync_link_dest": max(rsync_bytes) if rsync_bytes else None,
                },
                **empty_flow_figures(following.empty_runs),
                "host_work_floor_s": (
                    round(floor.timing.median_s, 3) if floor and floor.timing else None
                ),
                "host_work_floor_runs_s": (
                    [round(r, 3) for r in floor.timing.runs_s] if floor and floor.timing else None
                ),
                "quayside_hosts_prepared_after_s": following.prepare_waits,
                "parallel_rsync_link_dest_vs_quayside_cold": _ratio_between(
                    incremental, "parallel_rsync_link_dest", "quayside_cold"
                ),
            },
            notes=[
                PREPARED_NOTE,
                WARM_NOTE,
                FLOOR_NOTE
                + (
                    ""
                    if floor is None or floor.not_measured is None
                    else f" Not measured: {floor.not_measured}."
                ),
                EMPTY_FLOW_NOTE,
                BACK_TO_BACK_NOTE,
                MIRROR_NOTE,
                "`bytes_sent_per_host`: mean over hosts and runs. Quayside's comes from the "
                "ledger (release_hosts.bytes_sent of the release); rsync's is \"Total bytes "
                'sent" of its `--stats` (rsync protocol bytes, before SSH framing).',
                *notes,
            ],
            machine=machine,
        ),
        "git_deploy_rollback": make_entry(
            following.rollback,
            title="Rollback of every host to the previous release",
            description=f"Hosts hold {TAG_V1} and {TAG_V2} with `current` on {TAG_V2}; switch "
            f"back to {TAG_V1} on all {payload.hosts} hosts.",
            command=COMMAND,
            repeat=repeat,
            extra={
                "hosts": payload.hosts,
                **empty_flow_figures(following.empty_runs),
            },
            notes=[EMPTY_FLOW_NOTE, BACK_TO_BACK_NOTE, *notes],
            machine=machine,
        ),
    }
    return {name: entry for name, entry in entries.items() if name in parts}


def _ratio_between(tools: Sequence[ToolResult], slow: str, fast: str) -> float | None:
    """``slow``'s median over ``fast``'s, when both were measured."""
    by_key = {t.key: t for t in tools}
    a, b = by_key.get(slow), by_key.get(fast)
    if a is None or b is None or a.timing is None or b.timing is None:
        return None
    return round(a.timing.median_s / b.timing.median_s, 2)


def _mean(values: list[int]) -> int | None:
    return round(statistics.mean(values)) if values else None


def per_host_bytes(timing: Timing) -> list[int]:
    """Bytes each host was sent, over every run (what a tool's timed call returned)."""
    return [b for output in timing.outputs if output for b in output]
