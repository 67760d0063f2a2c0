"""Fast tests of bench/trigger_latency.py's pure helpers: percentiles, state times,
deliveries, the bench inventory, earlier figures kept for a skipped configuration (the
launcher's own tests are in test_launcher.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.trigger_latency import (
    FIXTURE,
    INVENTORY,
    SECRET_ENV,
    Trigger,
    delivery,
    percentile,
    state_times,
    summary,
)
from quayside.inventory import load_inventory


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4
    assert percentile([5.0], 95) == 5.0
    values = list(range(1, 51))  # 1..50
    assert percentile(values, 95) == pytest.approx(47.55)
    assert percentile(values, 50) == pytest.approx(25.5)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_bad_q(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary() -> None:
    assert summary([3.0, 1.0, 2.0]) == {
        "p50_s": 2.0,
        "p95_s": 2.9,
        "min_s": 1.0,
        "max_s": 3.0,
        "n": 3,
    }


def test_state_times_keep_the_first_of_each_type() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    history = [
        ("RUNNING", t0 + timedelta(seconds=3)),
        ("SCHEDULED", t0),
        ("PENDING", t0 + timedelta(seconds=1)),
        ("RUNNING", t0 + timedelta(seconds=9)),
    ]
    times = state_times(history)
    assert times["RUNNING"] - times["SCHEDULED"] == 3
    trigger = Trigger("qa-1", t0.timestamp() - 0.5, "id", times)
    assert trigger.latency_s == 3.5
    assert trigger.submit_s == 1.5
    assert trigger.start_s == 2.0
    assert Trigger("qa-2", 0.0, "id").latency_s is None


def test_delivery_changes_tag_and_delivery_ids_only() -> None:
    fixture = json.loads(FIXTURE.read_text())
    hook = delivery(fixture, "qa-7")
    assert hook["body"]["ref"] == "refs/tags/qa-7"
    assert hook["body"]["checkout_sha"] == fixture["body"]["checkout_sha"]
    assert hook["headers"]["X-Gitlab-Token"] == fixture["headers"]["X-Gitlab-Token"]
    assert hook["headers"]["Idempotency-Key"] != fixture["headers"]["Idempotency-Key"]
    assert fixture["body"]["ref"] == "refs/tags/release-v1.0.0"  # not modified


def test_bench_inventory_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "s")
    path = tmp_path / "quayside.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path)
    assert [r.pattern for r in inventory.apps["web"].tag_rules] == ["^qa-"]


def test_a_skipped_configuration_keeps_its_earlier_figures() -> None:
    from bench.trigger_latency import PREFECT_DEFAULT, SHIPPED, earlier

    previous = {
        "measured_at": "2026-01-01T00:00:00+00:00",
        "runs_s": {"prefect_default": [10.0, 12.0, 14.0]},
        "configurations": {"prefect_default": {"p50_s": 12.0, "p95_s": 13.8, "n": 3}},
    }
    tool, stats = earlier(PREFECT_DEFAULT, previous, "--skip")
    assert tool.timing is not None and tool.timing.median_s == 12.0
    assert stats["measured_at"] == "2026-01-01T00:00:00+00:00" and stats["p95_s"] == 13.8
    missing, none = earlier(SHIPPED, previous, "--skip")
    assert missing.timing is None and missing.not_measured == "--skip" and none == {}
