"""bench.core_split: the worker side (by command line) and its children go to the other cores,
everything else of this process tree to the platform core."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.core_split import sides, split, threads


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


def test_threads_a_process_started_before_the_split_are_pinned_too() -> None:
    mine = os.sched_getaffinity(0)
    assert len(mine) >= 2, "this machine is meant to have 2 cores"
    code = (
        "import sys, threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code, "prefect-server"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        tids = threads(server.pid)
        assert len(tids) == 2 and tids[0] == server.pid
        assert split([server.pid]) == {"platform": 1, "worker": 0}
        assert [os.sched_getaffinity(t) for t in tids] == [{min(mine)}, {min(mine)}]
    finally:
        server.kill()
        server.wait()


def test_sides_are_the_lowest_core_and_the_rest() -> None:
    mine = os.sched_getaffinity(0)
    cores = sides()
    assert cores.platform == {min(mine)}
    assert cores.worker == mine - {min(mine)}
    assert sides(max(mine)).platform == {max(mine)}
