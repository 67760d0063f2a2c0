"""Run starts take turns (quayside.gateway.run_starts): a burst of submissions waits for a
slot without holding the gateway's threads, so its other pages answer meanwhile; a start
that waits too long is answered 503 with Retry-After, having started and recorded nothing,
and the same request sent again starts its run once.

The gateway, the ledger, roles and the inventory are real; Prefect is the stand-in of
tests/unit/test_gateway_idempotency.py, held inside its run creation to keep a slot taken."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from quayside.gateway import triggering
from quayside.gateway.config import GatewayConfig
from quayside.gateway.run_starts import RunStartsBusy, RunStartSlots
from quayside.ledger.audit import list_events
from quayside.ledger.db import make_engine
from quayside.ledger.submissions import submission_of_run
from quayside.runs import RunHandle
from tests.unit.test_gateway_idempotency import FakePrefect, deploy, gateway_client


class HeldPrefect(FakePrefect):
    """Prefect whose run creation waits until ``go`` is set (``inside`` says one is waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.go = threading.Event()

    def start_run(
        self, deployment: str, parameters: dict[str, Any], *, idempotency_key: str, **kw: Any
    ) -> RunHandle:
        self.inside.set()
        assert self.go.wait(30), "the test never let the run creation finish"
        return super().start_run(deployment, parameters, idempotency_key=idempotency_key, **kw)


def test_a_start_waits_its_turn_and_is_refused_503_when_the_wait_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefect = HeldPrefect()
    monkeypatch.setattr(triggering, "start_run", prefect.start_run)
    http, tokens = gateway_client(tmp_path, GatewayConfig(run_starts=1, run_start_wait_s=1))
    bearer = {"Authorization": f"Bearer {tokens['ann']}"}
    with http, ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(deploy, http, tokens["ann"], "alpha", "test", "first-key-0001")
        assert prefect.inside.wait(10)
        # the only slot is taken: the rest of the gateway still answers at once
        assert http.get("/health").status_code == 200
        assert http.get("/api/releases", headers=bearer).status_code == 200
        started = time.monotonic()
        refused = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        body = refused.json()
        assert "starting 1 runs already" in body["error"]
        assert "nothing was started or recorded" in body["error"]
        assert "Idempotency-Key" in body["hint"]
        assert "Traceback" not in refused.text
        assert waited >= 0.9  # it waited for its turn before giving up
        assert len(prefect.runs) == 0  # nothing started for it (the first is still inside)
        prefect.go.set()
        accepted = first.result(timeout=30)
        assert accepted.status_code == 202, accepted.text
        assert len(prefect.runs) == 1
        # the refused request left nothing in the ledger: no audit event of bob's
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            assert not [e for e in list_events(engine, limit=1000) if e.actor == "bob"]
        finally:
            engine.dispose()
        # sent again as the hint says: its run starts, once
        again = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
        assert again.status_code == 202, again.text
        twice = deploy(http, tokens["bob"], "beta", "prod", "second-key-001")
        assert twice.json()["flow_run_id"] == again.json()["flow_run_id"]
        assert len(prefect.runs) == 2
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            assert submission_of_run(engine, again.json()["flow_run_id"]) is not None
            assert [e for e in list_events(engine, limit=1000) if e.actor == "bob"]
        finally:
            engine.dispose()


def test_starts_beyond_the_limit_wait_and_all_get_their_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefect = HeldPrefect()
    monkeypatch.setattr(triggering, "start_run", prefect.start_run)
    http, tokens = gateway_client(tmp_path, GatewayConfig(run_starts=2, run_start_wait_s=30))
    inside = 0
    most = 0
    lock = threading.Lock()
    held_start = prefect.start_run

    def counting(deployment: str, parameters: dict[str, Any], **kw: Any) -> RunHandle:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.05)
            return held_start(deployment, parameters, **kw)
        finally:
            with lock:
                inside -= 1

    monkeypatch.setattr(triggering, "start_run", counting)
    prefect.go.set()
    with http, ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda i: deploy(http, tokens["ann"], "alpha", "test", f"burst-key-{i:04d}"),
                range(8),
            )
        )
    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.json()["flow_run_id"] for a in answers}) == len(prefect.runs) == 8
    assert most == 2  # never more run creations at once than the slots


def test_slots_are_given_back_when_the_work_fails() -> None:
    async def scenario() -> None:
        slots = RunStartSlots(1, 0.2)
        with pytest.raises(ValueError):
            async with slots.slot():
                assert slots.free == 0
                raise ValueError("the start failed")
        assert slots.free == 1
        async with slots.slot():
            with pytest.raises(RunStartsBusy):
                async with slots.slot():
                    pass  # never reached: the only slot is held above
        assert slots.free == 1

    anyio.run(scenario)


@pytest.mark.parametrize(
    ("name", "value"),
    [("QUAYSIDE_GATEWAY_RUN_STARTS", "0"), ("QUAYSIDE_GATEWAY_RUN_START_WAIT", "x")],
)
def test_bad_settings_are_named(name: str, value: str) -> None:
    from quayside.errors import ConfigError

    with pytest.raises(ConfigError, match=name):
        GatewayConfig.from_env({name: value})


def test_defaults() -> None:
    config = GatewayConfig.from_env({})
    assert (config.run_starts, config.run_start_wait_s) == (4, 30)
