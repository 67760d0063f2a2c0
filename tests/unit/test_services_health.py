"""The services health probe's logic with a recording stand-in for the Prefect API: what it
sends, when it is satisfied, and the message when the services process never persists the
event. Against a real services process (running, SIGSTOPped, killed) it is tested on the
process stack (tests/platform/test_process_stack.py)."""

from __future__ import annotations

from typing import Any

import pytest

from quayside.stack.services_health import (
    PROBE_EVENT,
    ServicesUnhealthy,
    probe,
)


class FakeAPI:
    """Answers ``/events/filter`` with nothing until ``persist_after`` reads have been made."""

    url = "http://prefect.test/api"

    def __init__(self, persist_after: int | None) -> None:
        self.persist_after = persist_after
        self.calls: list[tuple[str, str, Any]] = []
        self.reads = 0

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if path == "/events":
            return None
        self.reads += 1
        if self.persist_after is not None and self.reads > self.persist_after:
            return {"events": [{"id": body["filter"]["id"]["id"][0]}]}
        return {"events": []}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_probe_sends_one_event_and_reads_that_event_back() -> None:
    api, clock = FakeAPI(persist_after=3), Clock()
    took = probe(api, 20, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]

    method, path, (event,) = api.calls[0]
    assert (method, path) == ("POST", "/events")
    assert event["event"] == PROBE_EVENT
    reads = [body for m, p, body in api.calls[1:] if (m, p) == ("POST", "/events/filter")]
    assert len(reads) == 4
    assert all(r["filter"]["id"]["id"] == [event["id"]] for r in reads)
    assert took == pytest.approx(1.5)


def test_an_event_never_persisted_names_the_services_process_and_what_to_do() -> None:
    api, clock = FakeAPI(persist_after=None), Clock()
    with pytest.raises(ServicesUnhealthy) as raised:
        probe(api, 5, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]

    assert "prefect-services" in raised.value.message
    assert "within 5 s" in raised.value.message
    assert raised.value.hint and "docker-compose restart prefect-services" in raised.value.hint
    assert clock.now == pytest.approx(5)
