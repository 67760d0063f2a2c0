"""bench.scale_concurrent's parts that need no platform: the latency split by when a sample
was sent, the requests it sends to Prefect (checked against Prefect's own route and filter
schemas), the wait by count, and the memory sampler's process on the cores it is given."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from bench.scale_concurrent import (
    FINAL,
    RUNS_PAGE_BODY,
    RUNS_PAGE_PATH,
    UI_RUNS_PAGE_SIZE,
    Api,
    Latencies,
    MemorySampler,
    current_cpu,
    finished_filter,
    sample_latency,
)


def test_the_phases_split_the_samples_at_the_time_they_were_sent() -> None:
    # the slow answers were sent during the submission burst, the fast ones after it
    slow = [0.9, 0.8, 0.7, 0.6]
    fast = [0.1] * 20
    lat = Latencies(seconds=[*slow, *fast], at=[0.0, 1.0, 2.0, 2.9, *range(3, 23)])
    phases = lat.phases(3.0)
    assert phases["submission"]["samples"] == 4
    assert phases["submission"]["max_s"] == 0.9
    assert phases["after_submission"] == {
        "samples": 20,
        "p50_s": 0.1,
        "p95_s": 0.1,
        "max_s": 0.1,
    }
    # the whole run's p95 is the tail of both
    assert lat.p95() is not None and lat.p95() > 0.6  # type: ignore[operator]
    assert lat.phases(100.0)["after_submission"] == {
        "samples": 0,
        "p50_s": None,
        "p95_s": None,
        "max_s": None,
    }


def test_the_timeline_is_sent_at_and_seconds_in_order() -> None:
    lat = Latencies(seconds=[0.123456, 0.5], at=[0.004, 1.996])
    assert lat.timeline() == [[0.0, 0.1235], [2.0, 0.5]]


def test_each_sample_keeps_when_it_was_sent_from_the_origin() -> None:
    stop = threading.Event()
    origin = time.perf_counter() - 10.0  # the burst started 10 s ago
    lat = sample_latency(lambda: 200, stop, interval_s=0.01, origin=origin)
    while len(lat.seconds) < 3:
        time.sleep(0.01)
    stop.set()
    time.sleep(0.05)
    assert len(lat.at) == len(lat.seconds)
    assert all(10.0 <= t < 20.0 for t in lat.at)
    assert lat.at == sorted(lat.at)
    assert lat.statuses[200] == len(lat.seconds)


def test_the_runs_page_request_is_the_uis_and_prefect_accepts_it() -> None:
    from prefect.server.api.flow_runs import paginate_flow_runs
    from prefect.server.schemas.sorting import FlowRunSort

    assert RUNS_PAGE_PATH == "/flow_runs/paginate"
    assert RUNS_PAGE_BODY == {"page": 1, "limit": UI_RUNS_PAGE_SIZE, "sort": "START_TIME_DESC"}
    accepted = set(inspect.signature(paginate_flow_runs).parameters)
    assert set(RUNS_PAGE_BODY) <= accepted
    assert FlowRunSort(RUNS_PAGE_BODY["sort"]) is FlowRunSort.START_TIME_DESC


def test_the_count_filter_is_the_runs_in_a_final_state() -> None:
    from prefect.server.schemas.filters import FlowRunFilter
    from prefect.server.schemas.states import StateType

    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = finished_filter(ids)
    assert set(body) == {"flow_runs"}
    parsed = FlowRunFilter.model_validate(body["flow_runs"])
    assert parsed.id is not None and parsed.id.any_ is not None
    assert [str(i) for i in parsed.id.any_] == ids
    assert parsed.state is not None and parsed.state.type is not None
    assert set(parsed.state.type.any_ or ()) == {StateType(s) for s in FINAL}


def test_wait_counts_until_every_run_is_final_then_reads_them_once() -> None:
    sent: list[tuple[str, dict[str, object]]] = []
    counts = iter([0, 1, 2])
    runs = [{"id": "a1", "state": {"type": "COMPLETED"}}, {"id": "b2", "state": {"type": "FAILED"}}]

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, json.loads(request.content)))
        if request.url.path == "/api/flow_runs/count":
            return httpx.Response(200, json=next(counts))
        return httpx.Response(200, json=runs)

    prefect = httpx.Client(base_url="http://prefect/api", transport=httpx.MockTransport(answer))
    with prefect, httpx.Client() as gateway:
        api = Api(gateway, prefect)
        assert api.wait(["a1", "b2"], 60, poll_s=0) == runs
    assert [path for path, _ in sent] == ["/api/flow_runs/count"] * 3 + ["/api/flow_runs/filter"]
    assert sent[0][1] == finished_filter(["a1", "b2"])
    assert api.wait_requests == {"count": 3, "read": 1}


@pytest.fixture
def worker_tree() -> Iterator[subprocess.Popen[str]]:
    """A process named like a Prefect worker with one run's launcher under it."""
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', "
        "'quayside.stack.launcher'])\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code, "quayside.stack.worker"], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "up"
    yield worker
    launchers = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True
    ).stdout.split()
    for pid in launchers:
        os.kill(int(pid), 9)
    worker.kill()
    worker.wait()


def test_the_memory_sampler_runs_on_the_cores_it_is_given(
    worker_tree: subprocess.Popen[str],
) -> None:
    mine = os.sched_getaffinity(0)
    assert len(mine) >= 2, "this machine is meant to have 2 cores"
    other = {max(mine)}
    with MemorySampler([worker_tree.pid], interval_s=0.05, cores=other) as memory:
        time.sleep(0.5)
    assert memory.ran_on["affinity"] == sorted(other)
    assert memory.ran_on["cpus_seen"] and set(memory.ran_on["cpus_seen"]) <= other
    assert memory.peak["worker"]["processes"] == 1
    assert memory.peak["launcher"]["processes"] == 1
    assert memory.runs_per_worker() == [1]
    assert memory.peak_rss_mb > 0 and memory.peak_pss_mb > 0
    assert os.sched_getaffinity(0) == mine  # the benchmark's own process keeps its cores


def test_current_cpu_is_one_this_thread_may_use() -> None:
    assert current_cpu() in os.sched_getaffinity(0)


def test_the_p95_never_passes_the_largest_sample() -> None:
    from bench.scale_concurrent import p95_of

    samples = [0.1] * 10 + [2.78]
    assert p95_of(samples) is not None
    assert p95_of(samples) <= 2.78  # the exclusive method gave more than the largest
    assert p95_of([0.1 * i for i in range(1, 101)]) == round(0.1 + 0.95 * 9.9, 4)
