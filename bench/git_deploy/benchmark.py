"""``python -m bench git_deploy``: one session (app, hosts, platform), then the first-deploy
and next-release measurements the requested results need, then their entries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from bench.git_deploy.app import CHANGED_FILE
from bench.git_deploy.first_deploy import FirstDeploy, measure_first_deploy
from bench.git_deploy.next_release import NextRelease, measure_next_release
from bench.git_deploy.quayside_runs import app_names
from bench.git_deploy.report import NAME, RESULTS, Payload, build_entries
from bench.git_deploy.session import open_session
from bench.harness import Options


def run(options: Options, parts: Sequence[str] = RESULTS) -> dict[str, dict[str, Any]]:
    """Run the git deploy benchmarks named in ``parts`` (default all three); results.json
    entries by name."""
    load_start = round(os.getloadavg()[0], 2)
    apps = app_names(("fanout", "incr", "cold"), options.repeat, "worker-0", "warmup-0")
    first, following = FirstDeploy(), NextRelease()
    with ExitStack() as stack:
        session = open_session(stack, options, NAME, apps)
        first.worker_reason = session.quayside_reason
        if "git_deploy_fanout" in parts:
            first = measure_first_deploy(session)
        if "git_deploy_incremental" in parts or "git_deploy_rollback" in parts:
            following = measure_next_release(session)
        payload = Payload(
            hosts=len(session.fleet.hosts),
            files=session.app.files,
            total_bytes=session.app.total_bytes,
            changed_size=(session.app.v2_tree / CHANGED_FILE).stat().st_size,
            tmpfs_problem=session.fleet.tmpfs_problem,
            load_start=load_start,
        )
    return build_entries(payload, first, following, parts, options.repeat)
