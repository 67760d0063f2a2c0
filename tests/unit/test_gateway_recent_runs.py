"""The gateway's memory of recently started runs (duplicate deliveries)."""

from __future__ import annotations

from quayside.gateway.recent_runs import RecentRuns
from quayside.runs import RunHandle


def handle(n: int) -> RunHandle:
    return RunHandle(f"id-{n}", f"run-{n}", "git-deploy/git-deploy", f"http://ui/{n}", None)


def test_remembers_until_expiry() -> None:
    now = [0.0]
    cache = RecentRuns(ttl_s=10, clock=lambda: now[0])
    cache.put("k", handle(1))
    assert cache.get("k") == handle(1)
    now[0] = 10.5
    assert cache.get("k") is None
    assert len(cache) == 0


def test_bounded_oldest_goes_first() -> None:
    cache = RecentRuns(max_entries=2)
    for n in range(3):
        cache.put(f"k{n}", handle(n))
    assert cache.get("k0") is None
    assert cache.get("k1") == handle(1) and cache.get("k2") == handle(2)
