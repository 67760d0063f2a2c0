"""A stopping release run switches no host (quayside.release.stopping): switches refused once
stopped, the ones in flight waited for, a streamed stage's go never written, and every
process the run started killed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quayside.deploy.stage_transport import file_then_go
from quayside.release import stopping


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    stopping.reset()
    yield
    stopping.reset()


def test_a_stopped_run_refuses_switches_naming_the_host() -> None:
    with stopping.switching("web-1", "the switch"):
        pass
    assert stopping.stop("flow run x is Cancelling", wait_s=1)
    with pytest.raises(stopping.RunStopping, match=r"web-1: the switch not sent.*Cancelling"):
        with stopping.switching("web-1", "the switch"):
            pytest.fail("sent while stopping")
    assert stopping.stopping() == "flow run x is Cancelling"


def test_stop_waits_for_the_switch_in_flight() -> None:
    entered, done = threading.Event(), threading.Event()
    ended: list[float] = []

    def switch() -> None:
        with stopping.switching("web-1", "the switch"):
            entered.set()
            done.wait(5)
            ended.append(time.monotonic())

    worker = threading.Thread(target=switch)
    worker.start()
    entered.wait(5)
    threading.Timer(0.3, done.set).start()
    assert stopping.stop("stopping", wait_s=10)
    returned = time.monotonic()
    worker.join()
    assert ended and ended[0] <= returned  # stop returned only after the switch ended


def test_stop_gives_up_after_its_bound() -> None:
    assert stopping.begin_switch()
    try:
        assert not stopping.stop("stopping", wait_s=0.2)
    finally:
        stopping.end_switch()


def test_a_streamed_stage_gets_no_go_once_the_run_stops(tmp_path: Path) -> None:
    source = tmp_path / "payload.tar"
    source.write_bytes(b"x" * 1000)
    for stopped, want in ((False, b"x" * 1000 + b"GO\n"), (True, b"x" * 1000)):
        if stopped:
            stopping.stop("stopping", wait_s=1)
        with file_then_go(source, b"GO\n", tmp_path / "scratch") as fifo:
            got = fifo.read_bytes()
        assert got == want


def test_kill_started_kills_what_the_run_started() -> None:
    """In a process of its own: it kills everything this one started."""
    program = (
        "from quayside.executors import local_processes as lp\n"
        "lone = lp.start(['sleep', '30'])\n"
        "group = lp.start(['sh', '-c', 'sleep 30 & wait'], new_session=True)\n"
        "done = lp.start(['true']); done.wait()\n"
        "print(lp.kill_started(), lone.wait(5), group.wait(5), lp.kill_started())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["2", "-9", "-9", "0"]


def test_a_stopping_run_leaves_its_release_to_the_stop_hook(tmp_path: Path) -> None:
    """The body's own outcome, reached after the stop killed its ssh (a pre-switch hook
    "failed"), is not written: the hook records the release as the hosts serve it."""
    from quayside.ledger.db import make_engine, migrate
    from quayside.ledger.models import ReleaseKind, ReleaseStatus
    from quayside.ledger.release_queries import get_release, running_releases
    from quayside.ledger.releases import start_release, start_running_release
    from quayside.tasks.release_finish import finish_release_run

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        row = start_running_release(
            engine, "shop", "test", ReleaseKind.deploy, requested_by="ann", flow_run_id="r-1"
        )
        waiting = start_release(
            engine, "shop", "prod", ReleaseKind.deploy, requested_by="ann", flow_run_id="r-1"
        )
        assert stopping.stop("flow run r-1 was stopped (SIGTERM)", wait_s=1)
        assert not finish_release_run(engine, row.id, ReleaseStatus.failed, quiet=True)
        assert not finish_release_run(engine, row.id, ReleaseStatus.succeeded)
        assert [r.id for r in running_releases(engine)] == [row.id]
        # one that never ran (pending, awaiting approval) changed no host: the hook leaves it,
        # so the body's own end is written
        assert finish_release_run(engine, waiting.id, ReleaseStatus.cancelled)
        assert get_release(engine, waiting.id).status is ReleaseStatus.cancelled
        stopping.reset()
        assert finish_release_run(engine, row.id, ReleaseStatus.failed)
        assert get_release(engine, row.id).status is ReleaseStatus.failed
    finally:
        engine.dispose()
