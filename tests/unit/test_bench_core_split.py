"""bench.core_split: the worker side (by command line) and its children go to the other cores,
everything else of this process tree to the platform core."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.core_split import split


def test_worker_side_and_platform_side_get_their_cores() -> None:
    mine = os.sched_getaffinity(0)
    assert len(mine) >= 2, "this machine is meant to have 2 cores"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = subprocess.Popen([*sleeper, "quayside.stack.worker"])
    platform = subprocess.Popen([*sleeper, "prefect-server"])
    try:
        # only these two trees: the test process (and whatever a session started) keep theirs
        counts = split([worker.pid, platform.pid])
        assert counts == {"worker": 1, "platform": 1}
        assert os.sched_getaffinity(worker.pid) == mine - {min(mine)}
        assert os.sched_getaffinity(platform.pid) == {min(mine)}
        assert os.sched_getaffinity(0) == mine
    finally:
        for p in (worker, platform):
            p.kill()
            p.wait()
